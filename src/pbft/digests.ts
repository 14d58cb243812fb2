import { Writer, bytesEqual, toHex, utf8 } from '../codec/binary.js';
import { DIGEST_BYTES, sha256 } from '../crypto/hash.js';
import type { Batch } from './types.js';

/** Domain tags of everything the engine hashes (signing tags are in signing.ts). */
const BATCH_TAG = 'cbft/pbft/batch/v1';
const HISTORY_TAG = 'cbft/pbft/history/v1';
const GENESIS_TAG = 'cbft/pbft/history-genesis/v1';
const SEED_TAG = 'cbft/pbft/seed/v1';
// Pre-encoded tags for the hot paths (`w.bytes(t)` writes exactly what `w.string(tag)` would).
const BATCH_TAG_BYTES = utf8(BATCH_TAG);
const HISTORY_TAG_BYTES = utf8(HISTORY_TAG);

export const SEED_BYTES = 32;

/**
 * Digest of a batch: timestamp, seed and the request digests. Payloads are covered through their
 * digests, which receivers recheck against the payloads (batch-validation.ts).
 */
export function batchDigest(batch: Batch): Uint8Array {
  const w = new Writer(64 + batch.requests.length * DIGEST_BYTES);
  w.bytes(BATCH_TAG_BYTES).u64(batch.timestamp).fixed(batch.seed, SEED_BYTES).u32(batch.requests.length);
  for (const r of batch.requests) w.fixed(r.digest, DIGEST_BYTES);
  return sha256(w.finish());
}

/** The null batch: no requests; re-proposed for sequence numbers left empty by a view change. */
export const NULL_BATCH: Batch = Object.freeze({
  timestamp: 0,
  seed: new Uint8Array(SEED_BYTES),
  requests: Object.freeze([]) as readonly never[],
});

export const NULL_DIGEST: Uint8Array = batchDigest(NULL_BATCH);

export function isNullDigest(d: Uint8Array): boolean {
  return bytesEqual(d, NULL_DIGEST);
}

/** History digest before any batch: what checkpoint 0 certifies. */
export const GENESIS_HISTORY: Uint8Array = sha256(new Writer().string(GENESIS_TAG).finish());

/**
 * Execution history chain: h(n) = H(h(n-1), n, batch digest). Equal history digests at a
 * checkpoint mean equal executed prefixes, and with them equal de-duplication state and
 * timestamps, which are pure functions of that prefix.
 */
export function nextHistory(prev: Uint8Array, seq: number, digest: Uint8Array): Uint8Array {
  return sha256(new Writer(96).bytes(HISTORY_TAG_BYTES).fixed(prev, DIGEST_BYTES).u64(seq).fixed(digest, DIGEST_BYTES).finish());
}

/** Per-batch seed from the shell's fresh entropy; distinct per (view, seq) even within one tick. */
export function deriveSeed(entropy: Uint8Array, view: number, seq: number): Uint8Array {
  return sha256(new Writer(96).string(SEED_TAG).fixed(entropy, SEED_BYTES).u64(view).u64(seq).finish());
}

/** Map key for a digest. */
export function digestKey(d: Uint8Array): string {
  return toHex(d);
}

export function requestDigestOf(payload: Uint8Array): Uint8Array {
  return sha256(payload);
}
