import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';

export interface ChildSpec {
  id: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** File receiving the child's stdout and stderr. */
  logFile?: string;
  /** Called with each complete output line (e.g. to echo or parse logs). */
  onLine?: (line: string) => void;
}

const TAIL_LINES = 30;

/**
 * A child process we started and must stop: its output goes to a log file and a ring buffer of
 * the last lines, so a child that dies can be reported with what it said last.
 */
export class ManagedChild {
  readonly id: string;
  readonly process: ChildProcess;
  private readonly tailLines: string[] = [];
  private readonly log: WriteStream | undefined;
  private partial = '';
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;
  private stopping = false;

  constructor(spec: ChildSpec) {
    this.id = spec.id;
    this.log = spec.logFile ? createWriteStream(spec.logFile, { flags: 'a' }) : undefined;
    this.process = spawn(spec.command, spec.args, {
      env: spec.env ?? process.env,
      cwd: spec.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so stopping it also stops anything it started (e.g. a shell's children).
      detached: true,
    });
    const onData = (chunk: Buffer) => {
      // Output can still arrive after 'exit' (the pipes drain later, or a grandchild holds them).
      if (this.log && !this.log.writableEnded) this.log.write(chunk);
      const text = this.partial + chunk.toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        this.tailLines.push(line);
        if (this.tailLines.length > TAIL_LINES) this.tailLines.shift();
        spec.onLine?.(line);
      }
    };
    this.process.stdout!.on('data', onData);
    this.process.stderr!.on('data', onData);
    // 'close' comes after the pipes drained, so the log file gets everything the child said.
    this.process.once('close', () => this.endLog());
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        // A grandchild holding the pipes would delay 'close' for ever: end the log regardless.
        setTimeout(() => this.endLog(), 2_000).unref();
        resolve();
      });
      this.process.once('error', (err) => {
        this.tailLines.push(`failed to start: ${err.message}`);
        this.exitCode = -1;
        this.endLog();
        resolve();
      });
    });
  }

  private endLog(): void {
    if (this.log && !this.log.writableEnded) this.log.end();
  }

  get alive(): boolean {
    return this.exitCode === null && this.exitSignal === null;
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  /** True when the exit was not asked for by `stop`. */
  get crashed(): boolean {
    return !this.alive && !this.stopping;
  }

  tail(lines = 10): string[] {
    const out = [...this.tailLines];
    if (this.partial) out.push(this.partial);
    return out.slice(-lines);
  }

  describeExit(): string {
    return this.exitSignal ? `killed by ${this.exitSignal}` : `exited with code ${this.exitCode}`;
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.alive || this.process.pid === undefined) return;
    try {
      process.kill(-this.process.pid, sig);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    if (!this.alive) return;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
