import { CbftError, ErrorCodes } from '../errors.js';
import { Reader, Writer } from '../codec/binary.js';
import { LINK_MAC_BYTES, type LinkKey } from './link-key.js';

/**
 * A frame is the unit every link carries between two nodes: a batch of messages from one node to
 * one neighbour, authenticated with the key of that direction of the link (invariant I6,
 * src/transport/link-key.ts). Layout:
 *   bytes(tag "cbft/frame/v3") bytes(from) bytes(to) session[16] u64(sessionStart) u64(counter)
 *   u32(n) n×(u8(kind) bytes(payload)) mac[32]
 * mac = HMAC-SHA256(link key, everything before it). (session, counter) lets the receiver refuse
 * replays. (v2 carried an Ed25519 signature: 160 µs per frame at both ends, ~45 frames per
 * request at one connection.)
 */
export const FRAME_TAG = 'cbft/frame/v3';
export const SESSION_BYTES = 16;

export const MessageKind = {
  /** A canonical request travelling up: firewall node to the node above, top to sidecars. */
  Request: 1,
  /** A signed reply travelling down the chain (reply, proof, combined signature). */
  Reply: 2,
  /** A replica's replies for one batch with its partial signature, sidecar to top. */
  Partial: 3,
  /** A PBFT protocol message between sidecars. */
  Pbft: 4,
  /** An upper node gave up on a request (digest + fixed error code), travelling down. */
  Fail: 5,
  /**
   * Sidecar to sidecar, outside the PBFT protocol: which top submitted a request, and recovery of
   * a reply whose execution outcome is unknown after a crash (see src/sidecar/peer-messages.ts).
   */
  Replica: 6,
} as const;
export type MessageKind = (typeof MessageKind)[keyof typeof MessageKind];
const KINDS = new Set<number>(Object.values(MessageKind));

export interface FrameMessage {
  kind: MessageKind;
  payload: Uint8Array;
}

export interface FrameHeader {
  from: string;
  to: string;
  session: Uint8Array;
  sessionStart: number;
  counter: number;
}

export interface Frame extends FrameHeader {
  messages: FrameMessage[];
  /** The bytes the MAC covers, and the MAC, for the receiver to check. */
  signed: Uint8Array;
  mac: Uint8Array;
}

export interface FrameLimits {
  maxMessages: number;
  maxMessageBytes: number;
}

export const DEFAULT_FRAME_LIMITS: FrameLimits = { maxMessages: 65_536, maxMessageBytes: 64 * 1024 * 1024 };

export function encodeFrame(header: FrameHeader, messages: readonly FrameMessage[], key: LinkKey): Uint8Array {
  let size = 128 + 2 * 64 + LINK_MAC_BYTES;
  for (const m of messages) size += 5 + m.payload.length;
  const w = new Writer(size);
  w.string(FRAME_TAG).string(header.from).string(header.to).fixed(header.session, SESSION_BYTES);
  w.u64(header.sessionStart).u64(header.counter).u32(messages.length);
  for (const m of messages) w.u8(m.kind).bytes(m.payload);
  return w.fixed(key.mac(w.written()), LINK_MAC_BYTES).finish();
}

/** Whether `frame` carries a valid MAC under `key` (the key of the link it claims). Never throws. */
export function verifyFrame(key: LinkKey, frame: Pick<Frame, 'signed' | 'mac'>): boolean {
  return key.verify(frame.signed, frame.mac);
}

/** Parses a frame without checking its MAC (the receiver knows which key to check). */
export function decodeFrame(bytes: Uint8Array, limits: FrameLimits = DEFAULT_FRAME_LIMITS): Frame {
  if (bytes.length < LINK_MAC_BYTES) throw new CbftError(ErrorCodes.DECODE, 'frame: truncated');
  const signed = bytes.subarray(0, bytes.length - LINK_MAC_BYTES);
  const mac = bytes.subarray(bytes.length - LINK_MAC_BYTES);
  const r = new Reader(signed, 'frame');
  if (r.string(32) !== FRAME_TAG) throw new CbftError(ErrorCodes.DECODE, 'frame: wrong domain tag');
  const from = r.string(64);
  const to = r.string(64);
  const session = r.fixed(SESSION_BYTES);
  const sessionStart = r.u64();
  const counter = r.u64();
  const count = r.u32();
  if (count > limits.maxMessages) throw new CbftError(ErrorCodes.DECODE, `frame: ${count} messages exceed ${limits.maxMessages}`);
  const messages: FrameMessage[] = [];
  for (let i = 0; i < count; i++) {
    const kind = r.u8();
    if (!KINDS.has(kind)) throw new CbftError(ErrorCodes.DECODE, `frame: unknown message kind ${kind}`);
    messages.push({ kind: kind as MessageKind, payload: r.bytes(limits.maxMessageBytes) });
  }
  r.end();
  return { from, to, session, sessionStart, counter, messages, signed, mac };
}
