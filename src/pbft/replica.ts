import { bytesEqual } from '../codec/binary.js';
import type { Action, DropReason, PbftEvent } from './actions.js';
import { DROP_REASONS } from './actions.js';
import { Archive } from './archive.js';
import { batchProblem, requestProblem, type RequestDigestFn } from './batch-validation.js';
import type { CertContext } from './certificates.js';
import { canonicalVotes, safeVerify, validCommitCert } from './certificates.js';
import { CatchUpTracker } from './catch-up.js';
import { CheckpointVotes } from './checkpoint-votes.js';
import type { CodecLimits } from './codec.js';
import { DEFAULT_CODEC_LIMITS, decodeMessage, encodeMessage } from './codec.js';
import type { PbftConfig, ResolvedConfig } from './config.js';
import { resolveConfig } from './config.js';
import { GENESIS_HISTORY, batchDigest, deriveSeed, digestKey, isNullDigest, requestDigestOf } from './digests.js';
import { PbftErrorCodes, pbftError } from './errors.js';
import type { ExecSnapshot } from './execution.js';
import { ExecutionState, GENESIS_EXEC } from './execution.js';
import { PendingRequests } from './pending.js';
import type { Quorums } from './quorums.js';
import { primaryOf, quorumsFor } from './quorums.js';
import type { PersistRecord, Snapshot } from './records.js';
import type { PbftCrypto, Unsigned } from './signing.js';
import { signMessage, verifyMessage, voteBytes } from './signing.js';
import { Slot } from './slot.js';
import type {
  Batch,
  CheckpointMsg,
  CheckpointProof,
  ClientRequest,
  CommitCert,
  CommitMsg,
  CommittedBatch,
  FetchMsg,
  FetchReplyMsg,
  MessageType,
  NewViewMsg,
  PbftMessage,
  PrePrepareMsg,
  PrepareMsg,
  RequestMsg,
  StatusMsg,
  ViewChangeMsg,
} from './types.js';
import type { NewViewPlan } from './view-change.js';
import { planNewView, validViewChangeContent } from './view-change.js';
import { ViewChangeStore } from './view-change-store.js';

/** What the shell hands back after a restart. */
export interface RestoredState {
  /** Every record of the write-ahead log, in append order (compacted or not). */
  readonly records: readonly PersistRecord[];
  /** Highest seq the shell executed and durably recorded (0 if none). */
  readonly lastExecuted: number;
}

/** Read-only view of the engine's state for metrics, tests and the simulator's invariants. */
export interface ReplicaInspection {
  readonly id: number;
  readonly view: number;
  readonly primary: number;
  readonly inViewChange: boolean;
  readonly viewChangeAttempt: number;
  readonly lowWatermark: number;
  readonly highWatermark: number;
  readonly stableDigest: Uint8Array;
  readonly lastDispatched: number;
  readonly lastExecuted: number;
  readonly slotCount: number;
  /** Lowest and highest seq with log state, or null when the log is empty. */
  readonly minSlotSeq: number | null;
  readonly maxSlotSeq: number | null;
  readonly pendingRequests: number;
  readonly archivedBatches: number;
  readonly checkpointVotes: number;
  readonly viewChangeMessages: number;
  readonly dedupEntries: number;
  readonly execSnapshots: number;
  readonly diverged: boolean;
}

/** VIEW-CHANGE messages kept per replica (the highest views). */
const VIEW_CHANGES_PER_REPLICA = 3;

/**
 * One PBFT replica (Castro–Liskov with signatures) as a pure state machine, in the style of
 * etcd/raft: inputs are `receive`, `submit`, `tick` and `executed`; outputs are drained with
 * `takeActions()`. No I/O, timers, wall clock or randomness inside: time and entropy come in
 * through `tick`. Peer input never throws; it is dropped and counted per reason.
 */
export class Replica {
  readonly config: ResolvedConfig;
  private readonly crypto: PbftCrypto;
  private readonly requestDigest: RequestDigestFn;
  private readonly q: Quorums;
  private readonly certCtx: CertContext;
  private readonly codecLimits: CodecLimits;
  private out: Action[] = [];
  private lastInternalErrorValue: unknown = null;
  private readonly dropCounts: Record<DropReason, number>;

  // Clock (from the shell).
  private tickNo = 0;
  private nowMs: number | null = null;
  private entropy: Uint8Array | null = null;

  // View.
  private view = 0;
  private inViewChange = false;
  private lastNormalView = 0;
  /**
   * The view-change timeout is viewChangeTicks * 2^viewChangeAttempt. Each view change doubles it;
   * it halves again only after a whole timeout period of progress in one view. Resetting it at the
   * first executed batch would make an overloaded system (requests queueing longer than the base
   * timeout) change view over and over.
   */
  private viewChangeAttempt = 0;
  /** Start of the current calm period (normal operation in this view) and whether it progressed. */
  private calmSinceTick = 0;
  private progressSinceCalm = false;
  private ownViewChange: ViewChangeMsg | null = null;
  private newViewMsg: NewViewMsg | null = null;
  private readonly viewChanges: ViewChangeStore;
  /** Set once 2s+1 replicas support the view change in progress. */
  private viewChangeDeadline: number | null = null;
  /** Runs while a request is pending: tracks the oldest one, so censoring it cannot hide. */
  private requestTimer: { startTick: number; key: string } | null = null;

  // Log.
  private stable: CheckpointProof = { seq: 0, digest: GENESIS_HISTORY, sigs: [] };
  private readonly slots = new Map<number, Slot>();
  /** Slots that were open (pre-prepared, not committed) at the previous STATUS broadcast. */
  private openAtLastGossip = new Set<number>();
  private nextSeq = 1;
  private lastProposedTimestamp = 0;
  /** Request digest -> seq of the current-view batch that carries it (not yet executed). */
  private readonly assigned = new Map<string, number>();

  // Execution.
  private readonly archive: Archive;
  private exec: ExecutionState;
  private lastDispatched = 0;
  private lastExecuted = 0;
  private readonly execSnapshots = new Map<number, ExecSnapshot>();
  private execBase: ExecSnapshot = GENESIS_EXEC;
  private readonly ownCheckpoints = new Map<number, CheckpointMsg>();
  private readonly checkpointVotes: CheckpointVotes;
  private diverged = false;

  private readonly pending: PendingRequests;

  // Peers and catch-up.
  private readonly catchUp: CatchUpTracker;
  private readonly lastRelayTick: number[];
  private readonly lastProofRelayTick: number[];

  constructor(config: PbftConfig, crypto: PbftCrypto, restored?: RestoredState) {
    this.config = resolveConfig(config);
    const cfg = this.config;
    this.crypto = crypto;
    this.requestDigest = crypto.requestDigest ? (payload) => crypto.requestDigest!(payload) : requestDigestOf;
    this.q = quorumsFor(cfg);
    this.certCtx = { n: cfg.n, checkpointInterval: cfg.checkpointInterval, quorums: this.q, crypto };
    this.codecLimits = {
      ...DEFAULT_CODEC_LIMITS,
      maxBatchRequests: cfg.batchMax,
      maxRequestBytes: cfg.maxRequestBytes,
      maxListLength: Math.max(cfg.watermarkWindow, cfg.fetchMaxBatches),
    };
    this.dropCounts = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    this.viewChanges = new ViewChangeStore(cfg.n, VIEW_CHANGES_PER_REPLICA);
    this.archive = new Archive(cfg.archiveBatches);
    this.exec = new ExecutionState(cfg.dedupWindow, GENESIS_EXEC, cfg.dedupHashKey);
    this.checkpointVotes = new CheckpointVotes(cfg.n, cfg.watermarkWindow / cfg.checkpointInterval + 2);
    this.pending = new PendingRequests(cfg.maxPendingRequests);
    this.catchUp = new CatchUpTracker(cfg.n, cfg.id, this.q.weak);
    this.lastRelayTick = new Array<number>(cfg.n).fill(-Infinity);
    this.lastProofRelayTick = new Array<number>(cfg.n).fill(-Infinity);
    if (restored) this.restore(restored);
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  /** A client request from a top firewall node. */
  submit(request: ClientRequest): void {
    const problem = requestProblem(request, this.config, this.requestDigest);
    if (problem !== null) {
      const digest = request.digest instanceof Uint8Array ? request.digest : new Uint8Array(0);
      this.emit({ type: 'reject', digest, reason: 'invalid', detail: problem });
      return;
    }
    const executedAt = this.exec.executedAt(request.digest);
    if (executedAt !== undefined) {
      this.emit({ type: 'resend-reply', digest: request.digest, seq: executedAt });
      return;
    }
    if (this.pending.has(request.digest)) return;
    if (!this.pending.add(request, this.tickNo)) {
      this.emit({ type: 'reject', digest: request.digest, reason: 'overloaded', detail: 'pending request queue is full' });
      return;
    }
    this.startRequestTimerIfIdle();
    this.maybePropose();
  }

  /** A decoded message from peer `from` (the transport authenticated `from`). */
  receive(from: number, msg: PbftMessage): void {
    try {
      this.onMessage(from, msg);
    } catch (err) {
      // A bug, not bad input: keep running (peer input must never crash the shell) but keep it visible.
      this.lastInternalErrorValue = err;
      this.drop(from, msg?.type ?? 'unknown', 'internal-error');
    }
  }

  /** Raw bytes from peer `from`: malformed input is dropped and counted, never thrown. */
  receiveBytes(from: number, bytes: Uint8Array): void {
    let msg: PbftMessage;
    try {
      msg = decodeMessage(bytes, this.codecLimits);
    } catch {
      this.drop(from, 'unknown', 'malformed');
      return;
    }
    this.receive(from, msg);
  }

  /** Called every tickMs with wall-clock time and 32 fresh random bytes. */
  tick(nowMs: number, entropy: Uint8Array): void {
    if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw pbftError(PbftErrorCodes.USAGE, `tick: bad time ${nowMs}`);
    if (!(entropy instanceof Uint8Array) || entropy.length !== 32) throw pbftError(PbftErrorCodes.USAGE, 'tick: entropy must be 32 bytes');
    this.tickNo++;
    this.nowMs = nowMs;
    this.entropy = entropy;
    this.checkTimers();
    this.maybePropose();
    this.forwardStaleRequests();
    if (this.tickNo % this.config.statusTicks === 0) this.gossip();
    this.maybeFetch();
  }

  /** The shell finished executing batch `seq` and recorded that durably (strictly in order). */
  executed(seq: number): void {
    if (seq !== this.lastExecuted + 1 || seq > this.lastDispatched) {
      throw pbftError(PbftErrorCodes.USAGE, `executed(${seq}): expected ${this.lastExecuted + 1} (dispatched through ${this.lastDispatched})`);
    }
    this.lastExecuted = seq;
    this.onExecuted(seq);
    this.tryDispatch();
  }

  /** At a checkpoint boundary: vote for it (even if already stable here: peers may lag). */
  private onExecuted(seq: number): void {
    if (seq % this.config.checkpointInterval !== 0) return;
    const snap = this.execSnapshots.get(seq);
    if (!snap) return;
    if (seq < this.stable.seq) {
      if (this.advanceExecBase()) this.persistSnapshot();
      return;
    }
    const msg = this.sign<CheckpointMsg>({ type: 'checkpoint', sender: this.id, seq, digest: snap.history });
    this.ownCheckpoints.set(seq, msg);
    this.send('all', msg);
    if (seq === this.stable.seq) {
      if (this.advanceExecBase()) this.persistSnapshot();
      return;
    }
    this.checkpointVotes.add(this.id, seq, snap.history, msg.sig);
    this.tryStabilize(seq);
  }

  takeActions(): Action[] {
    // The end of an input: with adaptive batching, what arrived in it may now form a batch. While
    // the previous batch is being prepared only a full batch or an expired hold could be cut, and
    // those are cut where they arise (on arrival, on a tick): skip the scan of pending requests.
    if (this.config.adaptiveBatching && this.isPrimary() && !this.previousBatchBusy()) this.maybePropose(true);
    const actions = this.out;
    this.out = [];
    return actions;
  }

  /** The last exception caught while handling a peer message (a bug if ever non-null). */
  get lastInternalError(): unknown {
    return this.lastInternalErrorValue;
  }

  counters(): Readonly<Record<DropReason, number>> {
    return { ...this.dropCounts };
  }

  inspect(): ReplicaInspection {
    let minSlotSeq: number | null = null;
    let maxSlotSeq: number | null = null;
    for (const seq of this.slots.keys()) {
      if (minSlotSeq === null || seq < minSlotSeq) minSlotSeq = seq;
      if (maxSlotSeq === null || seq > maxSlotSeq) maxSlotSeq = seq;
    }
    return {
      id: this.id,
      view: this.view,
      primary: primaryOf(this.view, this.config.n),
      inViewChange: this.inViewChange,
      viewChangeAttempt: this.viewChangeAttempt,
      lowWatermark: this.stable.seq,
      highWatermark: this.stable.seq + this.config.watermarkWindow,
      stableDigest: this.stable.digest,
      lastDispatched: this.lastDispatched,
      lastExecuted: this.lastExecuted,
      slotCount: this.slots.size,
      minSlotSeq,
      maxSlotSeq,
      pendingRequests: this.pending.size,
      archivedBatches: this.archive.size,
      checkpointVotes: this.checkpointVotes.size,
      viewChangeMessages: this.viewChanges.size,
      dedupEntries: this.exec.dedupSize,
      execSnapshots: this.execSnapshots.size,
      diverged: this.diverged,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Message dispatch

  private get id(): number {
    return this.config.id;
  }

  private isPrimary(): boolean {
    return primaryOf(this.view, this.config.n) === this.id;
  }

  private onMessage(from: number, msg: PbftMessage): void {
    const type = msg.type;
    if (!Number.isInteger(from) || from < 0 || from >= this.config.n || from === this.id) return this.drop(from, type, 'non-member');
    if (!Number.isInteger(msg.sender) || msg.sender < 0 || msg.sender >= this.config.n) return this.drop(from, type, 'non-member');
    // Only NEW-VIEW and CHECKPOINT may be relayed: they are self-certifying (signed by their
    // sender, checked as such) and are what a lagging replica needs from whoever is ahead.
    if (msg.sender !== from && type !== 'new-view' && type !== 'checkpoint') return this.drop(from, type, 'sender-mismatch');
    switch (msg.type) {
      case 'request':
        return this.onRequest(msg);
      case 'pre-prepare':
        return this.onPrePrepare(msg);
      case 'prepare':
        return this.onPrepare(msg);
      case 'commit':
        return this.onCommit(msg);
      case 'checkpoint':
        return this.onCheckpoint(from, msg);
      case 'view-change':
        return this.onViewChange(msg);
      case 'new-view':
        return this.onNewView(from, msg);
      case 'status':
        return this.onStatus(msg);
      case 'fetch':
        return this.onFetch(msg);
      case 'fetch-reply':
        return this.onFetchReply(msg);
      default:
        return this.drop(from, 'unknown', 'malformed');
    }
  }

  /** Common checks of PRE-PREPARE, PREPARE and COMMIT; returns a drop reason or null. */
  private normalCaseProblem(view: number, seq: number): DropReason | null {
    if (view < this.view) return 'stale-view';
    if (view > this.view) return 'future-view';
    if (this.inViewChange) return 'view-change-in-progress';
    if (!this.inWindow(seq)) return 'outside-watermarks';
    return null;
  }

  private inWindow(seq: number): boolean {
    if (this.config.mutant === 'no-watermark') return seq > this.stable.seq;
    return seq > this.stable.seq && seq <= this.stable.seq + this.config.watermarkWindow;
  }

  // ---------------------------------------------------------------------------------------------
  // Requests and proposals

  private onRequest(m: RequestMsg): void {
    if (this.inViewChange || !this.isPrimary()) return this.drop(m.sender, m.type, 'not-primary');
    if (!this.verified(m)) return;
    if (requestProblem(m.request, this.config, this.requestDigest) !== null) return this.drop(m.sender, m.type, 'invalid');
    if (this.exec.executedAt(m.request.digest) !== undefined || this.pending.has(m.request.digest)) {
      return this.drop(m.sender, m.type, 'duplicate');
    }
    if (!this.pending.add(m.request, this.tickNo)) return this.drop(m.sender, m.type, 'overloaded');
    this.startRequestTimerIfIdle();
    this.maybePropose();
  }

  /**
   * The primary cuts batches: a full one at once; a partial one after batchDelayTicks, or with
   * adaptive batching at the end of an input (`endOfInput`) or a tick, once partialBatchDue.
   */
  private maybePropose(endOfInput = false): void {
    if (!this.isPrimary() || this.inViewChange || this.diverged || this.nowMs === null || this.entropy === null) return;
    const cfg = this.config;
    while (this.inWindow(this.nextSeq)) {
      const requests: ClientRequest[] = [];
      let oldestTick = Infinity;
      for (const entry of this.pending.values()) {
        if (this.assigned.has(entry.key)) continue;
        requests.push(entry.request);
        oldestTick = Math.min(oldestTick, entry.arrivalTick);
        if (requests.length >= cfg.batchMax) break;
      }
      if (requests.length === 0) return;
      if (requests.length < cfg.batchMax && !this.partialBatchDue(oldestTick, endOfInput)) return;
      this.propose(this.nextSeq, requests);
      this.nextSeq++;
    }
  }

  /**
   * Whether a partial batch whose oldest request arrived at `oldestTick` may be cut now. Fixed
   * batching: after batchDelayTicks. Adaptive: never in the middle of an input (its other requests
   * would miss the batch); otherwise at once unless this primary's latest batch of the view is
   * still in pre-prepare/prepare, and then after batchHoldTicks at the latest.
   */
  private partialBatchDue(oldestTick: number, endOfInput: boolean): boolean {
    const cfg = this.config;
    if (!cfg.adaptiveBatching) return this.tickNo - oldestTick >= cfg.batchDelayTicks;
    if (this.tickNo - oldestTick >= cfg.batchHoldTicks) return true;
    return endOfInput && !this.previousBatchBusy();
  }

  /** Whether this primary's latest batch of the current view is still in pre-prepare/prepare. */
  private previousBatchBusy(): boolean {
    const last = this.slots.get(this.nextSeq - 1);
    return last !== undefined && last.ownPrePrepare !== null && last.prePrepare?.view === this.view && !last.prepared && !last.committed;
  }

  private propose(seq: number, requests: ClientRequest[]): void {
    const timestamp = Math.max(this.nowMs ?? 0, this.lastProposedTimestamp, this.exec.lastTimestamp);
    const batch: Batch = { timestamp, seed: deriveSeed(this.entropy!, this.view, seq), requests };
    const digest = batchDigest(batch);
    const msg = this.sign<PrePrepareMsg>({ type: 'pre-prepare', sender: this.id, view: this.view, seq, digest, batch });
    const slot = this.slotFor(seq);
    slot.prePrepare = { view: this.view, digest, sig: msg.sig };
    slot.ownPrePrepare = msg;
    slot.addBody(digest, batch);
    this.lastProposedTimestamp = timestamp;
    for (const r of requests) this.assigned.set(digestKey(r.digest), seq);
    this.persist({ kind: 'accepted', prePrepare: msg });
    this.send('all', msg);
    if (this.config.mutant === 'commit-before-prepared') this.sendCommit(slot);
  }

  /** A backup forwards requests the primary seems not to have (once per view). */
  private forwardStaleRequests(): void {
    if (this.inViewChange || this.isPrimary()) return;
    const primary = primaryOf(this.view, this.config.n);
    let sent = 0;
    for (const entry of this.pending.values()) {
      if (this.tickNo - entry.arrivalTick < this.config.forwardAfterTicks) break;
      if (entry.forwardedInView === this.view || this.assigned.has(entry.key)) continue;
      entry.forwardedInView = this.view;
      this.send(primary, this.sign<RequestMsg>({ type: 'request', sender: this.id, request: entry.request }));
      if (++sent >= this.config.batchMax) break;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Normal case: pre-prepare, prepare, commit

  private onPrePrepare(m: PrePrepareMsg): void {
    const problem = this.normalCaseProblem(m.view, m.seq);
    if (problem) return this.drop(m.sender, m.type, problem);
    if (m.sender !== primaryOf(m.view, this.config.n)) return this.drop(m.sender, m.type, 'not-primary');
    const existing = this.slots.get(m.seq)?.prePrepare;
    if (existing && !bytesEqual(existing.digest, m.digest)) return this.drop(m.sender, m.type, 'equivocation');
    if (!this.verified(m)) return;
    if (batchProblem(m.batch, this.config, this.requestDigest) !== null || m.batch.requests.length === 0) return this.drop(m.sender, m.type, 'invalid');
    if (!bytesEqual(batchDigest(m.batch), m.digest)) return this.drop(m.sender, m.type, 'invalid');
    const slot = this.slotFor(m.seq);
    if (existing) {
      // A retransmission: it may bring the body of a batch committed without one.
      slot.addBody(m.digest, m.batch);
      this.finalizeCommitted(slot);
      return this.drop(m.sender, m.type, 'duplicate');
    }
    if (this.nowMs === null) return this.drop(m.sender, m.type, 'clock-unknown');
    if (Math.abs(m.batch.timestamp - this.nowMs) > this.config.maxClockSkewMs) return this.drop(m.sender, m.type, 'clock-skew');
    if (!this.timestampFitsNeighbours(m.seq, m.batch.timestamp)) return this.drop(m.sender, m.type, 'invalid');
    slot.prePrepare = { view: m.view, digest: m.digest, sig: m.sig };
    slot.addBody(m.digest, m.batch);
    for (const r of m.batch.requests) this.assigned.set(digestKey(r.digest), m.seq);
    this.persist({ kind: 'accepted', prePrepare: m });
    this.sendPrepare(slot);
    if (this.config.mutant === 'commit-before-prepared') this.sendCommit(slot);
    this.checkPrepared(slot);
  }

  /** A correct primary's timestamps never decrease with seq inside one view. */
  private timestampFitsNeighbours(seq: number, timestamp: number): boolean {
    for (const slot of this.slots.values()) {
      if (!slot.prePrepare || slot.prePrepare.view !== this.view) continue;
      const body = slot.bodyFor(slot.prePrepare.digest);
      if (!body || body.requests.length === 0) continue;
      if (slot.seq < seq && body.timestamp > timestamp) return false;
      if (slot.seq > seq && body.timestamp < timestamp) return false;
    }
    return true;
  }

  private onPrepare(m: PrepareMsg): void {
    const problem = this.normalCaseProblem(m.view, m.seq);
    if (problem) return this.drop(m.sender, m.type, problem);
    if (m.sender === primaryOf(m.view, this.config.n)) return this.drop(m.sender, m.type, 'invalid');
    const slot = this.slots.get(m.seq);
    const existing = slot?.prepares.get(m.sender);
    if (existing) return this.drop(m.sender, m.type, bytesEqual(existing.digest, m.digest) ? 'duplicate' : 'equivocation');
    if (!this.verified(m)) return;
    const s = slot ?? this.slotFor(m.seq);
    s.prepares.set(m.sender, { digest: m.digest, sig: m.sig });
    this.checkPrepared(s);
  }

  private onCommit(m: CommitMsg): void {
    const problem = this.normalCaseProblem(m.view, m.seq);
    if (problem) return this.drop(m.sender, m.type, problem);
    const slot = this.slots.get(m.seq);
    const existing = slot?.commits.get(m.sender);
    if (existing) return this.drop(m.sender, m.type, bytesEqual(existing.digest, m.digest) ? 'duplicate' : 'equivocation');
    if (!this.verified(m)) return;
    const s = slot ?? this.slotFor(m.seq);
    s.commits.set(m.sender, { digest: m.digest, sig: m.sig });
    this.checkCommitted(s);
  }

  private sendPrepare(slot: Slot): void {
    if (this.isPrimary() || !slot.prePrepare || slot.ownPrepare) return;
    const msg = this.sign<PrepareMsg>({ type: 'prepare', sender: this.id, view: this.view, seq: slot.seq, digest: slot.prePrepare.digest });
    slot.ownPrepare = msg;
    slot.prepares.set(this.id, { digest: msg.digest, sig: msg.sig });
    this.send('all', msg);
  }

  private sendCommit(slot: Slot): void {
    if (!slot.prePrepare || slot.ownCommit) return;
    const msg = this.sign<CommitMsg>({ type: 'commit', sender: this.id, view: this.view, seq: slot.seq, digest: slot.prePrepare.digest });
    slot.ownCommit = msg;
    slot.commits.set(this.id, { digest: msg.digest, sig: msg.sig });
    this.send('all', msg);
  }

  /** prepared(m, v, n): the pre-prepare plus 2s matching prepares from distinct backups. */
  private checkPrepared(slot: Slot): void {
    if (slot.prepared || !slot.prePrepare) return;
    const digest = slot.prePrepare.digest;
    const votes = slot.matching('prepares', digest);
    if (votes.length < this.q.prepares) return;
    slot.prepared = true;
    slot.preparedCert = {
      view: this.view,
      seq: slot.seq,
      digest,
      primarySig: slot.prePrepare.sig,
      prepares: canonicalVotes(votes, this.q.prepares),
    };
    this.persist({ kind: 'prepared', cert: slot.preparedCert });
    this.sendCommit(slot);
    this.checkCommitted(slot);
  }

  /** committed-local: prepared plus 2s+1 matching commits (own included). */
  private checkCommitted(slot: Slot): void {
    if (slot.committed || !slot.prePrepare) return;
    if (!slot.prepared && this.config.mutant !== 'commit-before-prepared') return;
    const digest = slot.prePrepare.digest;
    const votes = slot.matching('commits', digest);
    if (votes.length < this.q.commit) return;
    slot.committed = true;
    slot.commitCert = { view: this.view, digest, commits: canonicalVotes(votes, this.q.commit) };
    this.finalizeCommitted(slot);
  }

  /** Records a committed slot once its body is known (it may arrive later, or via catch-up). */
  private finalizeCommitted(slot: Slot): void {
    const cert: CommitCert | null = slot.commitCert;
    if (!slot.committed || !cert) return;
    const batch = slot.bodyFor(cert.digest);
    if (!batch) return;
    this.recordCommitted({ seq: slot.seq, batch, cert });
  }

  private recordCommitted(entry: CommittedBatch): void {
    if (entry.seq <= this.lastDispatched || this.archive.has(entry.seq)) return;
    this.archive.set(entry);
    this.persist({ kind: 'committed', entry });
    this.assignDecided(entry);
    this.tryDispatch();
  }

  /** A decided batch that is not executed yet: its requests must not be proposed again. */
  private assignDecided(entry: CommittedBatch): void {
    for (const r of entry.batch.requests) this.assigned.set(digestKey(r.digest), entry.seq);
  }

  // ---------------------------------------------------------------------------------------------
  // Execution and checkpoints

  /**
   * Hands committed batches to the shell strictly in order, each exactly once, keeping at most
   * maxExecutionBacklog of them in flight so a slow executor cannot make state grow.
   */
  private tryDispatch(): void {
    const K = this.config.checkpointInterval;
    while (!this.diverged) {
      const seq = this.lastDispatched + 1;
      if (seq > this.lastExecuted + this.config.maxExecutionBacklog) return;
      const entry = this.archive.get(seq);
      if (!entry) return;
      const outcome = this.exec.apply(seq, entry.batch, entry.cert.digest);
      if (seq === this.stable.seq && !bytesEqual(this.exec.history, this.stable.digest)) {
        this.markDiverged(seq);
        return;
      }
      this.lastDispatched = seq;
      if (seq % K === 0) this.execSnapshots.set(seq, this.exec.snapshot());
      this.emit({
        type: 'execute',
        batch: {
          seq,
          batchDigest: entry.cert.digest,
          timestamp: outcome.timestamp,
          seed: entry.batch.seed,
          requests: outcome.requests,
          duplicates: outcome.duplicates,
          isNull: entry.batch.requests.length === 0,
        },
      });
      for (const r of entry.batch.requests) {
        const key = digestKey(r.digest);
        this.pending.deleteKey(key);
        this.assigned.delete(key);
      }
      if (!this.inViewChange && entry.batch.requests.length > 0) this.progressSinceCalm = true;
      if (this.requestTimer && !this.pending.hasKey(this.requestTimer.key)) this.requestTimer = null;
      this.startRequestTimerIfIdle();
    }
  }

  private markDiverged(seq: number): void {
    if (this.diverged) return;
    this.diverged = true;
    this.event({ kind: 'diverged', seq });
  }

  private onCheckpoint(from: number, m: CheckpointMsg): void {
    if (m.seq === 0 || m.seq % this.config.checkpointInterval !== 0) return this.drop(from, m.type, 'invalid');
    if (m.seq <= this.stable.seq) return this.drop(from, m.type, 'stale-checkpoint');
    if (!this.verified(m, from)) return;
    const result = this.checkpointVotes.add(m.sender, m.seq, m.digest, m.sig);
    if (result !== 'added') return this.drop(from, m.type, result);
    this.tryStabilize(m.seq);
  }

  /** 2s+1 matching checkpoints make `seq` stable, even before this replica executed it. */
  private tryStabilize(seq: number): void {
    if (seq <= this.stable.seq) return;
    const proof = this.checkpointVotes.proofFor(seq, this.q.checkpoint);
    if (!proof) return;
    this.adoptStable(proof);
    this.persistSnapshot();
  }

  /** Moves the low watermark and truncates the log; the caller persists a snapshot. */
  private adoptStable(proof: CheckpointProof): void {
    this.stable = proof;
    for (const seq of [...this.slots.keys()]) if (seq <= proof.seq) this.slots.delete(seq);
    this.checkpointVotes.pruneThrough(proof.seq);
    for (const seq of [...this.ownCheckpoints.keys()]) if (seq < proof.seq) this.ownCheckpoints.delete(seq);
    const mine = this.execSnapshots.get(proof.seq);
    if (mine && !bytesEqual(mine.history, proof.digest)) this.markDiverged(proof.seq);
    this.advanceExecBase();
    if (this.nextSeq <= proof.seq) this.nextSeq = proof.seq + 1;
    this.event({ kind: 'checkpoint-stable', seq: proof.seq });
  }

  /** The snapshot base is the newest checkpoint that is both stable and executed. */
  private advanceExecBase(): boolean {
    const K = this.config.checkpointInterval;
    const c = Math.floor(Math.min(this.stable.seq, this.lastExecuted) / K) * K;
    if (c <= this.execBase.seq) return false;
    const snap = this.execSnapshots.get(c);
    if (!snap) return false;
    this.execBase = snap;
    for (const seq of [...this.execSnapshots.keys()]) if (seq < c) this.execSnapshots.delete(seq);
    this.archive.evict(Math.min(this.stable.seq, this.execBase.seq));
    return true;
  }

  private persistSnapshot(): void {
    const lowest = this.archive.lowest();
    const snapshot: Snapshot = {
      view: this.view,
      inViewChange: this.inViewChange,
      lastNormalView: this.lastNormalView,
      viewChangeAttempt: this.viewChangeAttempt,
      ownViewChange: this.inViewChange ? this.ownViewChange : null,
      newView: this.inViewChange ? null : this.newViewMsg,
      stable: this.stable,
      execBase: this.execBase,
      keepCommittedAbove: lowest === null ? this.execBase.seq : Math.min(this.execBase.seq, lowest - 1),
    };
    this.persist({ kind: 'snapshot', snapshot });
  }

  // ---------------------------------------------------------------------------------------------
  // View change

  private timeoutTicks(): number {
    return this.config.viewChangeTicks * 2 ** Math.min(this.viewChangeAttempt, this.config.maxViewChangeBackoff);
  }

  private startRequestTimerIfIdle(): void {
    if (this.inViewChange || this.requestTimer !== null) return;
    const key = this.pending.oldestKey();
    if (key !== undefined) this.requestTimer = { startTick: this.tickNo, key };
  }

  private checkTimers(): void {
    this.relaxTimeout();
    if (this.inViewChange) {
      if (this.viewChangeDeadline !== null && this.tickNo >= this.viewChangeDeadline) this.startViewChange(this.view + 1);
      return;
    }
    if (!this.requestTimer) return;
    if (!this.pending.hasKey(this.requestTimer.key)) {
      this.requestTimer = null;
      this.startRequestTimerIfIdle();
      return;
    }
    // While catching up the request may well be executed by re-execution: do not blame the primary.
    if (this.catchUpTarget(false) > this.lastDispatched) {
      this.requestTimer.startTick = this.tickNo;
      return;
    }
    if (this.tickNo - this.requestTimer.startTick >= this.timeoutTicks()) this.startViewChange(this.view + 1);
  }

  private relaxTimeout(): void {
    if (this.inViewChange || this.viewChangeAttempt === 0 || this.tickNo - this.calmSinceTick < this.timeoutTicks()) return;
    if (this.progressSinceCalm) this.viewChangeAttempt--;
    this.calmSinceTick = this.tickNo;
    this.progressSinceCalm = false;
  }

  /** Leaves the current view: from now on only a valid NEW-VIEW for `newView` (or later) counts. */
  private startViewChange(newView: number): void {
    this.view = newView;
    this.inViewChange = true;
    this.viewChangeAttempt++;
    this.newViewMsg = null;
    this.requestTimer = null;
    this.viewChangeDeadline = null;
    this.assigned.clear();
    for (const slot of this.slots.values()) slot.resetForView();
    const vc = this.buildViewChange(newView);
    this.ownViewChange = vc;
    this.viewChanges.add(vc);
    this.persistSnapshot();
    this.send('all', vc);
    this.event({ kind: 'view-change-started', view: newView, timeoutTicks: this.timeoutTicks() });
    this.afterViewChangeStored();
  }

  private buildViewChange(newView: number): ViewChangeMsg {
    const prepared = [...this.slots.values()]
      .filter((s) => s.preparedCert !== null)
      .sort((a, b) => a.seq - b.seq)
      .map((s) => s.preparedCert!);
    return this.sign<ViewChangeMsg>({ type: 'view-change', sender: this.id, newView, stable: this.stable, prepared });
  }

  /**
   * A peer is still trying to reach an earlier view than ours. Our NEW-VIEW lets it catch up; if
   * we are ourselves still changing view, a VIEW-CHANGE for its view may complete that view's
   * quorum. That is safe: we have not operated in any view since lastNormalView, so our prepared
   * certificates are what we would have reported for that view, and we accept nothing below our
   * own view anyway. Without it, replicas that lost messages or restarted can wait forever for
   * different views.
   */
  private helpLaggingPeer(peer: number, peerView: number): void {
    if (!this.inViewChange) return this.relayNewView(peer);
    if (peerView <= this.lastNormalView || peerView >= this.view) return;
    if (this.tickNo - this.lastRelayTick[peer]! < this.config.statusTicks) return;
    this.lastRelayTick[peer] = this.tickNo;
    this.send(peer, this.buildViewChange(peerView));
  }

  private onViewChange(m: ViewChangeMsg): void {
    if (m.newView < this.view || (m.newView === this.view && !this.inViewChange)) {
      this.helpLaggingPeer(m.sender, m.newView);
      return this.drop(m.sender, m.type, 'stale-view');
    }
    if (this.viewChanges.get(m.sender, m.newView)) return this.drop(m.sender, m.type, 'duplicate');
    if (!this.verified(m)) return;
    if (!validViewChangeContent(this.certCtx, m, this.config.watermarkWindow)) return this.drop(m.sender, m.type, 'invalid');
    this.viewChanges.add(m);
    // s+1 replicas ask for a later view: at least one is correct, so join the smallest of them.
    const ahead = this.viewChanges.aheadOf(this.view, this.id);
    if (ahead.replicas >= this.q.weak) this.startViewChange(ahead.smallestView);
    else this.afterViewChangeStored();
  }

  /**
   * 2s+1 replicas want this view: start the timer that escalates to the next view (Castro–Liskov
   * start it only now, so a lone replica does not race ahead), and the new primary sends NEW-VIEW.
   */
  private afterViewChangeStored(): void {
    if (!this.inViewChange) return;
    const supporters = this.viewChanges.forView(this.view);
    if (supporters.length < this.q.viewChange) return;
    if (this.viewChangeDeadline === null) this.viewChangeDeadline = this.tickNo + this.timeoutTicks();
    if (primaryOf(this.view, this.config.n) === this.id && this.ownViewChange?.newView === this.view) this.sendNewView(supporters);
  }

  private sendNewView(supporters: ViewChangeMsg[]): void {
    const others = supporters.filter((vc) => vc.sender !== this.id).slice(0, this.q.viewChange - 1);
    const viewChanges = [this.ownViewChange!, ...others].sort((a, b) => a.sender - b.sender);
    const plan = planNewView(viewChanges, this.config.mutant);
    const prePrepares = plan.reproposals.map((r) => ({
      seq: r.seq,
      digest: r.digest,
      sig: this.crypto.sign(voteBytes('pre-prepare', this.id, this.view, r.seq, r.digest)),
    }));
    const nv = this.sign<NewViewMsg>({ type: 'new-view', sender: this.id, view: this.view, viewChanges, prePrepares });
    this.enterNewView(nv, plan);
    this.send('all', nv);
  }

  private onNewView(from: number, m: NewViewMsg): void {
    if (m.view < this.view || (m.view === this.view && !this.inViewChange)) return this.drop(from, m.type, 'stale-view');
    const primary = primaryOf(m.view, this.config.n);
    if (m.sender !== primary) return this.drop(from, m.type, 'invalid');
    if (!this.verified(m, from)) return;
    if (m.viewChanges.length !== this.q.viewChange) return this.drop(from, m.type, 'invalid');
    let prev = -1;
    for (const vc of m.viewChanges) {
      if (vc.sender <= prev || vc.sender >= this.config.n || vc.newView !== m.view) return this.drop(from, m.type, 'invalid');
      prev = vc.sender;
      if (!this.knownViewChange(vc)) {
        if (!safeVerifyMessage(this.crypto, vc) || !validViewChangeContent(this.certCtx, vc, this.config.watermarkWindow)) {
          return this.drop(from, m.type, 'invalid');
        }
      }
    }
    const plan = planNewView(m.viewChanges, this.config.mutant);
    if (plan.reproposals.length !== m.prePrepares.length) return this.drop(from, m.type, 'invalid');
    for (let i = 0; i < plan.reproposals.length; i++) {
      const want = plan.reproposals[i]!;
      const got = m.prePrepares[i]!;
      if (got.seq !== want.seq || !bytesEqual(got.digest, want.digest)) return this.drop(from, m.type, 'invalid');
      if (!safeVerify(this.crypto, primary, voteBytes('pre-prepare', primary, m.view, got.seq, got.digest), got.sig)) {
        return this.drop(from, m.type, 'invalid');
      }
    }
    this.enterNewView(m, plan);
  }

  /** A VIEW-CHANGE already checked on receipt (same bytes) need not be verified again. */
  private knownViewChange(vc: ViewChangeMsg): boolean {
    const stored = this.viewChanges.get(vc.sender, vc.newView);
    return stored !== undefined && bytesEqual(stored.sig, vc.sig) && bytesEqual(encodeMessage(stored), encodeMessage(vc));
  }

  private enterNewView(nv: NewViewMsg, plan: NewViewPlan): void {
    this.view = nv.view;
    this.inViewChange = false;
    this.lastNormalView = nv.view;
    this.ownViewChange = null;
    this.newViewMsg = nv;
    this.viewChangeDeadline = null;
    this.requestTimer = null;
    this.calmSinceTick = this.tickNo;
    this.progressSinceCalm = false;
    this.assigned.clear();
    for (const slot of this.slots.values()) slot.resetForView();
    if (plan.stable.seq > this.stable.seq) this.adoptStable(plan.stable);
    const reproposed: Slot[] = [];
    for (const r of nv.prePrepares) {
      if (r.seq <= this.stable.seq) continue;
      const slot = this.slotFor(r.seq);
      slot.prePrepare = { view: nv.view, digest: r.digest, sig: r.sig };
      this.assignFromBody(slot);
      reproposed.push(slot);
    }
    for (const entry of this.archive.above(this.lastDispatched)) this.assignDecided(entry);
    this.nextSeq = Math.max(plan.maxSeq, this.stable.seq) + 1;
    this.viewChanges.pruneThrough(nv.view);
    this.persistSnapshot();
    for (const slot of reproposed) {
      this.sendPrepare(slot);
      if (this.config.mutant === 'commit-before-prepared') this.sendCommit(slot);
    }
    this.event({ kind: 'view-changed', view: nv.view, primary: nv.sender });
    for (const slot of reproposed) this.checkPrepared(slot);
    this.startRequestTimerIfIdle();
    this.maybePropose();
  }

  private assignFromBody(slot: Slot): void {
    if (!slot.prePrepare || slot.seq <= this.lastDispatched) return;
    const body = slot.bodyFor(slot.prePrepare.digest);
    if (body) for (const r of body.requests) this.assigned.set(digestKey(r.digest), slot.seq);
  }

  private relayNewView(to: number): void {
    if (this.inViewChange || this.newViewMsg === null) return;
    if (this.tickNo - this.lastRelayTick[to]! < this.config.statusTicks) return;
    this.lastRelayTick[to] = this.tickNo;
    this.send(to, this.newViewMsg);
  }

  // ---------------------------------------------------------------------------------------------
  // Status gossip, retransmission and catch-up

  /** Periodic: status, and retransmission of what peers may have lost. */
  private gossip(): void {
    this.send(
      'all',
      this.sign<StatusMsg>({
        type: 'status',
        sender: this.id,
        view: this.view,
        inViewChange: this.inViewChange,
        stableSeq: this.stable.seq,
        committedThrough: this.lastDispatched,
      }),
    );
    if (this.inViewChange) {
      if (this.ownViewChange) this.send('all', this.ownViewChange);
    } else {
      // Only slots still open a whole period later are resent: under load most slots commit
      // within a period, and resending every open one made peers verify (and drop) duplicates.
      const open = new Set<number>();
      for (const slot of this.slots.values()) {
        if (!slot.prePrepare || slot.committed) continue;
        open.add(slot.seq);
        if (!this.openAtLastGossip.has(slot.seq)) continue;
        if (slot.ownPrePrepare) this.send('all', slot.ownPrePrepare);
        if (slot.ownPrepare) this.send('all', slot.ownPrepare);
        if (slot.ownCommit) this.send('all', slot.ownCommit);
      }
      this.openAtLastGossip = open;
    }
    // A checkpoint that is not stable yet may be missing a vote; once stable, lagging peers get
    // the whole proof instead (relayStableProof, on their STATUS).
    let latest: CheckpointMsg | undefined;
    for (const cp of this.ownCheckpoints.values()) if (!latest || cp.seq > latest.seq) latest = cp;
    if (latest && latest.seq > this.stable.seq) this.send('all', latest);
  }

  private onStatus(m: StatusMsg): void {
    if (!this.verified(m)) return;
    this.catchUp.reportCommitted(m.sender, m.committedThrough);
    if (m.view < this.view || (m.view === this.view && m.inViewChange && !this.inViewChange)) this.helpLaggingPeer(m.sender, m.view);
    if (m.stableSeq < this.stable.seq) this.relayStableProof(m.sender);
  }

  /** Hands a lagging peer the 2s+1 signed checkpoints that made our low watermark stable. */
  private relayStableProof(to: number): void {
    if (this.tickNo - this.lastProofRelayTick[to]! < this.config.statusTicks) return;
    this.lastProofRelayTick[to] = this.tickNo;
    const { seq, digest, sigs } = this.stable;
    for (const v of sigs) {
      if (v.replica === to) continue;
      this.send(to, { type: 'checkpoint', sender: v.replica, seq, digest, sig: v.sig });
    }
  }

  /**
   * How far this replica must catch up: the stable checkpoint and what s+1 peers report as
   * committed (at least one of them is correct), plus, with `includeLocal`, slots committed here
   * that cannot be executed yet (body missing, or a gap before them). Local slots do not hold the
   * request timer: a faulty primary could leave a gap that only a view change fills.
   */
  private catchUpTarget(includeLocal: boolean): number {
    let target = Math.max(this.stable.seq, this.catchUp.weakCommitted());
    if (includeLocal) for (const slot of this.slots.values()) if (slot.committed && slot.seq > target) target = slot.seq;
    // Beyond the window the stable checkpoint has to move first (checkpoint gossip does that).
    return Math.min(target, this.stable.seq + this.config.watermarkWindow);
  }

  private maybeFetch(): void {
    if (this.diverged) return;
    const target = this.catchUpTarget(true);
    const fromSeq = this.lastDispatched + 1;
    if (target < fromSeq) {
      this.catchUp.done();
      return;
    }
    if (!this.catchUp.due(fromSeq, this.tickNo)) return;
    const starting = !this.catchUp.active;
    const peer = this.catchUp.start(fromSeq, this.tickNo, this.config.fetchRetryTicks);
    const toSeq = Math.min(target, fromSeq + this.config.fetchMaxBatches - 1);
    if (starting) this.event({ kind: 'catch-up', fromSeq, toSeq, peer });
    this.send(peer, this.sign<FetchMsg>({ type: 'fetch', sender: this.id, fromSeq, toSeq }));
  }

  private onFetch(m: FetchMsg): void {
    if (m.toSeq < m.fromSeq) return this.drop(m.sender, m.type, 'invalid');
    if (!this.verified(m)) return;
    if (!this.catchUp.mayServe(m.sender, this.tickNo)) return this.drop(m.sender, m.type, 'rate-limited');
    const toSeq = Math.min(m.toSeq, m.fromSeq + this.config.fetchMaxBatches - 1);
    const entries = this.archive.range(m.fromSeq, toSeq, this.config.fetchMaxBatches);
    this.send(
      m.sender,
      this.sign<FetchReplyMsg>({ type: 'fetch-reply', sender: this.id, oldestAvailable: this.archive.oldestAvailable, entries }),
    );
  }

  /** Committed batches from a peer: each proves itself with 2s+1 signed commits. */
  private onFetchReply(m: FetchReplyMsg): void {
    if (m.entries.length > this.config.fetchMaxBatches) return this.drop(m.sender, m.type, 'invalid');
    if (!this.verified(m)) return;
    const needed = this.lastDispatched + 1;
    if (m.entries.length === 0) {
      if (m.oldestAvailable > needed) {
        this.event({ kind: 'catch-up-unavailable', neededSeq: needed, oldestAvailable: m.oldestAvailable, peer: m.sender });
      }
      this.catchUp.emptyAnswer(m.sender, this.tickNo);
      return;
    }
    const horizon = this.lastDispatched + 2 * this.config.fetchMaxBatches;
    for (const entry of m.entries) {
      if (entry.seq <= this.lastDispatched || entry.seq > horizon || this.archive.has(entry.seq)) continue;
      if (batchProblem(entry.batch, this.config, this.requestDigest) !== null) return this.drop(m.sender, m.type, 'invalid');
      if (!bytesEqual(batchDigest(entry.batch), entry.cert.digest)) return this.drop(m.sender, m.type, 'invalid');
      if (!validCommitCert(this.certCtx, entry.seq, entry.cert)) return this.drop(m.sender, m.type, 'invalid');
      this.recordCommitted(entry);
    }
    if (this.lastDispatched >= needed) {
      this.catchUp.done();
      this.maybeFetch();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Restart

  /**
   * Rebuilds state from the write-ahead log. Every view change and new view writes a snapshot,
   * so all records after the last snapshot belong to its view; records before it only contribute
   * committed batches, prepared certificates and batch bodies.
   */
  private restore(restored: RestoredState): void {
    const { records, lastExecuted } = restored;
    if (!Number.isSafeInteger(lastExecuted) || lastExecuted < 0) throw pbftError(PbftErrorCodes.RESTORE, `bad lastExecuted ${lastExecuted}`);
    let snapIndex = -1;
    for (let i = records.length - 1; i >= 0; i--) {
      if (records[i]!.kind === 'snapshot') {
        snapIndex = i;
        break;
      }
    }
    let floor = 0;
    if (snapIndex >= 0) {
      const snap = (records[snapIndex] as Extract<PersistRecord, { kind: 'snapshot' }>).snapshot;
      this.view = snap.view;
      this.inViewChange = snap.inViewChange;
      this.lastNormalView = snap.lastNormalView;
      this.viewChangeAttempt = snap.viewChangeAttempt;
      this.ownViewChange = snap.ownViewChange;
      this.newViewMsg = snap.newView;
      this.stable = snap.stable;
      this.execBase = snap.execBase;
      floor = snap.keepCommittedAbove;
      this.archive.raiseFloor(floor);
      if (this.ownViewChange) this.viewChanges.add(this.ownViewChange);
    }
    this.nextSeq = this.stable.seq + 1;
    const normal = !this.inViewChange;
    if (normal && this.newViewMsg && this.newViewMsg.view === this.view) {
      const plan = planNewView(this.newViewMsg.viewChanges, this.config.mutant);
      for (const r of this.newViewMsg.prePrepares) {
        if (r.seq > this.stable.seq) this.slotFor(r.seq).prePrepare = { view: this.view, digest: r.digest, sig: r.sig };
      }
      this.nextSeq = Math.max(plan.maxSeq, this.stable.seq) + 1;
    }
    const amPrimary = this.isPrimary();
    for (let i = 0; i < records.length; i++) {
      const rec = records[i]!;
      switch (rec.kind) {
        case 'committed':
          if (rec.entry.seq > floor && !this.archive.has(rec.entry.seq)) this.archive.set(rec.entry);
          break;
        case 'prepared': {
          const cert = rec.cert;
          if (cert.seq <= this.stable.seq) break;
          const slot = this.slotFor(cert.seq);
          if (!slot.preparedCert || cert.view >= slot.preparedCert.view) slot.preparedCert = cert;
          break;
        }
        case 'accepted': {
          const pp = rec.prePrepare;
          if (pp.seq <= this.stable.seq) break;
          const slot = this.slotFor(pp.seq);
          slot.addBody(pp.digest, pp.batch);
          if (normal && pp.view === this.view && !slot.prePrepare) {
            slot.prePrepare = { view: pp.view, digest: pp.digest, sig: pp.sig };
            if (amPrimary) {
              slot.ownPrePrepare = pp;
              this.nextSeq = Math.max(this.nextSeq, pp.seq + 1);
              this.lastProposedTimestamp = Math.max(this.lastProposedTimestamp, pp.batch.timestamp);
            }
          }
          break;
        }
        case 'snapshot':
          break;
      }
    }
    // Re-derive own votes of the current view (signing again is idempotent in content).
    if (normal) {
      for (const slot of this.slots.values()) {
        if (!slot.prePrepare) continue;
        this.sendPrepareQuietly(slot);
        const cert = slot.preparedCert;
        if (cert && cert.view === this.view && bytesEqual(cert.digest, slot.prePrepare.digest)) {
          slot.prepared = true;
          const msg = this.sign<CommitMsg>({ type: 'commit', sender: this.id, view: this.view, seq: slot.seq, digest: cert.digest });
          slot.ownCommit = msg;
          slot.commits.set(this.id, { digest: msg.digest, sig: msg.sig });
        }
      }
    }
    // Replay execution state up to what the shell reports as executed.
    if (lastExecuted < this.execBase.seq) {
      throw pbftError(PbftErrorCodes.RESTORE, `lastExecuted ${lastExecuted} is below the snapshot's execution base ${this.execBase.seq}`);
    }
    this.exec = new ExecutionState(this.config.dedupWindow, this.execBase, this.config.dedupHashKey);
    const K = this.config.checkpointInterval;
    for (let seq = this.execBase.seq + 1; seq <= lastExecuted; seq++) {
      const entry = this.archive.get(seq);
      if (!entry) throw pbftError(PbftErrorCodes.RESTORE, `no committed record for executed batch ${seq}`);
      this.exec.apply(seq, entry.batch, entry.cert.digest);
      if (seq % K === 0) {
        const snap = this.exec.snapshot();
        this.execSnapshots.set(seq, snap);
        if (seq > this.stable.seq) {
          const msg = this.sign<CheckpointMsg>({ type: 'checkpoint', sender: this.id, seq, digest: snap.history });
          this.ownCheckpoints.set(seq, msg);
          this.checkpointVotes.add(this.id, seq, snap.history, msg.sig);
        }
      }
    }
    this.lastDispatched = lastExecuted;
    this.lastExecuted = lastExecuted;
    for (const slot of this.slots.values()) if (slot.prePrepare) this.assignFromBody(slot);
    for (const entry of this.archive.above(this.lastDispatched)) this.assignDecided(entry);
    if (this.advanceExecBase()) this.persistSnapshot();
    this.tryDispatch();
  }

  /** Like sendPrepare, without sending: used when rebuilding own votes after a restart. */
  private sendPrepareQuietly(slot: Slot): void {
    if (this.isPrimary() || !slot.prePrepare || slot.ownPrepare) return;
    const msg = this.sign<PrepareMsg>({ type: 'prepare', sender: this.id, view: this.view, seq: slot.seq, digest: slot.prePrepare.digest });
    slot.ownPrepare = msg;
    slot.prepares.set(this.id, { digest: msg.digest, sig: msg.sig });
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  private slotFor(seq: number): Slot {
    let slot = this.slots.get(seq);
    if (!slot) {
      slot = new Slot(seq);
      this.slots.set(seq, slot);
    }
    return slot;
  }

  private sign<T extends PbftMessage>(unsigned: Unsigned<T>): T {
    return signMessage<T>(this.crypto, unsigned);
  }

  /** Verifies the sender's signature, counting a failure. */
  private verified(m: PbftMessage, from: number = m.sender): boolean {
    if (safeVerifyMessage(this.crypto, m)) return true;
    this.drop(from, m.type, 'bad-signature');
    return false;
  }

  private send(to: number | 'all', msg: PbftMessage): void {
    this.out.push({ type: 'send', to, msg });
  }

  private persist(record: PersistRecord): void {
    this.out.push({ type: 'persist', record });
  }

  private emit(action: Action): void {
    this.out.push(action);
  }

  private event(event: PbftEvent): void {
    this.out.push({ type: 'event', event });
  }

  private drop(from: number, msgType: MessageType | 'unknown', reason: DropReason): void {
    this.dropCounts[reason]++;
    this.event({ kind: 'dropped', from, msgType, reason });
  }
}

function safeVerifyMessage(crypto: PbftCrypto, m: PbftMessage): boolean {
  try {
    return verifyMessage(crypto, m);
  } catch {
    return false;
  }
}
