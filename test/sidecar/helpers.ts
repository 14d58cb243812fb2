// Helpers for the sidecar's process-level tests: a cluster on free 127.0.0.1 ports, child
// processes (sidecars via the built CLI, counting services) that are always killed, and a small
// in-test PBFT client that plays a top firewall node: a real peer server and real Links with a
// top node's keys, combining s+1 partials and verifying them with the service key.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { VerifiedReply } from '../../bench/harness/top-client.js';
import { utf8 } from '../../src/codec/binary.js';
import { generateCluster, writeCluster } from '../../src/cluster/keygen.js';
import { validateCluster, type ClusterConfig, type PbftSettings, type ServiceSettings } from '../../src/cluster/config.js';
import type { NodeKeys } from '../../src/cluster/keys.js';
import type { Action, ClientRequest, ReplicaInspection, RestoredState } from '../../src/pbft/index.js';
import type { Engine } from '../../src/sidecar/sidecar.js';

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

export { TopClient, canonicalRequest, type VerifiedReply } from '../../bench/harness/top-client.js';

export function jsonBody<T = Record<string, unknown>>(r: VerifiedReply): T {
  return JSON.parse(Buffer.from(r.reply.body).toString('utf8')) as T;
}

/**
 * An engine stand-in for shell tests: records what the sidecar hands it and returns the actions
 * a test pushes, so the sidecar's I/O is driven without PBFT.
 */
export class FakeEngine implements Engine {
  readonly submitted: ClientRequest[] = [];
  readonly executedSeqs: number[] = [];
  readonly received: Array<{ from: number; bytes: Uint8Array }> = [];
  private out: Action[] = [];
  lastInternalError: unknown = null;
  constructor(readonly restored: RestoredState | undefined) {}
  submit(r: ClientRequest): void {
    this.submitted.push(r);
  }
  receiveBytes(from: number, bytes: Uint8Array): void {
    this.received.push({ from, bytes });
  }
  tick(): void {}
  executed(seq: number): void {
    this.executedSeqs.push(seq);
  }
  takeActions(): Action[] {
    const a = this.out;
    this.out = [];
    return a;
  }
  inspect(): ReplicaInspection {
    return { view: 0, primary: 0, inViewChange: false, diverged: false } as ReplicaInspection;
  }
  push(...a: Action[]): void {
    this.out.push(...a);
  }
}
