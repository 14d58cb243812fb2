import { toHex } from '../codec/binary.js';
import { decodeReply, leafHash, type CanonicalReply, type DecodeLimits, DEFAULT_DECODE_LIMITS } from '../codec/canonical.js';
import { batchMessage, rootFromProof } from '../codec/merkle.js';
import { verify as verifyThreshold } from '../crypto/threshold.js';

/**
 * A reply as it travels down the firewall chain and reaches the client: the canonical reply
 * bytes, the Merkle proof to the batch root, and the combined threshold signature on the root.
 * The root itself is derived, never trusted from the wire.
 */
export interface SignedReply {
  reply: Uint8Array;
  proof: Uint8Array;
  signature: Uint8Array;
}

export type ReplyCheck =
  | { ok: true; reply: CanonicalReply; root: Uint8Array }
  | { ok: false; reason: 'malformed' | 'bad-signature' | 'wrong-digest' };

/**
 * Checks signed replies against the service public key. A verified (root, signature) pair is
 * cached, so a batch costs one pairing check per node however many replies it carries.
 */
export class ReplyVerifier {
  private readonly verifiedRoots = new Map<string, true>();

  constructor(
    private readonly servicePublicKey: Uint8Array,
    private readonly depth: number,
    private readonly cacheLimit = 4096,
    private readonly limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
  ) {}

  /** Number of pairing checks done (for metrics and for tests proving the cache works). */
  pairingChecks = 0;

  check(signed: SignedReply, expectedDigest?: Uint8Array): ReplyCheck {
    let reply: CanonicalReply;
    let root: Uint8Array;
    try {
      reply = decodeReply(signed.reply, this.limits);
      root = rootFromProof(leafHash(signed.reply), signed.proof, this.depth);
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (expectedDigest && toHex(reply.requestDigest) !== toHex(expectedDigest)) return { ok: false, reason: 'wrong-digest' };
    if (!this.rootSigned(root, signed.signature)) return { ok: false, reason: 'bad-signature' };
    return { ok: true, reply, root };
  }

  /** True when `signature` is the service's signature on the batch `root`. */
  rootSigned(root: Uint8Array, signature: Uint8Array): boolean {
    const key = toHex(root) + toHex(signature);
    if (this.verifiedRoots.has(key)) {
      // Refresh recency so hot batches stay cached.
      this.verifiedRoots.delete(key);
      this.verifiedRoots.set(key, true);
      return true;
    }
    this.pairingChecks++;
    if (!verifyThreshold(this.servicePublicKey, batchMessage(root, this.depth), signature)) return false;
    if (this.verifiedRoots.size >= this.cacheLimit) this.verifiedRoots.delete(this.verifiedRoots.keys().next().value as string);
    this.verifiedRoots.set(key, true);
    return true;
  }
}
