import { fromBase64, fromHex, toHex } from '../codec/binary.js';
import { encodeReply, type CanonicalReply } from '../codec/canonical.js';
import { allowlist, DEFAULT_REPLY_HEADERS, sortHeaders, type HeaderField } from '../codec/headers.js';
import { HASH_BYTES } from '../codec/merkle.js';
import type { ClusterConfig } from '../cluster/config.js';
import { SIGNATURE_BYTES } from '../crypto/threshold.js';
import { ReplyVerifier } from '../reply/signed-reply.js';

/** An HTTP response as a client saw it: status, header lines (any case, in order), body. */
export interface ResponseParts {
  status: number;
  headers: ReadonlyArray<readonly [string, string]>;
  body: Uint8Array;
}

export type ResponseCheck =
  | {
      ok: true;
      requestDigest: string;
      nonce: string | undefined;
      status: number;
      /** The signed headers (lower-case names, canonical order). */
      headers: HeaderField[];
      body: Uint8Array;
    }
  | { ok: false; reason: string; /** true when the response carries no cbft signature at all. */ unsigned?: boolean };

const DIGEST_RE = /^[0-9a-f]{64}$/;

/**
 * Checks a response from a bottom firewall node on the client side: rebuilds the canonical reply
 * from the status, the headers on the reply allowlist and the body, and checks the Merkle proof
 * and the threshold signature against the service public key, and (when given) that the reply
 * names the digest of the request the client sent. Used by `cbft verify` and `createClient`.
 */
export class ResponseVerifier {
  private readonly verifier: ReplyVerifier;
  private readonly replyAllow: Set<string>;
  private readonly depth: number;

  constructor(cluster: Pick<ClusterConfig, 'servicePublicKey' | 'merkleDepth' | 'service'>) {
    this.depth = cluster.merkleDepth;
    this.verifier = new ReplyVerifier(fromHex(cluster.servicePublicKey), cluster.merkleDepth, 1024, {
      maxBody: Number.MAX_SAFE_INTEGER,
      maxHeaders: 1024,
      maxHeaderBytes: 1 << 20,
    });
    this.replyAllow = allowlist(DEFAULT_REPLY_HEADERS, cluster.service.replyHeaders);
  }

  check(r: ResponseParts, expectedDigest?: Uint8Array | string): ResponseCheck {
    const cbft = new Map<string, string[]>();
    const signedHeaders: HeaderField[] = [];
    for (const [rawName, value] of r.headers) {
      const name = rawName.toLowerCase();
      if (name.startsWith('cbft-')) {
        const list = cbft.get(name) ?? [];
        list.push(value.trim());
        cbft.set(name, list);
      } else if (this.replyAllow.has(name)) {
        signedHeaders.push([name, value]);
      }
    }
    const one = (name: string): string | undefined => {
      const v = cbft.get(name);
      return v && v.length === 1 ? v[0] : undefined;
    };
    if (!cbft.has('cbft-signature')) return { ok: false, reason: 'no cbft-signature header: not a signed cbft reply', unsigned: true };
    const sigText = one('cbft-signature');
    const proofText = one('cbft-proof');
    const digestText = one('cbft-request-digest');
    const nonce = one('cbft-nonce');
    if (sigText === undefined) return { ok: false, reason: 'cbft-signature must appear exactly once' };
    if (proofText === undefined) return { ok: false, reason: 'cbft-proof must appear exactly once' };
    if (digestText === undefined) return { ok: false, reason: 'cbft-request-digest must appear exactly once' };
    if (!DIGEST_RE.test(digestText)) return { ok: false, reason: 'cbft-request-digest is not 64 lower-case hex characters' };
    let signature: Uint8Array;
    let proof: Uint8Array;
    try {
      signature = fromBase64(sigText, 'cbft-signature');
      proof = fromBase64(proofText, 'cbft-proof');
    } catch (e) {
      return { ok: false, reason: (e as Error).message };
    }
    if (signature.length !== SIGNATURE_BYTES) return { ok: false, reason: `cbft-signature must be ${SIGNATURE_BYTES} bytes, got ${signature.length}` };
    if (proof.length !== this.depth * HASH_BYTES) return { ok: false, reason: `cbft-proof must be ${this.depth * HASH_BYTES} bytes, got ${proof.length}` };
    if (expectedDigest !== undefined) {
      const want = typeof expectedDigest === 'string' ? expectedDigest : toHex(expectedDigest);
      if (want !== digestText) return { ok: false, reason: `the reply is for request ${digestText}, not for the request sent (${want})` };
    }
    const canonical: CanonicalReply = { requestDigest: fromHex(digestText), status: r.status, headers: sortHeaders(signedHeaders), body: r.body };
    let reply: Uint8Array;
    try {
      reply = encodeReply(canonical);
    } catch (e) {
      return { ok: false, reason: `cannot rebuild the canonical reply: ${(e as Error).message}` };
    }
    const res = this.verifier.check({ reply, proof, signature });
    if (!res.ok) {
      return {
        ok: false,
        reason:
          res.reason === 'bad-signature'
            ? 'the signature does not match the service key for this status, these headers and this body'
            : 'the reply cannot be decoded',
      };
    }
    return { ok: true, requestDigest: digestText, nonce, status: r.status, headers: canonical.headers, body: r.body };
  }
}
