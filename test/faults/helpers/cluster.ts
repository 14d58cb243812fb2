// A real cbft cluster for the fault suite: N upstream copies, N sidecars and C chains of L
// firewall nodes started by `startLocalCluster` (the code behind `cbft up`), on free 127.0.0.1
// ports below the kernel's ephemeral range (so a restarted node can always bind its port again),
// with helpers to kill, pause, restart and inspect single processes. Everything started here is
// stopped by `stop()`, which the tests call in afterAll/afterEach also when a test fails.

import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { portCount } from '../../../src/cluster/keygen.js';
import type { ClusterConfig } from '../../../src/cluster/config.js';
import { ManagedChild } from '../../../src/up/child.js';
import { BANK_SERVER, CLI_PATH, NODE_ADAPTER, startLocalCluster, type LocalCluster, type UpstreamSpec } from '../../../src/up/local-cluster.js';
import { findFreeRange, waitForPort } from '../../../src/up/ports.js';

const here = dirname(fileURLToPath(import.meta.url));
export const SKEW_PRELOAD = join(here, '..', 'fixtures', 'skew-clock.cjs');
export const COUNTING_SERVICE = join(here, '..', '..', 'fixtures', 'counting-service.mjs');

export type ServiceKind = 'bank' | 'counting';

// Safety net: clusters still running when this process exits or is told to stop (an aborted
// run) are killed, process group by process group, so nothing outlives the test run.
const live = new Set<LocalCluster>();
function killLive(): void {
  for (const lc of live) {
    for (const c of lc.children.values()) {
      c.signal('SIGCONT');
      c.signal('SIGKILL');
    }
  }
}
function onStopSignal(sig: NodeJS.Signals): void {
  killLive();
  process.exit(sig === 'SIGINT' ? 130 : 143);
}
function track(lc: LocalCluster): void {
  if (live.size === 0) {
    process.on('exit', killLive);
    process.on('SIGTERM', onStopSignal);
    process.on('SIGINT', onStopSignal);
  }
  live.add(lc);
}
function untrack(lc: LocalCluster): void {
  live.delete(lc);
  if (live.size === 0) {
    process.off('exit', killLive);
    process.off('SIGTERM', onStopSignal);
    process.off('SIGINT', onStopSignal);
  }
}

export interface FaultClusterOptions {
  replicas?: number;
  chains?: number;
  chainLength?: number;
  service?: ServiceKind;
  configure?: (c: ClusterConfig) => void;
  /** Extra environment for the cbft processes. */
  env?: NodeJS.ProcessEnv;
}

export interface FaultCluster {
  lc: LocalCluster;
  cluster: ClusterConfig;
  service: ServiceKind;
  workDir: string;
  /** Directory whose file <id> holds a clock offset in ms for that sidecar (see skew-clock.cjs). */
  skewDir: string;
  /** Processes that exited without being asked to (a crash is a finding). */
  crashes: string[];
  child(id: string): ManagedChild;
  pid(id: string): number;
  alive(id: string): boolean;
  /** kill -9 and wait until the process is gone. */
  kill(id: string): Promise<void>;
  signal(id: string, sig: NodeJS.Signals): void;
  /** Starts a stopped or killed node again with its original arguments; waits until it is ready. */
  restart(id: string, readyTimeoutMs?: number): Promise<void>;
  /** Starts node `id` with another cluster directory (e.g. one whose neighbour URL is a proxy). */
  relaunchWithClusterDir(id: string, clusterDir: string): Promise<void>;
  /** Copy of the cluster directory, with cluster.json edited by `edit`. */
  clusterCopy(name: string, edit: (c: ClusterConfig) => void): Promise<string>;
  adminUrl(id: string): string;
  /** Every line the node logged so far (all its incarnations: the log file is appended to). */
  logLines(id: string): Array<Record<string, unknown>>;
  setSkew(id: string, offsetMs: number): void;
  stop(): Promise<void>;
}

export function upstreamSpec(kind: ServiceKind, workDir: string, index: number): UpstreamSpec {
  const node = JSON.stringify(process.execPath);
  if (kind === 'bank') {
    return { command: `${node} ${JSON.stringify(BANK_SERVER)}`, env: { NODE_OPTIONS: `--require ${JSON.stringify(NODE_ADAPTER)}`, BANK_ADMIN: '1' } };
  }
  // The counting service keeps its counts in a journal, so a killed and restarted copy keeps them
  // (a legacy service that loses its state on a crash cannot be made consistent by anything).
  return { command: `${node} ${JSON.stringify(COUNTING_SERVICE)}`, env: { COUNT_FILE: join(workDir, `count-${index}.jsonl`), NODE_OPTIONS: '' } };
}

export async function startFaultCluster(o: FaultClusterOptions = {}): Promise<FaultCluster> {
  const replicas = o.replicas ?? 4;
  const chains = o.chains ?? 2;
  const chainLength = o.chainLength ?? 3;
  const service = o.service ?? 'bank';
  const workDir = await mkdtemp(join(tmpdir(), 'cbft-faults-'));
  const skewDir = join(workDir, 'skew');
  mkdirSync(skewDir, { recursive: true });
  const crashes: string[] = [];
  const expectedExit = new Set<string>();
  // Below the ephemeral range (32768+): a port a node held is still free when it restarts.
  const base = await findFreeRange(portCount({ replicas, chains, chainLength }) + replicas, 20_000, 32_000);
  const nodeOptions = [process.env.NODE_OPTIONS ?? '', `--require ${JSON.stringify(SKEW_PRELOAD)}`].join(' ').trim();
  let lc: LocalCluster;
  try {
    lc = await startLocalCluster({
      replicas,
      chains,
      chainLength,
      basePort: base,
      workDir,
      upstreamFor: (i) => upstreamSpec(service, workDir, i),
      // Requests the faults strand give up after 5 s (default 10 s), so every scenario stays short.
      configure: (c) => {
        c.firewall.requestTimeoutMs = 5_000;
        o.configure?.(c);
      },
      env: { LOG_LEVEL: 'info', ...o.env, NODE_OPTIONS: nodeOptions, CBFT_FAULTS_SKEW_DIR: skewDir },
      readyTimeoutMs: 60_000,
      onChildExit: (child) => {
        if (!expectedExit.has(child.id)) crashes.push(`${child.id} ${child.describeExit()}: ${child.tail(5).join(' | ')}`);
      },
    });
  } catch (err) {
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
  track(lc);
  const cluster = lc.cluster;
  const child = (id: string) => {
    const c = lc.children.get(id);
    if (!c) throw new Error(`no process ${id}`);
    return c;
  };
  const nodes = new Map<string, { adminUrl: string }>([...cluster.replicas, ...cluster.chains.flat()].map((n) => [n.id, n]));
  const adminUrl = (id: string) => {
    const n = nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n.adminUrl;
  };

  const waitReady = async (id: string, timeoutMs: number) => {
    if (id.startsWith('upstream-')) {
      const i = Number(id.slice('upstream-'.length));
      await waitForPort(Number(new URL(lc.upstreamUrls[i]!).port), '127.0.0.1', timeoutMs, () => child(id).alive);
      return;
    }
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!child(id).alive) throw new Error(`${id} ${child(id).describeExit()} while starting: ${child(id).tail(8).join('\n')}`);
      try {
        const res = await request(adminUrl(id) + '/readyz', { headersTimeout: 1_000, bodyTimeout: 1_000 });
        last = await res.body.text();
        if (res.statusCode === 200) return;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(100);
    }
    throw new Error(`${id} not ready after ${timeoutMs} ms: ${last}`);
  };

  const fc: FaultCluster = {
    lc,
    cluster,
    service,
    workDir,
    skewDir,
    crashes,
    child,
    pid: (id) => {
      const pid = child(id).pid;
      if (pid === undefined) throw new Error(`${id} has no pid`);
      return pid;
    },
    alive: (id) => lc.children.get(id)?.alive ?? false,
    async kill(id) {
      expectedExit.add(id);
      const c = child(id);
      c.signal('SIGKILL');
      await c.exited;
    },
    signal(id, sig) {
      if (sig === 'SIGKILL' || sig === 'SIGTERM') expectedExit.add(id);
      child(id).signal(sig);
    },
    async restart(id, readyTimeoutMs = 60_000) {
      expectedExit.add(id);
      await lc.restart(id);
      expectedExit.delete(id);
      await waitReady(id, readyTimeoutMs);
    },
    async relaunchWithClusterDir(id, clusterDir) {
      expectedExit.add(id);
      await lc.children.get(id)?.stop();
      const c = new ManagedChild({
        id,
        command: process.execPath,
        args: [CLI_PATH, 'firewall', '--cluster', clusterDir, '--id', id],
        env: { ...process.env, LOG_LEVEL: 'info', ...o.env, NODE_OPTIONS: nodeOptions, CBFT_FAULTS_SKEW_DIR: skewDir },
        logFile: join(workDir, 'logs', `${id}.log`),
      });
      lc.children.set(id, c);
      expectedExit.delete(id);
      void c.exited.then(() => {
        if (!expectedExit.has(id) && c.crashed) crashes.push(`${id} ${c.describeExit()}: ${c.tail(5).join(' | ')}`);
      });
      await waitReady(id, 60_000);
    },
    async clusterCopy(name, edit) {
      const dir = join(workDir, name);
      await cp(lc.clusterDir, dir, { recursive: true });
      const file = join(dir, 'cluster.json');
      const c = JSON.parse(readFileSync(file, 'utf8')) as ClusterConfig;
      edit(c);
      writeFileSync(file, JSON.stringify(c, null, 2));
      return dir;
    },
    adminUrl,
    logLines(id) {
      const file = join(workDir, 'logs', `${id}.log`);
      if (!existsSync(file)) return [];
      const out: Array<Record<string, unknown>> = [];
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          out.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // a line cut by kill -9
        }
      }
      return out;
    },
    setSkew(id, offsetMs) {
      writeFileSync(join(skewDir, id), String(offsetMs));
    },
    async stop() {
      for (const id of lc.children.keys()) expectedExit.add(id);
      // SIGCONT first: a stopped process cannot handle SIGTERM.
      for (const c of lc.children.values()) c.signal('SIGCONT');
      await Promise.all([...lc.children.values()].map((c) => c.stop(2_000)));
      untrack(lc);
      if (process.env.CBFT_FAULTS_KEEP) {
        const keep = join(process.env.CBFT_FAULTS_KEEP, `${Date.now()}`);
        mkdirSync(keep, { recursive: true });
        await cp(workDir, keep, { recursive: true });
      }
      await rm(workDir, { recursive: true, force: true });
    },
  };
  return fc;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000, everyMs = 100): Promise<number> {
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return Date.now() - t0;
    } catch (err) {
      lastErr = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
}

export async function metricsText(adminUrl: string): Promise<string> {
  const res = await request(adminUrl + '/metrics', { headersTimeout: 3_000, bodyTimeout: 3_000 });
  return res.body.text();
}

/** Sum of every series of `name` whose label set contains every `labels` fragment. */
export async function metric(adminUrl: string, name: string, ...labels: string[]): Promise<number> {
  const text = await metricsText(adminUrl);
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (!labels.every((l) => line.includes(l))) continue;
    sum += Number(line.split(' ').pop());
    found = true;
  }
  return found ? sum : 0;
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Open file descriptors (sockets included) of a process. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
