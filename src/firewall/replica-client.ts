import { bytesEqual, fromHex, toHex } from '../codec/binary.js';
import { decodeReply, leafHash, type CanonicalReply, type DecodeLimits } from '../codec/canonical.js';
import { batchMessage, rootFromProof } from '../codec/merkle.js';
import type { ReplicaEntry } from '../cluster/config.js';
import type { CryptoBackend, RootVerifier } from './crypto-pool.js';
import { MessageKind } from '../transport/frame.js';
import type { Link } from '../transport/link.js';
import { FailCode, decodePartialReplies, encodeSignedReply, type PartialReplies } from '../wire/payloads.js';
import type { FirewallMetrics } from './metrics.js';
import type { Entry, ReleaseQueue } from './queue.js';

export interface ReplicaClientOptions {
  s: number;
  depth: number;
  replicas: readonly ReplicaEntry[];
  /** One link per replica, indexed by replica index. */
  links: readonly Link[];
  /**
   * Wraps the canonical requests of one submission round for the replicas, one envelope each, in
   * order: the top signs the round (wire/submission.ts) so a faulty primary cannot order requests
   * no top submitted.
   */
  seal: (round: Array<{ request: Uint8Array; digest: Uint8Array }>) => Uint8Array[];
  queue: ReleaseQueue<unknown>;
  verifier: RootVerifier;
  backend: CryptoBackend;
  metrics: FirewallMetrics;
  retransmitMs: number;
  maxReplyBytes: number;
  replyLimits: DecodeLimits;
  now?: () => number;
}

interface Pending {
  /** The canonical request, then (once its round is sealed) the envelope sent to the replicas. */
  bytes: Uint8Array;
  /** The batch root each replica answered with (the first one; a second differing one is equivocation). */
  answers: Map<number, string>;
  nextRetransmit: number;
  /** Wait before the next retransmission: retransmitMs, doubling up to MAX_RETRANSMIT_BACKOFF × it. */
  retransmitDelay: number;
  /** The submission round that carried it to the primary (undefined while still queued). */
  round?: Round;
  /** The first reply received and its leaf hash: identical replies from other replicas reuse it. */
  firstLeaf?: { reply: Uint8Array; leaf: Uint8Array };
}

/** Requests sent to the primary together (one frame, so normally one PBFT batch). */
interface Round {
  remaining: Set<string>;
  expires: number;
}

/**
 * Submission rounds in flight before new requests wait and join the next, bigger round. One:
 * every batch costs a partial signature per replica and a pairing per firewall node, and the
 * whole system is CPU-bound long before the pipeline runs dry, so fewer, bigger batches give more
 * throughput (bench/PROFILE.md: with 2, batches at 32 connections were a third smaller and CPU
 * per request higher). The primary still merges rounds of several tops (adaptive batching).
 */
export const SUBMIT_WINDOW = 1;
/**
 * Retransmissions back off exponentially up to this multiple of retransmitMs. Each one makes
 * every replica send its reply again, so a fixed interval shorter than a loaded cluster's latency
 * (big replies, a slow service) would multiply the load that made it slow: with 1 MiB replies at
 * 32 connections, retransmissions every second sent each reply seven times over and the cluster
 * served 3 requests per second (bench/PROFILE.md).
 */
export const MAX_RETRANSMIT_BACKOFF = 8;
/** At most this many requests per round (a PBFT batch holds at most 2^depth replies anyway). */
export const MAX_ROUND = 256;

interface RootGroup {
  root: Uint8Array;
  message: Uint8Array;
  partials: Map<number, Uint8Array>;
  /** Partials checked one by one and found valid / invalid. */
  good: Set<number>;
  bad: Set<number>;
  items: Map<string, { reply: Uint8Array; proof: Uint8Array; parsed: CanonicalReply }>;
  /** A combine/verify round is running (off the event loop); `again` asks for one more after it. */
  busy: boolean;
  again: boolean;
}

/**
 * The top node's PBFT client role (Figure 5). It submits requests to the primary in rounds: at
 * most SUBMIT_WINDOW rounds are in flight, and requests arriving meanwhile wait and travel
 * together in the next round, so under load the replicas see few big batches (signature and
 * pairing costs are per batch) while a lone request still goes at once. Each request goes to the
 * primary (view mod n, where the view is the highest one that at least s+1 replicas reported, so
 * one lying replica cannot misdirect it), and to every replica after `retransmitMs` without an
 * answer, then again after twice as long, and so on up to MAX_RETRANSMIT_BACKOFF × retransmitMs;
 * the bytes never change, so replicas de-duplicate and answer from their reply cache. Partial
 * replies are grouped by the batch root recomputed from each reply and its proof (never taken
 * from the wire). As soon as s+1 replicas sent partials for the same root they
 * are combined and the result is checked once against the service key; if that fails the
 * partials are checked one by one, the liar is named in an alarm, and the top waits for more.
 * A replica whose reply for a request differs from the one that got signed is named too.
 */
export class ReplicaClient {
  private readonly pending = new Map<string, Pending>();
  /** Requests sent and not answered yet. */
  private readonly sent = new Map<string, Pending>();
  /** Requests waiting for a free submission round. */
  private queued: string[] = [];
  private readonly rounds = new Set<Round>();
  private flushScheduled = false;
  private readonly groups = new Map<string, RootGroup>();
  /** Roots already combined and verified: one more matching reply needs no more partials. */
  private readonly signedRoots = new Map<string, Uint8Array>();
  /** Recently answered digests and the root that answered them, to name late dissenters. */
  private readonly answered = new Map<string, string>();
  private readonly views: number[];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private readonly now: () => number;
  private readonly sharePublicKeys: Uint8Array[];

  constructor(private readonly o: ReplicaClientOptions) {
    this.now = o.now ?? (() => performance.now());
    this.views = o.replicas.map(() => 0);
    this.sharePublicKeys = o.replicas.map((r) => fromHex(r.sharePublicKey));
    o.metrics.primary.set(0);
  }

  /** The replica index this top currently believes is the primary. */
  get primary(): number {
    const sorted = [...this.views].sort((a, b) => b - a);
    const view = sorted[this.o.s] ?? 0;
    return view % this.o.replicas.length;
  }

  /** Whether a digest was submitted and is still unanswered. */
  has(digestHex: string): boolean {
    return this.pending.has(digestHex);
  }

  /**
   * Submits a request (it joins the next round to the primary). False when it cannot even be
   * queued; a refusal of the link at send time resolves its entries as overloaded.
   */
  submit(digestHex: string, bytes: Uint8Array): boolean {
    if (this.pending.has(digestHex)) return true;
    if (this.queued.length >= this.o.queue.capacity) return false;
    this.pending.set(digestHex, { bytes, answers: new Map(), nextRetransmit: Infinity, retransmitDelay: this.o.retransmitMs });
    this.queued.push(digestHex);
    this.scheduleFlush();
    return true;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.rounds.size >= SUBMIT_WINDOW || this.queued.length === 0) return;
    this.flushScheduled = true;
    // Let everything arriving in this tick join the round.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const now = this.now();
    while (this.rounds.size < SUBMIT_WINDOW && this.queued.length > 0) {
      const take = this.queued.splice(0, MAX_ROUND);
      const round: Round = { remaining: new Set(), expires: now + this.o.retransmitMs };
      const link = this.o.links[this.primary]!;
      // Answered or given up while queued: not sent. One signature seals the whole round.
      const live = take.flatMap((d): Array<[string, Pending]> => {
        const p = this.pending.get(d);
        return p ? [[d, p]] : [];
      });
      if (live.length === 0) continue;
      const envelopes = this.o.seal(live.map(([d, p]) => ({ request: p.bytes, digest: fromHex(d) })));
      live.forEach(([, p], i) => (p.bytes = envelopes[i]!));
      for (const [digestHex, p] of live) {
        if (!link.send(MessageKind.Request, p.bytes)) {
          this.o.queue.resolveAll(digestHex, { kind: 'fail', code: FailCode.Overloaded, local: true });
          continue;
        }
        p.round = round;
        p.nextRetransmit = now + this.o.retransmitMs;
        round.remaining.add(digestHex);
        this.sent.set(digestHex, p);
      }
      if (round.remaining.size > 0) this.rounds.add(round);
    }
    if (this.sent.size > 0) this.arm(now + this.o.retransmitMs);
  }

  /** A request of a round got its answer (or was given up): the round may be complete. */
  private done(p: Pending, digestHex: string): void {
    const round = p.round;
    if (!round) return;
    p.round = undefined;
    round.remaining.delete(digestHex);
    if (round.remaining.size === 0 && this.rounds.delete(round)) this.scheduleFlush();
  }

  /** The fail code for a request the top gives up on: 502 if replicas answered without agreeing. */
  timeoutCode(entry: Entry<unknown>): FailCode {
    const p = this.pending.get(entry.digestHex);
    return p && p.answers.size > 0 ? FailCode.ReplicasDisagree : FailCode.Timeout;
  }

  /** Called when a queue entry settles: forget the request once no entry waits for it. */
  settled(digestHex: string): void {
    if (this.o.queue.isWaiting(digestHex)) return;
    const p = this.pending.get(digestHex);
    if (!p) return;
    this.pending.delete(digestHex);
    this.sent.delete(digestHex);
    this.done(p, digestHex);
    for (const rootHex of new Set(p.answers.values())) {
      const g = this.groups.get(rootHex);
      if (!g) continue;
      g.items.delete(digestHex);
      if (g.items.size === 0) this.groups.delete(rootHex);
    }
  }

  onPartial(from: string, payload: Uint8Array): void {
    const { metrics } = this.o;
    const replica = this.o.replicas.find((r) => r.id === from);
    if (!replica) return;
    const idx = replica.index;
    metrics.partials.inc();
    let p: PartialReplies;
    try {
      p = decodePartialReplies(payload, this.o.maxReplyBytes);
    } catch {
      metrics.alarm('malformed-partial', from);
      return;
    }
    if (p.view > this.views[idx]!) {
      this.views[idx] = p.view;
      metrics.primary.set(this.primary);
    }
    // Every item of one message belongs to one batch: one root.
    let rootHex: string | undefined;
    let root: Uint8Array | undefined;
    const parsed: Array<{ digestHex: string; reply: Uint8Array; proof: Uint8Array; parsed: CanonicalReply }> = [];
    for (const item of p.items) {
      let r: Uint8Array;
      let reply: CanonicalReply;
      let digestHex: string;
      try {
        reply = decodeReply(item.reply, this.o.replyLimits);
        digestHex = toHex(reply.requestDigest);
        r = rootFromProof(this.leafOf(digestHex, item.reply), item.proof, this.o.depth);
      } catch {
        metrics.alarm('bad-proof', from);
        return;
      }
      const h = toHex(r);
      if (rootHex === undefined) {
        rootHex = h;
        root = r;
      } else if (h !== rootHex) {
        metrics.alarm('bad-proof', from, { detail: 'items of one partial lead to different roots' });
        return;
      }
      parsed.push({ digestHex, reply: item.reply, proof: item.proof, parsed: reply });
    }
    if (rootHex === undefined || root === undefined) return;

    const known = this.signedRoots.get(rootHex);
    let group = known ? undefined : this.groups.get(rootHex);
    let added = 0;
    for (const item of parsed) {
      const pend = this.pending.get(item.digestHex);
      if (!pend) {
        const answeredRoot = this.answered.get(item.digestHex);
        if (answeredRoot === undefined) metrics.alarm('unsolicited-reply', from, { digest: item.digestHex });
        else if (answeredRoot !== rootHex) metrics.alarm('replica-mismatch', from, { digest: item.digestHex });
        continue;
      }
      const prev = pend.answers.get(idx);
      if (prev !== undefined && prev !== rootHex) {
        metrics.alarm('equivocation', from, { digest: item.digestHex });
        continue;
      }
      pend.answers.set(idx, rootHex);
      if (known) {
        this.resolve(item.digestHex, rootHex, item.reply, item.proof, item.parsed, known);
        continue;
      }
      group ??= this.newGroup(rootHex, root);
      if (!group.items.has(item.digestHex)) group.items.set(item.digestHex, { reply: item.reply, proof: item.proof, parsed: item.parsed });
      added++;
    }
    if (!group || known) return;
    if (group.items.size === 0) {
      this.groups.delete(rootHex);
      return;
    }
    if (added > 0 && !group.partials.has(idx) && !group.bad.has(idx)) group.partials.set(idx, p.partial);
    this.tryCombine(rootHex, group);
  }

  /**
   * The Merkle leaf of a reply. Correct replicas send identical bytes, and comparing them costs a
   * fraction of hashing them again (which dominated the top's time with 1 MiB replies).
   */
  private leafOf(digestHex: string, reply: Uint8Array): Uint8Array {
    const pend = this.pending.get(digestHex);
    const first = pend?.firstLeaf;
    if (first && bytesEqual(first.reply, reply)) return first.leaf;
    const leaf = leafHash(reply);
    if (pend && !first) pend.firstLeaf = { reply, leaf };
    return leaf;
  }

  private newGroup(rootHex: string, root: Uint8Array): RootGroup {
    const g: RootGroup = { root, message: batchMessage(root, this.o.depth), partials: new Map(), good: new Set(), bad: new Set(), items: new Map(), busy: false, again: false };
    this.groups.set(rootHex, g);
    return g;
  }

  private tryCombine(rootHex: string, g: RootGroup): void {
    const threshold = this.o.s + 1;
    if (g.partials.size < threshold) return;
    if (g.busy) {
      g.again = true;
      return;
    }
    g.busy = true;
    void this.combineRound(rootHex, g, threshold).finally(() => {
      g.busy = false;
      const again = g.again;
      g.again = false;
      if (again && this.groups.get(rootHex) === g) this.tryCombine(rootHex, g);
    });
  }

  /** One round: combine s+1 partials, check once; on failure check them one by one. */
  private async combineRound(rootHex: string, g: RootGroup, threshold: number): Promise<void> {
    // Prefer partials already known to be good.
    const order = [...g.partials.keys()].sort((a, b) => Number(g.good.has(b)) - Number(g.good.has(a)));
    const chosen = order.slice(0, threshold);
    const t0 = performance.now();
    let signature: Uint8Array | undefined;
    try {
      signature = await this.o.backend.combine(
        chosen.map((i) => ({ index: this.o.replicas[i]!.shareIndex, signature: g.partials.get(i)! })),
        threshold,
      );
    } catch {
      signature = undefined;
    }
    this.o.metrics.combineSeconds.observe((performance.now() - t0) / 1000);
    if (signature && (await this.o.verifier.check(g.root, signature))) {
      this.accept(rootHex, g, signature);
      return;
    }
    // Some chosen partial is bad: check them one by one, name the liars, keep the good ones.
    const unchecked = chosen.filter((i) => !g.good.has(i));
    const results = await this.o.backend.verifyMany(
      g.message,
      unchecked.map((i) => ({ publicKey: this.sharePublicKeys[i]!, signature: g.partials.get(i)! })),
    );
    unchecked.forEach((i, k) => {
      if (results[k]) {
        g.good.add(i);
      } else {
        g.partials.delete(i);
        g.bad.add(i);
        this.o.metrics.alarm('bad-partial', this.o.replicas[i]!.id, { root: rootHex });
      }
    });
    if (g.partials.size >= threshold) g.again = true;
  }

  private accept(rootHex: string, g: RootGroup, signature: Uint8Array): void {
    if (this.groups.get(rootHex) === g) this.groups.delete(rootHex);
    this.signedRoots.set(rootHex, signature);
    if (this.signedRoots.size > 4096) this.signedRoots.delete(this.signedRoots.keys().next().value as string);
    for (const [digestHex, item] of g.items) this.resolve(digestHex, rootHex, item.reply, item.proof, item.parsed, signature);
  }

  private resolve(digestHex: string, rootHex: string, reply: Uint8Array, proof: Uint8Array, parsed: CanonicalReply, signature: Uint8Array): void {
    const pend = this.pending.get(digestHex);
    if (!pend) return;
    // Replicas whose answer for this request led to another root disagreed with s+1 others.
    for (const [idx, r] of pend.answers) {
      if (r !== rootHex) this.o.metrics.alarm('replica-mismatch', this.o.replicas[idx]!.id, { digest: digestHex });
    }
    this.answered.set(digestHex, rootHex);
    if (this.answered.size > 16_384) this.answered.delete(this.answered.keys().next().value as string);
    const signed = { reply, proof, signature };
    this.o.queue.resolveAll(digestHex, { kind: 'reply', signed, reply: parsed, payload: encodeSignedReply(signed) });
    // resolveAll settles the entries, which calls settled() and forgets `pending`.
  }

  // --- retransmission ---------------------------------------------------------------------

  private arm(at: number): void {
    if (this.timer !== undefined) {
      if (at >= this.timerAt) return;
      clearTimeout(this.timer);
    }
    this.timerAt = at;
    this.timer = setTimeout(() => this.retransmit(), Math.max(0, at - this.now()) + 1);
    this.timer.unref();
  }

  private retransmit(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.now();
    // A round that is not fully answered in time no longer holds back new rounds.
    for (const round of [...this.rounds]) {
      if (round.expires <= now) this.rounds.delete(round);
    }
    // Requests due within a quarter of the base interval go now too, so that timers stay few.
    const horizon = now + this.o.retransmitMs / 4;
    let next = Infinity;
    for (const p of this.sent.values()) {
      if (p.nextRetransmit <= horizon) {
        p.retransmitDelay = Math.min(p.retransmitDelay * 2, this.o.retransmitMs * MAX_RETRANSMIT_BACKOFF);
        p.nextRetransmit = now + p.retransmitDelay;
        this.o.metrics.retransmissions.inc();
        for (const link of this.o.links) link.send(MessageKind.Request, p.bytes);
      }
      next = Math.min(next, p.nextRetransmit);
    }
    this.scheduleFlush();
    if (next < Infinity) this.arm(next);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
