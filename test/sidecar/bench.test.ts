// Opt-in measurement (not part of CI): ordering throughput of four `cbft sidecar` processes in
// front of four trivial services, and the restart-to-caught-up time of a killed replica.
//   npm run build && CBFT_SIDECAR_BENCH=1 npx vitest run test/sidecar/bench.test.ts
// Knobs: CBFT_BENCH_CLIENTS (default 128), CBFT_BENCH_SECONDS (default 10),
// CBFT_BENCH_VERIFY=1 to combine and verify every batch signature in the client as a top would,
// CBFT_BENCH_DATA=DIR for the cluster and log directory (default the OS temp dir).

import { cpus, loadavg } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { TopClient, canonicalRequest, counts, killAll, makeCluster, metric, startSidecar, startFixture, waitUntil, type Proc } from './helpers.js';

const RUN = process.env.CBFT_SIDECAR_BENCH === '1';
afterAll(killAll);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

describe.skipIf(!RUN)('sidecar benchmark (CBFT_SIDECAR_BENCH=1)', () => {
  it('ordering throughput and restart-to-caught-up time', { timeout: 300_000 }, async () => {
    const clients = Number(process.env.CBFT_BENCH_CLIENTS ?? 128);
    const seconds = Number(process.env.CBFT_BENCH_SECONDS ?? 10);
    const verifySigs = process.env.CBFT_BENCH_VERIFY === '1';
    // CBFT_BENCH_DATA=/dev/shm puts the write-ahead logs on tmpfs (fsync becomes free): an upper bound.
    const tc = await makeCluster({
      pbft: { batchMax: 256, checkpointInterval: 64, watermarkWindow: 256, viewChangeTicks: 500 },
      ...(process.env.CBFT_BENCH_DATA ? { baseDir: process.env.CBFT_BENCH_DATA } : {}),
    });
    // Trivial upstream: no count journal, answers at once.
    const fixtures = await Promise.all(tc.cluster.replicas.map(() => startFixture('')));
    const sidecars: Proc[] = await Promise.all(tc.cluster.replicas.map((r, i) => startSidecar(tc.dir, r.id, fixtures[i]!.url, {}, process.env.CBFT_BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.CBFT_BENCH_PROF] : [])));
    const top = new TopClient(tc.cluster, tc.keys, 0, 2_000, verifySigs);
    await top.start();
    const seq = () => metric(tc.cluster.replicas[1]!.adminUrl, 'cbft_sidecar_sequence').then((v) => v ?? 0);

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
            await top.submit(canonicalRequest('POST', `/op/${label}-${c}-${k}`, 'x'), 60_000);
            lat.push(performance.now() - t);
            done++;
          }
        }),
      );
      const elapsed = (Date.now() - t0) / 1000;
      const batches = (await seq()) - s0;
      return { elapsed, done, batches, lat };
    };

    await run('warmup', 2_000);
    const m = await run('bench', seconds * 1000);
    const line =
      `[bench] 4 sidecars, ${clients} closed-loop clients, ${m.elapsed.toFixed(1)} s, signatures ${verifySigs ? 'combined+verified' : 'not checked'} in the client: ` +
      `${(m.done / m.elapsed).toFixed(0)} requests/s, ${(m.batches / m.elapsed).toFixed(1)} batches/s, ` +
      `${(m.done / Math.max(1, m.batches)).toFixed(1)} requests/batch, latency p50 ${pct(m.lat, 50).toFixed(0)} ms p99 ${pct(m.lat, 99).toFixed(0)} ms ` +
      `(cpus ${cpus().length}, load avg ${loadavg().map((x) => x.toFixed(1)).join(' ')})`;
    console.log(line);
    const a1 = tc.cluster.replicas[1]!.adminUrl;
    const latSum = (await metric(a1, 'cbft_sidecar_upstream_latency_seconds_sum')) ?? 0;
    const latCount = (await metric(a1, 'cbft_sidecar_upstream_latency_seconds_count')) ?? 1;
    console.log(
      `[bench] replica-1: mean service round trip ${((1000 * latSum) / latCount).toFixed(2)} ms over ${latCount} requests; ` +
        `${(await metric(a1, 'cbft_sidecar_wal_syncs')) ?? '?'} WAL syncs`,
    );
    expect(m.done).toBeGreaterThan(0);

    // Restart-to-caught-up: kill -9 a backup, let the others run on, restart it.
    await sidecars[3]!.kill('SIGKILL');
    const behindFrom = await metric(tc.cluster.replicas[0]!.adminUrl, 'cbft_sidecar_sequence');
    await run('while-down', 5_000);
    const target = (await seq()) ?? 0;
    const missedRequests = (await counts(fixtures[0]!.url)).executions - (await counts(fixtures[3]!.url)).executions;
    const t0 = Date.now();
    sidecars[3] = await startSidecar(tc.dir, 'replica-3', fixtures[3]!.url);
    const listening = Date.now() - t0;
    await waitUntil('replica-3 caught up', async () => ((await metric(tc.cluster.replicas[3]!.adminUrl, 'cbft_sidecar_sequence')) ?? 0) >= target, 120_000, 20);
    const caughtUp = Date.now() - t0;
    console.log(
      `[bench] restart-to-caught-up: ${target - (behindFrom ?? 0)} batches (${missedRequests} requests) missed; process listening after ${listening} ms, caught up after ${caughtUp} ms`,
    );
    await top.close();
    for (const s of sidecars) await s.stop();
    tc.cleanup();
  });
});
