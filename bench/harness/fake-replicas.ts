// Fake replicas (one sequencer instead of PBFT, real partial signatures): the firewall tests and the `firewall` bench suite.
import { randomBytes } from 'node:crypto';
import { fromHex, toHex, utf8 } from '../../src/codec/binary.js';
import { decodeRequest, digestOf, encodeReply, leafHash, type CanonicalRequest } from '../../src/codec/canonical.js';
import { allowlist, DEFAULT_REPLY_HEADERS, sortHeaders } from '../../src/codec/headers.js';
import { batchMessage, buildTree } from '../../src/codec/merkle.js';
import type { ClusterConfig } from '../../src/cluster/config.js';
import type { NodeKeys } from '../../src/cluster/keys.js';
import { sha256 } from '../../src/crypto/hash.js';
import { SubmissionVerifier, decodeSubmission } from '../../src/wire/submission.js';
import { IdentitySigner } from '../../src/crypto/identity.js';
import { partialSign } from '../../src/crypto/threshold.js';
import { MessageKind } from '../../src/transport/frame.js';
import { Link } from '../../src/transport/link.js';
import { listenAddress, startPeerServer, type PeerServer } from '../../src/transport/peer-server.js';
import { encodePartialReplies } from '../../src/wire/payloads.js';

/**
 * A test double of the n sidecars, faithful to the contract with the top firewall nodes:
 * real peer servers and links with the replicas' real identity keys (I6), requests accepted only
 * from top nodes, requests ordered into batches (one shared in-process sequencer stands in for
 * PBFT, so every replica executes the same batches in the same order), every request executed
 * once per digest (de-duplication and a reply cache, like real sidecars), replies canonicalised
 * with the reply allowlist, put in a fixed-depth Merkle tree, the root partially signed with the
 * replica's threshold share, and each top sent the replies to the requests it submitted with
 * their proofs. Byzantine behaviours can be switched on per replica.
 */
export interface ExecuteResult {
  status: number;
  headers?: Array<[string, string]>;
  body: string | Uint8Array;
}

export type Executor = (req: CanonicalRequest, ctx: { seq: number; replica: number }) => ExecuteResult;

export interface FakeReplicaOptions {
  cluster: ClusterConfig;
  keys: readonly NodeKeys[];
  execute?: Executor;
  /** Replicas whose replies differ from the others' (a different body). */
  differ?: number[];
  /** Replicas that sign garbage (a partial over another root). */
  garbage?: number[];
  /** Replicas that never answer (they still listen). */
  silent?: number[];
  /** Replicas that ignore requests sent to them directly (e.g. a crashed primary). */
  dropDirect?: number[];
  /** Delay (ms) before a replica sends its partials. */
  delays?: Record<number, number>;
  /** The view replicas report (the primary is view mod n). */
  view?: number;
  /** Collect requests for this long before cutting a batch (default: the same tick). */
  batchDelayMs?: number;
}

export interface FakeReplicas {
  /** How many times each request digest was executed (by the whole replicated service). */
  readonly executions: Map<string, number>;
  /** Requests each replica received directly from a top. */
  readonly received: number[];
  /** Batches cut so far. */
  readonly batches: () => number;
  /** The requests in execution order. */
  readonly log: CanonicalRequest[];
  setView(view: number): void;
  update(o: Partial<Pick<FakeReplicaOptions, 'differ' | 'garbage' | 'silent' | 'dropDirect' | 'delays'>>): void;
  close(): Promise<void>;
}

/**
 * Echo service: the request as JSON, plus headers a real service would send and the sidecar
 * strips. Like a real service (and what undici hands the sidecar), a HEAD answer has no body.
 */
export const echo: Executor = (req, ctx) => ({
  status: req.target.startsWith('/status/') ? Number(req.target.slice(8, 11)) : 200,
  headers: [
    ['content-type', 'application/json'],
    ['date', new Date().toUTCString()],
    ['x-powered-by', 'legacy'],
    ['set-cookie', 'session=secret'],
    ['cache-control', 'no-store'],
  ],
  body: req.method === 'HEAD' ? '' : JSON.stringify({
    method: req.method,
    target: req.target,
    headers: Object.fromEntries(req.headers),
    body: Buffer.from(req.body).toString('utf8'),
    seq: ctx.seq,
  }),
});

interface Item {
  reply: Uint8Array;
  proof: Uint8Array;
}

interface Cached {
  seq: number;
  perReplica: Array<{ item: Item; partial: Uint8Array } | undefined>;
}

interface PendingReq {
  digestHex: string;
  req: CanonicalRequest;
  tops: Set<string>;
}

export async function startFakeReplicas(o: FakeReplicaOptions): Promise<FakeReplicas> {
  const { cluster } = o;
  const n = cluster.replicas.length;
  const depth = cluster.merkleDepth;
  const execute = o.execute ?? echo;
  const replyAllow = allowlist(DEFAULT_REPLY_HEADERS, cluster.service.replyHeaders);
  const tops = cluster.chains.map((c) => c[c.length - 1]!);
  const topIds = new Set(tops.map((t) => t.id));
  const submissions = new SubmissionVerifier(new Map(tops.map((t) => [t.id, fromHex(t.identityPublicKey)])), 64 * 1024 * 1024);
  const keyOf = (id: string) => {
    const k = o.keys.find((x) => x.id === id);
    if (!k) throw new Error(`no keys for ${id}`);
    return k;
  };
  let behaviour = {
    differ: new Set(o.differ ?? []),
    garbage: new Set(o.garbage ?? []),
    silent: new Set(o.silent ?? []),
    dropDirect: new Set(o.dropDirect ?? []),
    delays: o.delays ?? {},
  };
  let view = o.view ?? 0;
  const shares = cluster.replicas.map((r) => {
    const k = keyOf(r.id);
    return { index: r.shareIndex, secretKey: fromHex(k.shareSecretKey!) };
  });
  const signers = cluster.replicas.map((r) => new IdentitySigner(fromHex(keyOf(r.id).identitySecretKey)));
  // links[i][topId]
  const links = cluster.replicas.map((r, i) => new Map(tops.map((t) => [t.id, new Link({ url: t.peerUrl, from: r.id, to: t.id, signer: signers[i]!, peerPublicKey: fromHex(t.identityPublicKey), minBackoffMs: 20, maxBackoffMs: 200 })])));

  const executions = new Map<string, number>();
  const received = cluster.replicas.map(() => 0);
  const cache = new Map<string, Cached>();
  const log: CanonicalRequest[] = [];
  let pending: PendingReq[] = [];
  const pendingByDigest = new Map<string, PendingReq>();
  let seq = 0;
  let flushScheduled = false;
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const later = (ms: number, fn: () => void) => {
    if (!ms) return fn();
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
  };

  const send = (i: number, top: string, items: Item[], partial: Uint8Array, s: number) => {
    if (behaviour.silent.has(i) || closed) return;
    const payload = encodePartialReplies({ view, seq: s, partial, items });
    later(behaviour.delays[i] ?? 0, () => links[i]!.get(top)!.send(MessageKind.Partial, payload));
  };

  const replyFor = (i: number, req: CanonicalRequest, digest: Uint8Array, s: number): Uint8Array => {
    const r = execute(req, { seq: s, replica: i });
    let body = typeof r.body === 'string' ? utf8(r.body) : r.body;
    if (behaviour.differ.has(i)) body = utf8(Buffer.from(body).toString('utf8') + ` [replica-${i} leaks a secret]`);
    const headers = sortHeaders((r.headers ?? []).map(([k, v]) => [k.toLowerCase(), v] as const).filter(([k]) => replyAllow.has(k)));
    return encodeReply({ requestDigest: digest, status: r.status, headers, body });
  };

  const flush = () => {
    flushScheduled = false;
    if (closed || pending.length === 0) return;
    const batch = pending.slice(0, 2 ** depth);
    pending = pending.slice(batch.length);
    for (const p of batch) pendingByDigest.delete(p.digestHex);
    if (pending.length > 0) schedule();
    const s = ++seq;
    const salt = sha256(utf8(`fake-salt ${s}`));
    for (const p of batch) {
      executions.set(p.digestHex, (executions.get(p.digestHex) ?? 0) + 1);
      log.push(p.req);
      cache.set(p.digestHex, { seq: s, perReplica: [] });
    }
    for (let i = 0; i < n; i++) {
      const replies = batch.map((p) => replyFor(i, p.req, fromHex(p.digestHex), s));
      const tree = buildTree(replies.map(leafHash), depth, salt);
      const signedRoot = behaviour.garbage.has(i) ? randomBytes(32) : tree.root;
      const partial = partialSign(shares[i]!, batchMessage(signedRoot, depth));
      const byTop = new Map<string, Item[]>();
      batch.forEach((p, k) => {
        const item = { reply: replies[k]!, proof: tree.proof(k) };
        cache.get(p.digestHex)!.perReplica[i] = { item, partial };
        for (const t of p.tops) {
          const list = byTop.get(t) ?? [];
          list.push(item);
          byTop.set(t, list);
        }
      });
      for (const [t, items] of byTop) send(i, t, items, partial, s);
    }
  };

  const schedule = () => {
    if (flushScheduled) return;
    flushScheduled = true;
    if (o.batchDelayMs) later(o.batchDelayMs, flush);
    else setImmediate(flush);
  };

  const onRequest = (i: number, from: string, envelope: Uint8Array) => {
    received[i]!++;
    if (behaviour.dropDirect.has(i)) return;
    let req: CanonicalRequest;
    let bytes: Uint8Array;
    try {
      // Like the real sidecar: the top must have signed the request it sent.
      if (submissions.digestOf(envelope) === null) return;
      const submission = decodeSubmission(envelope, 64 * 1024 * 1024);
      if (submission.top !== from) return;
      bytes = submission.request;
      req = decodeRequest(bytes);
    } catch {
      return;
    }
    const digestHex = toHex(digestOf(bytes));
    const cached = cache.get(digestHex);
    if (cached) {
      // Already executed: answer from the reply cache, never execute again.
      const mine = cached.perReplica[i];
      if (mine) send(i, from, [mine.item], mine.partial, cached.seq);
      return;
    }
    const p = pendingByDigest.get(digestHex);
    if (p) {
      p.tops.add(from);
      return;
    }
    const entry: PendingReq = { digestHex, req, tops: new Set([from]) };
    pending.push(entry);
    pendingByDigest.set(digestHex, entry);
    schedule();
  };

  const servers: PeerServer[] = [];
  const senders = new Map(tops.map((t) => [t.id, fromHex(t.identityPublicKey)]));
  try {
    for (const [i, r] of cluster.replicas.entries()) {
      const addr = listenAddress(r.url);
      servers.push(
        await startPeerServer({
          host: addr.host,
          port: addr.port,
          self: r.id,
          senders,
          identity: signers[i]!,
          allowed: (from, kind) => topIds.has(from) && kind === MessageKind.Request,
          onMessages: (from, messages) => {
            for (const m of messages) onRequest(i, from, m.payload);
          },
        }),
      );
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.close()));
    throw err;
  }

  return {
    executions,
    received,
    batches: () => seq,
    log,
    setView(v: number) {
      view = v;
    },
    update(u) {
      behaviour = {
        differ: u.differ ? new Set(u.differ) : behaviour.differ,
        garbage: u.garbage ? new Set(u.garbage) : behaviour.garbage,
        silent: u.silent ? new Set(u.silent) : behaviour.silent,
        dropDirect: u.dropDirect ? new Set(u.dropDirect) : behaviour.dropDirect,
        delays: u.delays ?? behaviour.delays,
      };
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      await Promise.all([...servers.map((s) => s.close()), ...links.flatMap((m) => [...m.values()].map((l) => l.close()))]);
    },
  };
}
