import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCluster, portCount, writeCluster } from '../src/cluster/keygen.js';
import { ManagedChild } from '../src/up/child.js';
import { CLI_PATH } from '../src/up/local-cluster.js';
import { findFreeRange } from '../src/up/ports.js';
import { metric, waitReady } from './lib/admin.js';
import { loadAverage, machineDescription, numberOption, parseOptions } from './lib/timing.js';
import { ProcessSampler } from './harness/procstat.js';
import { startService, type RunningService } from './harness/service.js';
import { TopClient, canonicalRequest } from './harness/top-client.js';

/**
 * `npm run bench -- sidecar [--clients 128] [--duration 10] [--verify] [--data DIR] [--no-restart] [--cpu-prof DIR]`
 *
 * The replicas alone: four real `cbft sidecar` processes in front of four bench upstreams, driven
 * by `clients` closed-loop clients through an in-process stand-in for the top firewall node (real
 * links and signatures; with --verify it also combines and verifies every batch signature as a
 * real top does). Reports ordering throughput, requests per batch, latency and WAL syncs; then
 * kills one backup with SIGKILL, keeps the others busy for 5 s, restarts it and reports the
 * restart-to-caught-up time. --data puts the cluster and the write-ahead logs under DIR (e.g.
 * /dev/shm: fsync becomes free, an upper bound). --cpu-prof DIR writes each sidecar's CPU profile
 * there when it stops. Formerly test/sidecar/bench.test.ts.
 */
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

export async function main(args: string[]): Promise<void> {
  const opts = parseOptions(args, { clients: 'string', duration: 'string', verify: 'boolean', data: 'string', 'no-restart': 'boolean', 'cpu-prof': 'string' });
  const profArgs = typeof opts['cpu-prof'] === 'string' ? ['--cpu-prof', `--cpu-prof-dir=${opts['cpu-prof']}`] : [];
  const clients = numberOption(opts, 'clients', 128);
  const seconds = numberOption(opts, 'duration', 10);
  const verifySigs = opts.verify === true;
  const base = await mkdtemp(join(typeof opts.data === 'string' ? opts.data : tmpdir(), 'cbft-bench-sidecar-'));
  const replicas = 4;
  const basePort = await findFreeRange(portCount({ replicas, chains: 1, chainLength: 2 }), 20_000, 32_000);
  const { cluster, keys } = generateCluster({ replicas, chains: 1, chainLength: 2, basePort });
  const dir = join(base, 'cluster');
  await writeCluster(dir, cluster, keys);
  const upstreams: RunningService[] = [];
  const sidecars: ManagedChild[] = [];
  const startSidecar = async (i: number) => {
    const r = cluster.replicas[i]!;
    const data = join(base, 'data', r.id);
    await mkdir(data, { recursive: true });
    const child = new ManagedChild({
      id: r.id,
      command: process.execPath,
      args: [...profArgs, CLI_PATH, 'sidecar', '--cluster', dir, '--id', r.id, '--upstream', upstreams[i]!.url, '--data', data],
      logFile: join(base, `${r.id}.log`),
    });
    sidecars[i] = child;
    await waitReady(r.adminUrl);
    return child;
  };
  const top = new TopClient(cluster, keys, 0, 2_000, verifySigs);
  try {
    for (let i = 0; i < replicas; i++) upstreams.push(await startService(`upstream-${i}`, new URL('./harness/upstream.js', import.meta.url)));
    for (let i = 0; i < replicas; i++) await startSidecar(i);
    await top.start();
    const seq = async () => (await metric(cluster.replicas[1]!.adminUrl, 'cbft_sidecar_sequence')) ?? 0;
    const run = async (label: string, durationMs: number) => {
      const lat: number[] = [];
      let done = 0;
      const until = Date.now() + durationMs;
      const s0 = await seq();
      const t0 = Date.now();
      await Promise.all(
        Array.from({ length: clients }, async (_, c) => {
          for (let k = 0; Date.now() < until; k++) {
            const t = performance.now();
            await top.submit(canonicalRequest('GET', `/json?${label}-${c}-${k}`), 60_000);
            lat.push(performance.now() - t);
            done++;
          }
        }),
      );
      return { elapsed: (Date.now() - t0) / 1000, done, batches: (await seq()) - s0, lat };
    };
    const loadBefore = loadAverage();
    await run('warmup', 2_000);
    const syncs0 = (await metric(cluster.replicas[1]!.adminUrl, 'cbft_sidecar_wal_syncs')) ?? 0;
    const sampler = new ProcessSampler(sidecars.map((c, i) => ({ role: c.id, pid: c.pid!, group: 'front' })).concat(upstreams.map((u, i) => ({ role: `upstream-${i}`, pid: u.pid, group: 'service' })))).begin();
    const m = await run('bench', seconds * 1000);
    const usage = sampler.end();
    const syncs = ((await metric(cluster.replicas[1]!.adminUrl, 'cbft_sidecar_wal_syncs')) ?? 0) - syncs0;
    process.stdout.write(
      `sidecar: 4 sidecars, ${clients} closed-loop clients, ${m.elapsed.toFixed(1)} s, signatures ${verifySigs ? 'combined+verified' : 'not checked'} by the client: ` +
        `${(m.done / m.elapsed).toFixed(0)} requests/s, ${(m.batches / m.elapsed).toFixed(1)} batches/s, ${(m.done / Math.max(1, m.batches)).toFixed(1)} requests/batch, ` +
        `latency p50 ${pct(m.lat, 50).toFixed(1)} ms p99 ${pct(m.lat, 99).toFixed(1)} ms; replica-1 WAL syncs ${syncs} (${(syncs / Math.max(1, m.done)).toFixed(2)}/request); ` +
        `CPU µs/request: ${usage.processes.map((p) => `${p.role} ${((p.cpuSeconds * 1e6) / Math.max(1, m.done)).toFixed(0)}`).join(', ')} ` +
        `(${machineDescription()}, load average ${loadBefore} → ${loadAverage()})\n`,
    );
    if (opts['no-restart'] !== true) {
      await sidecars[3]!.signal('SIGKILL');
      await sidecars[3]!.exited;
      const behindFrom = await seq();
      await run('while-down', 5_000);
      const target = await seq();
      const t0 = Date.now();
      await startSidecar(3);
      const listening = Date.now() - t0;
      for (;;) {
        if (((await metric(cluster.replicas[3]!.adminUrl, 'cbft_sidecar_sequence')) ?? 0) >= target) break;
        if (Date.now() - t0 > 120_000) throw new Error('replica-3 did not catch up within 120 s');
        await new Promise((r) => setTimeout(r, 20));
      }
      process.stdout.write(`sidecar: restart-to-caught-up: ${target - behindFrom} batches missed; ready after ${listening} ms, caught up after ${Date.now() - t0} ms\n`);
    }
  } finally {
    await top.close();
    await Promise.all(sidecars.map((s) => s.stop()));
    await Promise.all(upstreams.map((u) => u.stop()));
    await rm(base, { recursive: true, force: true });
  }
}
