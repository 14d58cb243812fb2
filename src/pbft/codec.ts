import { CbftError, ErrorCodes } from '../errors.js';
import { Reader, Writer } from '../codec/binary.js';
import { DIGEST_BYTES } from '../crypto/hash.js';
import { MAX_BATCH_REQUESTS, MAX_REPLICAS, MAX_REQUEST_BYTES } from './config.js';
import { SEED_BYTES } from './digests.js';
import type {
  Batch,
  CheckpointProof,
  ClientRequest,
  CommitCert,
  CommittedBatch,
  MessageType,
  PbftMessage,
  PreparedCert,
  Reproposal,
  ViewChangeMsg,
  VoteSig,
} from './types.js';

/**
 * Canonical binary wire encoding of PBFT messages:
 *   u8 version (1) | u8 type | u16 sender | type-specific body | bytes signature
 * Every field has exactly one encoding (fixed sizes or length prefixes, booleans are 0/1, no
 * trailing bytes), so decoding is strict: decode(encode(m)) re-encodes to the same bytes, and
 * any other input throws CbftError CBFT_ERR_DECODE. Lengths and counts are checked against
 * limits before anything is allocated.
 */
export const WIRE_VERSION = 1;

export interface CodecLimits {
  readonly maxBatchRequests: number;
  readonly maxRequestBytes: number;
  readonly maxSigBytes: number;
  /** Prepared certificates in a VIEW-CHANGE, re-proposals in a NEW-VIEW, entries in a FETCH-REPLY. */
  readonly maxListLength: number;
}

export const DEFAULT_CODEC_LIMITS: CodecLimits = {
  maxBatchRequests: MAX_BATCH_REQUESTS,
  maxRequestBytes: MAX_REQUEST_BYTES,
  maxSigBytes: 256,
  maxListLength: 1 << 16,
};

const TYPE_CODES: Record<MessageType, number> = {
  request: 1,
  'pre-prepare': 2,
  prepare: 3,
  commit: 4,
  checkpoint: 5,
  'view-change': 6,
  'new-view': 7,
  status: 8,
  fetch: 9,
  'fetch-reply': 10,
};
const TYPES_BY_CODE = new Map<number, MessageType>(Object.entries(TYPE_CODES).map(([t, c]) => [c, t as MessageType]));

export function encodeMessage(msg: PbftMessage): Uint8Array {
  const w = new Writer(estimateSize(msg));
  w.u8(WIRE_VERSION).u8(TYPE_CODES[msg.type]).u16(msg.sender);
  writeBody(w, msg);
  w.bytes(msg.sig);
  return w.finish();
}

export function decodeMessage(bytes: Uint8Array, limits: CodecLimits = DEFAULT_CODEC_LIMITS): PbftMessage {
  const r = new Reader(bytes, 'pbft message');
  const msg = readMessage(r, limits);
  r.end();
  return msg;
}

/** The body of a message without version, type, sender and signature (also what is signed). */
export function writeBody(w: Writer, msg: PbftMessage): void {
  switch (msg.type) {
    case 'request':
      writeRequest(w, msg.request);
      return;
    case 'pre-prepare':
      w.u64(msg.view).u64(msg.seq).fixed(msg.digest, DIGEST_BYTES);
      writeBatch(w, msg.batch);
      return;
    case 'prepare':
    case 'commit':
      w.u64(msg.view).u64(msg.seq).fixed(msg.digest, DIGEST_BYTES);
      return;
    case 'checkpoint':
      w.u64(msg.seq).fixed(msg.digest, DIGEST_BYTES);
      return;
    case 'view-change':
      w.u64(msg.newView);
      writeCheckpointProof(w, msg.stable);
      w.u32(msg.prepared.length);
      for (const c of msg.prepared) writePreparedCert(w, c);
      return;
    case 'new-view':
      w.u64(msg.view).u32(msg.viewChanges.length);
      for (const vc of msg.viewChanges) w.bytes(encodeMessage(vc));
      w.u32(msg.prePrepares.length);
      for (const p of msg.prePrepares) writeReproposal(w, p);
      return;
    case 'status':
      w.u64(msg.view).u8(msg.inViewChange ? 1 : 0).u64(msg.stableSeq).u64(msg.committedThrough);
      return;
    case 'fetch':
      w.u64(msg.fromSeq).u64(msg.toSeq);
      return;
    case 'fetch-reply':
      w.u64(msg.oldestAvailable).u32(msg.entries.length);
      for (const e of msg.entries) writeCommittedBatch(w, e);
      return;
  }
}

function readMessage(r: Reader, limits: CodecLimits): PbftMessage {
  const version = r.u8();
  if (version !== WIRE_VERSION) fail(`unsupported wire version ${version}`);
  const code = r.u8();
  const type = TYPES_BY_CODE.get(code);
  if (type === undefined) fail(`unknown message type ${code}`);
  const sender = readReplica(r);
  const body = readBody(r, type, limits);
  const sig = r.bytes(limits.maxSigBytes);
  return { ...body, sender, sig } as PbftMessage;
}

type Body = PbftMessage extends infer M ? (M extends PbftMessage ? Omit<M, 'sender' | 'sig'> : never) : never;

function readBody(r: Reader, type: MessageType, limits: CodecLimits): Body {
  switch (type) {
    case 'request':
      return { type, request: readRequest(r, limits) };
    case 'pre-prepare': {
      const view = r.u64();
      const seq = r.u64();
      const digest = r.fixed(DIGEST_BYTES);
      return { type, view, seq, digest, batch: readBatch(r, limits) };
    }
    case 'prepare':
    case 'commit':
      return { type, view: r.u64(), seq: r.u64(), digest: r.fixed(DIGEST_BYTES) };
    case 'checkpoint':
      return { type, seq: r.u64(), digest: r.fixed(DIGEST_BYTES) };
    case 'view-change': {
      const newView = r.u64();
      const stable = readCheckpointProof(r, limits);
      const count = readCount(r, limits.maxListLength, 60);
      const prepared: PreparedCert[] = [];
      for (let i = 0; i < count; i++) prepared.push(readPreparedCert(r, limits));
      return { type, newView, stable, prepared };
    }
    case 'new-view': {
      const view = r.u64();
      const vcCount = readCount(r, MAX_REPLICAS, 4);
      const viewChanges: ViewChangeMsg[] = [];
      for (let i = 0; i < vcCount; i++) {
        const inner = new Reader(r.bytes(), 'nested view-change');
        const vc = readMessage(inner, limits);
        inner.end();
        if (vc.type !== 'view-change') fail('new-view embeds a non view-change message');
        viewChanges.push(vc);
      }
      const ppCount = readCount(r, limits.maxListLength, 44);
      const prePrepares: Reproposal[] = [];
      for (let i = 0; i < ppCount; i++) prePrepares.push(readReproposal(r, limits));
      return { type, view, viewChanges, prePrepares };
    }
    case 'status':
      return { type, view: r.u64(), inViewChange: readBool(r), stableSeq: r.u64(), committedThrough: r.u64() };
    case 'fetch':
      return { type, fromSeq: r.u64(), toSeq: r.u64() };
    case 'fetch-reply': {
      const oldestAvailable = r.u64();
      const count = readCount(r, limits.maxListLength, 100);
      const entries: CommittedBatch[] = [];
      for (let i = 0; i < count; i++) entries.push(readCommittedBatch(r, limits));
      return { type, oldestAvailable, entries };
    }
  }
}

export function writeRequest(w: Writer, req: ClientRequest): void {
  w.fixed(req.digest, DIGEST_BYTES).bytes(req.payload);
}

export function readRequest(r: Reader, limits: CodecLimits): ClientRequest {
  return { digest: r.fixed(DIGEST_BYTES), payload: r.bytes(limits.maxRequestBytes) };
}

export function writeBatch(w: Writer, b: Batch): void {
  w.u64(b.timestamp).fixed(b.seed, SEED_BYTES).u32(b.requests.length);
  for (const req of b.requests) writeRequest(w, req);
}

export function readBatch(r: Reader, limits: CodecLimits): Batch {
  const timestamp = r.u64();
  const seed = r.fixed(SEED_BYTES);
  const count = readCount(r, limits.maxBatchRequests, DIGEST_BYTES + 4);
  const requests: ClientRequest[] = [];
  for (let i = 0; i < count; i++) requests.push(readRequest(r, limits));
  return { timestamp, seed, requests };
}

function writeVotes(w: Writer, votes: readonly VoteSig[]): void {
  w.u16(votes.length);
  for (const v of votes) w.u16(v.replica).bytes(v.sig);
}

function readVotes(r: Reader, limits: CodecLimits): VoteSig[] {
  const count = r.u16();
  if (count > MAX_REPLICAS || count * 6 > r.remaining) fail(`vote list of ${count} entries`);
  const votes: VoteSig[] = [];
  for (let i = 0; i < count; i++) votes.push({ replica: readReplica(r), sig: r.bytes(limits.maxSigBytes) });
  return votes;
}

export function writeCheckpointProof(w: Writer, p: CheckpointProof): void {
  w.u64(p.seq).fixed(p.digest, DIGEST_BYTES);
  writeVotes(w, p.sigs);
}

export function readCheckpointProof(r: Reader, limits: CodecLimits): CheckpointProof {
  return { seq: r.u64(), digest: r.fixed(DIGEST_BYTES), sigs: readVotes(r, limits) };
}

export function writePreparedCert(w: Writer, c: PreparedCert): void {
  w.u64(c.view).u64(c.seq).fixed(c.digest, DIGEST_BYTES).bytes(c.primarySig);
  writeVotes(w, c.prepares);
}

export function readPreparedCert(r: Reader, limits: CodecLimits): PreparedCert {
  const view = r.u64();
  const seq = r.u64();
  const digest = r.fixed(DIGEST_BYTES);
  const primarySig = r.bytes(limits.maxSigBytes);
  return { view, seq, digest, primarySig, prepares: readVotes(r, limits) };
}

function writeCommitCert(w: Writer, c: CommitCert): void {
  w.u64(c.view).fixed(c.digest, DIGEST_BYTES);
  writeVotes(w, c.commits);
}

function readCommitCert(r: Reader, limits: CodecLimits): CommitCert {
  return { view: r.u64(), digest: r.fixed(DIGEST_BYTES), commits: readVotes(r, limits) };
}

export function writeCommittedBatch(w: Writer, e: CommittedBatch): void {
  w.u64(e.seq);
  writeBatch(w, e.batch);
  writeCommitCert(w, e.cert);
}

export function readCommittedBatch(r: Reader, limits: CodecLimits): CommittedBatch {
  const seq = r.u64();
  const batch = readBatch(r, limits);
  return { seq, batch, cert: readCommitCert(r, limits) };
}

function writeReproposal(w: Writer, p: Reproposal): void {
  w.u64(p.seq).fixed(p.digest, DIGEST_BYTES).bytes(p.sig);
}

function readReproposal(r: Reader, limits: CodecLimits): Reproposal {
  return { seq: r.u64(), digest: r.fixed(DIGEST_BYTES), sig: r.bytes(limits.maxSigBytes) };
}

function readReplica(r: Reader): number {
  const id = r.u16();
  if (id >= MAX_REPLICAS) fail(`replica id ${id} out of range`);
  return id;
}

function readBool(r: Reader): boolean {
  const b = r.u8();
  if (b > 1) fail(`boolean encoded as ${b}`);
  return b === 1;
}

/** A list count, refused when above `max` or when the remaining bytes cannot hold it. */
export function readCount(r: Reader, max: number, minElementBytes: number): number {
  const count = r.u32();
  if (count > max) fail(`list of ${count} entries exceeds limit ${max}`);
  if (count * minElementBytes > r.remaining) fail(`list of ${count} entries does not fit in ${r.remaining} bytes`);
  return count;
}

function fail(message: string): never {
  throw new CbftError(ErrorCodes.DECODE, `pbft message: ${message}`);
}

function estimateSize(msg: PbftMessage): number {
  switch (msg.type) {
    case 'pre-prepare': {
      let n = 160;
      for (const r of msg.batch.requests) n += 36 + r.payload.length;
      return n;
    }
    case 'request':
      return 128 + msg.request.payload.length;
    case 'view-change':
      return 256 + msg.prepared.length * 512;
    case 'new-view':
      return 4096;
    case 'fetch-reply':
      return 1024 * (1 + msg.entries.length);
    default:
      return 160;
  }
}
