import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAverage, machineDescription, numberOption, parseOptions } from './lib/timing.js';
import { metricDeltaTable, profilesIn, snapshotMetrics, startCbftTarget, type MetricSnapshot } from './harness/cbft.js';
import { monotonicMicros, profileMarkdown, summarizeProfile, type ProfileSummary } from './harness/cpuprofile.js';
import { CBFT_TARGETS } from './full.js';
import { runLoad } from './harness/load.js';
import { ProcessSampler } from './harness/procstat.js';
import { resultsDir } from './harness/results.js';
import { pickWorkloads } from './harness/workloads.js';

/**
 * `npm run bench -- profile [--target cbft] [--workload get-1k] [--connections 32] [--duration 20]
 *   [--keep DIR] [--top 15]`
 *
 * Starts the cbft target with `--cpu-prof` on every cbft process, drives the workload, stops the
 * cluster (each process writes its profile as it exits), and reduces every profile to its self
 * time per area and per function. Writes bench/results/profile.{md,json}. Profiles include the
 * start-up and the stop of each process (about a second of CPU), so runs of 20 s or more keep
 * that small; the load generator is not profiled.
 */
/**
 * Where the time of one request goes, from the nodes' own histograms (means over the window):
 * the bottom's queue time (arrival to release), the top's, the crypto at each, the replicas'.
 */
function latencyAnatomy(cluster: { replicas: Array<{ id: string }>; chains: Array<Array<{ id: string }>> }, before: MetricSnapshot, after: MetricSnapshot, clientMeanMs: number): string {
  const d = (id: string, k: string) => (after.get(id)?.[k] ?? 0) - (before.get(id)?.[k] ?? 0);
  const mean = (id: string, sum: string, count: string) => (d(id, count) > 0 ? (1000 * d(id, sum)) / d(id, count) : NaN);
  const chain = cluster.chains[0]!;
  const bottom = chain[0]!.id;
  const top = chain[chain.length - 1]!.id;
  const r0 = cluster.replicas[0]!.id;
  const rows: Array<[string, number]> = [
    ['client round trip (autocannon mean)', clientMeanMs],
    [`${bottom}: request in → reply released (mean)`, mean(bottom, 'cbft_firewall_latency_seconds_sum', 'cbft_firewall_latency_seconds_count')],
    [`${bottom}: one BLS verification (mean, once per batch)`, mean(bottom, 'cbft_firewall_verify_seconds_sum', 'cbft_firewall_verify_seconds_count')],
    [`${top}: request in → reply released (mean)`, mean(top, 'cbft_firewall_latency_seconds_sum', 'cbft_firewall_latency_seconds_count')],
    [`${top}: combine s+1 partials (mean, once per batch)`, mean(top, 'cbft_firewall_combine_seconds_sum', 'cbft_firewall_combine_seconds_count')],
    [`${top}: one BLS verification (mean, once per batch)`, mean(top, 'cbft_firewall_verify_seconds_sum', 'cbft_firewall_verify_seconds_count')],
    [`${r0}: one call to its service copy (mean)`, mean(r0, 'cbft_sidecar_upstream_latency_seconds_sum', 'cbft_sidecar_upstream_latency_seconds_count')],
  ];
  const batches = d(r0, 'cbft_sidecar_batches_executed_total');
  const syncs = d(r0, 'cbft_sidecar_wal_syncs');
  return (
    '| stage | ms |\n| --- | ---: |\n' +
    rows.map(([k, v]) => `| ${k} | ${Number.isFinite(v) ? v.toFixed(2) : '–'} |`).join('\n') +
    `\n\n${r0}: ${batches} batches, ${d(r0, 'cbft_sidecar_executions_total')} executions, ${syncs} WAL fdatasyncs (${batches ? (syncs / batches).toFixed(1) : '–'} per batch).`
  );
}

export async function main(args: string[]): Promise<void> {
  const opts = parseOptions(args, { target: 'string', workload: 'string', connections: 'string', duration: 'string', keep: 'string', top: 'string', warmup: 'string' });
  const name = typeof opts.target === 'string' ? opts.target : 'cbft';
  const spec = CBFT_TARGETS[name];
  if (!spec) throw new Error(`unknown target ${name}; known: ${Object.keys(CBFT_TARGETS).join(', ')}`);
  const workload = pickWorkloads([typeof opts.workload === 'string' ? opts.workload : 'get-1k'])[0]!;
  const connections = numberOption(opts, 'connections', 32);
  const durationSec = numberOption(opts, 'duration', 20);
  const warmupSec = numberOption(opts, 'warmup', 2);
  const topN = numberOption(opts, 'top', 15);
  const dir = typeof opts.keep === 'string' ? opts.keep : await mkdtemp(join(tmpdir(), 'cbft-prof-'));
  const loadBefore = loadAverage();
  const c = await startCbftTarget({ name, ...spec, cpuProfDir: dir });
  const roleOf = new Map(c.processes.map((p) => [p.pid, p.role]));
  let requests = 0;
  let result;
  let usage;
  let counters = '';
  let window: { from: number; to: number } | undefined;
  try {
    const urls = [c.target.url, ...(c.target.moreUrls ?? [])].map((u) => new URL(workload.path, u).toString());
    const load = {
      url: urls.length === 1 ? urls[0]! : urls,
      method: workload.method,
      ...(workload.body !== undefined ? { body: workload.body } : {}),
      ...(workload.headers ? { headers: workload.headers } : {}),
      connections,
    };
    await runLoad({ ...load, durationSec: warmupSec });
    const before = await snapshotMetrics(c.cluster);
    const sampler = new ProcessSampler(c.processes).begin();
    const from = monotonicMicros();
    result = await runLoad({ ...load, durationSec });
    window = { from, to: monotonicMicros() };
    usage = sampler.end();
    const after = await snapshotMetrics(c.cluster);
    counters = metricDeltaTable(before, after) + '\n\n' + latencyAnatomy(c.cluster.cluster, before, after, result.latencyMs.mean);
    requests = result.requests;
    process.stderr.write(
      `profile: ${name} ${workload.name} c=${connections}: ${result.reqPerSec.toFixed(0)} req/s, p50 ${result.latencyMs.p50.toFixed(2)} ms, p99 ${result.latencyMs.p99.toFixed(2)} ms, errors ${result.errors + result.timeouts + result.non2xx}\n`,
    );
  } finally {
    await c.stop();
  }
  const files = await profilesIn(dir);
  const summaries: ProfileSummary[] = [];
  for (const f of files) {
    const pid = Number(f.split('/').pop()!.split('.')[3]);
    summaries.push(await summarizeProfile(f, roleOf.get(pid) ?? `pid ${pid}`, window));
  }
  summaries.sort((a, b) => a.role.localeCompare(b.role, 'en', { numeric: true }) || a.thread - b.thread);
  const cpuTable = usage
    ? ['| process | CPU s in the measured window | CPU µs/request | peak RSS MiB |', '| --- | ---: | ---: | ---: |', ...usage.processes.map((p) => `| ${p.role} | ${p.cpuSeconds.toFixed(2)} | ${((p.cpuSeconds * 1e6) / Math.max(1, requests)).toFixed(0)} | ${(p.peakRssBytes / 1048576).toFixed(0)} |`)].join('\n')
    : '';
  const md =
    `## profile: ${name} (${spec.description}), ${workload.name}, c=${connections}, ${durationSec} s — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC\n\n` +
    `${machineDescription()}; load average ${loadBefore} → ${loadAverage()}. ` +
    (result ? `${result.reqPerSec.toFixed(0)} req/s, p50 ${result.latencyMs.p50.toFixed(2)} ms, p99 ${result.latencyMs.p99.toFixed(2)} ms, ${requests} requests measured.\n\n` : '\n\n') +
    `${cpuTable}\n\n${counters}\n\nSelf time per process, samples of the measured ${durationSec} s only (V8 samples wall time: under CPU contention a descheduled thread's time is charged to the function it was in, so shares are more telling than absolute figures):\n\n` +
    profileMarkdown(summaries, topN, requests);
  const out = resultsDir();
  await writeFile(join(out, 'profile.md'), md);
  await writeFile(join(out, 'profile.json'), JSON.stringify({ target: name, workload: workload.name, connections, durationSec, result, usage, profiles: summaries.map((s) => ({ ...s, functions: s.functions.slice(0, 60) })) }, null, 2) + '\n');
  process.stdout.write(md + `\nwrote bench/results/profile.{md,json}; raw profiles in ${dir}${typeof opts.keep === 'string' ? '' : ' (removed)'}\n`);
  if (typeof opts.keep !== 'string') await rm(dir, { recursive: true, force: true });
}
