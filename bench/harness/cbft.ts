import { mkdir, readdir, rm } from 'node:fs/promises';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterConfig } from '../../src/cluster/config.js';
import { portCount } from '../../src/cluster/keygen.js';
import { CBFT_NODE_ARGS, startLocalCluster, type LocalCluster } from '../../src/up/local-cluster.js';
import { findFreeRange } from '../../src/up/ports.js';
import type { Target } from './matrix.js';
import type { WatchedProcess } from './procstat.js';

/**
 * A whole cbft deployment as a bench target: `replicas` copies of the bench upstream
 * (bench/harness/upstream.ts), one real `cbft sidecar` process in front of each, and `chains`
 * chains of `chainLength` real `cbft firewall` processes, all on 127.0.0.1 (src/up/local-cluster.ts
 * starts and stops them). The load goes to the bottom node of chain 0, or to the bottoms of all
 * chains (`spread`). Accounting groups: every cbft process is `front`, the upstream copies are
 * `service`.
 */
export interface CbftTargetOptions {
  name: string;
  replicas?: number;
  chains?: number;
  chainLength?: number;
  /** Spread the load over the bottom nodes of all chains (default: chain 0 only). */
  spread?: boolean;
  /** Adjust the generated cluster (settings) before it is written. */
  configure?: (cluster: ClusterConfig) => void;
  /** Extra environment of the cbft processes (not the upstream copies). */
  env?: NodeJS.ProcessEnv;
  /** Write V8 CPU profiles of every cbft process here (written when the process exits). */
  cpuProfDir?: string;
  /** Where logs, keys and write-ahead logs go (default: a fresh directory under the OS temp dir). */
  workDir?: string;
  log?: (line: string) => void;
}

export interface CbftTarget {
  target: Target;
  cluster: LocalCluster;
  /** Role of each cbft process by pid (replica-0, fw-0-0, …) and the upstream copies. */
  processes: WatchedProcess[];
  stop(): Promise<void>;
}

const UPSTREAM_SCRIPT = fileURLToPath(new URL('./upstream.js', import.meta.url));

export async function startCbftTarget(o: CbftTargetOptions): Promise<CbftTarget> {
  const replicas = o.replicas ?? 4;
  const chains = o.chains ?? 1;
  const chainLength = o.chainLength ?? 2;
  const ports = portCount({ replicas, chains, chainLength }) + replicas;
  const workDir = o.workDir ?? mkdtempSync(join(tmpdir(), `cbft-bench-${o.name}-`));
  await mkdir(workDir, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...o.env };
  // Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the command line.
  const nodeArgs = [...CBFT_NODE_ARGS, ...(o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : [])];
  if (o.cpuProfDir) await mkdir(o.cpuProfDir, { recursive: true });
  // Ports below the kernel's ephemeral range, so no outgoing connection can take one meanwhile.
  let cluster: LocalCluster | undefined;
  for (let attempt = 0; ; attempt++) {
    const basePort = await findFreeRange(ports, 20_000, 32_000);
    try {
      cluster = await startLocalCluster({
        replicas,
        chains,
        chainLength,
        basePort,
        workDir,
        upstream: { command: `${JSON.stringify(process.execPath)} ${JSON.stringify(UPSTREAM_SCRIPT)} --port "$PORT"` },
        ...(o.configure ? { configure: o.configure } : {}),
        env,
        nodeArgs,
        readyTimeoutMs: 60_000,
        onChildExit: (child) => (o.log ?? ((l: string) => process.stderr.write(l + '\n')))(`${o.name}: ${child.id} ${child.describeExit()}: ${child.tail(5).join(' | ')}`),
      });
      break;
    } catch (err) {
      // A port taken between the check and the bind: try another range, a few times.
      if (attempt >= 2 || !/already in use|EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
  const processes: WatchedProcess[] = [];
  for (const [id, child] of cluster.children) {
    if (child.pid === undefined) continue;
    processes.push({ role: id, pid: child.pid, group: id.startsWith('upstream-') ? 'service' : 'front' });
  }
  const bottoms = cluster.cluster.chains.map((c) => c[0]!.url);
  const target: Target = {
    name: o.name,
    url: bottoms[0]!,
    ...(o.spread && bottoms.length > 1 ? { moreUrls: bottoms.slice(1) } : {}),
    processes,
    counters: async () => {
      // replica-0's view of the ordering (every replica executes the same batches).
      const snap = await snapshotMetrics(c, ['cbft_sidecar_batches_executed_total', 'cbft_sidecar_executions_total', 'cbft_sidecar_wal_syncs', 'cbft_firewall_retransmissions_total']);
      const r0 = snap.get(c.cluster.replicas[0]!.id) ?? {};
      let retransmissions = 0;
      for (const v of snap.values()) retransmissions += v['cbft_firewall_retransmissions_total'] ?? 0;
      return {
        batches: r0['cbft_sidecar_batches_executed_total'] ?? 0,
        executions: r0['cbft_sidecar_executions_total'] ?? 0,
        walSyncs: r0['cbft_sidecar_wal_syncs'] ?? 0,
        retransmissions,
      };
    },
  };
  const c = cluster;
  return {
    target,
    cluster: c,
    processes,
    async stop() {
      // In order, so every process can drain: bottoms first (their queues empty while the nodes
      // above still answer), then up the chains, then the sidecars, then the services. Processes
      // that exit on their own write their CPU profile; a SIGKILL after the grace would lose it.
      const kids = c.children;
      for (let k = 0; k < Math.max(0, ...c.cluster.chains.map((ch) => ch.length)); k++) {
        await Promise.all(c.cluster.chains.map((ch) => (ch[k] ? kids.get(ch[k]!.id)?.stop(15_000) : undefined)));
      }
      await Promise.all(c.cluster.replicas.map((r) => kids.get(r.id)?.stop(15_000)));
      await c.stop();
      if (!o.workDir) await rm(workDir, { recursive: true, force: true });
    },
  };
}

/** The .cpuprofile files in a directory (after the processes exited). */
export async function profilesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f));
}

/** Counters worth reading around a measurement (sums over labels), per node. */
export const INTERESTING_METRICS = [
  'cbft_sidecar_batches_executed_total',
  'cbft_sidecar_executions_total',
  'cbft_sidecar_wal_syncs',
  'cbft_sidecar_partials_sent_total',
  'cbft_sidecar_upstream_latency_seconds_sum',
  'cbft_sidecar_view_changes_total',
  'cbft_dropped_messages_total',
  'cbft_firewall_verify_seconds_count',
  'cbft_firewall_verify_seconds_sum',
  'cbft_firewall_combine_seconds_count',
  'cbft_firewall_combine_seconds_sum',
  'cbft_firewall_partials_total',
  'cbft_firewall_latency_seconds_sum',
  'cbft_firewall_latency_seconds_count',
  'cbft_sidecar_upstream_latency_seconds_count',
  'cbft_firewall_retransmissions_total',
  'cbft_alarms_total',
];

export type MetricSnapshot = Map<string, Record<string, number>>;

/** Reads INTERESTING_METRICS from every node's /metrics. */
export async function snapshotMetrics(c: LocalCluster, names = INTERESTING_METRICS): Promise<MetricSnapshot> {
  const nodes = [...c.cluster.replicas, ...c.cluster.chains.flat()];
  const out: MetricSnapshot = new Map();
  await Promise.all(
    nodes.map(async (n) => {
      const values: Record<string, number> = {};
      try {
        const res = await fetch(`${n.adminUrl}/metrics`);
        const text = await res.text();
        for (const line of text.split('\n')) {
          if (line.startsWith('#')) continue;
          const name = line.slice(0, line.search(/[{ ]/));
          if (!names.includes(name)) continue;
          values[name] = (values[name] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
        }
      } catch {
        // a node that does not answer has no figures
      }
      out.set(n.id, values);
    }),
  );
  return out;
}

/** after − before, per node and series, as a markdown table (series with no change omitted). */
export function metricDeltaTable(before: MetricSnapshot, after: MetricSnapshot): string {
  const series = new Set<string>();
  const rows: string[] = [];
  for (const [id, a] of after) {
    const b = before.get(id) ?? {};
    const parts: string[] = [];
    for (const [k, v] of Object.entries(a)) {
      const d = v - (b[k] ?? 0);
      if (d === 0) continue;
      series.add(k);
      parts.push(`${k.replace(/^cbft_/, '')} ${Number.isInteger(d) ? d : d.toFixed(3)}`);
    }
    rows.push(`| ${id} | ${parts.join(', ')} |`);
  }
  return ['| node | change of its counters over the measured window |', '| --- | --- |', ...rows].join('\n');
}
