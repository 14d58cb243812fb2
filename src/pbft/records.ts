import { CbftError, ErrorCodes } from '../errors.js';
import { Reader, Writer } from '../codec/binary.js';
import { DIGEST_BYTES } from '../crypto/hash.js';
import type { CodecLimits } from './codec.js';
import {
  DEFAULT_CODEC_LIMITS,
  decodeMessage,
  encodeMessage,
  readCheckpointProof,
  readCommittedBatch,
  readCount,
  readPreparedCert,
  writeCheckpointProof,
  writeCommittedBatch,
  writePreparedCert,
} from './codec.js';
import { digestKey } from './digests.js';
import type { ExecSnapshot } from './execution.js';
import type { CheckpointProof, CommittedBatch, NewViewMsg, PrePrepareMsg, PreparedCert, ViewChangeMsg } from './types.js';

/**
 * Everything the engine needs after a restart that is not per-sequence-number: view state, the
 * stable checkpoint and the execution-derived state at `execBase.seq`. Emitted when the stable
 * checkpoint or the execution base advances, and on every view change and new view, so the
 * write-ahead log can be compacted (compactRecords) and stays bounded.
 */
export interface Snapshot {
  readonly view: number;
  readonly inViewChange: boolean;
  /** The last view this replica operated in (its VIEW-CHANGEs cover every view after it). */
  readonly lastNormalView: number;
  readonly viewChangeAttempt: number;
  /** This replica's VIEW-CHANGE for `view` while `inViewChange`. */
  readonly ownViewChange: ViewChangeMsg | null;
  /** The NEW-VIEW that started `view` (null in view 0 or while changing view). */
  readonly newView: NewViewMsg | null;
  readonly stable: CheckpointProof;
  readonly execBase: ExecSnapshot;
  /** `committed` records at or below this seq may be discarded. */
  readonly keepCommittedAbove: number;
}

/**
 * Records the shell appends, in order, to its fsync'd write-ahead log before carrying out any
 * later action of the same list, and hands back (in the same order) to `new Replica(...)`.
 * - accepted: a PRE-PREPARE this replica accepted (or proposed as primary), with its batch: it will
 *   not accept a different one for that (view, seq) after a restart.
 * - prepared: a prepared certificate; it must be reported in the next VIEW-CHANGE.
 * - committed: a decided batch with its commit certificate (feeds execution and the archive).
 * - snapshot: see Snapshot.
 */
export type PersistRecord =
  | { readonly kind: 'accepted'; readonly prePrepare: PrePrepareMsg }
  | { readonly kind: 'prepared'; readonly cert: PreparedCert }
  | { readonly kind: 'committed'; readonly entry: CommittedBatch }
  | { readonly kind: 'snapshot'; readonly snapshot: Snapshot };

const RECORD_VERSION = 1;
const KIND_CODES = { accepted: 1, prepared: 2, committed: 3, snapshot: 4 } as const;

export function encodeRecord(record: PersistRecord): Uint8Array {
  const w = new Writer(512);
  w.u8(RECORD_VERSION).u8(KIND_CODES[record.kind]);
  switch (record.kind) {
    case 'accepted':
      w.bytes(encodeMessage(record.prePrepare));
      break;
    case 'prepared':
      writePreparedCert(w, record.cert);
      break;
    case 'committed':
      writeCommittedBatch(w, record.entry);
      break;
    case 'snapshot':
      writeSnapshot(w, record.snapshot);
      break;
  }
  return w.finish();
}

export function decodeRecord(bytes: Uint8Array, limits: CodecLimits = DEFAULT_CODEC_LIMITS): PersistRecord {
  const r = new Reader(bytes, 'pbft record');
  const version = r.u8();
  if (version !== RECORD_VERSION) fail(`unsupported record version ${version}`);
  const kind = r.u8();
  let record: PersistRecord;
  switch (kind) {
    case KIND_CODES.accepted: {
      const msg = decodeMessage(r.bytes(), limits);
      if (msg.type !== 'pre-prepare') fail('accepted record holds a non pre-prepare message');
      record = { kind: 'accepted', prePrepare: msg };
      break;
    }
    case KIND_CODES.prepared:
      record = { kind: 'prepared', cert: readPreparedCert(r, limits) };
      break;
    case KIND_CODES.committed:
      record = { kind: 'committed', entry: readCommittedBatch(r, limits) };
      break;
    case KIND_CODES.snapshot:
      record = { kind: 'snapshot', snapshot: readSnapshot(r, limits) };
      break;
    default:
      fail(`unknown record kind ${kind}`);
  }
  r.end();
  return record;
}

function writeSnapshot(w: Writer, s: Snapshot): void {
  w.u64(s.view).u8(s.inViewChange ? 1 : 0).u64(s.lastNormalView).u32(s.viewChangeAttempt);
  writeOptionalMessage(w, s.ownViewChange);
  writeOptionalMessage(w, s.newView);
  writeCheckpointProof(w, s.stable);
  const { digests, seqs } = s.execBase.dedup;
  w.u64(s.execBase.seq).fixed(s.execBase.history, DIGEST_BYTES).u64(s.execBase.lastTimestamp).u32(seqs.length);
  seqs.forEach((seq, i) => w.fixed(digests.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES), DIGEST_BYTES).u64(seq));
  w.u64(s.keepCommittedAbove);
}

function readSnapshot(r: Reader, limits: CodecLimits): Snapshot {
  const view = r.u64();
  const inViewChange = readBool(r);
  const lastNormalView = r.u64();
  const viewChangeAttempt = r.u32();
  const ownViewChange = readOptionalMessage(r, limits, 'view-change');
  const newView = readOptionalMessage(r, limits, 'new-view');
  const stable = readCheckpointProof(r, limits);
  const seq = r.u64();
  const history = r.fixed(DIGEST_BYTES);
  const lastTimestamp = r.u64();
  const count = readCount(r, 1 << 24, DIGEST_BYTES + 8);
  // Packed into one buffer of its own: no view into the record's bytes outlives the record.
  const digests = new Uint8Array(count * DIGEST_BYTES);
  const seqs: number[] = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    digests.set(r.fixed(DIGEST_BYTES), i * DIGEST_BYTES);
    seqs[i] = r.u64();
  }
  const dedup = { digests, seqs };
  const keepCommittedAbove = r.u64();
  return { view, inViewChange, lastNormalView, viewChangeAttempt, ownViewChange, newView, stable, execBase: { seq, history, lastTimestamp, dedup }, keepCommittedAbove };
}

function writeOptionalMessage(w: Writer, msg: ViewChangeMsg | NewViewMsg | null): void {
  if (msg === null) {
    w.u8(0);
  } else {
    w.u8(1).bytes(encodeMessage(msg));
  }
}

function readOptionalMessage<T extends 'view-change' | 'new-view'>(
  r: Reader,
  limits: CodecLimits,
  type: T,
): Extract<ViewChangeMsg | NewViewMsg, { type: T }> | null {
  if (!readBool(r)) return null;
  const msg = decodeMessage(r.bytes(), limits);
  if (msg.type !== type) fail(`snapshot holds a ${msg.type} where a ${type} belongs`);
  return msg as Extract<ViewChangeMsg | NewViewMsg, { type: T }>;
}

function readBool(r: Reader): boolean {
  const b = r.u8();
  if (b > 1) fail(`boolean encoded as ${b}`);
  return b === 1;
}

function fail(message: string): never {
  throw new CbftError(ErrorCodes.DECODE, `pbft record: ${message}`);
}

/**
 * The records to keep when rewriting the log: the last snapshot, everything after it, and from
 * before it only what the snapshot does not cover: committed batches above
 * `keepCommittedAbove`, the highest-view prepared certificate per seq above the stable
 * checkpoint, and accepted pre-prepares above it that belong to the snapshot's view or carry the
 * body of a kept certificate. Restoring from the result is equivalent to restoring from the input.
 */
export function compactRecords(records: readonly PersistRecord[]): PersistRecord[] {
  let last = -1;
  for (let i = records.length - 1; i >= 0; i--) {
    if (records[i]!.kind === 'snapshot') {
      last = i;
      break;
    }
  }
  if (last < 0) return [...records];
  const snap = (records[last] as Extract<PersistRecord, { kind: 'snapshot' }>).snapshot;
  const low = snap.stable.seq;
  const bestCert = new Map<number, number>();
  for (let i = 0; i < last; i++) {
    const rec = records[i]!;
    if (rec.kind !== 'prepared' || rec.cert.seq <= low) continue;
    const prev = bestCert.get(rec.cert.seq);
    if (prev === undefined || (records[prev] as Extract<PersistRecord, { kind: 'prepared' }>).cert.view <= rec.cert.view) {
      bestCert.set(rec.cert.seq, i);
    }
  }
  const certDigest = new Map<number, string>();
  for (const i of bestCert.values()) {
    const cert = (records[i] as Extract<PersistRecord, { kind: 'prepared' }>).cert;
    certDigest.set(cert.seq, digestKey(cert.digest));
  }
  const keptCommitted = new Set<number>();
  const kept: PersistRecord[] = [];
  for (let i = 0; i < last; i++) {
    const rec = records[i]!;
    switch (rec.kind) {
      case 'committed':
        if (rec.entry.seq > snap.keepCommittedAbove && !keptCommitted.has(rec.entry.seq)) {
          keptCommitted.add(rec.entry.seq);
          kept.push(rec);
        }
        break;
      case 'prepared':
        if (bestCert.get(rec.cert.seq) === i) kept.push(rec);
        break;
      case 'accepted': {
        const pp = rec.prePrepare;
        if (pp.seq > low && (pp.view === snap.view || certDigest.get(pp.seq) === digestKey(pp.digest))) kept.push(rec);
        break;
      }
      case 'snapshot':
        break;
    }
  }
  return [...kept, ...records.slice(last)];
}
