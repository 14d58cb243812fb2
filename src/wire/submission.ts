import { CbftError, ErrorCodes } from '../errors.js';
import { Reader, Writer, toHex } from '../codec/binary.js';
import { buildTree, rootFromProof, HASH_BYTES } from '../codec/merkle.js';
import { sha256 } from '../crypto/hash.js';
import { IDENTITY_SIGNATURE_BYTES, verifyIdentity, type IdentitySigner } from '../crypto/identity.js';

/**
 * A request as a top firewall node submits it to the replicas: the canonical request bytes, the
 * top's id, and the top's Ed25519 signature over the round of requests it was sent in. PBFT
 * orders these envelopes, so a backup can check that every request in a pre-prepare really came
 * from a top node: a faulty primary cannot make the correct replicas execute a request it made up.
 *
 * One signature covers a whole submission round: the top builds a Merkle tree (sorted pairs, as
 * for replies, src/codec/merkle.ts) over the request digests of the round and signs
 *   bytes(tag "cbft/submit/v2") bytes(top) u8(depth) root[32]
 * and each envelope carries the proof of its own request:
 *   envelope = bytes(top) signature[64] u8(depth) proof[32·depth] bytes(request)
 * A round of one request has depth 0 and its root is the request digest. A replica verifies one
 * signature per round (the envelopes of a round share it), not one per request.
 * The request digest (what replies name, what de-duplication keys on) is sha256(request), so
 * the same request submitted through two chains, or in two rounds, is still one request.
 */
export const SUBMIT_TAG = 'cbft/submit/v2';
/** Deepest round tree: 2^16 requests, far above any round (firewall MAX_ROUND). */
export const MAX_ROUND_DEPTH = 16;
/** Pad nodes of round trees need no secrecy: a fixed salt. */
const ROUND_SALT = new Uint8Array(HASH_BYTES);

export interface Submission {
  top: string;
  signature: Uint8Array;
  depth: number;
  proof: Uint8Array;
  request: Uint8Array;
}

export function submitMessage(top: string, depth: number, root: Uint8Array): Uint8Array {
  return new Writer(96).string(SUBMIT_TAG).string(top).u8(depth).fixed(root, HASH_BYTES).finish();
}

/** The envelope bytes of a (decoded) submission. */
export function encodeSubmission({ top, signature, depth, proof, request }: Submission): Uint8Array {
  return new Writer(request.length + proof.length + 160)
    .string(top)
    .fixed(signature, IDENTITY_SIGNATURE_BYTES)
    .u8(depth)
    .fixed(proof, depth * HASH_BYTES)
    .bytes(request)
    .finish();
}

/** Signs one round of requests at once: one envelope per request, in order. */
export function signRound(signer: IdentitySigner, top: string, round: ReadonlyArray<{ request: Uint8Array; digest?: Uint8Array }>): Uint8Array[] {
  const digests = round.map((r) => r.digest ?? sha256(r.request));
  if (digests.length === 1) {
    const signature = signer.sign(submitMessage(top, 0, digests[0]!));
    return [encodeSubmission({ top, signature, depth: 0, proof: new Uint8Array(0), request: round[0]!.request })];
  }
  const depth = Math.max(1, Math.ceil(Math.log2(digests.length)));
  const tree = buildTree(digests, depth, ROUND_SALT);
  const signature = signer.sign(submitMessage(top, depth, tree.root));
  return round.map((r, i) => encodeSubmission({ top, signature, depth, proof: tree.proof(i), request: r.request }));
}

/** A round of one: the envelope of a single request. */
export function signSubmission(signer: IdentitySigner, top: string, request: Uint8Array, digest?: Uint8Array): Uint8Array {
  return signRound(signer, top, [{ request, ...(digest ? { digest } : {}) }])[0]!;
}

/** Parses an envelope (no signature check); throws CBFT_ERR_DECODE on malformed input. */
export function decodeSubmission(envelope: Uint8Array, maxRequestBytes: number): Submission {
  const r = new Reader(envelope, 'submission');
  const top = r.string(64);
  const signature = r.fixed(IDENTITY_SIGNATURE_BYTES);
  const depth = r.u8();
  if (depth > MAX_ROUND_DEPTH) throw new CbftError(ErrorCodes.DECODE, `submission: round depth ${depth} exceeds ${MAX_ROUND_DEPTH}`);
  const proof = r.fixed(depth * HASH_BYTES);
  const request = r.bytes(maxRequestBytes);
  r.end();
  return { top, signature, depth, proof, request };
}

/**
 * Checks envelopes against the tops' identity keys and remembers the rounds it verified, so a
 * replica pays for one Ed25519 verification per round however often it sees its envelopes
 * (directly from a top, then again inside a pre-prepare, a new view or a catch-up answer).
 */
export class SubmissionVerifier {
  private readonly verified = new Set<string>();

  constructor(
    private readonly topKeys: ReadonlyMap<string, Uint8Array>,
    private readonly maxRequestBytes: number,
    private readonly cacheLimit = 4_096,
  ) {}

  /** The request digest when the envelope is authentic, else null. Never throws. */
  digestOf(envelope: Uint8Array): Uint8Array | null {
    let s: Submission;
    try {
      s = decodeSubmission(envelope, this.maxRequestBytes);
    } catch {
      return null;
    }
    return this.digestOfDecoded(s);
  }

  /** digestOf for an envelope the caller already decoded. */
  digestOfDecoded(s: Submission): Uint8Array | null {
    const key = this.topKeys.get(s.top);
    if (!key) return null;
    const digest = sha256(s.request);
    const root = s.depth === 0 ? digest : rootFromProof(digest, s.proof, s.depth);
    const cacheKey = `${s.top} ${s.depth} ${toHex(root)} ${toHex(s.signature)}`;
    if (this.verified.has(cacheKey)) return digest;
    if (!verifyIdentity(key, submitMessage(s.top, s.depth, root), s.signature)) return null;
    if (this.verified.size >= this.cacheLimit) this.verified.delete(this.verified.values().next().value as string);
    this.verified.add(cacheKey);
    return digest;
  }
}
