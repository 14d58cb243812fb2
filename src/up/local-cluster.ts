import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { CbftError, ErrorCodes } from '../errors.js';
import type { ClusterConfig } from '../cluster/config.js';
import { checkBasePort, checkClusterSizes, generateCluster, portCount, writeCluster, DEFAULT_BASE_PORT, MAX_PORT } from '../cluster/keygen.js';
import { loadCluster } from '../cluster/keys.js';
import { ManagedChild } from './child.js';
import { takenPorts, waitForPort } from './ports.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The package root (this file is dist/src/up/local-cluster.js or src/up/local-cluster.ts). */
export const PACKAGE_ROOT = resolve(here, existsSync(join(here, '..', '..', 'package.json')) ? '../..' : '../../..');
export const CLI_PATH = join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
export const BANK_SERVER = join(PACKAGE_ROOT, 'examples', 'bank', 'server.mjs');
export const NODE_ADAPTER = join(PACKAGE_ROOT, 'adapters', 'node-deterministic.cjs');

/**
 * V8 heap settings for cbft processes. The young generation capped at 2 MiB semi-spaces (default
 * up to 16 MiB): about 25 MiB less resident memory at no measurable CPU cost. The old generation
 * capped at 128 MiB: a sidecar's live heap is 35–45 MiB with the default caches (reply bytes and
 * other buffers live outside it), but under load V8 otherwise lets the heap grow to several times
 * that before collecting; with the cap a sidecar's resident memory after a 5-minute soak went
 * from about 300 to 180 MiB (bench/PROFILE.md). Containers get the same through NODE_OPTIONS
 * (Dockerfile).
 */
export const CBFT_NODE_ARGS: readonly string[] = ['--max-semi-space-size=2', '--max-old-space-size=128'];

/**
 * glibc malloc settings for cbft processes (the environment can override each): two arenas, and
 * a fixed mmap threshold so that freed blocks of 64 KiB and more (frames, big replies, log
 * compaction buffers) go back to the system instead of raising the threshold and fragmenting the
 * heap. Measured in the 5-minute soak (bench/PROFILE.md). The container image sets the same.
 */
export const CBFT_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '65536',
  MALLOC_TRIM_THRESHOLD_: '131072',
};

export interface UpstreamSpec {
  /** Shell command line; run with `sh -c`, PORT in its environment. */
  command: string;
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_UPSTREAM: UpstreamSpec = {
  command: `${JSON.stringify(process.execPath)} ${JSON.stringify(BANK_SERVER)}`,
  env: { NODE_OPTIONS: `--require ${JSON.stringify(NODE_ADAPTER)}` },
};

export interface LocalClusterOptions {
  replicas?: number;
  chains?: number;
  chainLength?: number;
  basePort?: number;
  /** Use an existing cluster directory (keys and ports) instead of generating one. */
  clusterDir?: string;
  upstream?: UpstreamSpec;
  /** Per replica upstream override (e.g. one compromised copy in the red-team). */
  upstreamFor?: (index: number) => UpstreamSpec | undefined;
  /** First upstream port; default right after the cluster's ports. */
  upstreamBasePort?: number;
  /** Adjust settings of a generated cluster before it is written. */
  configure?: (cluster: ClusterConfig) => void;
  /** Where WALs, logs and generated keys go; a fresh temp dir by default (removed on stop). */
  workDir?: string;
  readyTimeoutMs?: number;
  /** Extra environment for cbft processes (e.g. LOG_LEVEL). */
  env?: NodeJS.ProcessEnv;
  /**
   * Node options for cbft processes, before the script (e.g. --cpu-prof, which NODE_OPTIONS
   * refuses). Default CBFT_NODE_ARGS.
   */
  nodeArgs?: string[];
  onChildExit?: (child: ManagedChild) => void;
  onLine?: (id: string, line: string) => void;
}

export interface LocalCluster {
  cluster: ClusterConfig;
  clusterDir: string;
  workDir: string;
  upstreamUrls: string[];
  children: Map<string, ManagedChild>;
  /** Starts a stopped node again with the same arguments (fault tests). */
  restart(id: string): Promise<ManagedChild>;
  stop(): Promise<void>;
}

/**
 * Starts a whole cluster on this machine: N upstream copies, N sidecars and C chains of L
 * firewall nodes, waits until every node reports ready, and stops exactly what it started.
 */
export async function startLocalCluster(o: LocalClusterOptions = {}): Promise<LocalCluster> {
  const ownWorkDir = o.workDir === undefined;
  const workDir = o.workDir ?? (await mkdtemp(join(tmpdir(), 'cbft-up-')));
  await mkdir(join(workDir, 'logs'), { recursive: true });
  const children = new Map<string, ManagedChild>();
  const specs = new Map<string, ConstructorParameters<typeof ManagedChild>[0]>();
  let stopped = false;

  const stop = async () => {
    stopped = true;
    await Promise.all([...children.values()].map((c) => c.stop()));
    if (ownWorkDir) await rm(workDir, { recursive: true, force: true });
  };

  try {
    let cluster: ClusterConfig;
    let clusterDir: string;
    if (o.clusterDir) {
      clusterDir = o.clusterDir;
      cluster = await loadCluster(clusterDir);
    } else {
      const replicas = o.replicas ?? 4;
      const chains = o.chains ?? 2;
      const chainLength = o.chainLength ?? 2;
      // The upstreams take the ports right after the cluster's unless placed elsewhere.
      const upstreamPorts = o.upstreamBasePort === undefined ? replicas : 0;
      checkClusterSizes({ replicas, chains, chainLength }, upstreamPorts);
      const basePort = checkBasePort(o.basePort ?? DEFAULT_BASE_PORT, portCount({ replicas, chains, chainLength }) + upstreamPorts);
      const generated = generateCluster({ replicas, chains, chainLength, basePort });
      o.configure?.(generated.cluster);
      cluster = generated.cluster;
      clusterDir = join(workDir, 'cluster');
      await writeCluster(clusterDir, cluster, generated.keys);
    }

    const nodePorts = [
      ...cluster.replicas.flatMap((r) => [r.url, r.adminUrl]),
      ...cluster.chains.flat().flatMap((n) => (n.position === 0 ? [n.url, n.peerUrl, n.adminUrl] : [n.url, n.adminUrl])),
    ].map((u) => Number(new URL(u).port));
    const upstreamBase = o.upstreamBasePort ?? Math.max(...nodePorts) + 1;
    if (!Number.isInteger(upstreamBase) || upstreamBase < 1 || upstreamBase + cluster.replicas.length - 1 > MAX_PORT) {
      throw new CbftError(
        ErrorCodes.USAGE,
        o.upstreamBasePort === undefined
          ? `the ${cluster.replicas.length} upstreams take the ports after the cluster's (up to ${upstreamBase - 1}), past ${MAX_PORT}: generate the cluster with a lower --base-port`
          : `upstream base port must be an integer in 1..${MAX_PORT + 1 - cluster.replicas.length}, got ${upstreamBase}`,
      );
    }
    const upstreamPorts = cluster.replicas.map((_, i) => upstreamBase + i);
    const taken = await takenPorts([...nodePorts, ...upstreamPorts]);
    if (taken.length > 0) {
      throw new CbftError(
        ErrorCodes.USAGE,
        `port${taken.length > 1 ? 's' : ''} ${taken.join(', ')} already in use; pick another --base-port ` +
          `(the cluster needs ${portCount({ replicas: cluster.replicas.length, chains: cluster.chains.length, chainLength: cluster.f + 1 })} ports from it plus ${cluster.replicas.length} upstream ports)`,
      );
    }
    const upstreamUrls = upstreamPorts.map((p) => `http://127.0.0.1:${p}`);

    const launch = (spec: ConstructorParameters<typeof ManagedChild>[0]) => {
      specs.set(spec.id, spec);
      const child = new ManagedChild({ ...spec, onLine: o.onLine ? (line) => o.onLine!(spec.id, line) : undefined });
      children.set(spec.id, child);
      void child.exited.then(() => {
        if (!stopped && child.crashed) o.onChildExit?.(child);
      });
      return child;
    };
    const cbft = (id: string, args: string[]) =>
      launch({
        id,
        command: process.execPath,
        args: [...(o.nodeArgs ?? CBFT_NODE_ARGS), CLI_PATH, ...args],
        env: { ...CBFT_MALLOC_ENV, ...process.env, ...o.env },
        logFile: join(workDir, 'logs', `${id}.log`),
      });

    const specFor = (i: number) => o.upstreamFor?.(i) ?? o.upstream ?? DEFAULT_UPSTREAM;
    for (const i of upstreamPorts.keys()) {
      if (specFor(i).command.trim() === '') throw new CbftError(ErrorCodes.USAGE, '--upstream-command must not be empty');
    }
    for (const [i, port] of upstreamPorts.entries()) {
      const spec = specFor(i);
      const child = launch({
        id: `upstream-${i}`,
        command: '/bin/sh',
        args: ['-c', `exec ${spec.command}`],
        env: { ...process.env, ...spec.env, PORT: String(port), HOST: '127.0.0.1' },
        logFile: join(workDir, 'logs', `upstream-${i}.log`),
      });
      try {
        await waitForPort(port, '127.0.0.1', o.readyTimeoutMs ?? 15_000, () => child.alive);
      } catch (err) {
        throw new CbftError(
          ErrorCodes.USAGE,
          `upstream ${i} (${spec.command}) did not start listening on port ${port}: ${(err as Error).message}\n` +
            child.tail(10).map((l) => `  | ${l}`).join('\n'),
        );
      }
    }
    for (const r of cluster.replicas) {
      const data = join(workDir, 'data', r.id);
      await mkdir(data, { recursive: true });
      cbft(r.id, ['sidecar', '--cluster', clusterDir, '--id', r.id, '--upstream', upstreamUrls[r.index]!, '--data', data]);
    }
    for (const node of cluster.chains.flat()) cbft(node.id, ['firewall', '--cluster', clusterDir, '--id', node.id]);

    const nodes = [...cluster.replicas, ...cluster.chains.flat()];
    await waitReady(nodes, children, o.readyTimeoutMs ?? 30_000);

    return {
      cluster,
      clusterDir,
      workDir,
      upstreamUrls,
      children,
      async restart(id: string) {
        const spec = specs.get(id);
        if (!spec) throw new Error(`no child ${id}`);
        await children.get(id)?.stop();
        return launch(spec);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitReady(
  nodes: Array<{ id: string; adminUrl: string }>,
  children: Map<string, ManagedChild>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Map(nodes.map((n) => [n.id, n.adminUrl]));
  const reasons = new Map<string, string>();
  while (pending.size > 0) {
    for (const [id, adminUrl] of pending) {
      const child = children.get(id);
      if (child && !child.alive) {
        throw new CbftError(ErrorCodes.USAGE, `${id} ${child.describeExit()} while starting:\n${child.tail(15).map((l) => `  | ${l}`).join('\n')}`);
      }
      try {
        const res = await request(`${adminUrl}/readyz`, { headersTimeout: 1_000, bodyTimeout: 1_000 });
        const body = await res.body.text();
        if (res.statusCode === 200) pending.delete(id);
        else reasons.set(id, body);
      } catch (err) {
        reasons.set(id, (err as Error).message);
      }
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) {
      const lines = [...pending.keys()].map((id) => `  ${id}: ${reasons.get(id) ?? 'no answer'}\n${(children.get(id)?.tail(5) ?? []).map((l) => `    | ${l}`).join('\n')}`);
      throw new CbftError(ErrorCodes.USAGE, `not ready after ${timeoutMs} ms:\n${lines.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
