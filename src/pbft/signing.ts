import { Writer, utf8 } from '../codec/binary.js';
import { DIGEST_BYTES } from '../crypto/hash.js';
import { writeBody } from './codec.js';
import type { MessageType, PbftMessage } from './types.js';

/**
 * Injected signature scheme: the sidecar passes Ed25519 (ed25519.ts), the simulator a fast keyed
 * hash. `sign` signs as this replica; `verify` checks a signature by `replica`.
 */
export interface PbftCrypto {
  sign(bytes: Uint8Array): Uint8Array;
  verify(replica: number, bytes: Uint8Array, sig: Uint8Array): boolean;
  /**
   * Authenticates a client request payload and returns its request digest, or null when the
   * payload is not an authentic request. The sidecar checks the top firewall node's signature
   * here, so a faulty primary cannot order a request no top submitted. Default: sha256(payload).
   */
  requestDigest?(payload: Uint8Array): Uint8Array | null;
}

/** A message before it is signed. */
export type Unsigned<T> = T extends unknown ? Omit<T, 'sig'> : never;

/** Domain tag per message type: a signature for one type can never verify as another. */
export const SIGNING_TAGS: Record<MessageType, string> = {
  request: 'cbft/pbft/request/v1',
  'pre-prepare': 'cbft/pbft/pre-prepare/v1',
  prepare: 'cbft/pbft/prepare/v1',
  commit: 'cbft/pbft/commit/v1',
  checkpoint: 'cbft/pbft/checkpoint/v1',
  'view-change': 'cbft/pbft/view-change/v1',
  'new-view': 'cbft/pbft/new-view/v1',
  status: 'cbft/pbft/status/v1',
  fetch: 'cbft/pbft/fetch/v1',
  'fetch-reply': 'cbft/pbft/fetch-reply/v1',
};

/** Encoded once: `w.bytes(tagBytes)` is exactly `w.string(tag)`, without re-encoding per message. */
const TAG_BYTES = Object.fromEntries(Object.entries(SIGNING_TAGS).map(([t, tag]) => [t, utf8(tag)])) as Record<MessageType, Uint8Array>;

/**
 * The bytes a message's signature covers: tag, sender, body. A PRE-PREPARE covers only
 * (view, seq, digest), so certificates can carry the primary's signature without the batch.
 */
export function signedBytes(msg: Unsigned<PbftMessage>): Uint8Array {
  if (msg.type === 'pre-prepare' || msg.type === 'prepare' || msg.type === 'commit') {
    return voteBytes(msg.type, msg.sender, msg.view, msg.seq, msg.digest);
  }
  if (msg.type === 'checkpoint') return checkpointBytes(msg.sender, msg.seq, msg.digest);
  const w = new Writer(256);
  w.bytes(TAG_BYTES[msg.type]).u16(msg.sender);
  writeBody(w, msg as PbftMessage);
  return w.finish();
}

/**
 * Signed bytes of a PRE-PREPARE, PREPARE or COMMIT; certificates are checked against these.
 * The hottest encoding of all (every vote is signed once and verified n-1 times), so it is laid
 * out by hand; the bytes are exactly Writer's `bytes(tag).u16(sender).u64(view).u64(seq).fixed(digest)`
 * (pinned by the codec known-answer tests).
 */
export function voteBytes(
  type: 'pre-prepare' | 'prepare' | 'commit',
  sender: number,
  view: number,
  seq: number,
  digest: Uint8Array,
): Uint8Array {
  return fixedLayout(TAG_BYTES[type], sender, [view, seq], digest);
}

export function checkpointBytes(sender: number, seq: number, digest: Uint8Array): Uint8Array {
  return fixedLayout(TAG_BYTES.checkpoint, sender, [seq], digest);
}

function fixedLayout(tag: Uint8Array, sender: number, numbers: readonly number[], digest: Uint8Array): Uint8Array {
  if (digest.length !== DIGEST_BYTES) return new Writer(96).bytes(tag).u16(sender).fixed(digest, DIGEST_BYTES).finish(); // throws
  const out = new Uint8Array(4 + tag.length + 2 + 8 * numbers.length + DIGEST_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, tag.length);
  out.set(tag, 4);
  let pos = 4 + tag.length;
  if (!Number.isInteger(sender) || sender < 0 || sender > 0xffff) return new Writer().u16(sender).finish(); // throws
  view.setUint16(pos, sender);
  pos += 2;
  for (const v of numbers) {
    if (!Number.isSafeInteger(v) || v < 0) return new Writer().u64(v).finish(); // throws
    view.setBigUint64(pos, BigInt(v));
    pos += 8;
  }
  out.set(digest, pos);
  return out;
}

export function signMessage<T extends PbftMessage>(crypto: PbftCrypto, unsigned: Unsigned<T>): T {
  const sig = crypto.sign(signedBytes(unsigned as Unsigned<PbftMessage>));
  return { ...unsigned, sig } as unknown as T;
}

export function verifyMessage(crypto: PbftCrypto, msg: PbftMessage): boolean {
  return crypto.verify(msg.sender, signedBytes(msg), msg.sig);
}
