/**
 * Which (top, request) pairs this replica answered recently. A top retransmits a request to every
 * replica until it has s+1 matching answers, and links deliver what they accept, so a repeat that
 * comes within one retransmission interval of an answer only means the answer is still on its
 * way: sending the reply again (up to a few MiB) would add load exactly when the cluster is slow.
 * A repeat after the interval is answered again (the answer may have been refused by a full link,
 * or the top restarted). Bounded: the oldest pairs are forgotten first.
 */
export class AnswerLimiter {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly intervalMs: number,
    private readonly limit = 16_384,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Records an answer to `top` for `digestHex` now; false (nothing recorded) if one went out within the interval. */
  allow(top: string, digestHex: string): boolean {
    const key = `${top} ${digestHex}`;
    const t = this.now();
    const previous = this.last.get(key);
    if (previous !== undefined && t - previous < this.intervalMs) return false;
    this.last.delete(key);
    if (this.last.size >= this.limit) this.last.delete(this.last.keys().next().value as string);
    this.last.set(key, t);
    return true;
  }
}
