import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCluster, portCount, writeCluster } from '../src/cluster/keygen.js';
import { ManagedChild } from '../src/up/child.js';
import { CLI_PATH } from '../src/up/local-cluster.js';
import { findFreeRange } from '../src/up/ports.js';
import { waitReady } from './lib/admin.js';
import { connectionsOption, listOption, loadAverage, machineDescription, MATRIX_OPTIONS, parseOptions, runOptions } from './lib/timing.js';
import { runMatrix, type Target } from './harness/matrix.js';
import { startReferences } from './harness/reference.js';
import { summarize, writeResults } from './harness/results.js';
import { startService } from './harness/service.js';
import { pickWorkloads } from './harness/workloads.js';

/**
 * `npm run bench -- firewall [--duration 5] [--warmup 1] [--repeat 2] [--connections 32,128]
 *   [--workloads get-1k]`
 *
 * The firewall chain alone: one chain of 2 real `cbft firewall` processes in front of fake
 * replicas (bench/harness/fake-replicas-server.ts: one sequencer instead of PBFT, no service
 * calls, real partial signatures, their own process), against @fastify/http-proxy in front of
 * the bench upstream, in the same run. Front CPU = the two firewall processes; service CPU = the
 * fake replicas. Writes bench/results/firewall.{json,md}. Formerly test/firewall/throughput.test.ts.
 */

export async function main(args: string[]): Promise<void> {
  const opts = parseOptions(args, MATRIX_OPTIONS);
  const { durationSec, warmupSec, repeat } = runOptions(opts, { duration: 5, repeat: 2 });
  const connections = connectionsOption(opts, ['32', '128']);
  const workloads = pickWorkloads(listOption(opts, 'workloads', ['get-1k']));
  const machine = machineDescription();
  const loadBefore = loadAverage();
  const base = await mkdtemp(join(tmpdir(), 'cbft-bench-fw-'));
  const basePort = await findFreeRange(portCount({ replicas: 4, chains: 1, chainLength: 2 }), 20_000, 32_000);
  const { cluster, keys } = generateCluster({ replicas: 4, chains: 1, chainLength: 2, basePort });
  cluster.firewall = { ...cluster.firewall, requestTimeoutMs: 10_000 };
  const dir = join(base, 'cluster');
  await writeCluster(dir, cluster, keys);
  const refs = await startReferences();
  const fake = await startService('fake-replicas', new URL('./harness/fake-replicas-server.js', import.meta.url), ['--cluster', dir], { timeoutMs: 30_000 });
  const nodes = cluster.chains[0]!.map(
    (n) => new ManagedChild({ id: n.id, command: process.execPath, args: [CLI_PATH, 'firewall', '--cluster', dir, '--id', n.id], logFile: join(base, `${n.id}.log`) }),
  );
  try {
    for (const n of [...cluster.chains[0]!].reverse()) await waitReady(n.adminUrl);
    const chain: Target = {
      name: 'fw-chain',
      url: cluster.chains[0]![0]!.url,
      processes: [
        ...nodes.map((n) => ({ role: n.id, pid: n.pid!, group: 'front' })),
        { role: 'fake-replicas', pid: fake.pid, group: 'service' },
      ],
    };
    const runs = await runMatrix({ targets: [refs.proxy, chain], workloads, connections, durationSec, warmupSec, repeat });
    const summary = summarize(runs, 'proxy');
    const { markdown } = await writeResults(
      {
        suite: 'firewall',
        date: new Date().toISOString(),
        machine,
        loadAverage: { before: loadBefore, after: loadAverage() },
        config: { 'duration s': durationSec, 'warm-up s': warmupSec, repeats: repeat, connections, workloads: workloads.map((w) => w.name) },
        notes: ['fw-chain = one chain of 2 real firewall processes (bottom, top) in front of fake replicas in their own process (service CPU); proxy = @fastify/http-proxy in front of the bench upstream.'],
        summary,
        runs,
      },
      { name: 'firewall' },
    );
    process.stdout.write(`\n${markdown}\nwrote bench/results/firewall.{json,md}\n`);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await fake.stop();
    await refs.stop();
    await rm(base, { recursive: true, force: true });
  }
}
