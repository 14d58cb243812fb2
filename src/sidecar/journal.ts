import { CbftError, ErrorCodes } from '../errors.js';
import { Reader, Writer } from '../codec/binary.js';
import { DIGEST_BYTES } from '../codec/canonical.js';
import { SIGNATURE_BYTES } from '../crypto/threshold.js';
import { WalFile, type WalTruncation } from './wal.js';

/**
 * What the sidecar writes to its write-ahead log, on top of the raw WAL records:
 *
 *   engine       the PBFT engine's persist records (opaque here; encoded by the engine)
 *   start        request (seq, index) is about to be sent to the service
 *   not-sent     the attempt after the last `start` provably sent nothing (connect failure)
 *   done         the service answered (seq, index) with this canonical reply
 *   unknown      the outcome of (seq, index) is unknown (crash or failure after sending): never
 *                re-send it, never sign its batch
 *   adopted      the reply of an unknown (seq, index) as agreed by s+1 peers (not computed here)
 *   batch-done   batch seq finished: its request digests, seed and partial signature (if signed)
 *   executed     marker written first by compaction: every batch up to seq was executed
 *
 * A request's state after replay is the last of start / not-sent / done / unknown / adopted
 * recorded for it; `start` as the last state means the replica crashed with the request possibly
 * at the service: its outcome is unknown.
 */
export const JournalKind = {
  engine: 1,
  start: 2,
  notSent: 3,
  done: 4,
  unknown: 5,
  adopted: 6,
  batchDone: 7,
  executed: 8,
} as const;

export type RequestState =
  | { state: 'started' }
  | { state: 'not-sent' }
  | { state: 'done'; reply: Uint8Array }
  | { state: 'unknown'; reason: string }
  | { state: 'adopted'; reply: Uint8Array };

export interface BatchDone {
  seq: number;
  seed: Uint8Array;
  digests: Uint8Array[];
  /** Undefined when the batch was not signed (it held a reply this replica did not compute). */
  partial: Uint8Array | undefined;
}

export type JournalRecord =
  | { kind: 'engine'; bytes: Uint8Array }
  | { kind: 'start' | 'not-sent'; seq: number; index: number }
  | { kind: 'done' | 'adopted'; seq: number; index: number; reply: Uint8Array }
  | { kind: 'unknown'; seq: number; index: number; reason: string }
  | { kind: 'batch-done'; batch: BatchDone }
  | { kind: 'executed'; seq: number };

export function encodeJournalRecord(r: JournalRecord): Uint8Array {
  switch (r.kind) {
    case 'engine':
      return new Writer(r.bytes.length + 8).u8(JournalKind.engine).bytes(r.bytes).finish();
    case 'start':
      return new Writer(16).u8(JournalKind.start).u64(r.seq).u32(r.index).finish();
    case 'not-sent':
      return new Writer(16).u8(JournalKind.notSent).u64(r.seq).u32(r.index).finish();
    case 'done':
    case 'adopted':
      return new Writer(r.reply.length + 24)
        .u8(r.kind === 'done' ? JournalKind.done : JournalKind.adopted)
        .u64(r.seq)
        .u32(r.index)
        .bytes(r.reply)
        .finish();
    case 'unknown':
      return new Writer(64).u8(JournalKind.unknown).u64(r.seq).u32(r.index).string(r.reason).finish();
    case 'batch-done': {
      const b = r.batch;
      const w = new Writer(96 + b.digests.length * DIGEST_BYTES).u8(JournalKind.batchDone).u64(b.seq).fixed(b.seed, 32).u32(b.digests.length);
      for (const d of b.digests) w.fixed(d, DIGEST_BYTES);
      if (b.partial) w.u8(1).fixed(b.partial, SIGNATURE_BYTES);
      else w.u8(0);
      return w.finish();
    }
    case 'executed':
      return new Writer(16).u8(JournalKind.executed).u64(r.seq).finish();
  }
}

export function decodeJournalRecord(bytes: Uint8Array): JournalRecord {
  const r = new Reader(bytes, 'journal record');
  const kind = r.u8();
  let out: JournalRecord;
  switch (kind) {
    case JournalKind.engine:
      out = { kind: 'engine', bytes: r.bytes() };
      break;
    case JournalKind.start:
      out = { kind: 'start', seq: r.u64(), index: r.u32() };
      break;
    case JournalKind.notSent:
      out = { kind: 'not-sent', seq: r.u64(), index: r.u32() };
      break;
    case JournalKind.done:
      out = { kind: 'done', seq: r.u64(), index: r.u32(), reply: r.bytes() };
      break;
    case JournalKind.adopted:
      out = { kind: 'adopted', seq: r.u64(), index: r.u32(), reply: r.bytes() };
      break;
    case JournalKind.unknown:
      out = { kind: 'unknown', seq: r.u64(), index: r.u32(), reason: r.string(4096) };
      break;
    case JournalKind.batchDone: {
      const seq = r.u64();
      const seed = r.fixed(32);
      const n = r.u32();
      if (n * DIGEST_BYTES > r.remaining) throw new CbftError(ErrorCodes.DECODE, 'journal record: digest list does not fit');
      const digests: Uint8Array[] = [];
      for (let i = 0; i < n; i++) digests.push(r.fixed(DIGEST_BYTES));
      const signed = r.u8();
      if (signed > 1) throw new CbftError(ErrorCodes.DECODE, 'journal record: bad signed flag');
      out = { kind: 'batch-done', batch: { seq, seed, digests, partial: signed === 1 ? r.fixed(SIGNATURE_BYTES) : undefined } };
      break;
    }
    case JournalKind.executed:
      out = { kind: 'executed', seq: r.u64() };
      break;
    default:
      throw new CbftError(ErrorCodes.DECODE, `journal record: unknown kind ${kind}`);
  }
  r.end();
  return out;
}

/** A finished batch with the replies it produced (for the reply cache and compaction). */
export interface FinishedBatch {
  batch: BatchDone;
  /** Per index: the reply and whether this replica computed it (false: adopted from peers). */
  replies: Array<{ reply: Uint8Array; own: boolean } | undefined>;
}

/** The sidecar's durable state as rebuilt from the log. */
export interface JournalState {
  /** Engine records, in append order (hand them to the engine's restore). */
  engineRecords: Uint8Array[];
  /** Highest seq whose batch-done (or executed marker) is durable. */
  executedThrough: number;
  /** Request progress of batches above executedThrough, by seq then index. */
  progress: Map<number, Map<number, RequestState>>;
  /** Finished batches in seq order (bounded by the caller's retention when compacting). */
  finished: FinishedBatch[];
  truncation?: WalTruncation;
  created: boolean;
  records: number;
}

export function replayJournal(raw: readonly Uint8Array[]): Omit<JournalState, 'truncation' | 'created'> {
  const engineRecords: Uint8Array[] = [];
  let executedThrough = 0;
  const progress = new Map<number, Map<number, RequestState>>();
  const finished: FinishedBatch[] = [];
  const set = (seq: number, index: number, s: RequestState) => {
    let m = progress.get(seq);
    if (!m) progress.set(seq, (m = new Map()));
    m.set(index, s);
  };
  for (const bytes of raw) {
    const r = decodeJournalRecord(bytes);
    switch (r.kind) {
      case 'engine':
        engineRecords.push(r.bytes);
        break;
      case 'start':
        set(r.seq, r.index, { state: 'started' });
        break;
      case 'not-sent':
        set(r.seq, r.index, { state: 'not-sent' });
        break;
      case 'done':
        set(r.seq, r.index, { state: 'done', reply: r.reply });
        break;
      case 'adopted': {
        // Adoption may complete after the batch finished: patch the finished batch too.
        const fb = finished.find((f) => f.batch.seq === r.seq);
        if (fb) fb.replies[r.index] = { reply: r.reply, own: false };
        else set(r.seq, r.index, { state: 'adopted', reply: r.reply });
        break;
      }
      case 'unknown':
        set(r.seq, r.index, { state: 'unknown', reason: r.reason });
        break;
      case 'batch-done': {
        const m = progress.get(r.batch.seq);
        const replies: FinishedBatch['replies'] = r.batch.digests.map((_, i) => {
          const s = m?.get(i);
          if (s?.state === 'done') return { reply: s.reply, own: true };
          if (s?.state === 'adopted') return { reply: s.reply, own: false };
          return undefined;
        });
        progress.delete(r.batch.seq);
        finished.push({ batch: r.batch, replies });
        executedThrough = Math.max(executedThrough, r.batch.seq);
        break;
      }
      case 'executed':
        executedThrough = Math.max(executedThrough, r.seq);
        break;
    }
  }
  for (const seq of [...progress.keys()]) if (seq <= executedThrough) progress.delete(seq);
  return { engineRecords, executedThrough, progress, finished, records: raw.length };
}

/**
 * The sidecar's log: a WalFile plus the typed records above. Appends are buffered; `sync()`
 * makes everything appended durable (one write, one fdatasync).
 */
export class Journal {
  private constructor(private readonly wal: WalFile) {}

  static open(path: string): { journal: Journal; state: JournalState } {
    const opened = WalFile.open(path);
    const replayed = replayJournal(opened.records);
    const state: JournalState = { ...replayed, created: opened.created };
    if (opened.truncation) state.truncation = opened.truncation;
    return { journal: new Journal(opened.wal), state };
  }

  append(r: JournalRecord): void {
    this.wal.append(encodeJournalRecord(r));
  }

  sync(): void {
    this.wal.sync();
  }

  /** Hands everything appended to the OS (survives a process crash, not a machine crash). */
  write(): void {
    this.wal.write();
  }

  /** Durability barrier that does not block the event loop (see WalFile.flush). */
  flush(): Promise<void> {
    return this.wal.flush();
  }

  idle(): Promise<void> {
    return this.wal.idle();
  }

  get syncing(): boolean {
    return this.wal.syncing;
  }

  get durableSize(): number {
    return this.wal.durableSize;
  }

  get dirty(): boolean {
    return this.wal.dirty;
  }

  get size(): number {
    return this.wal.size;
  }

  get syncs(): number {
    return this.wal.syncs;
  }

  /**
   * Replaces the log by exactly these records (compaction). Each is encoded only when the log
   * writes it: encoding them all first held the whole live state (tens of MiB of small buffers)
   * at once, and the C heap never gave that back (+20 MiB of RSS at every compaction). Returns
   * how many records were written.
   */
  rewrite(records: Iterable<JournalRecord>): number {
    return this.wal.rewrite(
      (function* () {
        for (const r of records) yield encodeJournalRecord(r);
      })(),
    );
  }

  close(): void {
    this.wal.close();
  }
}
