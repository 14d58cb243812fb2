import { CbftError, ErrorCodes } from '../errors.js';
import { sha256 } from '../crypto/hash.js';
import { Writer, compareBytes } from './binary.js';
import { Tags } from './tags.js';

/**
 * Fixed-depth Merkle tree over the replies of one PBFT batch, with sorted-pair hashing:
 *   node(a, b) = SHA-256(bytes(tag "cbft/node/v1") || min(a, b) || max(a, b))
 * Sorting removes left/right bits from proofs, and every tree has 2^depth leaves: the slots
 * after the replies are padding, so a proof reveals neither the batch size nor the leaf's
 * position. A subtree holding only padding is not hashed up from pad leaves; its root is drawn
 * directly from the batch salt:
 *   pad(level, index) = SHA-256(bytes(tag "cbft/pad/v2") || salt || u8(level) || u32(index))
 * which is indistinguishable from a real node without the salt, and makes a tree of n replies
 * cost about 2n hashes instead of 2^(depth+1). Replicas sign the root once per batch.
 */
export const HASH_BYTES = 32;
export const MIN_DEPTH = 1;
export const MAX_DEPTH = 16;

const NODE_PREFIX = new Writer(32).string(Tags.node).finish();
const PAD_PREFIX = new Writer(32).string(Tags.pad).finish();

export function checkDepth(depth: number): number {
  if (!Number.isInteger(depth) || depth < MIN_DEPTH || depth > MAX_DEPTH) {
    throw new CbftError(ErrorCodes.MERKLE, `merkle depth must be an integer in ${MIN_DEPTH}..${MAX_DEPTH}, got ${depth}`);
  }
  return depth;
}

export function nodeHash(a: Uint8Array, b: Uint8Array): Uint8Array {
  return compareBytes(a, b) <= 0 ? sha256(NODE_PREFIX, a, b) : sha256(NODE_PREFIX, b, a);
}

/** The root of the all-padding subtree at `level` (0 = leaves) and `index` within that level. */
export function padNode(salt: Uint8Array, level: number, index: number): Uint8Array {
  if (salt.length !== HASH_BYTES) throw new CbftError(ErrorCodes.MERKLE, 'pad salt must be 32 bytes');
  return sha256(PAD_PREFIX, salt, new Writer(5).u8(level).u32(index).finish());
}

export interface MerkleTree {
  readonly depth: number;
  readonly root: Uint8Array;
  /** depth × 32 bytes: the sibling hashes from the leaf up to (not including) the root. */
  proof(index: number): Uint8Array;
}

/** Builds the tree over `leaves` (leaf hashes), padded to 2^depth (see padNode). */
export function buildTree(leaves: readonly Uint8Array[], depth: number, salt: Uint8Array): MerkleTree {
  checkDepth(depth);
  if (leaves.length > 2 ** depth) {
    throw new CbftError(ErrorCodes.MERKLE, `batch of ${leaves.length} replies exceeds 2^${depth} leaves`);
  }
  leaves.forEach((leaf, i) => {
    if (leaf.length !== HASH_BYTES) throw new CbftError(ErrorCodes.MERKLE, `leaf ${i} is not a 32-byte hash`);
  });
  // levels[d] holds the nodes of level d up to the last one that is not all padding, plus its
  // padding sibling, so every proof of a real leaf finds its siblings there.
  const levels: Uint8Array[][] = [];
  let level: Uint8Array[] = [...leaves];
  for (let d = 0; d < depth; d++) {
    if (level.length % 2 === 1) level.push(padNode(salt, d, level.length));
    levels.push(level);
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    level = next;
  }
  const root = level[0] ?? padNode(salt, depth, 0);
  return {
    depth,
    root,
    proof(index: number): Uint8Array {
      if (!Number.isInteger(index) || index < 0 || index >= leaves.length) {
        throw new CbftError(ErrorCodes.MERKLE, `no reply leaf at index ${index}`);
      }
      const out = new Uint8Array(depth * HASH_BYTES);
      let i = index;
      for (let d = 0; d < depth; d++) {
        out.set(levels[d]![i ^ 1]!, d * HASH_BYTES);
        i >>= 1;
      }
      return out;
    },
  };
}

/** Recomputes the root a proof leads to; throws if the proof does not have the fixed length. */
export function rootFromProof(leaf: Uint8Array, proof: Uint8Array, depth: number): Uint8Array {
  checkDepth(depth);
  if (leaf.length !== HASH_BYTES) throw new CbftError(ErrorCodes.MERKLE, 'leaf must be a 32-byte hash');
  if (proof.length !== depth * HASH_BYTES) {
    throw new CbftError(ErrorCodes.MERKLE, `proof must be ${depth * HASH_BYTES} bytes for depth ${depth}, got ${proof.length}`);
  }
  let h = leaf;
  for (let d = 0; d < depth; d++) h = nodeHash(h, proof.subarray(d * HASH_BYTES, (d + 1) * HASH_BYTES));
  return h;
}

/** The bytes the replicas threshold-sign for a batch: tag, depth, root. */
export function batchMessage(root: Uint8Array, depth: number): Uint8Array {
  checkDepth(depth);
  if (root.length !== HASH_BYTES) throw new CbftError(ErrorCodes.MERKLE, 'root must be 32 bytes');
  return new Writer(64).string(Tags.batch).u8(depth).fixed(root, HASH_BYTES).finish();
}
