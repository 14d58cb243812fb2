// Helpers for the sidecar's process-level tests: a cluster on free 127.0.0.1 ports, child
// processes (sidecars via the built CLI, counting services) that are always killed, and a small
// in-test PBFT client that plays a top firewall node: a real peer server and real Links with a
// top node's keys, combining s+1 partials and verifying them with the service key.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { fromHex, toHex, utf8 } from '../../src/codec/binary.js';
import { decodeReply, digestOf, encodeRequest, leafHash, type CanonicalReply } from '../../src/codec/canonical.js';
import { batchMessage, rootFromProof } from '../../src/codec/merkle.js';
import { generateCluster, writeCluster } from '../../src/cluster/keygen.js';
import { validateCluster, type ClusterConfig, type PbftSettings, type ServiceSettings } from '../../src/cluster/config.js';
import type { NodeKeys } from '../../src/cluster/keys.js';
import { IdentitySigner } from '../../src/crypto/identity.js';
import { combine, verify, verifyPartial } from '../../src/crypto/threshold.js';
import { MessageKind } from '../../src/transport/frame.js';
import { signSubmission } from '../../src/wire/submission.js';
import { Link } from '../../src/transport/link.js';
import { startPeerServer, type PeerServer } from '../../src/transport/peer-server.js';
import { decodePartialReplies } from '../../src/wire/payloads.js';
import type { HeaderField } from '../../src/codec/headers.js';

export const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
export const COUNTING_SERVICE = fileURLToPath(new URL('../fixtures/counting-service.mjs', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Ports and clusters

/**
 * Ports that are free now, drawn from below the kernel's ephemeral range (32768+ on Linux), so
 * an outgoing connection cannot take one of them as its local port between this check and the
 * moment a child process binds it (port-0 allocation has exactly that race under load).
 */
export async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  const taken = new Set<number>();
  while (out.length < n) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port)) continue;
    taken.add(port);
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) out.push(port);
  }
  return out;
}

export interface TestCluster {
  dir: string;
  cluster: ClusterConfig;
  keys: NodeKeys[];
  cleanup(): void;
}

export async function makeCluster(
  o: { chains?: number; pbft?: Partial<PbftSettings>; service?: Partial<ServiceSettings>; merkleDepth?: number; baseDir?: string } = {},
): Promise<TestCluster> {
  const chains = o.chains ?? 1;
  const { cluster, keys } = generateCluster({ replicas: 4, chains, chainLength: 2 });
  const raw = JSON.parse(JSON.stringify(cluster)) as ClusterConfig;
  const nodes = raw.replicas.length * 2 + chains * 5;
  const ports = await freePorts(nodes);
  const next = () => `http://127.0.0.1:${ports.pop()!}`;
  for (const r of raw.replicas) {
    r.url = next();
    r.adminUrl = next();
  }
  for (const chain of raw.chains) {
    for (const n of chain) {
      n.url = next();
      n.peerUrl = n.position === 0 ? next() : n.url;
      n.adminUrl = next();
    }
  }
  raw.pbft = { ...raw.pbft, tickMs: 10, batchDelayTicks: 1, checkpointInterval: 16, watermarkWindow: 64, viewChangeTicks: 100, ...o.pbft };
  raw.service = { ...raw.service, upstreamTimeoutMs: 5_000, ...o.service };
  if (o.merkleDepth !== undefined) raw.merkleDepth = o.merkleDepth;
  const validated = validateCluster(raw);
  const dir = mkdtempSync(join(o.baseDir ?? tmpdir(), 'cbft-sidecar-'));
  await writeCluster(dir, validated, keys);
  return { dir, cluster: validated, keys, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------------------------------------
// Child processes

const children = new Set<Proc>();
// Never leave processes behind, even when the test runner itself goes away mid-test.
process.once('exit', () => {
  for (const p of children) p.child.kill('SIGKILL');
});

export class Proc {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<{ re: RegExp; from: number; resolve: (m: RegExpExecArray) => void }> = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    children.add(this);
    const onData = (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
      this.waiters = this.waiters.filter((w) => {
        const m = w.re.exec(this.output.slice(w.from));
        if (m) w.resolve(m);
        return !m;
      });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        children.delete(this);
        resolve({ code, signal });
      }),
    );
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits for `re` in the output (from `from` on); rejects on timeout or exit. */
  waitFor(re: RegExp, timeoutMs = 15_000, from = 0): Promise<RegExpExecArray> {
    const m = re.exec(this.output.slice(from));
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ${re} within ${timeoutMs} ms; output:\n${this.output.slice(-4000)}`)), timeoutMs);
      const w = {
        re,
        from,
        resolve: (x: RegExpExecArray) => {
          clearTimeout(timer);
          resolve(x);
        },
      };
      this.waiters.push(w);
      void this.exited.then(({ code, signal }) => {
        if (this.waiters.includes(w)) {
          clearTimeout(timer);
          reject(new Error(`${this.name} exited (${code ?? signal}) before ${re}; output:\n${this.output.slice(-4000)}`));
        }
      });
    });
  }

  /** Parsed pino lines. */
  logLines(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.output.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // partial line
      }
    }
    return out;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.alive) this.child.kill(signal);
    return this.exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.alive) return this.exited;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }
}

export async function killAll(): Promise<void> {
  await Promise.all([...children].map((p) => p.kill('SIGKILL')));
}

function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CBFT_') && k !== 'NODE_OPTIONS' && k !== 'LOG_LEVEL') env[k] = v;
  return { ...env, ...extra };
}

export interface Fixture {
  proc: Proc;
  url: string;
  port: number;
  countFile: string;
}

export async function startFixture(countFile: string, port = 0): Promise<Fixture> {
  const child = spawn(process.execPath, [COUNTING_SERVICE], {
    env: childEnv({ PORT: String(port), HOST: '127.0.0.1', COUNT_FILE: countFile }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = new Proc(`service(${port})`, child);
  const m = await proc.waitFor(/listening on (http:\/\/[0-9.]+:([0-9]+))/, 10_000);
  return { proc, url: m[1]!, port: Number(m[2]), countFile };
}

export interface Counts {
  executions: number;
  perSeq: Record<string, string[]>;
  perKey: Record<string, number>;
}

export async function counts(fixtureUrl: string): Promise<Counts> {
  const res = await request(fixtureUrl + '/__counts');
  return (await res.body.json()) as Counts;
}

export async function startSidecar(dir: string, id: string, upstream: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<Proc> {
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'sidecar', '--cluster', dir, '--id', id, '--upstream', upstream], {
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = new Proc(id, child);
  await proc.waitFor(/"msg":"sidecar listening"/, 15_000);
  return proc;
}

export { metric } from '../../bench/lib/admin.js';

export async function sumMetric(adminUrl: string, name: string, labels?: string): Promise<number> {
  const res = await request(adminUrl + '/metrics');
  const text = await res.body.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (labels && !line.includes(labels)) continue;
    sum += Number(line.split(' ').pop());
  }
  return sum;
}

export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
}

// ---------------------------------------------------------------------------------------------
// The in-test top firewall node

export interface VerifiedReply {
  digest: string;
  seq: number;
  reply: CanonicalReply;
  replyBytes: Uint8Array;
  proof: Uint8Array;
  signature: Uint8Array;
  root: Uint8Array;
  /** Replica indices whose partials were combined. */
  signers: number[];
  /** Set when the combined signature failed and culprits were identified. */
  culprits: number[];
}

interface Pending {
  payload: Uint8Array;
  resolve: (r: VerifiedReply) => void;
  reject: (e: Error) => void;
  /** root hex -> replica index -> contribution */
  byRoot: Map<string, Map<number, { partial: Uint8Array; reply: Uint8Array; proof: Uint8Array; seq: number }>>;
  timer: NodeJS.Timeout;
  retransmits: number;
  done: boolean;
}

export function canonicalRequest(method: string, target: string, body = '', headers: HeaderField[] = [], nonce = randomBytes(16)): Uint8Array {
  const sorted = [...headers].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return encodeRequest({ nonce: new Uint8Array(nonce), method, target, headers: sorted, body: utf8(body) });
}

/**
 * Plays top firewall node `fw-<chain>-<L-1>`: sends Request messages to the primary it believes
 * in (from the views in Partial messages), to every replica after `retransmitMs`, and resolves
 * once s+1 partials on the same batch root combine into a valid service signature.
 */
export class TopClient {
  readonly id: string;
  private server: PeerServer | undefined;
  private readonly links = new Map<number, Link>();
  private readonly signer: IdentitySigner;
  private readonly pending = new Map<string, Pending>();
  private view = 0;
  /** Batch roots whose combined signature verified (I4: it is the same for every s+1 subset). */
  private readonly verifiedRoots = new Map<string, { signature: Uint8Array; signers: number[] }>();
  partialsReceived = 0;
  /** Requests re-sent to every replica after retransmitMs without a signed reply. */
  retransmissions = 0;
  badPartials = 0;
  /** Every Partial received: replica index, seq, digests. */
  readonly log: Array<{ from: number; seq: number; view: number; digests: string[]; at: number }> = [];

  constructor(
    private readonly cluster: ClusterConfig,
    keys: NodeKeys[],
    private readonly chain = 0,
    private readonly retransmitMs = 1_000,
    /** false: accept s+1 partials on one root without combining them (benchmarks of the sidecars only). */
    private readonly checkSignatures = true,
  ) {
    const top = cluster.chains[chain]![cluster.chains[chain]!.length - 1]!;
    this.id = top.id;
    const k = keys.find((x) => x.id === top.id)!;
    const signer = new IdentitySigner(fromHex(k.identitySecretKey));
    this.signer = signer;
    for (const r of cluster.replicas) {
      this.links.set(r.index, new Link({ url: r.url, from: top.id, to: r.id, signer, maxBackoffMs: 500 }));
    }
  }

  async start(): Promise<void> {
    const top = this.cluster.chains[this.chain]![this.cluster.chains[this.chain]!.length - 1]!;
    const u = new URL(top.peerUrl);
    this.server = await startPeerServer({
      host: '127.0.0.1',
      port: Number(u.port),
      self: this.id,
      senders: new Map(this.cluster.replicas.map((r) => [r.id, fromHex(r.identityPublicKey)])),
      allowed: (from, kind) => kind === MessageKind.Partial && from.startsWith('replica-'),
      onMessages: (from, messages) => {
        const index = Number(from.slice('replica-'.length));
        for (const m of messages) this.onPartial(index, m.payload);
      },
    });
  }

  get primary(): number {
    return this.view % this.cluster.replicas.length;
  }

  /** The top's signed envelope around a canonical request, as the real top sends it. */
  seal(payload: Uint8Array): Uint8Array {
    return signSubmission(this.signer, this.id, payload);
  }

  submit(payload: Uint8Array, timeoutMs = 30_000): Promise<VerifiedReply> {
    const digest = toHex(digestOf(payload));
    const sealed = this.seal(payload);
    const existing = this.pending.get(digest);
    if (existing) throw new Error('already pending');
    return new Promise<VerifiedReply>((resolve, reject) => {
      const p: Pending = {
        payload,
        resolve,
        reject,
        byRoot: new Map(),
        retransmits: 0,
        done: false,
        timer: setInterval(() => {
          p.retransmits++;
          this.retransmissions++;
          if (p.retransmits * this.retransmitMs >= timeoutMs) {
            this.finish(digest, p);
            const seen = [...p.byRoot.entries()].map(([root, m]) => `${root.slice(0, 8)}: ${[...m.keys()].join(',')}`);
            reject(new Error(`${this.id}: no signed reply for ${digest} within ${timeoutMs} ms (partials by root: ${seen.join('; ') || 'none'})`));
            return;
          }
          for (const link of this.links.values()) link.send(MessageKind.Request, sealed);
        }, this.retransmitMs),
      };
      this.pending.set(digest, p);
      this.links.get(this.primary)!.send(MessageKind.Request, sealed);
    });
  }

  /** Sends a request to every replica at once (as after a retransmit timeout). */
  submitToAll(payload: Uint8Array, timeoutMs = 30_000): Promise<VerifiedReply> {
    const promise = this.submit(payload, timeoutMs);
    const sealed = this.seal(payload);
    for (const [i, link] of this.links) if (i !== this.primary) link.send(MessageKind.Request, sealed);
    return promise;
  }

  private finish(digest: string, p: Pending): void {
    p.done = true;
    clearInterval(p.timer);
    this.pending.delete(digest);
  }

  private onPartial(from: number, payload: Uint8Array): void {
    this.partialsReceived++;
    let msg;
    try {
      msg = decodePartialReplies(payload, 64 * 1024 * 1024);
    } catch {
      this.badPartials++;
      return;
    }
    if (msg.view > this.view) this.view = msg.view;
    const digests: string[] = [];
    for (const item of msg.items) {
      let reply: CanonicalReply;
      let root: Uint8Array;
      try {
        reply = decodeReply(item.reply);
        root = rootFromProof(leafHash(item.reply), item.proof, this.cluster.merkleDepth);
      } catch {
        this.badPartials++;
        continue;
      }
      const digest = toHex(reply.requestDigest);
      digests.push(digest);
      const p = this.pending.get(digest);
      if (!p || p.done) continue;
      const rootHex = toHex(root);
      let m = p.byRoot.get(rootHex);
      if (!m) p.byRoot.set(rootHex, (m = new Map()));
      m.set(from, { partial: msg.partial, reply: item.reply, proof: item.proof, seq: msg.seq });
      this.tryCombine(digest, p, root, m);
    }
    this.log.push({ from, seq: msg.seq, view: msg.view, digests, at: Date.now() });
  }

  private tryCombine(digest: string, p: Pending, root: Uint8Array, m: Map<number, { partial: Uint8Array; reply: Uint8Array; proof: Uint8Array; seq: number }>): void {
    const t = this.cluster.s + 1;
    if (m.size < t) return;
    const rootHex = toHex(root);
    if (!this.checkSignatures && !this.verifiedRoots.has(rootHex)) {
      this.verifiedRoots.set(rootHex, { signature: new Uint8Array(48), signers: [...m.keys()].slice(0, t) });
    }
    const known = this.verifiedRoots.get(rootHex);
    if (known) {
      const [, first] = [...m.entries()][0]!;
      this.finish(digest, p);
      p.resolve({ digest, seq: first.seq, reply: decodeReply(first.reply), replyBytes: first.reply, proof: first.proof, signature: known.signature, root, signers: known.signers, culprits: [] });
      return;
    }
    const message = batchMessage(root, this.cluster.merkleDepth);
    const servicePublicKey = fromHex(this.cluster.servicePublicKey);
    let entries = [...m.entries()];
    const culprits: number[] = [];
    let signature = combine(
      entries.slice(0, t).map(([i, c]) => ({ index: i + 1, signature: c.partial })),
      t,
    );
    if (!verify(servicePublicKey, message, signature)) {
      // Optimistic combine failed: check partials one by one and drop the bad ones.
      entries = entries.filter(([i, c]) => {
        const ok = verifyPartial(fromHex(this.cluster.replicas[i]!.sharePublicKey), message, c.partial);
        if (!ok) {
          culprits.push(i);
          m.delete(i);
        }
        return ok;
      });
      if (entries.length < t) return;
      signature = combine(
        entries.slice(0, t).map(([i, c]) => ({ index: i + 1, signature: c.partial })),
        t,
      );
      if (!verify(servicePublicKey, message, signature)) return;
    }
    const [, first] = entries[0]!;
    this.verifiedRoots.set(rootHex, { signature, signers: entries.slice(0, t).map(([i]) => i) });
    if (this.verifiedRoots.size > 4096) this.verifiedRoots.delete(this.verifiedRoots.keys().next().value as string);
    this.finish(digest, p);
    p.resolve({
      digest,
      seq: first.seq,
      reply: decodeReply(first.reply),
      replyBytes: first.reply,
      proof: first.proof,
      signature,
      root,
      signers: entries.slice(0, t).map(([i]) => i),
      culprits,
    });
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) clearInterval(p.timer);
    this.pending.clear();
    await Promise.all([...this.links.values()].map((l) => l.close()));
    await this.server?.close();
  }
}

export function jsonBody<T = Record<string, unknown>>(r: VerifiedReply): T {
  return JSON.parse(Buffer.from(r.reply.body).toString('utf8')) as T;
}
