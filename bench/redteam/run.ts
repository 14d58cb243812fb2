import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { createClient, type CbftClient } from '../../src/client/client.js';
import { ResponseVerifier } from '../../src/client/verify-response.js';
import { toHex, utf8 } from '../../src/codec/binary.js';
import { digestOf, encodeRequest } from '../../src/codec/canonical.js';
import { allowlist, canonicalHeaders, DEFAULT_FORWARD_HEADERS } from '../../src/codec/headers.js';
import type { ClusterConfig } from '../../src/cluster/config.js';
import { portCount } from '../../src/cluster/keygen.js';
import { ManagedChild } from '../../src/up/child.js';
import { BANK_SERVER, CLI_PATH, NODE_ADAPTER, PACKAGE_ROOT, startLocalCluster, type LocalCluster } from '../../src/up/local-cluster.js';
import { findFreeRange, waitForPort } from '../../src/up/ports.js';
import { bestThreshold, decode, estimateCapacity, median, prng, type CapacityEstimate, type Sample } from './capacity.js';
import { BankModel, compare, FIREWALL_ERRORS, RAW_HEADER_NAMES, type Account, type Expected, type Transfer } from './oracle.js';
import { rawRequest, type RawResponse } from './raw-client.js';
import { startDelayRelay, type DelayRelay } from './relay.js';
import { Scanner, secretSet } from './scan.js';

export const LEAKY_SERVER = join(PACKAGE_ROOT, 'examples', 'leaky-replica', 'server.mjs');
export const CONTENT_CHANNELS = ['none', 'headers', 'json', 'status', 'body'] as const;
const ATTACKER = 'acc-1';
const LEAKY = 3;

export type Policy = { name: 'immediate' } | { name: 'quantized'; quantumMs: number };
export const policyLabel = (p: Policy): string => (p.name === 'immediate' ? 'immediate' : `quantized (${p.quantumMs} ms)`);

/** One cluster per run: its release policy and which rows it measures. */
export interface PolicyRun {
  policy: Policy;
  /** `all`: every row (content channels only in the first run); `critical`: only the rows where the adversary is on the critical path. */
  rows: 'all' | 'critical';
  /** Also run the critical-path rows with an attacker that phase-locks its sends to the release grid. */
  phaseLock: boolean;
}

export interface RedteamOptions {
  /** Samples per timing row (the first `preamble` of them are the public calibration bits). */
  samples: number;
  preamble: number;
  /** Workload steps per content channel. */
  contentSteps: number;
  /** The leaky replica's delay on a 1 bit. */
  leakDelayMs: number;
  /** Delays (on a 1 bit) of the Byzantine top, one row each. */
  byzantineDelaysMs: number[];
  runs: PolicyRun[];
  /** Also measure the leaky replica with one honest sidecar paused (it is still masked). */
  pausedSidecarRow: boolean;
  seed: number;
  /** Keep every process's log under this directory (default: a temp dir, removed). */
  keepLogs?: string;
  log: (line: string) => void;
}

export const QUICK: Omit<RedteamOptions, 'log'> = {
  samples: 40,
  preamble: 16,
  contentSteps: 12,
  leakDelayMs: 50,
  byzantineDelaysMs: [5, 50],
  runs: [
    { policy: { name: 'immediate' }, rows: 'all', phaseLock: false },
    { policy: { name: 'quantized', quantumMs: 10 }, rows: 'all', phaseLock: false },
  ],
  pausedSidecarRow: false,
  seed: 1,
};

export const FULL: Omit<RedteamOptions, 'log'> = {
  ...QUICK,
  samples: 80,
  preamble: 24,
  contentSteps: 30,
  pausedSidecarRow: true,
  runs: [
    ...QUICK.runs,
    // A coarse tick, to see what quantization does when it is larger than the natural jitter.
    { policy: { name: 'quantized', quantumMs: 100 }, rows: 'critical', phaseLock: true },
  ],
};

// ---------------------------------------------------------------------------------------------
// Results

export interface Counts {
  requests: number;
  /** Signed replies whose signature checked against the client's own request digest. */
  verified: number;
  /** The firewall's own fixed error responses (unsigned, allowed by I1, but an availability cost). */
  firewallErrors: number;
  /** Unsigned responses that are not a fixed firewall error: an I1 violation. */
  unsignedOther: number;
  /** Responses that carry a signature that does not check: an I1 violation at the bottom. */
  badSignature: number;
  /** No response at all (connection error, client timeout). */
  transportErrors: number;
  /** Verified replies that differ from what an honest copy answers. */
  wrong: number;
  /** Raw responses with a header a correct bottom never writes (I3). */
  extraHeaders: number;
  /** Bytes of other accounts' secrets found in what clients received. */
  secretBytes: number;
  examples: string[];
}

export interface ContentRow extends Counts {
  channel: string;
  policy: string;
  /** Bytes of secret the leaky replica put into its answers (its own log). */
  attemptedBytes: number;
  leakyAnswers: number;
  /** Secret bytes the scanner finds in the leaky replica's answer when asked directly (control). */
  controlBytes: number;
  controlStatusChanged: boolean;
}

export interface TimingRow extends Counts {
  key: string;
  scenario: string;
  adversary: string;
  criticalPath: string;
  delayMs: number;
  policy: string;
  /** The attacker sent each request at a chosen phase of the release grid. */
  phaseLocked: boolean;
  estimate: CapacityEstimate | undefined;
  crashes: number;
  /** First bytes of the secret as the attacker decoded them from the timing (test part). */
  decodedPreview: string;
  /** Every sample: [bit sent, latency ms or null if failed, send phase index or null]. */
  samples: Array<[0 | 1 | null, number | null, number | null]>;
}

export interface InvariantReport {
  policy: string;
  ledgerCounts: number[];
  ledgersIdentical: boolean;
  acknowledgedTransfers: number;
  exactlyOnce: boolean;
  modelMatchesLedger: boolean;
  problems: string[];
  sidecars: Array<{ id: string; sequence: number; viewChanges: number; unknownOutcomes: number; recovered: number }>;
}

export interface RedteamResult {
  date: string;
  machine: string;
  node: string;
  options: Omit<RedteamOptions, 'log'>;
  /** Seconds per phase, for the record. */
  phases: Array<{ policy: string; phase: string; seconds: number }>;
  /** 1-minute load average just before each cluster started (other work on the machine). */
  loadBefore: Array<{ policy: string; load1: number }>;
  content: ContentRow[];
  timing: TimingRow[];
  invariants: InvariantReport[];
  findings: string[];
  durationMs: number;
}

const emptyCounts = (): Counts => ({
  requests: 0,
  verified: 0,
  firewallErrors: 0,
  unsignedOther: 0,
  badSignature: 0,
  transportErrors: 0,
  wrong: 0,
  extraHeaders: 0,
  secretBytes: 0,
  examples: [],
});

// ---------------------------------------------------------------------------------------------
// The bit stream (same definition as examples/leaky-replica/server.mjs, checked by the test).

export const PREAMBLE_BYTE = 0xa5;
export function streamBit(secret: string, i: number, preambleBits: number): 0 | 1 {
  if (i < preambleBits) return ((PREAMBLE_BYTE >> (7 - (i % 8))) & 1) as 0 | 1;
  const bytes = Buffer.from(secret, 'utf8');
  if (bytes.length === 0) return 0;
  const j = (i - preambleBits) % (bytes.length * 8);
  return ((bytes[j >> 3]! >> (7 - (j & 7))) & 1) as 0 | 1;
}
export function secretFor(accounts: ReadonlyArray<{ id: string; owner: string }>, balance: (id: string) => number, caller: string): string {
  return accounts
    .filter((a) => a.id !== caller)
    .map((a) => `${a.id} ${a.owner} ${balance(a.id)};`)
    .join('');
}

function bitsToText(bits: Array<0 | 1>): string {
  let out = '';
  for (let i = 0; i + 8 <= bits.length; i += 8) {
    let b = 0;
    for (let k = 0; k < 8; k++) b = (b << 1) | bits[i + k]!;
    out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '·';
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

interface LeakyLine {
  i: number;
  bit: 0 | 1;
  channels: string[];
  attemptedBytes: number;
  status: number;
  delayMs: number;
  crash: boolean;
  tag: string | null;
}

/** One record per request a client made, classified and kept for the scanner. */
interface Rec {
  phase: string;
  viewer: string;
  /** What the client received: raw bytes (raw client) or the verified parts (library client). */
  bytes: Buffer;
  outcome: 'verified' | 'firewall-error' | 'unsigned-other' | 'bad-signature' | 'transport-error';
  wrong?: string;
  extraHeader?: string;
  latencyMs?: number;
}

class Session {
  lc!: LocalCluster;
  cluster!: ClusterConfig;
  verifier!: ResponseVerifier;
  forwardAllow = allowlist(DEFAULT_FORWARD_HEADERS);
  model: BankModel;
  lib!: CbftClient;
  relay!: DelayRelay;
  byzTop: ManagedChild | undefined;
  readonly records: Rec[] = [];
  readonly leaky = new Map<string, LeakyLine>();
  readonly leakyUntagged: Array<{ phase: string; line: LeakyLine }> = [];
  phase = 'startup';
  readonly findings: string[] = [];
  readonly relayDelays = new Map<string, number>();
  ackedTransfers = new Map<string, Transfer>();
  failedPosts = 0;
  stopping = false;
  restarting: Promise<void> | undefined;
  crashes = 0;
  readonly rand: () => number;
  dir!: string;
  controlFile!: string;

  constructor(
    readonly o: RedteamOptions,
    readonly policy: Policy,
    readonly seedAccounts: ReadonlyArray<Account>,
  ) {
    this.model = new BankModel(seedAccounts);
    this.rand = prng(o.seed);
  }

  get label(): string {
    return policyLabel(this.policy);
  }

  async setControl(c: { channels: string; delayMs?: number; preambleBits?: number }): Promise<void> {
    await writeFile(this.controlFile + '.tmp', JSON.stringify({ channels: c.channels, delayMs: c.delayMs ?? this.o.leakDelayMs, preambleBits: c.preambleBits ?? this.o.preamble }));
    await rename(this.controlFile + '.tmp', this.controlFile);
  }

  logDir: string | undefined;

  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'cbft-redteam-'));
    if (this.o.keepLogs) {
      this.logDir = join(this.o.keepLogs, `${this.policy.name}${this.policy.name === 'quantized' ? `-${this.policy.quantumMs}ms` : ''}-${Date.now()}`);
      await mkdir(this.logDir, { recursive: true });
    }
    this.controlFile = join(this.dir, 'leak-control.json');
    await this.setControl({ channels: 'none' });
    const sizes = { replicas: 4, chains: 2, chainLength: 2 };
    const node = JSON.stringify(process.execPath);
    const adapter = `--require ${JSON.stringify(NODE_ADAPTER)}`;
    for (let attempt = 1; ; attempt++) {
      // Another run on the machine may take the free range between the check and the start.
      const base = await findFreeRange(portCount(sizes) + sizes.replicas);
      try {
        this.lc = await startLocalCluster({
          ...sizes,
          ...(this.logDir ? { workDir: join(this.logDir, `attempt-${attempt}`) } : {}),
          basePort: base,
          upstream: { command: `${node} ${JSON.stringify(BANK_SERVER)}`, env: { NODE_OPTIONS: adapter, BANK_ADMIN: '1' } },
          upstreamFor: (i) =>
            i === LEAKY ? { command: `${node} ${JSON.stringify(LEAKY_SERVER)}`, env: { NODE_OPTIONS: adapter, BANK_ADMIN: '1', LEAK_CONTROL_FILE: this.controlFile } } : undefined,
          configure: (c) => {
            c.firewall.releasePolicy = this.policy.name;
            if (this.policy.name === 'quantized') c.firewall.quantumMs = this.policy.quantumMs;
            // Long enough that a paused (SIGSTOPped) honest service is slow, not failed.
            c.service.upstreamTimeoutMs = 60_000;
          },
          onLine: (id, line) => {
            if (id === `upstream-${LEAKY}` && line.startsWith('{"leakyReplica"')) this.onLeakyLine(line);
          },
          onChildExit: (child) => this.onChildExit(child),
        });
        break;
      } catch (err) {
        if (attempt >= 3 || !/already in use/.test((err as Error).message)) throw err;
      }
    }
    this.cluster = this.lc.cluster;
    this.verifier = new ResponseVerifier(this.cluster);
    this.lib = createClient({ cluster: this.cluster });
    await this.installByzantineTop();
  }

  private onLeakyLine(line: string): void {
    try {
      const v = JSON.parse(line) as LeakyLine;
      if (v.tag !== null && v.tag !== undefined) this.leaky.set(`${v.tag}:${v.i}`, v);
      else this.leakyUntagged.push({ phase: this.phase, line: v });
      if (v.crash) this.crashes++;
    } catch {
      // not ours
    }
  }

  private onChildExit(child: ManagedChild): void {
    if (this.stopping) return;
    if (child.id === `upstream-${LEAKY}`) {
      // The supervisor (Kubernetes would do the same) restarts the crashed leaky copy.
      const port = Number(new URL(this.lc.upstreamUrls[LEAKY]!).port);
      const prev = this.restarting ?? Promise.resolve();
      this.restarting = prev.then(async () => {
        if (this.stopping) return;
        const next = await this.lc.restart(child.id);
        // If it crashes again before listening (the next request was a 1 bit), the next restart is queued.
        await waitForPort(port, '127.0.0.1', 10_000, () => next.alive).catch((err: Error) => {
          if (next.alive) this.findings.push(`[${this.label}] the restarted leaky upstream did not listen: ${err.message}`);
        });
      });
      return;
    }
    this.findings.push(`[${this.label}] ${child.id} ${child.describeExit()} unexpectedly during "${this.phase}"; last lines:\n${child.tail(8).map((l) => `    | ${l}`).join('\n')}`);
  }

  /**
   * Replaces the top node of chain 1 by a Byzantine one: the real top code, whose frames to the
   * bottom node go through the delay relay. The bottom node of chain 1 stays correct.
   */
  private async installByzantineTop(): Promise<void> {
    const bottom = this.cluster.chains[1]![0]!;
    const top = this.cluster.chains[1]![1]!;
    this.relay = await startDelayRelay({ target: bottom.peerUrl, delayFor: (d) => this.relayDelays.get(d) ?? 0 });
    const byzDir = join(this.dir, 'cluster-byzantine-top');
    await cp(this.lc.clusterDir, byzDir, { recursive: true });
    const file = join(byzDir, 'cluster.json');
    const c = JSON.parse(await readFile(file, 'utf8')) as ClusterConfig;
    c.chains[1]![0]!.peerUrl = this.relay.url;
    // A Byzantine node is not bound by the release policy: it forwards as early as it can and adds
    // its own delays, so a quantized grid below it only has what the correct bottom node does.
    c.firewall.releasePolicy = 'immediate';
    await writeFile(file, JSON.stringify(c, null, 2));
    await this.lc.children.get(top.id)!.stop();
    this.byzTop = new ManagedChild({
      id: `${top.id}-byzantine`,
      command: process.execPath,
      args: [CLI_PATH, 'firewall', '--cluster', byzDir, '--id', top.id],
      env: { ...process.env },
      logFile: join(this.lc.workDir, 'logs', `${top.id}-byzantine.log`),
    });
    void this.byzTop.exited.then(() => {
      if (!this.stopping) this.findings.push(`[${this.label}] Byzantine top ${this.byzTop!.describeExit()}:\n${this.byzTop!.tail(8).join('\n')}`);
    });
    await waitUntil(async () => (await ready(top.adminUrl)) && (await ready(bottom.adminUrl)), 20_000, 'Byzantine top of chain 1 ready');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.restarting?.catch(() => undefined);
    await this.lib?.close().catch(() => undefined);
    await this.byzTop?.stop().catch(() => undefined);
    await this.relay?.close().catch(() => undefined);
    await this.lc?.stop().catch(() => undefined);
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  // --- requests ---------------------------------------------------------------------------

  bottom(chain: number): string {
    return this.cluster.chains[chain]![0]!.url;
  }

  digestOf(method: string, path: string, headers: Array<[string, string]>, body: string, nonce: string, chain: number): string {
    const fields: Array<[string, string]> = [['host', new URL(this.bottom(chain)).host], ...headers];
    return toHex(digestOf(encodeRequest({ nonce: Buffer.from(nonce, 'hex'), method, target: path, headers: canonicalHeaders(fields, this.forwardAllow), body: utf8(body) })));
  }

  /** A raw request as the attacker; classified, checked against `expected`, recorded. */
  async attacker(
    chain: number,
    method: string,
    path: string,
    opts: { auth?: boolean; body?: string; expected?: Expected | null; onCreated?: (r: RawResponse) => string | undefined; relayDelayMs?: number } = {},
  ): Promise<Rec> {
    const headers: Array<[string, string]> = [];
    if (opts.auth !== false) headers.push(['authorization', `Bearer token-${ATTACKER}`]);
    if (opts.body !== undefined) headers.push(['content-type', 'application/json']);
    const nonce = toHex(randomBytes(16));
    if (opts.relayDelayMs !== undefined) this.relayDelays.set(this.digestOf(method, path, headers, opts.body ?? '', nonce, chain), opts.relayDelayMs);
    let res: RawResponse;
    try {
      res = await rawRequest(this.bottom(chain), { method, path, headers, body: opts.body, nonce }, this.forwardAllow);
    } catch (err) {
      const rec: Rec = { phase: this.phase, viewer: ATTACKER, bytes: Buffer.alloc(0), outcome: 'transport-error', wrong: (err as Error).message };
      this.records.push(rec);
      return rec;
    }
    const rec: Rec = { phase: this.phase, viewer: ATTACKER, bytes: res.raw, outcome: 'verified', latencyMs: res.latencyMs };
    const extra = res.headers.find(([n]) => !RAW_HEADER_NAMES.has(n));
    if (extra) rec.extraHeader = `${extra[0]}: ${extra[1].slice(0, 80)}`;
    const check = this.verifier.check({ status: res.status, headers: res.headers, body: res.body }, res.digest);
    if (!check.ok) {
      rec.outcome = check.unsigned ? (isFirewallError(res) ? 'firewall-error' : 'unsigned-other') : 'bad-signature';
      rec.wrong = `${res.status} ${check.reason}: ${res.body.toString('utf8').slice(0, 120)}`;
    } else {
      const body = Buffer.from(check.body).toString('utf8');
      if (opts.onCreated) rec.wrong = opts.onCreated(res);
      else if (opts.expected) rec.wrong = compare(opts.expected, check.status, check.headers, body);
      if (rec.wrong === undefined && opts.onCreated === undefined && opts.expected === undefined) rec.wrong = 'no expectation';
    }
    this.records.push(rec);
    return rec;
  }

  /** A request of a victim through the client library (both chains, verified by the library). */
  async victim(viewer: string, method: string, path: string, body?: string): Promise<{ rec: Rec; status?: number; headers?: Array<readonly [string, string]>; text?: string }> {
    const headers: Record<string, string> = { authorization: `Bearer token-${viewer}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const r = await this.lib.request({ method, path, headers, body });
      const text = r.text();
      const bytes = Buffer.concat([Buffer.from(`${r.status}\n${r.headers.map(([n, v]) => `${n}: ${v}`).join('\n')}\n\n`, 'latin1'), Buffer.from(r.body)]);
      const rec: Rec = { phase: this.phase, viewer, bytes, outcome: 'verified' };
      this.records.push(rec);
      return { rec, status: r.status, headers: r.headers, text };
    } catch (err) {
      const msg = (err as Error).message;
      const rec: Rec = { phase: this.phase, viewer, bytes: Buffer.from(msg), outcome: /unsigned/.test(msg) ? 'firewall-error' : 'transport-error', wrong: msg.slice(0, 200) };
      this.records.push(rec);
      return { rec };
    }
  }

  // --- the mixed workload -------------------------------------------------------------------

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rand() * xs.length)]!;
  }

  private victims(): string[] {
    return this.seedAccounts.map((a) => a.id).filter((id) => id !== ATTACKER);
  }

  /** One step of the mixed workload; `bit` tags attacker requests for the leaky replica's log. */
  async step(tag: string, bit: number, chain: number): Promise<Rec> {
    const q = `?bit=${bit}&tag=${encodeURIComponent(tag)}`;
    const r = this.rand();
    if (r < 0.22) return this.attacker(chain, 'GET', `/accounts/${ATTACKER}${q}`, { expected: this.model.getAccount(ATTACKER, ATTACKER) });
    if (r < 0.34) {
      const other = this.pick(this.victims());
      return this.attacker(chain, 'GET', `/accounts/${other}${q}`, { expected: this.model.getAccount(ATTACKER, other) });
    }
    if (r < 0.40) {
      const other = this.pick(this.victims());
      return this.attacker(chain, 'GET', `/accounts/${other}${q}`, { auth: false, expected: this.model.getAccount(undefined, other) });
    }
    if (r < 0.56) {
      const to = this.pick(this.victims());
      const amount = 100 + Math.floor(this.rand() * 1900);
      const body = JSON.stringify({ from: ATTACKER, to, amount });
      const predicted = this.model.transferOutcome(ATTACKER, to, amount);
      const rec = await this.attacker(chain, 'POST', `/transfers${q}`, {
        body,
        expected: predicted ?? undefined,
        onCreated: predicted ? undefined : (res) => this.created(ATTACKER, to, amount, res.status, this.verifier.check({ status: res.status, headers: res.headers, body: res.body }, res.digest)),
      });
      if (rec.outcome !== 'verified') await this.unknownOutcome();
      return rec;
    }
    if (r < 0.68 && this.model.transfers.size > 0) {
      const id = this.pick([...this.model.transfers.keys()]);
      return this.attacker(chain, 'GET', `/transfers/${id}${q}`, { expected: this.model.getTransfer(ATTACKER, id) });
    }
    // A victim moves money (changing the secrets) or reads its own account.
    const from = this.pick(this.victims());
    if (this.rand() < 0.3) {
      const v = await this.victim(from, 'GET', `/accounts/${from}`);
      if (v.rec.outcome === 'verified') v.rec.wrong = compare(this.model.getAccount(from, from), v.status!, v.headers!, v.text!);
      return v.rec;
    }
    const to = this.pick(this.seedAccounts.map((a) => a.id).filter((id) => id !== from));
    const amount = 100 + Math.floor(this.rand() * 20_000);
    const predicted = this.model.transferOutcome(from, to, amount);
    const v = await this.victim(from, 'POST', '/transfers', JSON.stringify({ from, to, amount }));
    if (v.rec.outcome !== 'verified') {
      await this.unknownOutcome();
      return v.rec;
    }
    if (predicted) v.rec.wrong = compare(predicted, v.status!, v.headers!, v.text!);
    else {
      v.rec.wrong = this.model.applyCreated(from, to, amount, v.status!, v.headers!, v.text!);
      if (v.rec.wrong === undefined) this.ackedTransfers.set((JSON.parse(v.text!) as Transfer).id, JSON.parse(v.text!) as Transfer);
    }
    return v.rec;
  }

  private created(from: string, to: string, amount: number, status: number, check: ReturnType<ResponseVerifier['check']>): string | undefined {
    if (!check.ok) return check.reason;
    const text = Buffer.from(check.body).toString('utf8');
    const why = this.model.applyCreated(from, to, amount, status, check.headers, text);
    if (why === undefined) this.ackedTransfers.set((JSON.parse(text) as Transfer).id, JSON.parse(text) as Transfer);
    return why;
  }

  /** A transfer without a verified answer may or may not have run: take the replicas' state. */
  private async unknownOutcome(): Promise<void> {
    this.failedPosts++;
    const ledger = await this.stableLedger(0, 15_000).catch(() => undefined);
    if (ledger) this.model.resync(ledger.balances, ledger.transfers);
  }

  // --- operator views -------------------------------------------------------------------------

  async ledger(i: number): Promise<{ count: number; transfers: Transfer[]; balances: Record<string, number> }> {
    const res = await request(`${this.lc.upstreamUrls[i]}/admin/ledger`, { headersTimeout: 5_000, bodyTimeout: 5_000 });
    return (await res.body.json()) as { count: number; transfers: Transfer[]; balances: Record<string, number> };
  }

  async stableLedger(i: number, timeoutMs: number) {
    let last = '';
    let result: Awaited<ReturnType<Session['ledger']>> | undefined;
    await waitUntil(async () => {
      const l = await this.ledger(i);
      const text = JSON.stringify(l);
      const same = text === last;
      last = text;
      result = l;
      return same;
    }, timeoutMs, `ledger of upstream-${i} stable`, 300);
    return result!;
  }

  async metric(adminUrl: string, name: string): Promise<number> {
    try {
      const res = await request(`${adminUrl}/metrics`, { headersTimeout: 3_000, bodyTimeout: 3_000 });
      const text = await res.body.text();
      let sum = 0;
      for (const line of text.split('\n')) if (line.startsWith(name + ' ') || line.startsWith(name + '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      return sum;
    } catch {
      return NaN;
    }
  }

  /** Waits until every replica executed as far as the furthest one (after a pause). */
  async caughtUp(timeoutMs = 30_000): Promise<void> {
    await waitUntil(async () => {
      const seqs = await Promise.all(this.cluster.replicas.map((r) => this.metric(r.adminUrl, 'cbft_sidecar_sequence')));
      return seqs.every((s) => s === seqs[0]);
    }, timeoutMs, 'all replicas at the same executed sequence', 250).catch((err: Error) => this.findings.push(`[${this.label}] ${err.message}`));
  }

  async leakyLines(tag: string, n: number, timeoutMs = 30_000): Promise<Array<LeakyLine | undefined>> {
    await waitUntil(() => Array.from({ length: n }, (_, i) => this.leaky.has(`${tag}:${i}`)).every(Boolean), timeoutMs, `leaky replica log for ${tag}`, 100).catch(() => undefined);
    return Array.from({ length: n }, (_, i) => this.leaky.get(`${tag}:${i}`));
  }
}

function isFirewallError(res: RawResponse): boolean {
  try {
    const v = JSON.parse(res.body.toString('utf8')) as { error?: string; message?: string };
    const names = Object.keys(v).join(',');
    return names === 'error,message' && typeof v.error === 'string' && FIREWALL_ERRORS[v.error] === res.status && !res.headers.some(([n]) => n.startsWith('cbft-'));
  } catch {
    return false;
  }
}

async function ready(adminUrl: string): Promise<boolean> {
  try {
    const res = await request(`${adminUrl}/readyz`, { headersTimeout: 1_000, bodyTimeout: 1_000 });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // retry
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ---------------------------------------------------------------------------------------------
// Counting and scanning

function tally(s: Session, recs: Rec[]): Counts {
  const c = emptyCounts();
  const scanners = new Map<string, Scanner>();
  const scannerFor = (viewer: string) => {
    let sc = scanners.get(viewer);
    if (!sc) {
      const others = s.seedAccounts.filter((a) => a.id !== viewer);
      sc = new Scanner(
        secretSet({
          names: others.map((a) => a.owner),
          balances: others.flatMap((a) => [...s.model.history.get(a.id)!]),
          entitled: [...s.model.history.get(viewer)!, ...s.model.seenAmounts.get(viewer)!],
        }),
      );
      scanners.set(viewer, sc);
    }
    return sc;
  };
  for (const r of recs) {
    c.requests++;
    if (r.outcome === 'verified') c.verified++;
    else if (r.outcome === 'firewall-error') c.firewallErrors++;
    else if (r.outcome === 'unsigned-other') c.unsignedOther++;
    else if (r.outcome === 'bad-signature') c.badSignature++;
    else c.transportErrors++;
    if (r.outcome === 'verified' && r.wrong !== undefined) c.wrong++;
    if (r.extraHeader) c.extraHeaders++;
    const found = scannerFor(r.viewer).scan(r.bytes);
    c.secretBytes += found.bytes;
    const note = r.outcome !== 'verified' ? `${r.outcome}: ${r.wrong ?? ''}` : r.wrong ? `wrong: ${r.wrong}` : r.extraHeader ? `extra header ${r.extraHeader}` : found.bytes > 0 ? `secret ${found.hits.map((h) => `${h.encoding}:${h.secret}`).join(',')}` : undefined;
    if (note && c.examples.length < 5) c.examples.push(`[${r.phase}] ${note}`.slice(0, 300));
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Phases

/**
 * Control: the attacker's request sent straight to the leaky copy, as if no firewall were there
 * (what the NetworkPolicy forbids). The scanner must find the secret here. Bit index 1 is a 0 bit
 * of the preamble, so the control never crashes or waits.
 */
async function control(s: Session, tag: string): Promise<RawResponse | undefined> {
  await s.restarting;
  return rawRequest(s.lc.upstreamUrls[LEAKY]!, { method: 'GET', path: `/accounts/${ATTACKER}?bit=1&tag=control-${tag}`, headers: [['authorization', `Bearer token-${ATTACKER}`]] }, s.forwardAllow).catch(() => undefined);
}

async function contentPhase(s: Session, channel: string, rows: ContentRow[]): Promise<void> {
  const tag = `${s.policy.name}-content-${channel}`;
  s.phase = `content ${channel}`;
  await s.setControl({ channels: channel });
  const first = s.records.length;
  const untaggedFirst = s.leakyUntagged.length;
  const indices: number[] = [];
  for (let k = 0; k < s.o.contentSteps; k++) {
    const rec = await s.step(tag, k, k % 2);
    if (rec.viewer === ATTACKER) indices.push(k);
  }
  await waitUntil(() => indices.every((k) => s.leaky.has(`${tag}:${k}`)), 10_000, 'leaky log').catch(() => undefined);
  const direct = await control(s, tag);
  const recs = s.records.slice(first);
  const counts = tally(s, recs);
  const lines = [...s.leaky.entries()].filter(([k]) => k.startsWith(`${tag}:`)).map(([, v]) => v);
  lines.push(...s.leakyUntagged.slice(untaggedFirst).map((u) => u.line));
  const controlScan = direct ? tally(s, [{ phase: 'control', viewer: ATTACKER, bytes: direct.raw, outcome: 'verified' }]) : undefined;
  rows.push({
    ...counts,
    channel,
    policy: s.label,
    attemptedBytes: lines.reduce((a, l) => a + l.attemptedBytes, 0),
    leakyAnswers: lines.length,
    controlBytes: controlScan?.secretBytes ?? NaN,
    controlStatusChanged: direct ? direct.status !== 200 : false,
  });
  s.o.log(`  content ${channel.padEnd(8)} ${counts.requests} requests, ${counts.verified} verified, ${counts.wrong} wrong, ${counts.secretBytes} secret bytes (leaky tried ${rows.at(-1)!.attemptedBytes}; control ${rows.at(-1)!.controlBytes})`);
}

interface TimingSpec {
  key: string;
  scenario: string;
  adversary: string;
  criticalPath: string;
  delayMs: number;
  chain: number;
  channels?: string;
  byzantine?: boolean;
  phaseLock?: boolean;
  before?: () => Promise<void>;
  after?: () => Promise<void>;
}

const PHASES = 4;

/** Sleeps until the wall clock is at `phase` ms past a multiple of `q` (the release grid). */
async function atPhase(q: number, phase: number): Promise<void> {
  const wait = (((phase - (Date.now() % q)) % q) + q) % q;
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

/** The calibration phase whose public bits a threshold separates best. */
function choosePhase(calibration: Array<{ phase: number; sample: Sample }>): number {
  let best = { phase: 0, error: Infinity, gap: -Infinity };
  for (let c = 0; c < PHASES; c++) {
    const xs = calibration.filter((x) => x.phase === c).map((x) => x.sample);
    if (xs.length < 2) continue;
    const t = bestThreshold(xs);
    const m0 = median(xs.filter((x) => x.bit === 0).map((x) => x.latencyMs ?? Infinity));
    const m1 = median(xs.filter((x) => x.bit === 1).map((x) => x.latencyMs ?? Infinity));
    const gap = Math.abs(m1 - m0);
    if (t.balancedError < best.error || (t.balancedError === best.error && gap > best.gap)) best = { phase: c, error: t.balancedError, gap };
  }
  return best.phase;
}

async function timingPhase(s: Session, spec: TimingSpec, rows: TimingRow[]): Promise<void> {
  const tag = `${s.policy.name}-${spec.key}${spec.phaseLock ? '-locked' : ''}`;
  const q = s.policy.name === 'quantized' ? s.policy.quantumMs : 0;
  const lock = spec.phaseLock === true && q > 0;
  // A phase-locked attacker calibrates every phase, so it gets a longer public preamble (the
  // number of secret bits it decodes stays the same).
  const P = lock ? 2 * s.o.preamble : s.o.preamble;
  const n = lock ? s.o.samples + s.o.preamble : s.o.samples;
  s.phase = spec.scenario;
  await s.setControl({ channels: spec.channels ?? 'none', preambleBits: P });
  const crashesBefore = s.crashes;
  await spec.before?.();
  const first = s.records.length;
  const sent: Array<0 | 1> = [];
  const latencies: Array<number | undefined> = [];
  const phaseOf: number[] = [];
  let chosen = 0;
  const secret = secretFor(s.seedAccounts, (id) => s.model.account(id).balance, ATTACKER);
  try {
    for (let j = 0; j < n; j++) {
      const bit = streamBit(secret, j, P);
      sent.push(bit);
      if (lock) {
        // Calibration: try every phase on the public bits; then send the secret bits at the best one.
        if (j === P) chosen = choosePhase(phaseOf.map((phase, k) => ({ phase, sample: { bit: sent[k]!, latencyMs: latencies[k] } })));
        const phase = j < P ? j % PHASES : chosen;
        phaseOf.push(phase);
        await atPhase(q, Math.floor((phase * q) / PHASES));
      }
      const rec = await s.attacker(spec.chain, 'GET', `/accounts/${ATTACKER}?bit=${j}&tag=${tag}`, {
        expected: s.model.getAccount(ATTACKER, ATTACKER),
        relayDelayMs: spec.byzantine ? (bit ? spec.delayMs : 0) : undefined,
      });
      latencies.push(rec.outcome === 'verified' ? rec.latencyMs : undefined);
    }
  } finally {
    await spec.after?.();
  }
  // Ground truth: what the adversary sent. The Byzantine top is ours; the leaky replica logs it.
  let truth: Array<0 | 1 | undefined> = sent;
  if (!spec.byzantine) {
    const lines = await s.leakyLines(tag, n);
    truth = lines.map((l) => l?.bit);
  }
  const train: Sample[] = [];
  const test: Sample[] = [];
  for (let j = 0; j < n; j++) {
    if (truth[j] === undefined) continue;
    const sample = { bit: truth[j]!, latencyMs: latencies[j] };
    if (j >= P) test.push(sample);
    else if (!lock || phaseOf[j] === chosen) train.push(sample);
  }
  const estimate = train.length >= 2 && test.length >= 2 ? estimateCapacity(train, test) : undefined;
  const counts = tally(s, s.records.slice(first));
  let decodedPreview = '';
  if (estimate) {
    const t = bestThreshold(train);
    decodedPreview = bitsToText(test.map((x) => decode(t, x)));
  }
  rows.push({
    ...counts,
    key: spec.key,
    scenario: spec.scenario,
    adversary: spec.adversary,
    criticalPath: spec.criticalPath,
    delayMs: spec.delayMs,
    policy: s.label,
    phaseLocked: lock,
    estimate,
    crashes: s.crashes - crashesBefore,
    decodedPreview: decodedPreview.slice(0, 24),
    samples: latencies.map((l, j) => [truth[j] ?? null, l === undefined ? null : Math.round(l * 100) / 100, lock ? phaseOf[j]! : null]),
  });
  const e = estimate;
  s.o.log(
    `  timing ${(spec.key + (lock ? ' (phase-locked)' : '')).padEnd(36)} ` +
      (e ? `n=${e.train}+${e.test} p_err=${fmt(e.pErr)} C=${fmt(e.bscBits)} (in-sample ${fmt(e.bscBitsInSample)}) MI=${fmt(e.miBits)} (noise ${fmt(e.miNoise95)}) median ${e.medianMs0.toFixed(1)}/${e.medianMs1.toFixed(1)} ms` : 'no estimate') +
      `, ${counts.verified}/${counts.requests} verified, ${counts.wrong} wrong${s.crashes - crashesBefore ? `, ${s.crashes - crashesBefore} crashes` : ''}` +
      (decodedPreview ? `; decoded ${JSON.stringify(decodedPreview.slice(0, 12))}` : ''),
  );
}

const fmt = (x: number) => (Number.isNaN(x) ? '—' : x.toFixed(3));

async function allChannelsPhase(s: Session, rows: ContentRow[], timing: TimingRow[]): Promise<void> {
  const tag = `${s.policy.name}-all`;
  s.phase = 'all channels';
  await s.setControl({ channels: 'all' });
  const first = s.records.length;
  const crashesBefore = s.crashes;
  const untaggedFirst = s.leakyUntagged.length;
  const steps = Math.max(s.o.contentSteps, s.o.samples / 2);
  const latencies = new Map<number, number | undefined>();
  for (let k = 0; k < steps; k++) {
    const rec = await s.step(tag, k, 0);
    if (rec.viewer === ATTACKER) latencies.set(k, rec.outcome === 'verified' ? rec.latencyMs : undefined);
  }
  await s.restarting;
  await waitUntil(() => [...latencies.keys()].every((k) => s.leaky.has(`${tag}:${k}`)), 30_000, 'leaky log (all channels)').catch(() => undefined);
  const counts = tally(s, s.records.slice(first));
  const logged = [...s.leaky.entries()].filter(([k]) => k.startsWith(`${tag}:`)).map(([, v]) => v);
  logged.push(...s.leakyUntagged.slice(untaggedFirst).map((u) => u.line));
  const direct = await control(s, tag);
  const controlScan = direct ? tally(s, [{ phase: 'control', viewer: ATTACKER, bytes: direct.raw, outcome: 'verified' }]) : undefined;
  rows.push({ ...counts, channel: 'all', policy: s.label, attemptedBytes: logged.reduce((a, l) => a + l.attemptedBytes, 0), leakyAnswers: logged.length, controlBytes: controlScan?.secretBytes ?? NaN, controlStatusChanged: direct ? direct.status !== 200 : false });
  // The leaky stream's first P indices are its public preamble: the attacker calibrates on those.
  const train: Sample[] = [];
  const test: Sample[] = [];
  for (const [k, lat] of [...latencies.entries()].sort((a, b) => a[0] - b[0])) {
    const l = s.leaky.get(`${tag}:${k}`);
    if (l) (k < s.o.preamble ? train : test).push({ bit: l.bit, latencyMs: lat });
  }
  const estimate = train.length >= 4 && test.length >= 4 ? estimateCapacity(train, test) : undefined;
  timing.push({ ...counts, key: 'all', scenario: 'leaky replica, all channels at once (mixed workload)', adversary: 'replica', criticalPath: 'no: 3 honest replicas answer', delayMs: s.o.leakDelayMs, policy: s.label, phaseLocked: false, estimate, crashes: s.crashes - crashesBefore, decodedPreview: '', samples: [] });
  s.o.log(`  all channels: ${counts.requests} requests, ${counts.verified} verified, ${counts.wrong} wrong, ${counts.secretBytes} secret bytes, ${s.crashes - crashesBefore} crashes`);
}

async function checkInvariants(s: Session): Promise<InvariantReport> {
  s.phase = 'invariants';
  await s.restarting;
  const problems: string[] = [];
  const ledgers = [] as Array<Awaited<ReturnType<Session['ledger']>>>;
  for (let i = 0; i < 3; i++) {
    try {
      ledgers.push(await s.stableLedger(i, 20_000));
    } catch (err) {
      problems.push(`ledger of honest upstream-${i}: ${(err as Error).message}`);
    }
  }
  // All honest ledgers identical (same transfers in the same order, same balances).
  await waitUntil(async () => {
    const now = await Promise.all([0, 1, 2].map((i) => s.ledger(i)));
    ledgers.splice(0, ledgers.length, ...now);
    return now.every((l) => JSON.stringify(l) === JSON.stringify(now[0]));
  }, 20_000, 'honest ledgers equal', 300).catch(() => undefined);
  const ledgersIdentical = ledgers.length === 3 && ledgers.every((l) => JSON.stringify(l) === JSON.stringify(ledgers[0]));
  if (!ledgersIdentical) problems.push(`honest ledgers differ: counts ${ledgers.map((l) => l.count).join(', ')}`);
  let exactlyOnce = ledgers.length === 3;
  for (const [i, l] of ledgers.entries()) {
    const ids = l.transfers.map((t) => t.id);
    if (new Set(ids).size !== ids.length) {
      exactlyOnce = false;
      problems.push(`upstream-${i}: a transfer id appears twice in the ledger`);
    }
    const byId = new Map(l.transfers.map((t) => [t.id, t]));
    for (const [id, t] of s.ackedTransfers) {
      const got = byId.get(id);
      if (!got || JSON.stringify(got) !== JSON.stringify(t)) {
        exactlyOnce = false;
        problems.push(`upstream-${i}: acknowledged transfer ${id} ${got ? 'differs' : 'missing'}`);
      }
    }
    const extra = l.transfers.length - s.ackedTransfers.size;
    if (extra < 0 || extra > s.failedPosts) {
      exactlyOnce = false;
      problems.push(`upstream-${i}: ${l.transfers.length} transfers applied, ${s.ackedTransfers.size} acknowledged, ${s.failedPosts} without an answer`);
    }
  }
  const modelBalances = Object.fromEntries([...s.model.accounts.values()].map((a) => [a.id, a.balance]));
  const modelMatchesLedger = ledgers.length > 0 && JSON.stringify(ledgers[0]!.balances) === JSON.stringify(modelBalances);
  if (!modelMatchesLedger) problems.push(`balances differ from the client-side model: ${JSON.stringify(ledgers[0]?.balances)} vs ${JSON.stringify(modelBalances)}`);
  const sidecars = [];
  for (const r of s.cluster.replicas) {
    sidecars.push({
      id: r.id,
      sequence: await s.metric(r.adminUrl, 'cbft_sidecar_sequence'),
      viewChanges: await s.metric(r.adminUrl, 'cbft_sidecar_view_changes_total'),
      unknownOutcomes: await s.metric(r.adminUrl, 'cbft_sidecar_unknown_outcomes_total'),
      recovered: await s.metric(r.adminUrl, 'cbft_sidecar_recovered_replies_total'),
    });
  }
  const report: InvariantReport = { policy: s.label, ledgerCounts: ledgers.map((l) => l.count), ledgersIdentical, acknowledgedTransfers: s.ackedTransfers.size, exactlyOnce, modelMatchesLedger, problems, sidecars };
  s.o.log(`  invariants: ledgers ${ledgersIdentical ? 'identical' : 'DIFFER'} (${report.ledgerCounts.join('/')} transfers), ${report.acknowledgedTransfers} acknowledged, exactly once: ${exactlyOnce}${problems.length ? `; ${problems.join('; ')}` : ''}`);
  return report;
}

// ---------------------------------------------------------------------------------------------

export async function runRedteam(o: RedteamOptions): Promise<RedteamResult> {
  const started = Date.now();
  const bank = (await import(pathToFileURL(BANK_SERVER).href)) as { SEED_ACCOUNTS: Account[] };
  const content: ContentRow[] = [];
  const timing: TimingRow[] = [];
  const invariants: InvariantReport[] = [];
  const findings: string[] = [];
  const phases: RedteamResult['phases'] = [];
  const loadBefore: RedteamResult['loadBefore'] = [];
  for (const [pi, run] of o.runs.entries()) {
    const policy = run.policy;
    loadBefore.push({ policy: policyLabel(policy), load1: loadavg()[0]! });
    if (loadavg()[0]! > cpus().length) o.log(`  note: the machine is busy (1-minute load ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores); latencies and capacities reflect that`);
    o.log(`cluster with ${policyLabel(policy)} release: 4 replicas (3 honest banks, 1 leaky), 2 chains of 2 (top of chain 1 Byzantine)`);
    const s = new Session(o, policy, bank.SEED_ACCOUNTS);
    const stopOnSignal = () => void s.stop().then(() => process.exit(130));
    process.once('SIGINT', stopOnSignal);
    process.once('SIGTERM', stopOnSignal);
    const timed = async (name: string, fn: () => Promise<void>) => {
      const t0 = Date.now();
      try {
        await fn();
      } finally {
        phases.push({ policy: policyLabel(policy), phase: name, seconds: (Date.now() - t0) / 1000 });
      }
    };
    const all = run.rows === 'all';
    const leaky = { adversary: 'replica', chain: 0, channels: 'timing', delayMs: o.leakDelayMs };
    const critical: TimingSpec = {
      ...leaky,
      key: 'leaky-timing-critical',
      scenario: 'leaky replica delays its answer',
      criticalPath: 'yes: 2 honest services paused, the top needs the leaky partial',
      before: async () => {
        for (const i of [1, 2]) s.lc.children.get(`upstream-${i}`)!.signal('SIGSTOP');
      },
      after: async () => {
        for (const i of [1, 2]) s.lc.children.get(`upstream-${i}`)!.signal('SIGCONT');
        await s.caughtUp();
      },
    };
    const byzantine = (d: number): TimingSpec => ({ key: `byzantine-top-${d}ms`, scenario: 'Byzantine top firewall node delays the reply', adversary: 'firewall', criticalPath: 'yes: above the correct bottom node of chain 1', delayMs: d, chain: 1, byzantine: true });
    const delays = all ? o.byzantineDelaysMs : [Math.max(...o.byzantineDelaysMs)];
    try {
      await timed('start cluster', () => s.start());
      if (pi === 0) for (const channel of CONTENT_CHANNELS) await timed(`content ${channel}`, () => contentPhase(s, channel, content));
      if (all) await timed('leaky-timing', () => timingPhase(s, { ...leaky, key: 'leaky-timing', scenario: 'leaky replica delays its answer', criticalPath: 'no: 3 honest replicas answer' }, timing));
      await timed('leaky-timing-critical', () => timingPhase(s, critical, timing));
      if (run.phaseLock) await timed('leaky-timing-critical (phase-locked)', () => timingPhase(s, { ...critical, phaseLock: true }, timing));
      if (all && pi === 0 && o.pausedSidecarRow) {
        await timed('leaky-timing-1-paused', () =>
          timingPhase(
            s,
            {
              ...leaky,
              key: 'leaky-timing-1-paused',
              scenario: 'leaky replica delays its answer',
              criticalPath: 'no: 1 honest sidecar paused, 2 honest replicas still answer',
              before: async () => s.lc.children.get('replica-1')!.signal('SIGSTOP'),
              after: async () => {
                s.lc.children.get('replica-1')!.signal('SIGCONT');
                await s.caughtUp();
              },
            },
            timing,
          ),
        );
      }
      for (const d of delays) {
        await timed(`byzantine-top-${d}ms`, () => timingPhase(s, byzantine(d), timing));
        if (run.phaseLock) await timed(`byzantine-top-${d}ms (phase-locked)`, () => timingPhase(s, { ...byzantine(d), phaseLock: true }, timing));
      }
      if (all) {
        await timed('leaky-crash', () => timingPhase(s, { key: 'leaky-crash', scenario: 'leaky replica crashes (and is restarted) on 1 bits', adversary: 'replica', criticalPath: 'no: 3 honest replicas answer', delayMs: 0, chain: 0, channels: 'crash' }, timing));
        await timed('all channels', () => allChannelsPhase(s, pi === 0 ? content : [], timing));
      }
      await timed('invariants', async () => {
        await s.caughtUp();
        invariants.push(await checkInvariants(s));
      });
    } catch (err) {
      findings.push(`[${policyLabel(policy)}] run aborted: ${(err as Error).stack ?? (err as Error).message}`);
      o.log(`  ABORTED: ${(err as Error).message}`);
    } finally {
      findings.push(...s.findings);
      process.off('SIGINT', stopOnSignal);
      process.off('SIGTERM', stopOnSignal);
      await s.stop();
    }
  }
  const cpu = cpus();
  const { log: _log, ...options } = o;
  void _log;
  return {
    date: new Date().toISOString(),
    machine: `${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} cores, ${process.platform} ${process.arch}`,
    node: process.version,
    options,
    phases,
    loadBefore,
    content,
    timing,
    invariants,
    findings,
    durationMs: Date.now() - started,
  };
}
