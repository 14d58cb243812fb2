import type { Server } from 'node:http';
import { pino } from 'pino';
import type { Registry } from 'prom-client';
import { fromHex, toHex } from '../codec/binary.js';
import { decodeRequest, digestOf, type DecodeLimits } from '../codec/canonical.js';
import { allowlist, DEFAULT_FORWARD_HEADERS, DEFAULT_REPLY_HEADERS } from '../codec/headers.js';
import { createRegistry, startAdminServer, type AdminServer, type Readiness } from '../admin/server.js';
import { parseNodeId, type ClusterConfig, type FirewallEntry } from '../cluster/config.js';
import type { LoadedKeys } from '../cluster/keys.js';
import { signRound } from '../wire/submission.js';
import { CbftError, ErrorCodes } from '../errors.js';
import { blsBackendSetting } from '../crypto/threshold.js';
import type { Logger } from '../log.js';
import { MessageKind, type FrameMessage } from '../transport/frame.js';
import { Link } from '../transport/link.js';
import { listenAddress, startPeerServer, type PeerServer } from '../transport/peer-server.js';
import { encodeFail, encodeSignedReply, FailCode } from '../wire/payloads.js';
import { defaultWorkerFile, inlineBackend, RootVerifier, workerBackend, type CryptoBackend } from './crypto-pool.js';
import { createFront, failError, FirewallErrors, releaseToClient, type FrontContext } from './front.js';
import { Intake } from './intake.js';
import { FirewallMetrics } from './metrics.js';
import { Prober } from './probe.js';
import { ReleaseQueue, type Entry, type Outcome } from './queue.js';
import { ReplicaClient } from './replica-client.js';
import { hopTimeoutMs } from './timeouts.js';

export type FirewallRole = 'bottom' | 'middle' | 'top';

export interface FirewallNodeOptions {
  cluster: ClusterConfig;
  keys: LoadedKeys;
  /** Host to listen on instead of the one in the cluster file (e.g. 0.0.0.0 in a pod). */
  bindHost?: string;
  logger?: Logger;
  /** Bound on client connections at the bottom (I8). */
  maxConnections?: number;
  probeIntervalMs?: number;
  /**
   * Where BLS checks run: a worker thread (default when the compiled worker exists) or inline.
   * A URL names the worker module to use.
   */
  cryptoWorker?: boolean | URL;
}

export interface FirewallNode {
  readonly id: string;
  readonly role: FirewallRole;
  readonly entry: FirewallEntry;
  readonly metrics: FirewallMetrics;
  readonly registry: Registry;
  readonly verifier: RootVerifier;
  readonly cryptoBackend: CryptoBackend['kind'];
  readonly queueSize: number;
  /** The client-facing HTTP server (bottom only). */
  readonly server: Server | undefined;
  readiness(): Readiness;
  /** Stops accepting, waits for queued requests up to `deadlineMs`, then closes. */
  drain(deadlineMs: number): Promise<void>;
  close(): Promise<void>;
}

interface ChainContext {
  method: string;
  path: string;
  nonceHex: string;
}

/**
 * pino with an asynchronous stdout writer: the access log must not block the event loop on a
 * slow stdout; lines are written as soon as the loop is free (and flushed on exit).
 */
export function createFirewallLogger(id: string, role: string): { logger: Logger; flush(): void } {
  const destination = pino.destination({ dest: 1, sync: false });
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'info', base: { node: id, role }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  return {
    logger,
    flush() {
      try {
        destination.flushSync();
      } catch {
        // not yet open, or already closed
      }
    },
  };
}

/**
 * Starts one firewall node: the role follows from its position (0 bottom, L-1 top, else middle).
 * Links to neighbours are authenticated with the node identity (I6): the peer server accepts
 * Request messages only from the lower neighbour, Reply/Fail only from the upper neighbour, and at
 * the top Partial only from replicas.
 */
export async function startFirewallNode(o: FirewallNodeOptions): Promise<FirewallNode> {
  const { cluster, keys } = o;
  const parsed = parseNodeId(keys.id);
  if (parsed.kind !== 'firewall') throw new CbftError(ErrorCodes.USAGE, `${keys.id} is not a firewall node id (fw-<chain>-<k>)`);
  const chain = cluster.chains[parsed.chain];
  const entry = chain?.[parsed.position];
  if (!chain || !entry) throw new CbftError(ErrorCodes.USAGE, `no firewall node ${keys.id} in the cluster file`);
  const length = chain.length;
  const position = parsed.position;
  const role: FirewallRole = position === 0 ? 'bottom' : position === length - 1 ? 'top' : 'middle';
  const lower = position > 0 ? chain[position - 1]! : undefined;
  const upper = position < length - 1 ? chain[position + 1]! : undefined;
  const fw = cluster.firewall;
  const svc = cluster.service;
  const log = o.logger ?? pino({ level: 'silent' });
  const registry = createRegistry(entry.id, role);
  let queueRef: ReleaseQueue<unknown> | undefined;
  const metrics = new FirewallMetrics(registry, () => queueRef?.size ?? 0, log);
  // Checked here: the crypto worker would otherwise die on it and fail every verification.
  blsBackendSetting();
  const workerFile = o.cryptoWorker instanceof URL ? o.cryptoWorker : o.cryptoWorker === false ? undefined : defaultWorkerFile();
  const backend: CryptoBackend = workerFile ? workerBackend(workerFile) : inlineBackend();
  const verifier = new RootVerifier(fromHex(cluster.servicePublicKey), cluster.merkleDepth, backend, (sec) => metrics.verifySeconds.observe(sec));
  const replyLimits: DecodeLimits = { maxBody: svc.maxReplyBodyBytes, maxHeaders: 256, maxHeaderBytes: 64 * 1024 };
  const requestLimits: DecodeLimits = { maxBody: svc.maxRequestBodyBytes, maxHeaders: 256, maxHeaderBytes: Math.max(fw.maxHeaderBytes, 1024) };
  const maxReplyBytes = svc.maxReplyBodyBytes + 128 * 1024;
  const replyAllow = allowlist(DEFAULT_REPLY_HEADERS, svc.replyHeaders);
  const forwardAllow = allowlist(DEFAULT_FORWARD_HEADERS, svc.forwardHeaders);
  const timeoutMs = hopTimeoutMs(fw, position, length);
  const maxFrameBytes = 8 * 1024 * 1024 + 2 * (svc.maxReplyBodyBytes + svc.maxRequestBodyBytes);
  const linkLimits = { maxQueuedMessages: fw.maxQueue * 2, maxQueuedBytes: 256 * 1024 * 1024, requestTimeoutMs: Math.max(5_000, fw.requestTimeoutMs) };
  const onLinkError = (to: string) => (err: Error, attempt: number) => {
    if (attempt === 0 || attempt % 20 === 0) log.warn({ peer: to, attempt, err: err.message }, `link to ${to} failing`);
  };

  let draining = false;
  let closed = false;

  // Links: up (bottom, middle), down (middle, top), to every replica (top).
  const up = upper
    ? new Link({ url: upper.peerUrl, from: entry.id, to: upper.id, signer: keys.identity, peerPublicKey: fromHex(upper.identityPublicKey), ...linkLimits, onError: onLinkError(upper.id) })
    : undefined;
  const down = lower
    ? new Link({ url: lower.peerUrl, from: entry.id, to: lower.id, signer: keys.identity, peerPublicKey: fromHex(lower.identityPublicKey), ...linkLimits, onError: onLinkError(lower.id) })
    : undefined;
  const replicaLinks =
    role === 'top'
      ? cluster.replicas.map((r) => new Link({ url: r.url, from: entry.id, to: r.id, signer: keys.identity, peerPublicKey: fromHex(r.identityPublicKey), ...linkLimits, onError: onLinkError(r.id) }))
      : [];

  const releases = {
    reply: metrics.releases.labels('reply'),
    replicas_disagree: metrics.releases.labels('replicas_disagree'),
    timeout: metrics.releases.labels('timeout'),
    overloaded: metrics.releases.labels('overloaded'),
  };
  const outcomeName = (outcome: Outcome): keyof typeof releases =>
    outcome.kind === 'reply' ? 'reply' : outcome.code === FailCode.ReplicasDisagree ? 'replicas_disagree' : outcome.code === FailCode.Overloaded ? 'overloaded' : 'timeout';

  // --- the queue and what a release does ----------------------------------------------------
  let replicaClient: ReplicaClient | undefined;
  let queue: ReleaseQueue<FrontContext> | ReleaseQueue<ChainContext>;
  if (role === 'bottom') {
    queue = new ReleaseQueue<FrontContext>({
      maxQueue: fw.maxQueue,
      timeoutMs,
      policy: fw.releasePolicy,
      quantumMs: fw.quantumMs,
      timeoutCode: () => FailCode.Timeout,
      onRelease: (e: Entry<FrontContext>, outcome) => {
        const r = releaseToClient(e, outcome, replyAllow, draining);
        metrics.releases.inc({ outcome: r.outcome });
        const ms = performance.now() - e.enqueuedAt;
        metrics.latencySeconds.observe(ms / 1000);
        log.info({ method: e.ctx.method, path: e.ctx.path, status: r.status, outcome: r.outcome, nonce: e.ctx.nonceHex, digest: e.digestHex, ms: Math.round(ms * 1000) / 1000 }, 'request');
      },
    });
  } else {
    queue = new ReleaseQueue<ChainContext>({
      maxQueue: fw.maxQueue,
      timeoutMs,
      policy: fw.releasePolicy,
      quantumMs: fw.quantumMs,
      timeoutCode: (e) => replicaClient?.timeoutCode(e as Entry<unknown>) ?? FailCode.Timeout,
      onSettled: (e) => replicaClient?.settled(e.digestHex),
      onRelease: (e: Entry<ChainContext>, outcome) => {
        if (outcome.kind === 'reply') down!.send(MessageKind.Reply, outcome.payload ?? encodeSignedReply(outcome.signed));
        else down!.send(MessageKind.Fail, encodeFail({ digest: e.digest, code: outcome.code }));
        const name = outcomeName(outcome);
        releases[name].inc();
        const ms = performance.now() - e.enqueuedAt;
        metrics.latencySeconds.observe(ms / 1000);
        // status is numeric at every node: the signed reply's, or the one the bottom would answer.
        const status = outcome.kind === 'reply' ? outcome.reply.status : FirewallErrors[failError(outcome.code)];
        log.info({ method: e.ctx.method, path: e.ctx.path, status, outcome: name, nonce: e.ctx.nonceHex, digest: e.digestHex, ms: Math.round(ms * 1000) / 1000 }, 'request');
      },
    });
  }
  queueRef = queue as ReleaseQueue<unknown>;
  const anyQueue = queue as ReleaseQueue<unknown>;

  if (role === 'top') {
    replicaClient = new ReplicaClient({
      s: cluster.s,
      depth: cluster.merkleDepth,
      replicas: cluster.replicas,
      links: replicaLinks,
      seal: (round) => signRound(keys.identity, entry.id, round),
      queue: anyQueue,
      verifier,
      backend,
      metrics,
      retransmitMs: fw.retransmitMs,
      maxReplyBytes,
      replyLimits,
    });
  }
  const intake = role !== 'top' ? new Intake({ queue: anyQueue, verifier, metrics, depth: cluster.merkleDepth, maxReplyBytes, replyLimits }) : undefined;

  // --- requests from below (middle, top) ----------------------------------------------------
  const requestsIn = metrics.requests.labels('message');
  const onRequest = (from: string, payload: Uint8Array) => {
    requestsIn.inc();
    let method: string;
    let path: string;
    let nonceHex: string;
    try {
      const req = decodeRequest(payload, requestLimits);
      method = req.method;
      path = req.target;
      nonceHex = toHex(req.nonce);
    } catch {
      metrics.alarm('malformed-request', from);
      return;
    }
    const digest = digestOf(payload);
    const digestHex = toHex(digest);
    const q = queue as ReleaseQueue<ChainContext>;
    const e = draining ? undefined : q.enqueue(digest, digestHex, { method, path, nonceHex });
    if (!e) {
      releases.overloaded.inc();
      down!.send(MessageKind.Fail, encodeFail({ digest, code: FailCode.Overloaded }));
      return;
    }
    const ok = role === 'top' ? replicaClient!.submit(digestHex, payload) : up!.send(MessageKind.Request, payload);
    if (!ok) q.resolveEntry(e, { kind: 'fail', code: FailCode.Overloaded, local: true });
  };

  const onMessages = (from: string, messages: FrameMessage[]) => {
    if (closed) return;
    for (const m of messages) {
      switch (m.kind) {
        case MessageKind.Request:
          onRequest(from, m.payload);
          break;
        case MessageKind.Reply:
          intake!.reply(from, m.payload);
          break;
        case MessageKind.Fail:
          intake!.fail(from, m.payload);
          break;
        case MessageKind.Partial:
          replicaClient!.onPartial(from, m.payload);
          break;
        default:
          metrics.alarm('frame-not-allowed', from);
      }
    }
  };

  // I6: who may send what to this node.
  const senders = new Map<string, Uint8Array>();
  if (lower) senders.set(lower.id, fromHex(lower.identityPublicKey));
  if (upper) senders.set(upper.id, fromHex(upper.identityPublicKey));
  const replicaIds = new Set<string>();
  if (role === 'top') {
    for (const r of cluster.replicas) {
      senders.set(r.id, fromHex(r.identityPublicKey));
      replicaIds.add(r.id);
    }
  }
  const allowed = (from: string, kind: MessageKind): boolean => {
    if (lower && from === lower.id) return kind === MessageKind.Request;
    if (upper && from === upper.id) return kind === MessageKind.Reply || kind === MessageKind.Fail;
    if (replicaIds.has(from)) return kind === MessageKind.Partial;
    return false;
  };

  const peerAddr = listenAddress(entry.peerUrl, o.bindHost);
  const peer: PeerServer = await startPeerServer({
    host: peerAddr.host,
    port: peerAddr.port,
    self: entry.id,
    senders,
    identity: keys.identity,
    allowed,
    onMessages,
    onDrop: (reason, from) => metrics.alarm(`frame-${reason}`, from),
    maxFrameBytes,
  });

  // --- readiness --------------------------------------------------------------------------
  const probeUrls = role === 'top' ? cluster.replicas.map((r) => r.url) : [upper!.peerUrl];
  const prober = new Prober(probeUrls, o.probeIntervalMs ?? 1_000);
  prober.start();
  const needed = role === 'top' ? 2 * cluster.s + 1 : 1;
  const readiness = (): Readiness => {
    const reasons: string[] = [];
    if (draining) reasons.push('draining');
    if (role === 'top') {
      const n = prober.count();
      if (n < needed) reasons.push(`${n} of ${cluster.replicas.length} sidecars reachable, need ${needed}`);
    } else if (prober.reachable(0) !== true) {
      reasons.push(`upper neighbour ${upper!.id} (${upper!.peerUrl}) not reachable`);
    }
    return { ready: reasons.length === 0, reasons };
  };

  // --- client-facing server (bottom) --------------------------------------------------------
  let front: Server | undefined;
  if (role === 'bottom') {
    front = createFront({
      forwardAllow,
      replyAllow,
      maxBodyBytes: svc.maxRequestBodyBytes,
      maxHeaderBytes: fw.maxHeaderBytes,
      maxHeaders: requestLimits.maxHeaders,
      maxConnections: o.maxConnections ?? 10_000,
      queue: queue as ReleaseQueue<FrontContext>,
      submit: (bytes) => up!.send(MessageKind.Request, bytes),
      state: () => (draining ? 'draining' : prober.reachable(0) === false && !up!.stats.up ? 'not-ready' : 'ok'),
      metrics,
      log,
    });
    const addr = listenAddress(entry.url, o.bindHost);
    await new Promise<void>((resolve, reject) => {
      front!.once('error', reject);
      front!.listen(addr.port, addr.host, () => {
        front!.off('error', reject);
        resolve();
      });
    });
  }

  const adminAddr = listenAddress(entry.adminUrl, o.bindHost);
  let admin: AdminServer;
  try {
    admin = await startAdminServer({ host: adminAddr.host, port: adminAddr.port, id: entry.id, role: `firewall-${role}`, registry, readiness });
  } catch (err) {
    await peer.close();
    throw err;
  }
  log.info(
    { url: role === 'bottom' ? entry.url : undefined, peerUrl: entry.peerUrl, adminUrl: entry.adminUrl, timeoutMs, policy: fw.releasePolicy, crypto: backend.kind },
    `firewall ${entry.id} (${role}) listening`,
  );

  const close = async () => {
    if (closed) return;
    closed = true;
    queue.close();
    replicaClient?.close();
    await Promise.all([
      backend.close(),
      ...[up, down, ...replicaLinks].filter((l): l is Link => l !== undefined).map((l) => l.close()),
      peer.close(),
      admin.close(),
      prober.close(),
      front
        ? new Promise<void>((resolve) => {
            front!.close(() => resolve());
            front!.closeAllConnections();
          })
        : Promise.resolve(),
    ]);
  };

  const drain = async (deadlineMs: number) => {
    if (closed) return;
    draining = true;
    const frontClosed = front ? new Promise<void>((resolve) => front!.once('close', () => resolve())) : Promise.resolve();
    if (front) {
      front.close();
      front.closeIdleConnections();
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, deadlineMs);
    });
    await Promise.race([queue.drained(), deadline]);
    queue.failAll(FailCode.Overloaded);
    if (down) await Promise.race([down.idle(), deadline]);
    // Responses written while draining say `connection: close`; give them a moment to flush.
    if (front) await Promise.race([frontClosed, new Promise((resolve) => setTimeout(resolve, 1_000))]);
    clearTimeout(timer);
    await close();
  };

  return {
    id: entry.id,
    role,
    entry,
    metrics,
    registry,
    verifier,
    cryptoBackend: backend.kind,
    server: front,
    get queueSize() {
      return queue.size;
    },
    readiness,
    drain,
    close,
  };
}
