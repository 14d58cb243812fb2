import { digestKey } from './digests.js';
import type { ClientRequest } from './types.js';

export interface PendingEntry {
  readonly key: string;
  readonly request: ClientRequest;
  readonly arrivalTick: number;
  /** The view in which this replica last forwarded the request to the primary, or -1. */
  forwardedInView: number;
}

/**
 * Requests received but not yet executed, in arrival order, bounded: a full queue rejects new
 * submissions (overload) instead of growing.
 */
export class PendingRequests {
  private readonly entries = new Map<string, PendingEntry>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get isFull(): boolean {
    return this.entries.size >= this.capacity;
  }

  has(digest: Uint8Array): boolean {
    return this.entries.has(digestKey(digest));
  }

  hasKey(key: string): boolean {
    return this.entries.has(key);
  }

  /** False when full. */
  add(request: ClientRequest, tick: number): boolean {
    if (this.isFull) return false;
    const key = digestKey(request.digest);
    this.entries.set(key, { key, request, arrivalTick: tick, forwardedInView: -1 });
    return true;
  }

  deleteKey(key: string): void {
    this.entries.delete(key);
  }

  oldestKey(): string | undefined {
    const first = this.entries.keys().next();
    return first.done ? undefined : first.value;
  }

  /** Oldest first. */
  values(): IterableIterator<PendingEntry> {
    return this.entries.values();
  }
}
