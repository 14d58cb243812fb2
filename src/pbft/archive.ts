import type { CommittedBatch } from './types.js';

/**
 * Committed batches with their commit certificates, by sequence number. They feed in-order
 * execution and are served to lagging replicas. Bounded: entries that are below both the stable
 * checkpoint and the execution snapshot are evicted beyond `capacity`.
 */
export class Archive {
  private readonly entries = new Map<number, CommittedBatch>();
  /** Everything at or below this seq has been evicted (or was never kept). */
  private floorValue = 0;

  constructor(private readonly capacity: number) {}

  get(seq: number): CommittedBatch | undefined {
    return this.entries.get(seq);
  }

  has(seq: number): boolean {
    return this.entries.has(seq);
  }

  set(entry: CommittedBatch): void {
    this.entries.set(entry.seq, entry);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Lowest seq that may still be served. */
  get oldestAvailable(): number {
    return this.floorValue + 1;
  }

  /** Lowest seq kept, or null when empty. */
  lowest(): number | null {
    let min: number | null = null;
    for (const seq of this.entries.keys()) if (min === null || seq < min) min = seq;
    return min;
  }

  /** Entries in [from, to], in order, at most `max`. */
  range(from: number, to: number, max: number): CommittedBatch[] {
    const out: CommittedBatch[] = [];
    for (let seq = Math.max(from, this.floorValue + 1); seq <= to && out.length < max; seq++) {
      const e = this.entries.get(seq);
      if (!e) break;
      out.push(e);
    }
    return out;
  }

  /** Entries above `seq`, in no particular order. */
  *above(seq: number): IterableIterator<CommittedBatch> {
    for (const [s, e] of this.entries) if (s > seq) yield e;
  }

  /** Drops the oldest entries at or below `evictableThrough` while above capacity. */
  evict(evictableThrough: number): void {
    if (this.entries.size <= this.capacity) return;
    const candidates = [...this.entries.keys()].filter((s) => s <= evictableThrough).sort((a, b) => a - b);
    for (const seq of candidates) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(seq);
      this.floorValue = Math.max(this.floorValue, seq);
    }
  }

  /** Forgets entries at or below `seq` (a restored replica that never had them). */
  raiseFloor(seq: number): void {
    if (seq <= this.floorValue) return;
    for (const s of [...this.entries.keys()]) if (s <= seq) this.entries.delete(s);
    this.floorValue = seq;
  }
}
