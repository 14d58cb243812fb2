import { GENESIS_HISTORY, digestKey, nextHistory } from './digests.js';
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
  /** Oldest first. */
  readonly dedup: readonly DedupEntry[];
}

export const GENESIS_EXEC: ExecSnapshot = { seq: 0, history: GENESIS_HISTORY, lastTimestamp: 0, dedup: [] };

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
  private readonly dedup = new Map<string, DedupEntry>();

  constructor(private readonly window: number, base: ExecSnapshot) {
    this.seqValue = base.seq;
    this.historyValue = base.history;
    this.lastTimestampValue = base.lastTimestamp;
    for (const e of base.dedup) this.remember(e);
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
    return this.dedup.get(digestKey(digest))?.seq;
  }

  /** Applies the next batch (seq must be this.seq + 1). */
  apply(seq: number, batch: Batch, digest: Uint8Array): ExecutionOutcome {
    if (seq !== this.seqValue + 1) throw new Error(`execution out of order: ${seq} after ${this.seqValue}`);
    const isNull = batch.requests.length === 0;
    const timestamp = isNull ? this.lastTimestampValue : Math.max(this.lastTimestampValue, batch.timestamp);
    const requests: ClientRequest[] = [];
    const duplicates: DedupEntry[] = [];
    for (const req of batch.requests) {
      const earlier = this.dedup.get(digestKey(req.digest));
      if (earlier) {
        duplicates.push(earlier);
      } else {
        requests.push(req);
        this.remember({ digest: req.digest, seq });
      }
    }
    this.seqValue = seq;
    this.historyValue = nextHistory(this.historyValue, seq, digest);
    this.lastTimestampValue = timestamp;
    return { timestamp, requests, duplicates };
  }

  snapshot(): ExecSnapshot {
    return { seq: this.seqValue, history: this.historyValue, lastTimestamp: this.lastTimestampValue, dedup: [...this.dedup.values()] };
  }

  private remember(e: DedupEntry): void {
    this.dedup.set(digestKey(e.digest), e);
    if (this.dedup.size > this.window) {
      const oldest = this.dedup.keys().next();
      if (!oldest.done) this.dedup.delete(oldest.value);
    }
  }
}
