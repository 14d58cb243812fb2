// A steady, bounded load for the fault suite: `clients` concurrent loops, each issuing at most
// `ratePerClient` logical requests per second. Like createClient, every attempt goes to the
// bottom node of every chain with one nonce, and a logical request is retried with the SAME
// nonce until one verified reply arrives (or its deadline passes: it is then counted as lost).
// Unlike createClient, which silently skips answers it cannot verify, every single response is
// classified here, including the ones that arrive after the accepted answer:
//   - signed: it must verify (threshold signature, Merkle proof, this request's digest) and be
//     the right answer (op.check); every verified answer for one nonce must name the same effect
//     (e.g. the same transfer id: a retry must never execute twice). Otherwise it is WRONG.
//   - unsigned: it must be one of the firewall's own fixed errors (JSON {"error", "message"} with
//     the documented status); anything else unsigned reaching a client is WRONG (I1).
//   - no response (refused, reset, timeout): counted as a connection error, retried.

import { randomBytes } from 'node:crypto';
import { Pool } from 'undici';
import { toHex, utf8 } from '../../../src/codec/binary.js';
import { digestOf, encodeRequest } from '../../../src/codec/canonical.js';
import { allowlist, canonicalHeaders, DEFAULT_FORWARD_HEADERS } from '../../../src/codec/headers.js';
import type { ClusterConfig } from '../../../src/cluster/config.js';
import { ResponseVerifier } from '../../../src/client/verify-response.js';
import { sleep } from './cluster.js';

export interface Op {
  /** A name for the request, unique in the run (the counting service's key). */
  key: string;
  method: string;
  path: string;
  headers: Array<[string, string]>;
  body: string;
  /** undefined when a verified reply is the right answer to this request, else why not. */
  check(r: Answer): string | undefined;
  /** What the request did (e.g. the transfer id); identical for every verified answer to one nonce. */
  effect(r: Answer): string;
}

export interface Answer {
  status: number;
  headers: ReadonlyArray<readonly [string, string]>;
  body: Uint8Array;
  json(): unknown;
}

export interface Acked {
  key: string;
  nonce: string;
  digest: string;
  effect: string;
  body: unknown;
  sentAt: number;
  ackAt: number;
  attempts: number;
  chain: number;
}

export interface Lost {
  key: string;
  nonce: string;
  digest: string;
  sentAt: number;
  attempts: number;
  lastReasons: string[];
}

/** The firewall's documented fixed errors (DESIGN.md "external contract", front.ts). */
export const FIREWALL_ERRORS: Record<string, number[]> = {
  malformed_request: [400, 408],
  body_too_large: [413],
  headers_too_large: [431],
  replicas_disagree: [502],
  bad_reply: [502],
  overloaded: [503],
  not_ready: [503],
  timeout: [504],
};

export interface Classified {
  kind: 'verified' | 'error' | 'wrong' | 'conn';
  /** error code, connection error code, or why it is wrong */
  detail: string;
  status?: number;
}

/** Classifies one HTTP response a client got for a request with this digest. */
export function classifyResponse(verifier: ResponseVerifier, digest: string, status: number, headers: Array<[string, string]>, body: Uint8Array): Classified & { answer?: Answer } {
  const check = verifier.check({ status, headers, body }, digest);
  if (check.ok) {
    const answer: Answer = {
      status: check.status,
      headers: check.headers,
      body: check.body,
      json: () => JSON.parse(Buffer.from(check.body).toString('utf8')) as unknown,
    };
    return { kind: 'verified', detail: String(check.status), status, answer };
  }
  if (!check.unsigned) return { kind: 'wrong', detail: `signed reply that does not verify: ${check.reason}`, status };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    return { kind: 'wrong', detail: `unsigned ${status} that is not a firewall error: ${Buffer.from(body).toString('latin1').slice(0, 80)}`, status };
  }
  const code = (parsed as { error?: unknown } | null)?.error;
  const message = (parsed as { message?: unknown } | null)?.message;
  const keys = parsed && typeof parsed === 'object' ? Object.keys(parsed).sort().join(',') : '';
  if (typeof code !== 'string' || typeof message !== 'string' || keys !== 'error,message' || !FIREWALL_ERRORS[code]?.includes(status)) {
    return { kind: 'wrong', detail: `unsigned ${status} that is not a documented firewall error: ${Buffer.from(body).toString('latin1').slice(0, 120)}`, status };
  }
  const ct = headers.find(([n]) => n.toLowerCase() === 'content-type')?.[1];
  if (ct !== 'application/json') return { kind: 'wrong', detail: `firewall error with content-type ${ct}`, status };
  return { kind: 'error', detail: code, status };
}

export interface LoadOptions {
  cluster: ClusterConfig;
  clients: number;
  ratePerClient: number;
  make(client: number, k: number): Op;
  /** Per attempt (all chains); default the cluster's request timeout + 1.5 s. */
  attemptTimeoutMs?: number;
  /** A logical request not acknowledged within this is lost. */
  requestDeadlineMs?: number;
  backoffMs?: number;
  chains?: number[];
}

export interface Event {
  at: number;
  kind: Classified['kind'];
  detail: string;
  chain: number;
}

export interface WindowStats {
  from: number;
  to: number;
  acked: number;
  ratePerSec: number;
  /** Longest stretch without an acknowledgement inside the window (ms). */
  maxGapMs: number;
  errors: Record<string, number>;
  conn: number;
}

export class LoadGen {
  readonly acked: Acked[] = [];
  readonly lost: Lost[] = [];
  readonly wrong: Array<{ key: string; nonce: string; chain: number; detail: string; at: number }> = [];
  readonly events: Event[] = [];
  private readonly verifier: ResponseVerifier;
  private readonly forwardAllow: Set<string>;
  private readonly pools: Array<{ chain: number; pool: Pool }>;
  private readonly probePools = new Map<number, { chain: number; pool: Pool }>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly effects = new Map<string, string>();
  private loops: Array<Promise<void>> = [];
  private stopped = false;
  private readonly attemptTimeoutMs: number;
  private readonly deadlineMs: number;
  private readonly backoffMs: number;
  private readonly run = toHex(randomBytes(3));
  private probes = 0;
  startedAt = 0;

  constructor(private readonly o: LoadOptions) {
    this.verifier = new ResponseVerifier(o.cluster);
    this.forwardAllow = allowlist(DEFAULT_FORWARD_HEADERS, o.cluster.service.forwardHeaders);
    const chains = o.chains ?? o.cluster.chains.map((_, i) => i);
    this.pools = chains.map((chain) => ({ chain, pool: new Pool(o.cluster.chains[chain]![0]!.url, { connections: Math.max(2, o.clients + 2), keepAliveTimeout: 4_000 }) }));
    this.attemptTimeoutMs = o.attemptTimeoutMs ?? o.cluster.firewall.requestTimeoutMs + 1_500;
    this.deadlineMs = o.requestDeadlineMs ?? 90_000;
    this.backoffMs = o.backoffMs ?? 200;
  }

  start(): this {
    this.startedAt = Date.now();
    this.loops = Array.from({ length: this.o.clients }, (_, c) => this.loop(c));
    return this;
  }

  /** Stops issuing requests, waits until every logical request was acknowledged or lost. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    while (this.background.size > 0) await Promise.all([...this.background]);
  }

  async close(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.pools, ...this.probePools.values()].map((p) => p.pool.destroy().catch(() => undefined)));
  }

  private async loop(client: number): Promise<void> {
    const interval = 1000 / this.o.ratePerClient;
    for (let k = 0; !this.stopped; k++) {
      const t0 = Date.now();
      await this.logical(this.o.make(client, k), this.pools);
      const wait = interval - (Date.now() - t0);
      if (wait > 0 && !this.stopped) await sleep(wait);
    }
  }

  /**
   * One request through one chain, single attempt, e.g. to see whether that chain serves again.
   * Use a read-only op. Resolves with whether a verified, right answer came back.
   */
  async probe(chain: number, op: Op): Promise<boolean> {
    this.probes++;
    // Its own connection: a probe must not wait behind the load's requests to a stalled chain.
    let pool = this.probePools.get(chain);
    if (!pool) {
      const bottom = this.o.cluster.chains[chain]?.[0];
      if (!bottom) throw new Error(`no chain ${chain}`);
      pool = { chain, pool: new Pool(bottom.url, { connections: 1, keepAliveTimeout: 4_000 }) };
      this.probePools.set(chain, pool);
    }
    const nonce = toHex(randomBytes(16));
    const digest = this.digest(op, nonce);
    const r = await this.attemptOne(pool, op, nonce, digest);
    return r.kind === 'verified';
  }

  nextKey(prefix: string): string {
    return `${prefix}-${this.run}-${this.probes++}`;
  }

  private digest(op: Op, nonce: string): string {
    return toHex(
      digestOf(encodeRequest({ nonce: Buffer.from(nonce, 'hex'), method: op.method, target: op.path, headers: canonicalHeaders(op.headers, this.forwardAllow), body: utf8(op.body) })),
    );
  }

  private async logical(op: Op, pools: Array<{ chain: number; pool: Pool }>): Promise<void> {
    const nonce = toHex(randomBytes(16));
    const digest = this.digest(op, nonce);
    const sentAt = Date.now();
    let reasons: string[] = [];
    for (let attempt = 1; ; attempt++) {
      const result = await new Promise<{ ack?: { chain: number; answer: Answer; effect: string }; reasons: string[] }>((resolve) => {
        let pending = pools.length;
        const reasons: string[] = [];
        let done = false;
        for (const p of pools) {
          const pr = this.attemptOne(p, op, nonce, digest).then((r) => {
            if (done) return;
            if (r.kind === 'verified' && r.answer && r.effect !== undefined) {
              done = true;
              resolve({ ack: { chain: p.chain, answer: r.answer, effect: r.effect }, reasons });
              return;
            }
            reasons.push(`chain ${p.chain}: ${r.kind} ${r.detail}`);
            if (--pending === 0) resolve({ reasons });
          });
          // Answers arriving after the accepted one are still checked before the run ends.
          this.background.add(pr);
          void pr.finally(() => this.background.delete(pr));
        }
      });
      if (result.ack) {
        this.acked.push({ key: op.key, nonce, digest, effect: result.ack.effect, body: result.ack.answer.json(), sentAt, ackAt: Date.now(), attempts: attempt, chain: result.ack.chain });
        return;
      }
      reasons = result.reasons;
      if (Date.now() - sentAt > this.deadlineMs) {
        this.lost.push({ key: op.key, nonce, digest, sentAt, attempts: attempt, lastReasons: reasons });
        return;
      }
      await sleep(this.backoffMs);
    }
  }

  private async attemptOne(p: { chain: number; pool: Pool }, op: Op, nonce: string, digest: string): Promise<Classified & { answer?: Answer; effect?: string }> {
    const flat: string[] = [];
    for (const [n, v] of op.headers) flat.push(n, v);
    flat.push('cbft-nonce', nonce);
    let c: Classified & { answer?: Answer; effect?: string };
    try {
      const res = await p.pool.request({
        method: op.method,
        path: op.path,
        headers: flat,
        body: op.body.length > 0 || !['GET', 'HEAD'].includes(op.method) ? op.body : undefined,
        signal: AbortSignal.timeout(this.attemptTimeoutMs),
        headersTimeout: this.attemptTimeoutMs,
        bodyTimeout: this.attemptTimeoutMs,
      });
      const body = new Uint8Array(await res.body.arrayBuffer());
      const pairs: Array<[string, string]> = [];
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) pairs.push([name, v]);
      }
      c = classifyResponse(this.verifier, digest, res.statusCode, pairs, body);
      if (c.kind === 'verified' && c.answer) {
        const why = op.check(c.answer);
        if (why !== undefined) {
          c = { kind: 'wrong', detail: `verified but wrong answer: ${why}`, status: res.statusCode };
        } else {
          const effect = op.effect(c.answer);
          const prev = this.effects.get(nonce);
          if (prev !== undefined && prev !== effect) c = { kind: 'wrong', detail: `same nonce, different effect: ${prev} then ${effect} (executed twice?)`, status: res.statusCode };
          else {
            this.effects.set(nonce, effect);
            c.effect = effect;
          }
        }
      }
    } catch (err) {
      const e = err as { code?: string; name?: string; message: string; cause?: { code?: string } };
      c = { kind: 'conn', detail: e.code ?? e.cause?.code ?? e.name ?? e.message };
    }
    const at = Date.now();
    this.events.push({ at, kind: c.kind, detail: c.detail, chain: p.chain });
    if (c.kind === 'wrong') this.wrong.push({ key: op.key, nonce, chain: p.chain, detail: c.detail, at });
    return c;
  }

  /** Acknowledgements, errors and gaps between two instants. */
  window(from: number, to: number): WindowStats {
    const acks = this.acked.filter((a) => a.ackAt >= from && a.ackAt <= to).map((a) => a.ackAt).sort((a, b) => a - b);
    let maxGap = 0;
    let prev = from;
    for (const t of acks) {
      maxGap = Math.max(maxGap, t - prev);
      prev = t;
    }
    maxGap = Math.max(maxGap, to - prev);
    const errors: Record<string, number> = {};
    let conn = 0;
    for (const e of this.events) {
      if (e.at < from || e.at > to) continue;
      if (e.kind === 'error') errors[e.detail] = (errors[e.detail] ?? 0) + 1;
      if (e.kind === 'conn') conn++;
    }
    const secs = Math.max(0.001, (to - from) / 1000);
    return { from, to, acked: acks.length, ratePerSec: acks.length / secs, maxGapMs: maxGap, errors, conn };
  }

  /** First instant after `t` at which a request sent at or after `t` was acknowledged. */
  firstAckSentAfter(t: number): number | undefined {
    let best: number | undefined;
    for (const a of this.acked) if (a.sentAt >= t && (best === undefined || a.ackAt < best)) best = a.ackAt;
    return best;
  }

  ackCount(): number {
    return this.acked.length;
  }
}

// ---------------------------------------------------------------------------------------------
// Workloads

const BANK_PAIRS: Array<[string, string]> = [
  ['acc-1', 'acc-2'],
  ['acc-3', 'acc-4'],
  ['acc-5', 'acc-6'],
  ['acc-7', 'acc-8'],
];

/** Bank transfers of 1 cent between fixed account pairs (the sources hold enough for millions). */
export function bankTransfer(prefix: string) {
  return (client: number, k: number): Op => {
    const [from, to] = BANK_PAIRS[client % BANK_PAIRS.length]!;
    const amount = 1 + ((client + k) % 3);
    return {
      key: `${prefix}-c${client}-${k}`,
      method: 'POST',
      path: '/transfers',
      headers: [
        ['content-type', 'application/json'],
        ['authorization', `Bearer token-${from}`],
      ],
      body: JSON.stringify({ from, to, amount }),
      check: (r) => {
        if (r.status !== 201) return `status ${r.status}: ${Buffer.from(r.body).toString('utf8').slice(0, 120)}`;
        const t = r.json() as { id?: string; from?: string; to?: string; amount?: number; createdAt?: string };
        if (t.from !== from || t.to !== to || t.amount !== amount) return `transfer ${JSON.stringify(t)} is not ${from}->${to} ${amount}`;
        if (typeof t.id !== 'string' || !/^[0-9a-f-]{36}$/.test(t.id)) return `transfer id ${t.id}`;
        const loc = r.headers.find(([n]) => n === 'location')?.[1];
        if (loc !== `/transfers/${t.id}`) return `location ${loc} for transfer ${t.id}`;
        return undefined;
      },
      effect: (r) => (r.json() as { id: string }).id,
    };
  };
}

/** A read-only bank request (for probes). */
export function bankRead(key: string): Op {
  return {
    key,
    method: 'GET',
    path: '/accounts/acc-8',
    headers: [['authorization', 'Bearer token-acc-8']],
    body: '',
    check: (r) => (r.status === 200 && (r.json() as { id?: string }).id === 'acc-8' ? undefined : `status ${r.status}`),
    effect: () => 'read',
  };
}

/** Counting-service operations: every one executes once and names its key. */
export function countingOp(prefix: string) {
  return (client: number, k: number): Op => countingKeyOp(`${prefix}-c${client}-${k}`);
}

export function countingKeyOp(key: string): Op {
  return {
    key,
    method: 'POST',
    path: `/op/${key}`,
    headers: [['content-type', 'application/json']],
    body: JSON.stringify({ key }),
    check: (r) => {
      if (r.status !== 200) return `status ${r.status}`;
      const b = r.json() as { key?: string; seq?: string };
      return b.key === key ? undefined : `reply for key ${b.key}, not ${key}`;
    },
    effect: (r) => `${key}@${(r.json() as { seq: string }).seq}`,
  };
}
