import type { CanonicalReply } from '../codec/canonical.js';
import type { ReleasePolicy } from '../cluster/config.js';
import type { SignedReply } from '../reply/signed-reply.js';
import type { FailCode } from '../wire/payloads.js';

/**
 * The query queue of one firewall node (Figure 4 of the paper): request digests in arrival order,
 * replies held as pending once verified, and release strictly in queue order (invariant I2).
 *
 * - Every queued entry ends with exactly one outcome: the verified signed reply, a Fail that came
 *   from above, or a local timeout. Outcomes may arrive in any order; releases never do.
 * - Duplicate digests (a client sending the same nonce and request twice through one chain) get
 *   one entry each. Between firewall nodes one Reply/Fail message resolves exactly one waiting
 *   entry (the earliest one with that digest), and every node releases one message per entry, so
 *   duplicates stay paired hop by hop; the top resolves all entries of a digest with the one
 *   signed reply the replicas produce (`resolveAll`).
 * - Timeouts: every entry of one node has the same timeout, so deadlines grow in queue order and
 *   one timer armed for the earliest waiting entry suffices. A timed-out entry is released in
 *   order like any other outcome, so it also unblocks the entries queued behind it.
 * - `quantized` release: outcomes are released only on multiples of `quantumMs` of the wall
 *   clock (the same grid on every node), which coarsens the timing channel (see timeouts.ts).
 * - The queue is bounded (I8): `enqueue` refuses beyond `maxQueue` and the caller answers 503.
 */
export type Outcome =
  | {
      kind: 'reply';
      signed: SignedReply;
      reply: CanonicalReply;
      /** The encoded Reply payload as received (forwarded as-is below the top). */
      payload?: Uint8Array;
    }
  | { kind: 'fail'; code: FailCode; local?: boolean };

export interface Entry<Ctx> {
  readonly digestHex: string;
  readonly digest: Uint8Array;
  readonly ctx: Ctx;
  readonly enqueuedAt: number;
  readonly deadline: number;
  outcome?: Outcome;
}

export interface ReleaseQueueOptions<Ctx> {
  maxQueue: number;
  timeoutMs: number;
  policy: ReleasePolicy;
  quantumMs: number;
  /** Called once per entry, in queue order. */
  onRelease(entry: Entry<Ctx>, outcome: Outcome): void;
  /** The fail code a local timeout gives an entry (the top tells 502 from 504 here). */
  timeoutCode(entry: Entry<Ctx>): FailCode;
  /** Called when an entry gets its outcome (before its release), e.g. to free per-digest state. */
  onSettled?(entry: Entry<Ctx>): void;
  /** Monotonic clock in ms (tests may inject one). */
  now?: () => number;
  /** Wall clock in ms for the quantized grid. */
  wallNow?: () => number;
  /** How many released/timed-out digests are remembered to classify late and replayed messages. */
  recentLimit?: number;
}

export type UnknownKind = 'replayed' | 'late' | 'unknown';

export class ReleaseQueue<Ctx> {
  private items: Array<Entry<Ctx> | undefined> = [];
  private head = 0;
  private readonly waiting = new Map<string, Array<Entry<Ctx>>>();
  private readonly recent = new Map<string, 'released' | 'timed-out'>();
  private timeoutTimer: NodeJS.Timeout | undefined;
  private timeoutAt = Infinity;
  private tickTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private emptyWaiters: Array<() => void> = [];
  private readonly now: () => number;
  private readonly wallNow: () => number;
  private readonly recentLimit: number;

  constructor(private readonly o: ReleaseQueueOptions<Ctx>) {
    this.now = o.now ?? (() => performance.now());
    this.wallNow = o.wallNow ?? (() => Date.now());
    this.recentLimit = o.recentLimit ?? 16_384;
  }

  /** Entries queued and not yet released. */
  get size(): number {
    return this.items.length - this.head;
  }

  get capacity(): number {
    return this.o.maxQueue;
  }

  get full(): boolean {
    return this.size >= this.o.maxQueue;
  }

  /** Whether some queued entry with this digest still waits for its outcome. */
  isWaiting(digestHex: string): boolean {
    return this.waiting.has(digestHex);
  }

  waitingCount(digestHex: string): number {
    return this.waiting.get(digestHex)?.length ?? 0;
  }

  /** Why a message for a digest with no waiting entry came: a replay, a late answer, or unknown. */
  classify(digestHex: string): UnknownKind {
    const r = this.recent.get(digestHex);
    return r === 'released' ? 'replayed' : r === 'timed-out' ? 'late' : 'unknown';
  }

  /** Appends a digest; undefined when the queue is full (the caller answers overload). */
  enqueue(digest: Uint8Array, digestHex: string, ctx: Ctx): Entry<Ctx> | undefined {
    if (this.closed || this.full) return undefined;
    const now = this.now();
    const entry: Entry<Ctx> = { digestHex, digest, ctx, enqueuedAt: now, deadline: now + this.o.timeoutMs };
    this.items.push(entry);
    const list = this.waiting.get(digestHex);
    if (list) list.push(entry);
    else this.waiting.set(digestHex, [entry]);
    if (this.timeoutTimer === undefined) this.armTimeout(entry.deadline);
    return entry;
  }

  /** Gives the earliest waiting entry with this digest its outcome; false if none waits. */
  resolveOne(digestHex: string, outcome: Outcome): boolean {
    const list = this.waiting.get(digestHex);
    if (!list) return false;
    const entry = list.shift()!;
    if (list.length === 0) this.waiting.delete(digestHex);
    this.settle(entry, outcome, 'released');
    this.afterOutcome();
    return true;
  }

  /** Gives one specific waiting entry its outcome (e.g. the link refused to carry it up). */
  resolveEntry(entry: Entry<Ctx>, outcome: Outcome): boolean {
    const list = this.waiting.get(entry.digestHex);
    const at = list ? list.indexOf(entry) : -1;
    if (!list || at < 0) return false;
    list.splice(at, 1);
    if (list.length === 0) this.waiting.delete(entry.digestHex);
    this.settle(entry, outcome, 'released');
    this.afterOutcome();
    return true;
  }

  /** Gives every waiting entry with this digest the same outcome; returns how many. */
  resolveAll(digestHex: string, outcome: Outcome): number {
    const list = this.waiting.get(digestHex);
    if (!list) return 0;
    this.waiting.delete(digestHex);
    for (const entry of list) this.settle(entry, outcome, 'released');
    this.afterOutcome();
    return list.length;
  }

  /** Fails every waiting entry (shutdown after the drain deadline); releases stay in order. */
  failAll(code: FailCode): void {
    const lists = [...this.waiting.values()];
    this.waiting.clear();
    for (const list of lists) for (const entry of list) this.settle(entry, { kind: 'fail', code, local: true }, 'timed-out');
    this.releaseNow();
  }

  /** Resolves once nothing is queued. */
  drained(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.timeoutTimer = undefined;
    this.tickTimer = undefined;
    for (const w of this.emptyWaiters.splice(0)) w();
  }

  private settle(entry: Entry<Ctx>, outcome: Outcome, mark: 'released' | 'timed-out'): void {
    entry.outcome = outcome;
    this.remember(entry.digestHex, mark);
    this.o.onSettled?.(entry);
  }

  private remember(digestHex: string, mark: 'released' | 'timed-out'): void {
    this.recent.delete(digestHex);
    this.recent.set(digestHex, mark);
    if (this.recent.size > this.recentLimit) this.recent.delete(this.recent.keys().next().value as string);
  }

  private afterOutcome(): void {
    const first = this.items[this.head];
    if (!first?.outcome) return;
    if (this.o.policy === 'immediate') this.releaseNow();
    else this.scheduleTick();
  }

  private scheduleTick(): void {
    if (this.tickTimer !== undefined || this.closed) return;
    const q = this.o.quantumMs;
    const delay = q - (this.wallNow() % q);
    this.tickTimer = setTimeout(() => {
      this.tickTimer = undefined;
      this.releaseNow();
    }, delay);
  }

  private releaseNow(): void {
    while (this.head < this.items.length) {
      const entry = this.items[this.head]!;
      if (!entry.outcome) break;
      this.items[this.head] = undefined;
      this.head++;
      try {
        this.o.onRelease(entry, entry.outcome);
      } catch {
        // A release callback must not stop the queue; callers log their own errors.
      }
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (this.size === 0) {
      this.items = [];
      this.head = 0;
      for (const w of this.emptyWaiters.splice(0)) w();
    }
  }

  // --- timeouts ---------------------------------------------------------------------------

  private armTimeout(at: number): void {
    if (this.closed) return;
    if (this.timeoutTimer !== undefined) {
      if (at >= this.timeoutAt) return;
      clearTimeout(this.timeoutTimer);
    }
    this.timeoutAt = at;
    this.timeoutTimer = setTimeout(() => this.expire(), Math.max(0, at - this.now()) + 1);
  }

  private expire(): void {
    this.timeoutTimer = undefined;
    this.timeoutAt = Infinity;
    const now = this.now();
    let next: number | undefined;
    let expired = false;
    for (let i = this.head; i < this.items.length; i++) {
      const entry = this.items[i]!;
      if (entry.outcome) continue;
      if (entry.deadline > now) {
        next = entry.deadline;
        break;
      }
      const list = this.waiting.get(entry.digestHex);
      if (list) {
        const at = list.indexOf(entry);
        if (at >= 0) list.splice(at, 1);
        if (list.length === 0) this.waiting.delete(entry.digestHex);
      }
      this.settle(entry, { kind: 'fail', code: this.o.timeoutCode(entry), local: true }, 'timed-out');
      expired = true;
    }
    if (expired) this.afterOutcome();
    if (next !== undefined) this.armTimeout(next);
  }
}
