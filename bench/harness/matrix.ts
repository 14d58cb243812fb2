import { runLoad } from './load.js';
import { ProcessSampler, type WatchedProcess } from './procstat.js';
import type { RunRecord } from './results.js';
import { sanityCheck, type Workload } from './workloads.js';

/** A configuration under test: its client-facing URL and the processes that make it up. */
export interface Target {
  name: string;
  url: string;
  /** More client-facing URLs sharing the load with `url` (connections round-robin over all). */
  moreUrls?: string[];
  processes: WatchedProcess[];
  /** Counters read before and after each measured run; the record keeps their change. */
  counters?: () => Promise<Record<string, number>>;
}

export function targetUrls(t: Target): string[] {
  return [t.url, ...(t.moreUrls ?? [])];
}

/** CPU seconds of one accounting group of a sampler report (0 when the target has none). */
export function groupCpu(usage: RunRecord['usage'], group: string): number {
  return usage.groups[group]?.cpuSeconds ?? 0;
}

export interface MatrixOptions {
  targets: Target[];
  workloads: Workload[];
  connections: number[];
  durationSec: number;
  warmupSec: number;
  repeat: number;
  log?: (line: string) => void;
}

/**
 * Every (workload, connections) cell runs all targets back to back, `repeat` times, alternating
 * the target order between repeats: ratios between targets then come from measurements taken
 * minutes apart at most, under the same background load.
 */
export async function runMatrix(opts: MatrixOptions): Promise<RunRecord[]> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  for (const t of opts.targets) for (const w of opts.workloads) for (const u of targetUrls(t)) await sanityCheck(t.name, u, w);
  const records: RunRecord[] = [];
  for (let r = 0; r < opts.repeat; r++) {
    for (const w of opts.workloads) {
      for (const c of opts.connections) {
        const order = r % 2 === 0 ? opts.targets : [...opts.targets].reverse();
        for (const t of order) {
          const urls = targetUrls(t).map((u) => new URL(w.path, u).toString());
          const load = {
            url: urls.length === 1 ? urls[0]! : urls,
            method: w.method,
            ...(w.body !== undefined ? { body: w.body } : {}),
            ...(w.headers ? { headers: w.headers } : {}),
            connections: c,
          };
          if (opts.warmupSec > 0) await runLoad({ ...load, durationSec: opts.warmupSec });
          const before = t.counters ? await t.counters() : undefined;
          const sampler = new ProcessSampler([...t.processes, { role: 'loadgen', pid: process.pid, measured: false }]).begin();
          const result = await runLoad({ ...load, durationSec: opts.durationSec });
          const usage = sampler.end();
          const counters: Record<string, number> = {};
          if (before && t.counters) for (const [k, v] of Object.entries(await t.counters())) counters[k] = v - (before[k] ?? 0);
          const rec: RunRecord = {
            target: t.name,
            workload: w.name,
            connections: c,
            repeat: r + 1,
            load: result,
            cpuSecondsPerRequest: result.requests > 0 ? usage.totalCpuSeconds / result.requests : NaN,
            frontCpuSecondsPerRequest: result.requests > 0 ? groupCpu(usage, 'front') / result.requests : NaN,
            serviceCpuSecondsPerRequest: result.requests > 0 ? groupCpu(usage, 'service') / result.requests : NaN,
            usage,
            ...(before ? { counters } : {}),
          };
          records.push(rec);
          log(
            `  run ${r + 1}/${opts.repeat} ${w.name.padEnd(8)} c=${String(c).padEnd(3)} ${t.name.padEnd(10)} ` +
              `${result.reqPerSec.toFixed(0).padStart(7)} req/s  p50 ${result.latencyMs.p50.toFixed(3)} ms  p99 ${result.latencyMs.p99.toFixed(3)} ms  ` +
              `errors ${result.errors + result.timeouts + result.non2xx}  CPU ${(rec.frontCpuSecondsPerRequest * 1e6).toFixed(0)}+${(rec.serviceCpuSecondsPerRequest * 1e6).toFixed(0)} µs/req  ` +
              (rec.counters?.['batches'] ? `${((rec.counters['executions'] ?? 0) / rec.counters['batches']).toFixed(1)} req/batch  ` : '') +
              `RSS ${(usage.groups['front']?.maxPeakRssBytes ?? 0) / 1048576 > 0 ? ((usage.groups['front']?.maxPeakRssBytes ?? 0) / 1048576).toFixed(0) : '–'} MiB`,
          );
        }
      }
    }
  }
  return records;
}
