import { toHex } from '../codec/binary.js';
import type { PartialReplies } from '../wire/payloads.js';
import { batchTree } from './batch.js';
import type { FinishedBatch } from './journal.js';

/** Memory per cached request besides its reply and proof bytes (keys, map entries, objects). */
export const REQUEST_OVERHEAD_BYTES = 512;

export interface CachedBatch extends FinishedBatch {
  /** Per index, present when the batch was signed. */
  proofs: Uint8Array[] | undefined;
  bytes: number;
}

export interface CacheHit {
  batch: CachedBatch;
  index: number;
}

/**
 * The bounded reply cache: the replies of recently executed batches, with their proofs and the
 * batch's partial signature, so a request submitted again (a retry with the same nonce, or the
 * same request through another chain) is answered with exactly the same reply, proof and partial
 * instead of being executed again. Bounded by request count and by bytes (I8); whole batches are
 * evicted oldest first.
 */
export class ReplyCache {
  private readonly batches = new Map<number, CachedBatch>();
  private readonly byDigest = new Map<string, { seq: number; index: number }>();
  private requests = 0;
  private bytesValue = 0;

  constructor(
    private readonly maxRequests: number,
    private readonly maxBytes: number,
    private readonly depth: number,
  ) {}

  get size(): number {
    return this.requests;
  }

  get bytes(): number {
    return this.bytesValue;
  }

  /**
   * Adds a finished batch. `proofs` are computed here when not given (a batch restored from the
   * log): only for signed batches, whose replies are all present.
   */
  add(f: FinishedBatch, proofs?: Uint8Array[]): CachedBatch {
    let p = proofs;
    if (p === undefined && f.batch.partial !== undefined && f.replies.length > 0 && f.replies.every((r) => r !== undefined)) {
      p = batchTree(f.replies.map((r) => r!.reply), this.depth, f.batch.seed, f.batch.seq).proofs;
    }
    // What the entry really holds: besides reply and proof bytes, per request a digest, its hex
    // key in byDigest, the map entries and the array objects (about 500 bytes, measured).
    let bytes = 256 + f.batch.digests.length * REQUEST_OVERHEAD_BYTES;
    for (const r of f.replies) if (r) bytes += r.reply.length + 32 * this.depth;
    // Own copies of the digests: the engine's are views into the message that carried the batch,
    // which a cached view would keep alive (with the whole frame around it) as long as the entry.
    const batch = { ...f.batch, seed: new Uint8Array(f.batch.seed), digests: f.batch.digests.map((d) => new Uint8Array(d)) };
    const entry: CachedBatch = { ...f, batch, proofs: f.batch.partial !== undefined ? p : undefined, bytes };
    this.remove(f.batch.seq);
    this.batches.set(f.batch.seq, entry);
    f.batch.digests.forEach((d, index) => this.byDigest.set(toHex(d), { seq: f.batch.seq, index }));
    this.requests += f.batch.digests.length;
    this.bytesValue += bytes;
    this.evict();
    return entry;
  }

  private remove(seq: number): void {
    const old = this.batches.get(seq);
    if (!old) return;
    this.batches.delete(seq);
    for (const d of old.batch.digests) {
      const k = toHex(d);
      if (this.byDigest.get(k)?.seq === seq) this.byDigest.delete(k);
    }
    this.requests -= old.batch.digests.length;
    this.bytesValue -= old.bytes;
  }

  private evict(): void {
    // Keep at least the newest batch, whatever its size.
    while ((this.requests > this.maxRequests || this.bytesValue > this.maxBytes) && this.batches.size > 1) {
      const oldest = this.batches.keys().next().value as number;
      this.remove(oldest);
    }
  }

  get(digestHex: string): CacheHit | undefined {
    const at = this.byDigest.get(digestHex);
    if (!at) return undefined;
    const batch = this.batches.get(at.seq);
    return batch ? { batch, index: at.index } : undefined;
  }

  batch(seq: number): CachedBatch | undefined {
    return this.batches.get(seq);
  }

  /** Batches in seq order (compaction writes them back to the log). */
  all(): IterableIterator<CachedBatch> {
    return this.batches.values();
  }

  /** Records a reply adopted from peers for an unknown outcome (never signed: no proof). */
  setAdopted(seq: number, index: number, reply: Uint8Array): void {
    const b = this.batches.get(seq);
    if (!b || index >= b.replies.length) return;
    b.replies[index] = { reply, own: false };
    b.bytes += reply.length;
    this.bytesValue += reply.length;
  }

  /** The reply this replica computed itself for (digest, seq), for a recovering peer. */
  ownReply(digestHex: string, seq: number): Uint8Array | undefined {
    const hit = this.get(digestHex);
    if (!hit || hit.batch.batch.seq !== seq) return undefined;
    const r = hit.batch.replies[hit.index];
    return r?.own ? r.reply : undefined;
  }
}

/** The Partial payload answering one cached request, or undefined when it cannot be answered. */
export function partialFromCache(hit: CacheHit, view: number): PartialReplies | undefined {
  const { batch, index } = hit;
  const reply = batch.replies[index];
  const proof = batch.proofs?.[index];
  if (batch.batch.partial === undefined || !reply || !proof) return undefined;
  return { view, seq: batch.batch.seq, partial: batch.batch.partial, items: [{ reply: reply.reply, proof }] };
}

/**
 * Which top firewall nodes submitted which request digests, until the request's reply was sent
 * to them. Bounded (I8): beyond `max` digests the oldest are forgotten (their tops retransmit and
 * are answered from the reply cache).
 */
export class Submitters {
  private readonly map = new Map<string, Set<string>>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.map.size;
  }

  /** True when (digest, top) is new. */
  add(digestHex: string, top: string): boolean {
    let tops = this.map.get(digestHex);
    if (!tops) {
      tops = new Set();
      this.map.set(digestHex, tops);
      while (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
    }
    if (tops.has(top)) return false;
    tops.add(top);
    return true;
  }

  has(digestHex: string, top: string): boolean {
    return this.map.get(digestHex)?.has(top) ?? false;
  }

  /** The tops waiting for this digest; forgets them. */
  take(digestHex: string): string[] {
    const tops = this.map.get(digestHex);
    if (!tops) return [];
    this.map.delete(digestHex);
    return [...tops];
  }
}
