import { Reader, Writer, toHex } from '../codec/binary.js';
import { sha256 } from '../crypto/hash.js';
import { IDENTITY_SIGNATURE_BYTES, verifyIdentity, type IdentitySigner } from '../crypto/identity.js';

/**
 * A request as a top firewall node submits it to the replicas: the canonical request bytes, the
 * top's id and its Ed25519 signature over (tag, top id, request digest). PBFT orders these
 * envelopes, so a backup can check that every request in a pre-prepare really came from a top
 * node: a faulty primary cannot make the correct replicas execute a request it made up.
 *   envelope = bytes(top) signature[64] bytes(request)
 * The request digest (what replies name, what de-duplication keys on) is sha256(request), so
 * the same request submitted through two chains is still one request.
 */
export const SUBMIT_TAG = 'cbft/submit/v1';

export interface Submission {
  top: string;
  signature: Uint8Array;
  request: Uint8Array;
}

export function submitMessage(top: string, digest: Uint8Array): Uint8Array {
  return new Writer(96).string(SUBMIT_TAG).string(top).fixed(digest, 32).finish();
}

export function signSubmission(signer: IdentitySigner, top: string, request: Uint8Array, digest = sha256(request)): Uint8Array {
  const signature = signer.sign(submitMessage(top, digest));
  return new Writer(request.length + 128).string(top).fixed(signature, IDENTITY_SIGNATURE_BYTES).bytes(request).finish();
}

/** Parses an envelope (no signature check); throws CBFT_ERR_DECODE on malformed input. */
export function decodeSubmission(envelope: Uint8Array, maxRequestBytes: number): Submission {
  const r = new Reader(envelope, 'submission');
  const top = r.string(64);
  const signature = r.fixed(IDENTITY_SIGNATURE_BYTES);
  const request = r.bytes(maxRequestBytes);
  r.end();
  return { top, signature, request };
}

/**
 * Checks envelopes against the tops' identity keys and remembers the ones it verified, so each
 * replica pays for one Ed25519 verification per request however often it sees it (directly from
 * a top, then again inside a pre-prepare, a new view or a catch-up answer).
 */
export class SubmissionVerifier {
  private readonly verified = new Map<string, Uint8Array>();

  constructor(
    private readonly topKeys: ReadonlyMap<string, Uint8Array>,
    private readonly maxRequestBytes: number,
    private readonly cacheLimit = 65_536,
  ) {}

  /** The request digest when the envelope is authentic, else null. Never throws. */
  digestOf(envelope: Uint8Array): Uint8Array | null {
    let s: Submission;
    try {
      s = decodeSubmission(envelope, this.maxRequestBytes);
    } catch {
      return null;
    }
    const key = this.topKeys.get(s.top);
    if (!key) return null;
    const digest = sha256(s.request);
    const cacheKey = s.top + toHex(digest) + toHex(s.signature);
    if (this.verified.has(cacheKey)) return digest;
    if (!verifyIdentity(key, submitMessage(s.top, digest), s.signature)) return null;
    if (this.verified.size >= this.cacheLimit) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(cacheKey, digest);
    return digest;
  }
}
