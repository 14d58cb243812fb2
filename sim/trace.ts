/**
 * The last `capacity` things that happened (or everything, for a replay with --trace), printed
 * when an invariant fails so the failure can be read without a debugger.
 */
export class Trace {
  private readonly lines: { time: number; line: string | (() => string) }[] = [];
  private start = 0;

  constructor(private readonly capacity: number | null) {}

  /** A function is formatted only if the trace is printed (keeps the hot path cheap). */
  add(time: number, line: string | (() => string)): void {
    const entry = { time, line };
    if (this.capacity === null || this.lines.length < this.capacity) {
      this.lines.push(entry);
      return;
    }
    this.lines[this.start] = entry;
    this.start = (this.start + 1) % this.capacity;
  }

  /** Times are printed relative to `origin`. */
  toLines(origin = 0): string[] {
    return [...this.lines.slice(this.start), ...this.lines.slice(0, this.start)].map(
      (e) => `${(e.time - origin).toString().padStart(7)}ms ${typeof e.line === 'string' ? e.line : e.line()}`,
    );
  }
}
