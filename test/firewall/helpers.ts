import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { request } from 'undici';
import { fromHex } from '../../src/codec/binary.js';
import { validateCluster, type ClusterConfig, type FirewallSettings, type ServiceSettings } from '../../src/cluster/config.js';
import { generateCluster, writeCluster } from '../../src/cluster/keygen.js';
import type { LoadedKeys, NodeKeys } from '../../src/cluster/keys.js';
import { IdentitySigner } from '../../src/crypto/identity.js';
import { startFirewallNode, type FirewallNode } from '../../src/firewall/node.js';
import { afterEach, expect } from 'vitest';
import { startFakeReplicas } from '../../bench/harness/fake-replicas.js';
import { ResponseVerifier } from '../../src/client/verify-response.js';
import { CLI } from '../helpers/cli.js';

/** n distinct free TCP ports on 127.0.0.1 (held open together so they differ). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export interface TestCluster {
  cluster: ClusterConfig;
  keys: NodeKeys[];
  dir: string;
}

/** A cluster on free ports of 127.0.0.1, written to a temp dir (for the CLI and `cbft verify`). */
export async function makeCluster(o: {
  replicas?: number;
  chains?: number;
  length?: number;
  firewall?: Partial<FirewallSettings>;
  service?: Partial<ServiceSettings>;
  merkleDepth?: number;
} = {}): Promise<TestCluster> {
  const { cluster, keys } = generateCluster({ replicas: o.replicas ?? 4, chains: o.chains ?? 1, chainLength: o.length ?? 2, basePort: 1 });
  const ports = await freePorts(2 * cluster.replicas.length + cluster.chains.flat().length * 3);
  let p = 0;
  const url = () => `http://127.0.0.1:${ports[p++]}`;
  for (const r of cluster.replicas) {
    r.url = url();
    r.adminUrl = url();
  }
  for (const chain of cluster.chains) {
    for (const node of chain) {
      node.url = url();
      node.peerUrl = node.position === 0 ? url() : node.url;
      node.adminUrl = url();
    }
  }
  cluster.firewall = { ...cluster.firewall, requestTimeoutMs: 3_000, retransmitMs: 300, ...o.firewall };
  cluster.service = { ...cluster.service, ...o.service };
  if (o.merkleDepth !== undefined) cluster.merkleDepth = o.merkleDepth;
  const checked = validateCluster(JSON.parse(JSON.stringify(cluster)));
  const dir = join(await mkdtemp(join(tmpdir(), 'cbft-fw-')), 'cluster');
  await writeCluster(dir, checked, keys);
  return { cluster: checked, keys, dir };
}

export function loadedKeys(keys: readonly NodeKeys[], id: string): LoadedKeys {
  const k = keys.find((x) => x.id === id);
  if (!k) throw new Error(`no keys for ${id}`);
  return { id, identity: new IdentitySigner(fromHex(k.identitySecretKey)) };
}

/** Starts the given firewall nodes in-process, top first; returns them bottom first. */
export async function startNodes(tc: TestCluster, ids: string[], logs?: LogCapture): Promise<FirewallNode[]> {
  const nodes: FirewallNode[] = [];
  for (const id of [...ids].reverse()) {
    nodes.unshift(await startFirewallNode({ cluster: tc.cluster, keys: loadedKeys(tc.keys, id), probeIntervalMs: 100, logger: logs?.logger(id) }));
  }
  return nodes;
}

/** pino loggers whose JSON lines are kept in memory, per node id (to check the access log). */
export interface LogCapture {
  logger(id: string): Logger;
  /** The parsed lines node `id` logged so far (with `msg`, or all of them). */
  lines(id: string, msg?: string): Array<Record<string, unknown>>;
}

export function captureLogs(): LogCapture {
  const byNode = new Map<string, Array<Record<string, unknown>>>();
  return {
    logger(id) {
      const lines: Array<Record<string, unknown>> = [];
      byNode.set(id, lines);
      return pino({ level: 'info', base: { node: id } }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    },
    lines(id, msg) {
      const all = byNode.get(id) ?? [];
      return msg === undefined ? all : all.filter((l) => l.msg === msg);
    },
  };
}

export function chainIds(tc: TestCluster, chain = 0): string[] {
  return tc.cluster.chains[chain]!.map((n) => n.id);
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function waitReady(adminUrl: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    async () => {
      try {
        const res = await request(adminUrl + '/readyz');
        await res.body.dump();
        return res.statusCode === 200;
      } catch {
        return false;
      }
    },
    timeoutMs,
    `${adminUrl}/readyz`,
  );
}

/** Value of a Prometheus counter/gauge line matching name and labels (sum of matches). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

export async function metricsOf(node: FirewallNode): Promise<string> {
  return node.registry.metrics();
}

export interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `cbft firewall` as a child process. */
export function spawnFirewall(dir: string, id: string, extra: string[] = []): Proc {
  const child = spawn(process.execPath, [CLI, 'firewall', '--cluster', dir, '--id', id, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

export function kill(p: Proc, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
  return p.exited;
}

export interface RawResponse {
  status: number;
  head: string;
  headers: Array<[string, string]>;
  body: Buffer;
  /** The exact bytes of this response on the socket. */
  raw: Buffer;
}

/**
 * Sends raw HTTP/1.1 requests on one TCP connection (pipelined, in order) and reads as many
 * responses, framing them by content-length; `head[i]` says request i was a HEAD.
 */
export async function rawExchange(url: string, requests: Array<string | Buffer>, heads: boolean[] = [], timeoutMs = 10_000): Promise<{ responses: RawResponse[]; closed: boolean }> {
  const { connect } = await import('node:net');
  const u = new URL(url);
  const socket = connect(Number(u.port), u.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buf = Buffer.alloc(0);
  let closed = false;
  const responses: RawResponse[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`raw exchange timed out with ${responses.length} of ${requests.length} responses`));
    }, timeoutMs);
    const parse = () => {
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const lines = head.split('\r\n');
        const status = Number(lines[0]!.split(' ')[1]);
        const headers = lines.slice(1).map((l) => {
          const i = l.indexOf(':');
          return [l.slice(0, i), l.slice(i + 1).trim()] as [string, string];
        });
        const cl = headers.find(([n]) => n.toLowerCase() === 'content-length');
        const isHead = heads[responses.length] === true;
        const len = isHead || status === 204 || status === 304 ? 0 : cl ? Number(cl[1]) : closed ? buf.length - end - 4 : -1;
        if (len < 0 || buf.length < end + 4 + len) return;
        responses.push({ status, head, headers, body: Buffer.from(buf.subarray(end + 4, end + 4 + len)), raw: Buffer.from(buf.subarray(0, end + 4 + len)) });
        buf = buf.subarray(end + 4 + len);
        if (responses.length === requests.length) {
          clearTimeout(timer);
          // Give a closing server a moment to close, so `closed` is meaningful.
          setTimeout(() => {
            socket.destroy();
            resolve({ responses, closed });
          }, 30);
          return;
        }
      }
    };
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      parse();
    });
    socket.on('end', () => {
      closed = true;
      parse();
      if (responses.length < requests.length) {
        clearTimeout(timer);
        resolve({ responses, closed });
      }
    });
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => undefined);
    for (const r of requests) socket.write(r);
  });
}

/** The CLI under test is the built one; rebuild if a firewall source is newer than its output. */
export function ensureBuilt(): void {
  const root = join(CLI, '../../../..');
  const newest = ['node.ts', 'front.ts', 'crypto-pool.ts', 'crypto-worker.ts', 'replica-client.ts', 'intake.ts', 'queue.ts'].map((f) => statSync(join(root, 'src/firewall', f)).mtimeMs);
  const out = join(root, 'dist/src/firewall/crypto-worker.js');
  if (!existsSync(out) || !existsSync(CLI) || statSync(join(root, 'dist/src/firewall/node.js')).mtimeMs < Math.max(...newest)) {
    spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  }
}

/** The compiled crypto worker (see ensureBuilt). */
export const WORKER_URL = new URL('../../dist/src/firewall/crypto-worker.js', import.meta.url);

/** Fake replicas and firewall nodes for chains of a fresh cluster; `close` stops them all. */
export async function startChains(
  o: Parameters<typeof makeCluster>[0] = {},
  fake: Omit<Parameters<typeof startFakeReplicas>[0], 'cluster' | 'keys'> = {},
  chains?: number[],
  logs?: LogCapture,
) {
  const tc = await makeCluster(o);
  const replicas = await startFakeReplicas({ cluster: tc.cluster, keys: tc.keys, ...fake });
  const nodes: FirewallNode[][] = [];
  const close = async () => {
    for (const chain of nodes) for (const n of chain) await n.close();
    await replicas.close();
  };
  for (const c of chains ?? tc.cluster.chains.map((_, i) => i)) nodes.push(await startNodes(tc, chainIds(tc, c), logs));
  return { tc, replicas, nodes, close, url: (c = 0) => tc.cluster.chains[c]![0]!.url };
}

/** startChains for one test file: what a test starts (and pushes to `cleanups`) is stopped after it. */
export function chainsPerTest() {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
  const setup = async (...args: Parameters<typeof startChains>) => {
    const env = await startChains(...args);
    cleanups.push(env.close);
    return env;
  };
  return { cleanups, setup };
}

export type Res = { status: number; headers: Array<[string, string]>; body: Buffer; json: () => Record<string, unknown> };

/** One request through undici, with the headers as a list of pairs (repeated names kept). */
export async function call(url: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Res> {
  const res = await request(url + path, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body });
  const body = Buffer.from(await res.body.arrayBuffer());
  const headers = Object.entries(res.headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x] as [string, string]) : [[k, String(v)] as [string, string]]));
  return { status: res.statusCode, headers, body, json: () => JSON.parse(body.toString()) as Record<string, unknown> };
}

export const header = (r: Res, name: string) => r.headers.find(([n]) => n === name)?.[1];

/** Asserts that the response carries a valid cbft signature over exactly what it says. */
export function expectSigned(tc: TestCluster, r: Res) {
  const check = new ResponseVerifier(tc.cluster).check({ status: r.status, headers: r.headers, body: r.body });
  expect(check, JSON.stringify(check)).toMatchObject({ ok: true });
  return check;
}
