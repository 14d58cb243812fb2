import { Writer, toHex } from '../codec/binary.js';
import { leafHash } from '../codec/canonical.js';
import { batchMessage, buildTree } from '../codec/merkle.js';
import { sha256 } from '../crypto/hash.js';
import { partialSign, type Share } from '../crypto/threshold.js';

/**
 * Per-batch derivations every correct replica computes identically from what PBFT agreed on
 * (the batch seed and sequence number), and the once-per-batch partial signature.
 *
 *   pad salt     = SHA-256(bytes("cbft/sidecar/pad-salt/v1") seed[32] u64(seq))
 *   request seed = SHA-256(bytes("cbft/sidecar/request-seed/v1") seed[32] u64(seq) u32(index))
 *
 * `index` is the request's position among the requests executed in the batch (the engine's
 * `requests`, duplicates excluded), which is also its leaf index in the batch's Merkle tree.
 */
export const PAD_SALT_TAG = 'cbft/sidecar/pad-salt/v1';
export const REQUEST_SEED_TAG = 'cbft/sidecar/request-seed/v1';
export const SEED_BYTES = 32;

export function padSalt(batchSeed: Uint8Array, seq: number): Uint8Array {
  return sha256(new Writer(80).string(PAD_SALT_TAG).fixed(batchSeed, SEED_BYTES).u64(seq).finish());
}

export function requestSeed(batchSeed: Uint8Array, seq: number, index: number): Uint8Array {
  return sha256(new Writer(96).string(REQUEST_SEED_TAG).fixed(batchSeed, SEED_BYTES).u64(seq).u32(index).finish());
}

export function requestSeedHex(batchSeed: Uint8Array, seq: number, index: number): string {
  return toHex(requestSeed(batchSeed, seq, index));
}

export interface SignedBatch {
  root: Uint8Array;
  proofs: Uint8Array[];
  /** Partial signature on batchMessage(root, depth), or undefined when this replica must not sign. */
  partial: Uint8Array | undefined;
}

/** The Merkle tree over the canonical replies of one batch, in batch order. */
export function batchTree(replies: readonly Uint8Array[], depth: number, batchSeed: Uint8Array, seq: number): { root: Uint8Array; proofs: Uint8Array[] } {
  const tree = buildTree(replies.map(leafHash), depth, padSalt(batchSeed, seq));
  return { root: tree.root, proofs: replies.map((_, i) => tree.proof(i)) };
}

/**
 * Builds the tree and partially signs its root once. `sign` is false when the batch holds a reply
 * this replica did not compute itself (invariant I7): the tree is still built (for the log), but
 * no partial is produced.
 */
export function signBatch(
  replies: readonly Uint8Array[],
  depth: number,
  batchSeed: Uint8Array,
  seq: number,
  share: Pick<Share, 'index' | 'secretKey'>,
  sign = true,
): SignedBatch {
  const { root, proofs } = batchTree(replies, depth, batchSeed, seq);
  return { root, proofs, partial: sign ? partialSign(share, batchMessage(root, depth)) : undefined };
}
