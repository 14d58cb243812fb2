import { randomBytes } from 'node:crypto';
import { CbftError } from '../errors.js';
import type { Registry } from 'prom-client';
import { fromHex, toHex } from '../codec/binary.js';
import { DEFAULT_DECODE_LIMITS, decodeReply, decodeRequest, type DecodeLimits } from '../codec/canonical.js';
import { allowlist, DEFAULT_REPLY_HEADERS } from '../codec/headers.js';
import type { ClusterConfig, FirewallEntry, ReplicaEntry } from '../cluster/config.js';
import type { LoadedKeys } from '../cluster/keys.js';
import { sha256 } from '../crypto/hash.js';
import { verifyIdentity } from '../crypto/identity.js';
import {
  Replica,
  compactRecords,
  decodeRecord,
  encodeMessage,
  encodeRecord,
  type Action,
  type ExecuteBatch,
  type PbftConfig,
  type PbftCrypto,
  type PbftEvent,
  type PersistRecord,
  type RestoredState,
} from '../pbft/index.js';
import { MAX_REQUEST_BYTES } from '../pbft/config.js';
import { MessageKind, type FrameMessage } from '../transport/frame.js';
import { Link } from '../transport/link.js';
import { listenAddress, startPeerServer, type PeerServer } from '../transport/peer-server.js';
import { encodePartialReplies, type PartialReplies } from '../wire/payloads.js';
import { MAX_ROUND_DEPTH, SubmissionVerifier, decodeSubmission, type Submission } from '../wire/submission.js';

import { startAdminServer, createRegistry, type AdminServer, type Readiness } from '../admin/server.js';
import type { Logger } from '../log.js';
import { requestSeedHex, signBatch } from './batch.js';
import { Executor, executeWithRetry, type UpstreamRequest } from './executor.js';
import { Journal, type FinishedBatch, type JournalRecord, type RequestState } from './journal.js';
import { LogLimiter, createSidecarMetrics, type SidecarMetrics } from './metrics.js';
import { decodePeerMessage, encodePeerMessage, type PeerMessage } from './peer-messages.js';
import { ReplyCache, Submitters, partialFromCache, type CacheHit } from './reply-cache.js';
import { AnswerLimiter } from './answer-limiter.js';
import { WalErrorCode, walPath } from './wal.js';

/**
 * Envelope bytes around a canonical request (wire/submission.ts): top id (≤ 64 + 4), signature
 * (64), round depth (1), round proof (≤ 32 × MAX_ROUND_DEPTH), request length (4).
 */
const SUBMISSION_OVERHEAD_BYTES = 68 + 64 + 1 + 32 * MAX_ROUND_DEPTH + 4;
/**
 * Period of the engine's STATUS broadcasts (and of its retransmissions of stuck messages). Each
 * costs every replica a signature, frames to all peers and their verifications: at 200 ms it was
 * about half of an idle sidecar's CPU. Lagging peers still learn within half a second.
 */
const STATUS_INTERVAL_MS = 500;

export interface SidecarOptions {
  cluster: ClusterConfig;
  keys: LoadedKeys;
  /** Origin of the local legacy service. */
  upstream: string;
  dataDir: string;
  /** Listen on this host instead of the one in the node's URLs (e.g. 0.0.0.0 in a pod). */
  bindHost?: string;
  log: Logger;
  registry?: Registry;
  /** The log is compacted once it grows beyond max(this, 2 × its size after the last compaction). */
  compactMinBytes?: number;
  /** Byte bound of the reply cache (its entry bound is pbft.replyCacheSize). */
  replyCacheBytes?: number;
  /** Recovery of unknown outcomes: query interval and attempts before giving up. */
  recoveryIntervalMs?: number;
  recoveryAttempts?: number;
  /** Called when the log cannot be written (default: log and exit the process). */
  onFatal?: (err: unknown) => void;
  /**
   * When the log is fdatasync'd (see README, "Durability"): `request` (default) syncs before every
   * message to peers or tops, at the end of every batch and before each request is sent to the
   * service, so exactly-once execution (I7) survives a crash of the whole machine; `batch` only
   * writes (to the OS, which survives a crash of this process) the record that precedes each
   * request, saving one disk sync per request at the cost of I7 under a machine crash.
   */
  walSync?: 'batch' | 'request';
  /** Builds the engine (default: the PBFT Replica). Tests script the shell with a fake. */
  engine?: (config: PbftConfig, crypto: PbftCrypto, restored: RestoredState | undefined) => Engine;
}

/** What the shell uses of the PBFT engine (src/pbft Replica). */
export type Engine = Pick<Replica, 'submit' | 'receiveBytes' | 'tick' | 'executed' | 'takeActions' | 'inspect' | 'lastInternalError'>;

export interface SidecarStatus {
  id: string;
  view: number;
  primary: number;
  lastExecuted: number;
  executionQueue: number;
  inViewChange: boolean;
  diverged: boolean;
  upstreamReachable: boolean;
  walBytes: number;
  replyCache: number;
}

interface Recovery {
  seq: number;
  index: number;
  digest: Uint8Array;
  attempts: number;
  /** peer index -> sha256(reply) hex */
  votes: Map<number, string>;
  replies: Map<string, Uint8Array>;
}

const BENIGN_PBFT_DROPS = new Set(['duplicate', 'stale-view', 'future-view', 'view-change-in-progress', 'stale-checkpoint', 'rate-limited', 'outside-watermarks', 'unsolicited', 'not-primary']);

export const DEFAULT_COMPACT_MIN_BYTES = 64 * 1024 * 1024;
/**
 * Memory bound of the reply cache (its entry bound is pbft.replyCacheSize). 16 MiB hold about
 * 9k replies of 1 KiB: a minute of history at 150 requests per second (retries and other chains
 * come within seconds), and keep a sidecar under 150 MiB (bench/PROFILE.md). Raise it with
 * CBFT_REPLY_CACHE_BYTES for bigger replies or longer retry horizons.
 */
export const DEFAULT_REPLY_CACHE_BYTES = 16 * 1024 * 1024;

/**
 * A running replica sidecar: the PBFT engine wrapped with its transport, durable log, executor,
 * reply cache and partial signing. See DESIGN.md ("PBFT in the sidecar") and issue 4.
 *
 * Engine actions are carried out strictly in order; persist records are appended to the log and
 * fsync'd before any later action of the same list (a send, an execution) takes effect. Committed
 * batches are executed one request at a time, in order. After a batch, its replies become the
 * leaves of a Merkle tree whose root is partially signed once, and every top that submitted a
 * request of the batch gets one Partial message with its replies and their proofs.
 */
export class Sidecar {
  readonly id: string;
  readonly index: number;
  readonly metrics: SidecarMetrics;
  readonly registry: Registry;
  private readonly cluster: ClusterConfig;
  private readonly me: ReplicaEntry;
  private readonly log: Logger;
  private readonly journal: Journal;
  private readonly engine: Engine;
  private readonly executor: Executor;
  private readonly cache: ReplyCache;
  private readonly submitters: Submitters;
  private readonly links = new Map<string, Link>();
  private readonly peers: ReplicaEntry[];
  private readonly peerIndex = new Map<string, number>();
  private readonly tops = new Map<string, FirewallEntry>();
  private readonly requestLimits: DecodeLimits;
  private readonly maxCanonicalRequestBytes: number;
  /** Checks that each ordered request carries a top firewall node's signature. */
  private readonly submissions: SubmissionVerifier;
  private readonly limiter = new LogLimiter();
  /** Repeats of a request answered less than a retransmission interval ago are not answered again. */
  private readonly answered: AnswerLimiter;
  private readonly stopController = new AbortController();
  private readonly recoveries = new Map<string, Recovery>();
  private readonly recoveryIntervalMs: number;
  private readonly recoveryAttempts: number;
  private readonly compactMinBytes: number;
  private compactAt: number;
  /** walSync 'request': the start record of every request is on disk before it is sent. */
  private readonly syncEachRequest: boolean;

  /**
   * Engine records a restart needs (compactRecords keeps them), decoded. Their encoded bytes are
   * not kept: only a compaction needs them again, and re-encoding then is cheaper than holding
   * megabytes of them between compactions.
   */
  private engineLog: PersistRecord[];
  /** Request states of batches not finished yet, by seq then index. */
  private readonly progress: Map<number, Map<number, RequestState>>;
  private executedThrough: number;
  private readonly queue: ExecuteBatch[] = [];
  private loop: Promise<void> | undefined;
  /** Engine actions not carried out yet, in order; `barrier` while waiting for the log to be durable. */
  private readonly actions: Action[] = [];
  private barrier = false;
  /** Log size right after the last engine persist record: later actions wait until it is durable. */
  private persistEnd = 0;
  private compacting = false;
  private view = 0;
  private primary = 0;
  private inViewChange = false;
  private diverged = false;
  private executionFailed = false;
  private catchUpUnavailable = false;
  private upstreamReachable = true;
  private stopping = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private recoveryTimer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private peerServer: PeerServer | undefined;
  private adminServer: AdminServer | undefined;

  private constructor(private readonly o: SidecarOptions) {
    const { cluster, keys, log } = o;
    this.cluster = cluster;
    this.log = log;
    this.id = keys.id;
    const me = cluster.replicas.find((r) => r.id === keys.id);
    if (!me) throw new Error(`${keys.id} is not a replica of this cluster`);
    if (!keys.share) throw new Error(`${keys.id}: the key file holds no threshold share`);
    this.me = me;
    this.index = me.index;
    this.peers = cluster.replicas;
    for (const r of cluster.replicas) this.peerIndex.set(r.id, r.index);
    for (const chain of cluster.chains) {
      const top = chain[chain.length - 1]!;
      this.tops.set(top.id, top);
    }
    this.registry = o.registry ?? createRegistry(this.id, 'sidecar');
    this.metrics = createSidecarMetrics(this.registry);
    this.answered = new AnswerLimiter(cluster.firewall.retransmitMs);
    this.recoveryIntervalMs = o.recoveryIntervalMs ?? 1_000;
    this.recoveryAttempts = o.recoveryAttempts ?? 120;
    this.compactMinBytes = o.compactMinBytes ?? DEFAULT_COMPACT_MIN_BYTES;
    this.syncEachRequest = (o.walSync ?? 'request') === 'request';

    const svc = cluster.service;
    this.requestLimits = { ...DEFAULT_DECODE_LIMITS, maxBody: svc.maxRequestBodyBytes };
    this.maxCanonicalRequestBytes = Math.min(MAX_REQUEST_BYTES, svc.maxRequestBodyBytes + DEFAULT_DECODE_LIMITS.maxHeaderBytes * 2 + 4096);
    this.submissions = new SubmissionVerifier(
      new Map([...this.tops.values()].map((t) => [t.id, fromHex(t.identityPublicKey)])),
      this.maxCanonicalRequestBytes,
    );

    // --- durable state
    const { journal, state } = Journal.open(walPath(o.dataDir));
    this.journal = journal;
    if (state.truncation) {
      log.warn(
        { walOffset: state.truncation.offset, droppedBytes: state.truncation.droppedBytes, reason: state.truncation.reason },
        'write-ahead log: torn or corrupt tail detected and cut; recovering from the intact prefix',
      );
    }
    this.executedThrough = state.executedThrough;
    this.progress = state.progress;
    this.engineLog = state.engineRecords.map((bytes) => decodeRecord(bytes));
    this.cache = new ReplyCache(cluster.pbft.replyCacheSize, o.replyCacheBytes ?? DEFAULT_REPLY_CACHE_BYTES, cluster.merkleDepth);
    for (const f of state.finished) this.cache.add(f);
    this.submitters = new Submitters(Math.max(1024, cluster.pbft.maxPendingRequests * 2));
    this.compactAt = Math.max(this.compactMinBytes, 2 * journal.size);

    // --- engine
    const publicKeys = cluster.replicas.map((r) => fromHex(r.identityPublicKey));
    const crypto: PbftCrypto = {
      sign: (bytes) => keys.identity.sign(bytes),
      verify: (replica, bytes, sig) => {
        const key = publicKeys[replica];
        return key !== undefined && verifyIdentity(key, bytes, sig);
      },
      requestDigest: (envelope) => this.submissions.digestOf(envelope),
    };
    const p = cluster.pbft;
    const config: PbftConfig = {
      s: cluster.s,
      id: me.index,
      checkpointInterval: p.checkpointInterval,
      watermarkWindow: p.watermarkWindow,
      batchMax: p.batchMax,
      batchDelayTicks: p.batchDelayTicks,
      // Bigger batches under load, none of the tick's delay when idle (see the engine's config).
      adaptiveBatching: true,
      batchHoldTicks: Math.max(10, p.batchDelayTicks),
      viewChangeTicks: Math.max(2, p.viewChangeTicks),
      statusTicks: Math.max(1, Math.round(STATUS_INTERVAL_MS / p.tickMs)),
      maxClockSkewMs: p.maxClockSkewMs,
      dedupWindow: Math.min(p.replyCacheSize, 1 << 24),
      dedupHashKey: randomBytes(8), // secret per process: clients cannot flood the dedup index
      maxPendingRequests: p.maxPendingRequests,
      archiveBatches: Math.max(p.archiveBatches, p.checkpointInterval),
      maxRequestBytes: this.maxCanonicalRequestBytes + SUBMISSION_OVERHEAD_BYTES,
    };
    const restoring = this.engineLog.length > 0 || this.executedThrough > 0;
    const restored: RestoredState | undefined = restoring ? { records: this.engineLog, lastExecuted: this.executedThrough } : undefined;
    this.engine = o.engine ? o.engine(config, crypto, restored) : new Replica(config, crypto, restored);
    this.refreshView();
    log.info(
      {
        restored: restoring,
        walRecords: state.records,
        lastExecuted: this.executedThrough,
        inProgress: [...this.progress.keys()],
        replyCache: this.cache.size,
        view: this.view,
      },
      restoring
        ? 'restored from the write-ahead log'
        : 'starting with an empty write-ahead log (the service copy must be in its initial state: everything ordered so far will be executed on it)',
    );

    // --- executor
    this.executor = new Executor({
      upstream: o.upstream,
      replyAllow: allowlist(DEFAULT_REPLY_HEADERS, svc.replyHeaders),
      maxRequestBodyBytes: svc.maxRequestBodyBytes,
      maxReplyBodyBytes: svc.maxReplyBodyBytes,
      upstreamTimeoutMs: svc.upstreamTimeoutMs,
    });

    // Unknown outcomes of finished batches whose reply was not recovered yet: keep trying.
    for (const b of this.cache.all()) {
      b.replies.forEach((r, i) => {
        if (r === undefined) this.startRecovery(b.batch.seq, i, b.batch.digests[i]!);
      });
    }
  }

  static async start(o: SidecarOptions): Promise<Sidecar> {
    const s = new Sidecar(o);
    try {
      await s.listen();
    } catch (err) {
      await s.stop().catch(() => undefined);
      throw err;
    }
    return s;
  }

  private async listen(): Promise<void> {
    // Warm up the threshold-signature code (hash-to-curve set-up, JIT) so the first batch is not
    // slowed down by it.
    signBatch([], this.cluster.merkleDepth, new Uint8Array(32), 0, this.o.keys.share!);
    const senders = new Map<string, Uint8Array>();
    for (const r of this.cluster.replicas) senders.set(r.id, fromHex(r.identityPublicKey));
    for (const t of this.tops.values()) senders.set(t.id, fromHex(t.identityPublicKey));
    const { host, port } = listenAddress(this.me.url, this.o.bindHost);
    this.peerServer = await startPeerServer({
      host,
      port,
      self: this.id,
      senders,
      identity: this.o.keys.identity,
      // I6: requests only from top firewall nodes, protocol messages only from peer replicas.
      allowed: (from, kind) => {
        if (kind === MessageKind.Request) return this.tops.has(from);
        if (kind === MessageKind.Pbft || kind === MessageKind.Replica) return from !== this.id && this.peerIndex.has(from);
        return false;
      },
      onMessages: (from, messages) => this.onMessages(from, messages),
      onDrop: (reason, from) => this.dropped('transport', reason, { from }),
      maxFrameBytes: Math.max(16 * 1024 * 1024, this.cluster.pbft.batchMax * this.maxCanonicalRequestBytes + 1024 * 1024),
    });
    const admin = listenAddress(this.me.adminUrl, this.o.bindHost);
    this.adminServer = await startAdminServer({
      host: admin.host,
      port: admin.port,
      id: this.id,
      role: 'sidecar',
      registry: this.registry,
      readiness: () => this.readiness(),
    });
    for (const r of this.peers) if (r.id !== this.id) this.linkTo(r.id);
    // Restore may have produced actions (a snapshot, executions to resume): carry them out.
    this.drive();
    this.tickTimer = setInterval(() => this.tick(), this.cluster.pbft.tickMs);
    this.recoveryTimer = setInterval(() => this.recoveryRound(), this.recoveryIntervalMs);
    this.recoveryTimer.unref();
    this.log.info({ url: this.me.url, adminUrl: this.me.adminUrl, upstream: this.o.upstream, dataDir: this.o.dataDir }, 'sidecar listening');
  }

  // ---------------------------------------------------------------------------------------------
  // Engine shell

  private tick(): void {
    if (this.stopping) return;
    this.engine.tick(Date.now(), randomBytes(32));
    this.drive();
    if (++this.ticks % 10 === 0) this.refreshView();
  }

  private refreshView(): void {
    const i = this.engine.inspect();
    this.view = i.view;
    this.primary = i.primary;
    this.inViewChange = i.inViewChange;
    this.diverged = i.diverged;
    this.metrics.view.set(i.view);
    this.metrics.primary.set(i.primary);
    this.metrics.lastExecuted.set(this.executedThrough);
    this.metrics.executionQueue.set(this.queue.length);
    this.metrics.cacheEntries.set(this.cache.size);
    this.metrics.walBytes.set(this.journal.size);
    this.metrics.walSyncs.set(this.journal.syncs);
  }

  /**
   * Carries out the engine's actions strictly in order. Persist records are appended to the log
   * at once. A `send` waits until everything appended before it is on disk (fdatasync): no peer
   * ever sees a message this replica could forget in a crash of the machine. Other actions (an
   * execution, a reply from the cache, an event) only need the records handed to the OS first
   * (a crash of this process loses nothing written): an execution's requests reach the service
   * only after a later record that is at least written (`start`, see runBatch), and its batch is
   * synced before any partial signature leaves. The fdatasync runs off the event loop, so the
   * engine keeps taking input meanwhile; its new actions queue up behind the barrier.
   */
  private drive(): void {
    const taken = this.engine.takeActions();
    for (const a of taken) this.actions.push(a);
    this.pump();
  }

  private pump(): void {
    if (this.barrier || this.stopping) return;
    while (this.actions.length > 0) {
      const a = this.actions[0]!;
      if (a.type === 'persist') {
        this.actions.shift();
        const bytes = encodeRecord(a.record);
        this.journal.append({ kind: 'engine', bytes });
        this.engineLog.push(a.record);
        // A new snapshot (a stable checkpoint) makes most earlier records redundant: keep only
        // what compaction would keep, so memory follows the live state, not the log's size.
        if (a.record.kind === 'snapshot') this.trimEngineLog();
        this.persistEnd = this.journal.size;
        continue;
      }
      if (this.journal.durableSize < this.persistEnd) {
        if (a.type === 'send') break;
        if (!this.writeLog()) return;
      }
      this.actions.shift();
      this.act(a);
    }
    if (this.actions.length > 0) {
      // Stopped at a send whose records are not on disk yet: wait for them, then go on.
      this.barrier = true;
      this.journal.flush().then(
        () => {
          this.barrier = false;
          this.pump();
        },
        (err: unknown) => this.fatal(err),
      );
      return;
    }
    if (this.writeLog()) this.maybeCompact();
  }

  /** Hands the appended records to the OS; a failing disk is fatal, as a failing sync is. */
  private writeLog(): boolean {
    try {
      this.journal.write();
      return true;
    } catch (err) {
      this.fatal(err);
      return false;
    }
  }

  /** engineLog := what compactRecords keeps of it (restoring from either is equivalent). */
  private trimEngineLog(): void {
    this.engineLog = compactRecords(this.engineLog);
  }

  private fatal(err: unknown): void {
    this.log.fatal({ err }, 'cannot go on safely (write-ahead log or execution failure); stopping');
    if (this.o.onFatal) this.o.onFatal(err);
    else process.exit(70);
  }

  private act(a: Exclude<Action, { type: 'persist' }>): void {
    switch (a.type) {
      case 'send': {
        const bytes = encodeMessage(a.msg);
        if (a.to === 'all') {
          for (const r of this.peers) if (r.id !== this.id) this.toPeer(r.id, MessageKind.Pbft, bytes, a.msg.type);
        } else {
          const peer = this.peers[a.to];
          if (peer && peer.id !== this.id) this.toPeer(peer.id, MessageKind.Pbft, bytes, a.msg.type);
        }
        return;
      }
      case 'execute':
        this.queue.push(a.batch);
        this.metrics.executionQueue.set(this.queue.length);
        // Started from a microtask: never re-enter drive() from inside the action loop.
        if (!this.loop) this.loop = Promise.resolve().then(() => this.runQueue());
        return;
      case 'resend-reply': {
        const key = toHex(a.digest);
        // Still being executed here: the waiting tops are answered when its batch finishes.
        if (a.seq > this.executedThrough) return;
        const tops = this.submitters.take(key);
        const hit = this.cache.get(key);
        if (hit) for (const top of tops) this.answerFromCache(top, hit);
        else if (tops.length > 0) this.log.debug({ digest: key, seq: a.seq }, 'request already executed but its reply is no longer cached');
        return;
      }
      case 'reject': {
        const key = toHex(a.digest);
        this.submitters.take(key);
        this.metrics.rejected.inc({ reason: a.reason });
        const l = this.limiter.allow(`reject:${a.reason}`);
        if (l.log) this.log.warn({ digest: key, reason: a.reason, detail: a.detail, suppressed: l.suppressed }, 'request rejected by the engine');
        return;
      }
      case 'event':
        this.onEvent(a.event);
        return;
    }
  }

  private onEvent(e: PbftEvent): void {
    switch (e.kind) {
      case 'dropped':
        if (e.reason === 'internal-error') {
          // An engine handler threw: a bug, not bad input. Keep the details.
          this.log.error({ err: this.engine.lastInternalError, from: this.peers[e.from]?.id, msgType: e.msgType }, 'PBFT engine internal error');
        }
        this.dropped('pbft', e.reason, { from: this.peers[e.from]?.id ?? e.from, msgType: e.msgType }, BENIGN_PBFT_DROPS.has(e.reason));
        return;
      case 'view-change-started':
        this.inViewChange = true;
        this.log.warn({ view: e.view, timeoutTicks: e.timeoutTicks }, 'view change started');
        return;
      case 'view-changed':
        this.view = e.view;
        this.primary = e.primary;
        this.inViewChange = false;
        this.metrics.viewChanges.inc();
        this.metrics.view.set(e.view);
        this.metrics.primary.set(e.primary);
        this.log.info({ view: e.view, primary: this.peers[e.primary]?.id }, 'new view installed');
        return;
      case 'checkpoint-stable':
        this.log.debug({ seq: e.seq }, 'checkpoint stable');
        return;
      case 'catch-up':
        this.catchUpUnavailable = false;
        this.log.info({ fromSeq: e.fromSeq, toSeq: e.toSeq, peer: this.peers[e.peer]?.id }, 'catching up: fetching committed batches from a peer');
        return;
      case 'catch-up-unavailable': {
        this.catchUpUnavailable = true;
        const l = this.limiter.allow('catch-up-unavailable');
        if (l.log) {
          this.log.error(
            { neededSeq: e.neededSeq, oldestAvailable: e.oldestAvailable, peer: this.peers[e.peer]?.id },
            "cannot catch up: peers no longer hold the batches this replica needs (its service state cannot be rebuilt from their logs); the replica needs a fresh copy of the service state",
          );
        }
        return;
      }
      case 'diverged':
        this.diverged = true;
        this.log.error({ seq: e.seq }, 'executed history disagrees with a stable checkpoint: execution stopped');
        return;
    }
  }

  private dropped(layer: 'transport' | 'pbft' | 'sidecar', reason: string, details: Record<string, unknown>, benign = false): void {
    this.metrics.dropped.inc({ layer, reason });
    const l = this.limiter.allow(`${layer}:${reason}`);
    if (!l.log) return;
    const fields = { layer, reason, ...details, ...(l.suppressed > 0 ? { suppressed: l.suppressed } : {}) };
    if (benign) this.log.debug(fields, 'message dropped');
    else this.log.warn(fields, 'message dropped');
  }

  // ---------------------------------------------------------------------------------------------
  // Inbound

  private onMessages(from: string, messages: FrameMessage[]): void {
    if (this.stopping) return;
    for (const m of messages) {
      switch (m.kind) {
        case MessageKind.Pbft:
          this.engine.receiveBytes(this.peerIndex.get(from)!, m.payload);
          break;
        case MessageKind.Replica:
          this.onPeerMessage(from, m.payload);
          break;
        case MessageKind.Request:
          this.onRequest(from, m.payload);
          break;
        default:
          this.dropped('sidecar', 'unexpected-kind', { from, kind: m.kind });
      }
    }
    this.drive();
  }

  private onRequest(top: string, payload: Uint8Array): void {
    if (payload.length > this.maxCanonicalRequestBytes + SUBMISSION_OVERHEAD_BYTES) {
      this.dropped('sidecar', 'request-too-large', { from: top, bytes: payload.length });
      return;
    }
    let submission: Submission;
    try {
      submission = decodeSubmission(payload, this.maxCanonicalRequestBytes);
      decodeRequest(submission.request, this.requestLimits);
    } catch (err) {
      this.dropped('sidecar', 'malformed-request', { from: top, error: (err as Error).message });
      return;
    }
    // The envelope must be signed by the top that sent it (I6 at the request level).
    const digest = submission.top === top ? this.submissions.digestOfDecoded(submission) : null;
    if (digest === null) {
      this.dropped('sidecar', 'unauthenticated-request', { from: top, claimed: submission.top });
      return;
    }
    const key = toHex(digest);
    const hit = this.cache.get(key);
    if (hit) {
      this.answerFromCache(top, hit);
      // A top sends a request to the primary alone at first and needs s+1 partials: when it
      // comes after the batch ran (the same request through a slower chain), the primary tells
      // its peers, who answer from their caches, instead of leaving the top to retransmit.
      if (this.primary === this.index) this.broadcastPeer({ type: 'submitted', digest, top });
      return;
    }
    if (this.submitters.add(key, top)) {
      // Tell the peers who is waiting for this request, so every replica answers that top.
      this.broadcastPeer({ type: 'submitted', digest, top });
    }
    this.engine.submit({ digest, payload });
  }

  /** The canonical request inside an ordered envelope (the engine already authenticated it). */
  private requestBytes(envelope: Uint8Array): Uint8Array {
    try {
      return decodeSubmission(envelope, this.maxCanonicalRequestBytes).request;
    } catch {
      // Unreachable for batches the engine accepted; an empty payload executes as malformed_request.
      return new Uint8Array(0);
    }
  }

  private onPeerMessage(from: string, payload: Uint8Array): void {
    let m: PeerMessage;
    try {
      m = decodePeerMessage(payload, this.cluster.service.maxReplyBodyBytes + 64 * 1024);
    } catch (err) {
      this.dropped('sidecar', 'malformed-peer-message', { from, error: (err as Error).message });
      return;
    }
    const key = toHex(m.digest);
    switch (m.type) {
      case 'submitted': {
        if (!this.tops.has(m.top)) {
          this.dropped('sidecar', 'unknown-top', { from, top: m.top });
          return;
        }
        const hit = this.cache.get(key);
        if (hit) {
          // Executed before we learnt the top was waiting: answer now (unless already answered).
          this.answerFromCache(m.top, hit);
        } else {
          this.submitters.add(key, m.top);
        }
        return;
      }
      case 'reply-query': {
        const reply = this.cache.ownReply(key, m.seq);
        this.sendPeer(from, { type: 'reply-answer', seq: m.seq, digest: m.digest, reply });
        return;
      }
      case 'reply-answer':
        this.onReplyAnswer(this.peerIndex.get(from)!, m);
        return;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Outbound

  private linkTo(id: string): Link {
    let link = this.links.get(id);
    if (link) return link;
    const peer = this.peers.find((r) => r.id === id);
    const top = this.tops.get(id)!;
    link = new Link({
      url: peer ? peer.url : top.peerUrl,
      from: this.id,
      to: id,
      signer: this.o.keys.identity,
      peerPublicKey: fromHex((peer ?? top).identityPublicKey),
      // A restarted peer or top hears from us within half a second (catch-up starts sooner).
      maxBackoffMs: 500,
      onError: (err, attempt) => {
        if (attempt === 0 || attempt % 20 === 0) {
          const l = this.limiter.allow(`link:${id}`);
          if (l.log) this.log.debug({ to: id, attempt, error: err.message }, 'link delivery failed; retrying with backoff');
        }
      },
    });
    this.links.set(id, link);
    return link;
  }

  private broadcastPeer(m: PeerMessage): void {
    const bytes = encodePeerMessage(m);
    for (const r of this.peers) if (r.id !== this.id) this.toPeer(r.id, MessageKind.Replica, bytes, m.type);
  }

  private sendPeer(id: string, m: PeerMessage): void {
    this.toPeer(id, MessageKind.Replica, encodePeerMessage(m), m.type);
  }

  /**
   * Queues a message to a peer replica. A link whose bounded queue is full (the peer is slow or
   * unreachable) or closed refuses it: the message is dropped, counted and logged (rate-limited);
   * PBFT's status/retransmission and catch-up, and the tops' retransmissions, make up for it.
   */
  private toPeer(id: string, kind: typeof MessageKind.Pbft | typeof MessageKind.Replica, bytes: Uint8Array, type: string): void {
    const link = this.linkTo(id);
    if (link.send(kind, bytes)) return;
    const k = kind === MessageKind.Pbft ? 'pbft' : 'replica';
    this.metrics.messagesRefused.inc({ peer: id, kind: k });
    const l = this.limiter.allow(`refused:${id}:${k}`);
    if (l.log) {
      this.log.warn(
        { to: id, kind: k, type, queued: link.stats.queued, queuedBytes: link.stats.queuedBytes, ...(l.suppressed > 0 ? { suppressed: l.suppressed } : {}) },
        'message to a peer dropped: its link refused it (send queue full or link closed)',
      );
    }
  }

  private sendPartial(top: string, p: PartialReplies): void {
    if (!this.tops.has(top)) return;
    if (this.linkTo(top).send(MessageKind.Partial, encodePartialReplies(p))) this.metrics.partialsSent.inc();
    else this.metrics.partialsRefused.inc();
  }

  private answerFromCache(top: string, hit: CacheHit): void {
    const p = partialFromCache(hit, this.view);
    if (!p) return; // a batch this replica did not sign (I7): the other replicas answer
    if (!this.answered.allow(top, toHex(hit.batch.batch.digests[hit.index]!))) {
      this.metrics.repeatsNotAnswered.inc();
      return;
    }
    this.metrics.cacheHits.inc();
    this.sendPartial(top, p);
  }

  // ---------------------------------------------------------------------------------------------
  // Execution

  private async runQueue(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.stopping) {
        const batch = this.queue[0]!;
        const finished = await this.runBatch(batch);
        if (!finished) break;
        this.queue.shift();
        this.metrics.executionQueue.set(this.queue.length);
      }
    } catch (err) {
      // Never papered over: the process stops, and a restart resumes from the log.
      this.executionFailed = true;
      this.queue.length = 0;
      this.fatal(err);
    } finally {
      this.loop = undefined;
    }
  }

  private setProgress(seq: number, index: number, s: RequestState): void {
    let m = this.progress.get(seq);
    if (!m) this.progress.set(seq, (m = new Map()));
    m.set(index, s);
  }

  /**
   * Appends a request's new state and writes it to the OS at once (a crash of this process loses
   * nothing); `durable` also waits until it (and all before it) is on disk.
   */
  private async record(r: JournalRecord & { seq: number; index: number }, s: RequestState, durable: boolean): Promise<void> {
    this.journal.append(r);
    this.setProgress(r.seq, r.index, s);
    if (durable) await this.journal.flush();
    else if (!this.writeLog()) throw new CbftError(WalErrorCode, 'the write-ahead log cannot be written');
  }

  /** Executes one committed batch (resuming where a crash left it); false if stopped midway. */
  private async runBatch(b: ExecuteBatch): Promise<boolean> {
    const seq = b.seq;
    if (seq <= this.executedThrough) {
      this.log.warn({ seq }, 'execute for an already executed batch ignored');
      return true;
    }
    for (let index = 0; index < b.requests.length; index++) {
      const req = b.requests[index]!;
      const state = this.progress.get(seq)?.get(index);
      if (state?.state === 'done' || state?.state === 'adopted' || state?.state === 'unknown') continue;
      if (state?.state === 'started') {
        // Sent before a crash, never recorded as done: it may have been applied. Never re-send it.
        await this.unknownOutcome(seq, index, req.digest, 'the replica stopped while the request was at the service');
        continue;
      }
      if (this.stopping) return false;
      const u: UpstreamRequest = { seq, timestamp: b.timestamp, seedHex: requestSeedHex(b.seed, seq, index), digest: req.digest, payload: this.requestBytes(req.payload) };
      const result = await executeWithRetry(this.executor, u, {
        signal: this.stopController.signal,
        // The start record is in the log before a single byte goes to the service: written to the
        // OS (a crash of this process cannot lose it), and on disk too unless CBFT_WAL_SYNC=batch
        // (so a crash of the machine cannot either). See README, "Durability".
        beforeSend: () => this.record({ kind: 'start', seq, index }, { state: 'started' }, this.syncEachRequest),
        notSent: async (error, attempt, retryInMs) => {
          await this.record({ kind: 'not-sent', seq, index }, { state: 'not-sent' }, true);
          this.upstreamReachable = false;
          this.metrics.upstreamRetries.inc();
          const l = this.limiter.allow('upstream-unreachable');
          if (l.log) this.log.warn({ seq, index, attempt, retryInMs, error: error.message, suppressed: l.suppressed }, 'service unreachable; nothing was sent, retrying');
        },
      });
      if (result.kind === 'stopped') return false;
      this.upstreamReachable = true;
      if (result.kind === 'reply') {
        this.metrics.upstreamLatency.observe(result.latencyMs / 1000);
        this.metrics.executions.inc({ outcome: result.note ?? 'reply' });
        // Written now; on disk with the next synced record (at the latest the batch-done record).
        await this.record({ kind: 'done', seq, index, reply: result.reply }, { state: 'done', reply: result.reply }, false);
        if (result.note) this.log.warn({ seq, index, digest: toHex(req.digest), code: result.note }, 'request answered with a fixed canonical error');
      } else {
        this.metrics.upstreamLatency.observe(result.latencyMs / 1000);
        await this.unknownOutcome(seq, index, req.digest, result.reason === 'timeout' ? `no answer within ${this.cluster.service.upstreamTimeoutMs} ms` : `failed after sending: ${result.error.message}`);
      }
    }
    await this.finishBatch(b);
    return true;
  }

  private async unknownOutcome(seq: number, index: number, digest: Uint8Array, reason: string): Promise<void> {
    await this.record({ kind: 'unknown', seq, index, reason }, { state: 'unknown', reason }, true);
    this.metrics.executions.inc({ outcome: 'unknown' });
    this.metrics.unknownOutcomes.inc();
    this.log.warn(
      { seq, index, digest: toHex(digest), reason },
      'request outcome unknown: it is not re-sent to the service; this replica will not sign the batch and recovers the reply from its peers',
    );
    this.startRecovery(seq, index, digest);
  }

  private async finishBatch(b: ExecuteBatch): Promise<void> {
    const seq = b.seq;
    const states = this.progress.get(seq);
    const replies: FinishedBatch['replies'] = b.requests.map((_, i) => {
      const s = states?.get(i);
      if (s?.state === 'done') return { reply: s.reply, own: true };
      if (s?.state === 'adopted') return { reply: s.reply, own: false };
      return undefined;
    });
    const own = replies.every((r) => r?.own === true);
    let signed: ReturnType<typeof signBatch> | undefined;
    if (b.requests.length > 0 && own) {
      signed = signBatch(
        replies.map((r) => r!.reply),
        this.cluster.merkleDepth,
        b.seed,
        seq,
        this.o.keys.share!,
      );
    }
    const finished: FinishedBatch = {
      batch: { seq, seed: b.seed, digests: b.requests.map((r) => r.digest), partial: signed?.partial },
      replies,
    };
    this.journal.append({ kind: 'batch-done', batch: finished.batch });
    await this.journal.flush();
    this.progress.delete(seq);
    this.executedThrough = seq;
    if (b.requests.length > 0) this.cache.add(finished, signed?.proofs);
    this.metrics.batches.inc({ kind: b.isNull ? 'null' : b.requests.length > 0 ? 'requests' : 'duplicates' });
    this.metrics.lastExecuted.set(seq);
    if (b.requests.length > 0 && !own) this.log.warn({ seq }, 'batch not signed: it holds a reply this replica did not compute itself');

    // Every top that submitted a request of this batch gets one Partial with its replies.
    const byTop = new Map<string, number[]>();
    b.requests.forEach((r, i) => {
      for (const top of this.submitters.take(toHex(r.digest))) {
        let list = byTop.get(top);
        if (!list) byTop.set(top, (list = []));
        list.push(i);
      }
    });
    if (signed?.partial) {
      for (const [top, indexes] of byTop) {
        for (const i of indexes) this.answered.allow(top, toHex(b.requests[i]!.digest));
        this.sendPartial(top, {
          view: this.view,
          seq,
          partial: signed.partial,
          items: indexes.map((i) => ({ reply: replies[i]!.reply, proof: signed.proofs[i]! })),
        });
      }
    }
    // Requests ordered again after they ran (retries through another chain): the cached reply.
    for (const d of b.duplicates) {
      const key = toHex(d.digest);
      const tops = this.submitters.take(key);
      const hit = this.cache.get(key);
      if (hit) for (const top of tops) this.answerFromCache(top, hit);
    }
    this.log.debug({ seq, requests: b.requests.length, duplicates: b.duplicates.length, signed: signed !== undefined }, 'batch executed');
    this.engine.executed(seq);
    this.drive();
  }

  // ---------------------------------------------------------------------------------------------
  // Recovery of unknown outcomes

  private startRecovery(seq: number, index: number, digest: Uint8Array): void {
    const key = `${seq}:${index}`;
    if (this.recoveries.has(key)) return;
    const r: Recovery = { seq, index, digest, attempts: 0, votes: new Map(), replies: new Map() };
    this.recoveries.set(key, r);
    this.queryPeers(r);
  }

  private queryPeers(r: Recovery): void {
    r.attempts++;
    const m: PeerMessage = { type: 'reply-query', seq: r.seq, digest: r.digest };
    for (const p of this.peers) if (p.id !== this.id && !r.votes.has(p.index)) this.sendPeer(p.id, m);
  }

  private recoveryRound(): void {
    if (this.stopping) return;
    for (const [key, r] of this.recoveries) {
      if (r.attempts >= this.recoveryAttempts) {
        this.recoveries.delete(key);
        this.metrics.recoveredReplies.inc({ result: 'gave-up' });
        this.log.error({ seq: r.seq, index: r.index, digest: toHex(r.digest) }, 'could not recover the reply of an unknown-outcome request from s+1 peers');
        continue;
      }
      this.queryPeers(r);
    }
  }

  private onReplyAnswer(from: number, m: Extract<PeerMessage, { type: 'reply-answer' }>): void {
    const r = [...this.recoveries.values()].find((x) => x.seq === m.seq && toHex(x.digest) === toHex(m.digest));
    if (!r || m.reply === undefined || r.votes.has(from)) return;
    try {
      const reply = decodeReply(m.reply);
      if (toHex(reply.requestDigest) !== toHex(r.digest)) throw new Error('reply names another request');
    } catch (err) {
      this.dropped('sidecar', 'bad-reply-answer', { from: this.peers[from]?.id, error: (err as Error).message });
      return;
    }
    const h = toHex(sha256(m.reply));
    r.votes.set(from, h);
    r.replies.set(h, m.reply);
    let count = 0;
    for (const v of r.votes.values()) if (v === h) count++;
    if (count < this.cluster.s + 1) return;
    // s+1 identical replies: at least one comes from a correct replica.
    this.recoveries.delete(`${r.seq}:${r.index}`);
    this.journal.append({ kind: 'adopted', seq: r.seq, index: r.index, reply: m.reply });
    this.journal.flush().catch((err: unknown) => this.fatal(err));
    const inProgress = this.progress.get(r.seq);
    if (inProgress) inProgress.set(r.index, { state: 'adopted', reply: m.reply });
    else this.cache.setAdopted(r.seq, r.index, m.reply);
    this.metrics.recoveredReplies.inc({ result: 'adopted' });
    this.log.warn(
      { seq: r.seq, index: r.index, digest: toHex(r.digest), peers: count },
      'recovered the reply of an unknown-outcome request from s+1 matching peers (adopted, never signed by this replica)',
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Log compaction

  private maybeCompact(): void {
    if (this.compacting || this.stopping || this.journal.size <= this.compactAt) return;
    this.compacting = true;
    void (async () => {
      try {
        // The file may only be swapped while no asynchronous fdatasync runs on it.
        for (;;) {
          await this.journal.idle();
          if (this.stopping) return;
          if (!this.journal.syncing) break;
        }
        this.compact();
      } catch (err) {
        this.fatal(err);
      } finally {
        this.compacting = false;
      }
    })();
  }

  /** What a restart needs, in log order: the compacted log's records. */
  private *liveRecords(kept: readonly PersistRecord[]): Generator<JournalRecord> {
    yield { kind: 'executed', seq: this.executedThrough };
    for (const r of kept) yield { kind: 'engine', bytes: encodeRecord(r) };
    for (const b of this.cache.all()) {
      for (let index = 0; index < b.replies.length; index++) {
        const r = b.replies[index];
        if (r) yield { kind: r.own ? 'done' : 'adopted', seq: b.batch.seq, index, reply: r.reply };
      }
      yield { kind: 'batch-done', batch: b.batch };
    }
    for (const seq of [...this.progress.keys()].sort((a, b) => a - b)) {
      for (const [index, s] of this.progress.get(seq)!) {
        switch (s.state) {
          case 'started':
            yield { kind: 'start', seq, index };
            break;
          case 'not-sent':
            yield { kind: 'not-sent', seq, index };
            break;
          case 'done':
          case 'adopted':
            yield { kind: s.state, seq, index, reply: s.reply };
            break;
          case 'unknown':
            yield { kind: 'unknown', seq, index, reason: s.reason };
            break;
        }
      }
    }
  }

  /** Rewrites the log with only what a restart needs (synchronously: nothing interleaves). */
  private compact(): void {
    this.journal.sync();
    const before = this.journal.size;
    const kept = compactRecords(this.engineLog);
    // Generated as the log writes them, so no copy of the live state is ever held at once.
    const records = this.journal.rewrite(this.liveRecords(kept));
    this.persistEnd = 0; // everything is durable in the rewritten log
    this.engineLog = kept;
    this.compactAt = Math.max(this.compactMinBytes, 2 * this.journal.size);
    this.metrics.walCompactions.inc();
    this.metrics.walBytes.set(this.journal.size);
    this.log.info({ before, after: this.journal.size, records, engineRecords: kept.length }, 'write-ahead log compacted');
  }

  // ---------------------------------------------------------------------------------------------
  // Status and shutdown

  readiness(): Readiness {
    const reasons: string[] = [];
    if (this.stopping) reasons.push('stopping');
    if (this.diverged) reasons.push('executed history diverged from a stable checkpoint');
    if (this.executionFailed) reasons.push('execution failed');
    if (!this.upstreamReachable) reasons.push('service unreachable');
    if (this.catchUpUnavailable) reasons.push('cannot catch up from peers');
    return { ready: reasons.length === 0, reasons };
  }

  status(): SidecarStatus {
    this.refreshView();
    return {
      id: this.id,
      view: this.view,
      primary: this.primary,
      lastExecuted: this.executedThrough,
      executionQueue: this.queue.length,
      inViewChange: this.inViewChange,
      diverged: this.diverged,
      upstreamReachable: this.upstreamReachable,
      walBytes: this.journal.size,
      replyCache: this.cache.size,
    };
  }

  get peerPort(): number | undefined {
    return this.peerServer?.port;
  }

  get adminPort(): number | undefined {
    return this.adminServer?.port;
  }

  /**
   * Drains: stops taking input and ticking, lets the request at the service finish (bounded by
   * the upstream timeout), makes the log durable, flushes links briefly, closes everything.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.recoveryTimer) clearInterval(this.recoveryTimer);
    this.stopController.abort();
    await this.peerServer?.close();
    if (this.loop) await this.loop;
    await this.journal.idle();
    this.journal.sync();
    this.journal.close();
    const flush = Promise.all([...this.links.values()].map((l) => l.idle()));
    await Promise.race([flush, new Promise((r) => setTimeout(r, 500).unref())]);
    await Promise.all([...this.links.values()].map((l) => l.close()));
    await this.adminServer?.close();
    await this.executor.close();
    this.log.info({ lastExecuted: this.executedThrough }, 'sidecar stopped');
  }
}
