import { GENESIS_HISTORY, nextHistory } from './digests.js';
import { DedupWindow, EMPTY_DEDUP, type PackedDedup } from './dedup-window.js';
import type { Batch, ClientRequest } from './types.js';

/** A request digest that was executed, and the batch it was executed in. */
export interface DedupEntry {
  readonly digest: Uint8Array;
  readonly seq: number;
}

/** Execution-derived state after batch `seq`: what a snapshot record stores. */
export interface ExecSnapshot {
  readonly seq: number;
  readonly history: Uint8Array;
  readonly lastTimestamp: number;
  /** The de-duplication window, oldest first. */
  readonly dedup: PackedDedup;
}

export const GENESIS_EXEC: ExecSnapshot = { seq: 0, history: GENESIS_HISTORY, lastTimestamp: 0, dedup: EMPTY_DEDUP };

export interface ExecutionOutcome {
  /** Monotonic: max(primary's timestamp, previous batch's effective timestamp). */
  readonly timestamp: number;
  /** Requests to run, in batch order. */
  readonly requests: readonly ClientRequest[];
  /** Requests of the batch that were already executed (answer them from the reply cache). */
  readonly duplicates: readonly DedupEntry[];
}

/**
 * Everything the engine derives from the executed prefix of the log: the history digest, the
 * effective timestamp and the de-duplication window (the last `window` executed request digests,
 * FIFO). It is a pure function of the prefix, so every correct replica skips exactly the same
 * duplicates at the same sequence number, and a restart rebuilds it from a snapshot plus the
 * committed batches after it.
 */
export class ExecutionState {
  private seqValue: number;
  private historyValue: Uint8Array;
  private lastTimestampValue: number;
  private readonly dedup: DedupWindow;

  constructor(window: number, base: ExecSnapshot, dedupHashKey?: Uint8Array) {
    this.seqValue = base.seq;
    this.historyValue = base.history;
    this.lastTimestampValue = base.lastTimestamp;
    this.dedup = new DedupWindow(window, dedupHashKey);
    base.dedup.seqs.forEach((seq, i) => {
      const digest = base.dedup.digests.subarray(i * 32, (i + 1) * 32);
      if (this.dedup.seqOf(digest) === undefined) this.dedup.add(digest, seq);
    });
  }

  get seq(): number {
    return this.seqValue;
  }

  get history(): Uint8Array {
    return this.historyValue;
  }

  get lastTimestamp(): number {
    return this.lastTimestampValue;
  }

  get dedupSize(): number {
    return this.dedup.size;
  }

  /** The seq a request was executed at, if it is still inside the window. */
  executedAt(digest: Uint8Array): number | undefined {
    return this.dedup.seqOf(digest);
  }

  /** Applies the next batch (seq must be this.seq + 1). */
  apply(seq: number, batch: Batch, digest: Uint8Array): ExecutionOutcome {
    if (seq !== this.seqValue + 1) throw new Error(`execution out of order: ${seq} after ${this.seqValue}`);
    const isNull = batch.requests.length === 0;
    const timestamp = isNull ? this.lastTimestampValue : Math.max(this.lastTimestampValue, batch.timestamp);
    const requests: ClientRequest[] = [];
    const duplicates: DedupEntry[] = [];
    for (const req of batch.requests) {
      const earlier = this.dedup.seqOf(req.digest);
      if (earlier !== undefined) {
        duplicates.push({ digest: req.digest, seq: earlier });
      } else {
        requests.push(req);
        this.dedup.add(req.digest, seq);
      }
    }
    this.seqValue = seq;
    this.historyValue = nextHistory(this.historyValue, seq, digest);
    this.lastTimestampValue = timestamp;
    return { timestamp, requests, duplicates };
  }

  snapshot(): ExecSnapshot {
    return { seq: this.seqValue, history: this.historyValue, lastTimestamp: this.lastTimestampValue, dedup: this.dedup.pack() };
  }
}
