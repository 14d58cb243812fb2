import type { DedupEntry } from './execution.js';
import type { PersistRecord } from './records.js';
import type { ClientRequest, MessageType, PbftMessage } from './types.js';

/** Why a peer message was dropped; each reason has a counter (Replica.counters()). */
export const DROP_REASONS = [
  'malformed',
  'non-member',
  'sender-mismatch',
  'bad-signature',
  'stale-view',
  'future-view',
  'view-change-in-progress',
  'not-primary',
  'outside-watermarks',
  'equivocation',
  'duplicate',
  'invalid',
  'clock-skew',
  'clock-unknown',
  'stale-checkpoint',
  'overloaded',
  'rate-limited',
  'unsolicited',
  'internal-error',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/**
 * A decided batch to execute. Emitted exactly once per seq, in sequence order, with no gaps;
 * the shell must execute `requests` in order and then call `executed(seq)` (also for a null
 * batch, which has no requests). `duplicates` are requests of this batch that were already
 * executed at `seq` of the entry: they must not run again; answer them from the reply cache.
 * Every field is identical on every correct replica.
 */
export interface ExecuteBatch {
  readonly seq: number;
  readonly batchDigest: Uint8Array;
  /** Effective timestamp (ms): max(primary's timestamp, previous batch's), so never decreasing. */
  readonly timestamp: number;
  /** Primary-chosen 32-byte seed (all zero for a null batch). */
  readonly seed: Uint8Array;
  readonly requests: readonly ClientRequest[];
  readonly duplicates: readonly DedupEntry[];
  /** A null batch filling a gap left by a view change (no requests, no duplicates). */
  readonly isNull: boolean;
}

export type PbftEvent =
  | { readonly kind: 'dropped'; readonly from: number; readonly msgType: MessageType | 'unknown'; readonly reason: DropReason }
  | { readonly kind: 'view-change-started'; readonly view: number; readonly timeoutTicks: number }
  | { readonly kind: 'view-changed'; readonly view: number; readonly primary: number }
  | { readonly kind: 'checkpoint-stable'; readonly seq: number }
  | { readonly kind: 'catch-up'; readonly fromSeq: number; readonly toSeq: number; readonly peer: number }
  /** A peer cannot serve the batches this replica needs: it is further behind than the archives. */
  | { readonly kind: 'catch-up-unavailable'; readonly neededSeq: number; readonly oldestAvailable: number; readonly peer: number }
  /** This replica's executed history disagrees with a stable checkpoint; it stops executing. */
  | { readonly kind: 'diverged'; readonly seq: number };

export type Action =
  /** `to: 'all'` means every other replica. */
  | { readonly type: 'send'; readonly to: number | 'all'; readonly msg: PbftMessage }
  /** Append to the fsync'd WAL before carrying out any later action of the same list. */
  | { readonly type: 'persist'; readonly record: PersistRecord }
  | { readonly type: 'execute'; readonly batch: ExecuteBatch }
  /** A submitted request was already executed at `seq`: answer from the reply cache. */
  | { readonly type: 'resend-reply'; readonly digest: Uint8Array; readonly seq: number }
  | { readonly type: 'reject'; readonly digest: Uint8Array; readonly reason: 'overloaded' | 'invalid'; readonly detail: string }
  | { readonly type: 'event'; readonly event: PbftEvent };
