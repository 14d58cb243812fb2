/**
 * Bookkeeping of catch-up: what peers report as committed (STATUS), the one FETCH in flight and
 * its retry deadline, the rotation over peers, and the per-peer rate limit for serving fetches.
 * Pure bookkeeping; the replica decides what to send.
 */
export class CatchUpTracker {
  private readonly peerCommitted: number[];
  private readonly lastServedTick: number[];
  private inFlight: { peer: number; fromSeq: number; deadline: number } | null = null;
  private cursor = 0;

  constructor(private readonly n: number, private readonly self: number, private readonly weakQuorum: number) {
    this.peerCommitted = new Array<number>(n).fill(0);
    this.lastServedTick = new Array<number>(n).fill(-1);
  }

  reportCommitted(peer: number, committedThrough: number): void {
    this.peerCommitted[peer] = committedThrough;
  }

  /** The (s+1)-th highest report: at least one correct replica has committed that far. */
  weakCommitted(): number {
    const reported = this.peerCommitted.filter((_, i) => i !== this.self).sort((a, b) => b - a);
    return reported[this.weakQuorum - 1] ?? 0;
  }

  get active(): boolean {
    return this.inFlight !== null;
  }

  /** Whether a FETCH for `fromSeq` should be sent now (none in flight for it, or it timed out). */
  due(fromSeq: number, tick: number): boolean {
    return !(this.inFlight && this.inFlight.fromSeq === fromSeq && tick < this.inFlight.deadline);
  }

  /** Records a FETCH to the next peer in rotation, preferring peers that report having `fromSeq`. */
  start(fromSeq: number, tick: number, retryTicks: number): number {
    const peer = this.pickPeer(fromSeq);
    this.inFlight = { peer, fromSeq, deadline: tick + retryTicks };
    return peer;
  }

  /** The peer answered that it has nothing: try another one at the next tick. */
  emptyAnswer(peer: number, tick: number): void {
    if (this.inFlight?.peer === peer) this.inFlight.deadline = tick;
  }

  done(): void {
    this.inFlight = null;
  }

  /** At most one FETCH served per peer and tick. */
  mayServe(peer: number, tick: number): boolean {
    if (this.lastServedTick[peer] === tick) return false;
    this.lastServedTick[peer] = tick;
    return true;
  }

  private pickPeer(fromSeq: number): number {
    for (let i = 0; i < this.n; i++) {
      const p = (this.cursor + i) % this.n;
      if (p !== this.self && this.peerCommitted[p]! >= fromSeq) {
        this.cursor = p + 1;
        return p;
      }
    }
    let p = this.cursor % this.n;
    if (p === this.self) p = (p + 1) % this.n;
    this.cursor = p + 1;
    return p;
  }
}
