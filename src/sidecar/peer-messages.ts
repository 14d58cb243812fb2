import { CbftError, ErrorCodes } from '../errors.js';
import { Reader, Writer } from '../codec/binary.js';
import { DIGEST_BYTES } from '../codec/canonical.js';

/**
 * Sidecar-to-sidecar messages outside the PBFT protocol, carried in MessageKind.Replica frames
 * (only peer replicas may send them, I6):
 *
 * - submitted: "top T submitted request D to me". A top sends a request to the primary only
 *   (until its retransmit timeout), but every replica must send T its reply and partial; the
 *   primary (or whoever received it) tells its peers, so all of them know whom to answer. A lying
 *   replica can only make others send a signed reply to a top that did not ask, which drops it.
 * - reply-query / reply-answer: recovery of a request whose outcome is unknown after a crash:
 *   the replica asks its peers for the reply they computed for (seq, digest) and adopts it only
 *   when s+1 peers answer with identical bytes. It never signs an adopted reply (I7).
 */
export type PeerMessage =
  | { type: 'submitted'; digest: Uint8Array; top: string }
  | { type: 'reply-query'; seq: number; digest: Uint8Array }
  | { type: 'reply-answer'; seq: number; digest: Uint8Array; reply: Uint8Array | undefined };

const CODES = { submitted: 1, 'reply-query': 2, 'reply-answer': 3 } as const;
const MAX_ID_BYTES = 64;

export function encodePeerMessage(m: PeerMessage): Uint8Array {
  const w = new Writer(64).u8(CODES[m.type]);
  switch (m.type) {
    case 'submitted':
      w.fixed(m.digest, DIGEST_BYTES).string(m.top);
      break;
    case 'reply-query':
      w.u64(m.seq).fixed(m.digest, DIGEST_BYTES);
      break;
    case 'reply-answer':
      w.u64(m.seq).fixed(m.digest, DIGEST_BYTES);
      if (m.reply === undefined) w.u8(0);
      else w.u8(1).bytes(m.reply);
      break;
  }
  return w.finish();
}

export function decodePeerMessage(b: Uint8Array, maxReplyBytes: number): PeerMessage {
  const r = new Reader(b, 'peer message');
  const code = r.u8();
  let m: PeerMessage;
  switch (code) {
    case CODES.submitted:
      m = { type: 'submitted', digest: r.fixed(DIGEST_BYTES), top: r.string(MAX_ID_BYTES) };
      break;
    case CODES['reply-query']:
      m = { type: 'reply-query', seq: r.u64(), digest: r.fixed(DIGEST_BYTES) };
      break;
    case CODES['reply-answer']: {
      const seq = r.u64();
      const digest = r.fixed(DIGEST_BYTES);
      const has = r.u8();
      if (has > 1) throw new CbftError(ErrorCodes.DECODE, 'peer message: bad flag');
      m = { type: 'reply-answer', seq, digest, reply: has === 1 ? r.bytes(maxReplyBytes) : undefined };
      break;
    }
    default:
      throw new CbftError(ErrorCodes.DECODE, `peer message: unknown type ${code}`);
  }
  r.end();
  return m;
}
