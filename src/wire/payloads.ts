import { CbftError, ErrorCodes } from '../errors.js';
import { Reader, Writer } from '../codec/binary.js';
import { DIGEST_BYTES } from '../codec/canonical.js';
import { SIGNATURE_BYTES } from '../crypto/threshold.js';
import type { SignedReply } from '../reply/signed-reply.js';

/**
 * Payloads of the messages nodes exchange inside frames (see transport/frame.ts for the kinds).
 * A Request payload is the canonical request bytes themselves; the others are encoded here.
 */
const MAX_PROOF_BYTES = 32 * 16;

/** Reply (down the chain): canonical reply, Merkle proof, combined signature on the batch root. */
export function encodeSignedReply(r: SignedReply): Uint8Array {
  return new Writer(r.reply.length + r.proof.length + 64).bytes(r.reply).bytes(r.proof).fixed(r.signature, SIGNATURE_BYTES).finish();
}

export function decodeSignedReply(b: Uint8Array, maxReplyBytes: number): SignedReply {
  const r = new Reader(b, 'signed reply');
  const reply = r.bytes(maxReplyBytes);
  const proof = r.bytes(MAX_PROOF_BYTES);
  const signature = r.fixed(SIGNATURE_BYTES);
  r.end();
  return { reply, proof, signature };
}

/** Why an upper node gave up on a request; a correct node maps it to its own fixed error. */
export const FailCode = {
  ReplicasDisagree: 1,
  Timeout: 2,
  Overloaded: 3,
} as const;
export type FailCode = (typeof FailCode)[keyof typeof FailCode];
const FAIL_CODES = new Set<number>(Object.values(FailCode));

export interface Fail {
  digest: Uint8Array;
  code: FailCode;
}

export function encodeFail(f: Fail): Uint8Array {
  return new Writer(40).fixed(f.digest, DIGEST_BYTES).u8(f.code).finish();
}

export function decodeFail(b: Uint8Array): Fail {
  const r = new Reader(b, 'fail');
  const digest = r.fixed(DIGEST_BYTES);
  const code = r.u8();
  r.end();
  if (!FAIL_CODES.has(code)) throw new CbftError(ErrorCodes.DECODE, `fail: unknown code ${code}`);
  return { digest, code: code as FailCode };
}

/**
 * Partial (sidecar to top): one replica's replies for the requests this top submitted in one
 * batch, each with its proof, and the replica's partial signature on the batch root. The root is
 * recomputed by the top from any reply and its proof; it is never taken from the wire.
 */
export interface PartialReplies {
  /** The replica's current view, so the top learns who the primary is (view mod n). */
  view: number;
  seq: number;
  partial: Uint8Array;
  items: Array<{ reply: Uint8Array; proof: Uint8Array }>;
}

export function encodePartialReplies(p: PartialReplies): Uint8Array {
  let size = 64;
  for (const i of p.items) size += i.reply.length + i.proof.length + 8;
  const w = new Writer(size).u64(p.view).u64(p.seq).fixed(p.partial, SIGNATURE_BYTES).u32(p.items.length);
  for (const i of p.items) w.bytes(i.reply).bytes(i.proof);
  return w.finish();
}

export function decodePartialReplies(b: Uint8Array, maxReplyBytes: number, maxItems = 1 << 16): PartialReplies {
  const r = new Reader(b, 'partial replies');
  const view = r.u64();
  const seq = r.u64();
  const partial = r.fixed(SIGNATURE_BYTES);
  const n = r.u32();
  if (n === 0 || n > maxItems) throw new CbftError(ErrorCodes.DECODE, `partial replies: ${n} items (allowed 1..${maxItems})`);
  const items: PartialReplies['items'] = [];
  for (let i = 0; i < n; i++) items.push({ reply: r.bytes(maxReplyBytes), proof: r.bytes(MAX_PROOF_BYTES) });
  r.end();
  return { view, seq, partial, items };
}
