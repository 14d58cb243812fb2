import { runLoad } from './load.js';
import { ProcessSampler, type WatchedProcess } from './procstat.js';
import type { RunRecord } from './results.js';
import { sanityCheck, type Workload } from './workloads.js';

/** A configuration under test: its client-facing URL and the processes that make it up. */
export interface Target {
  name: string;
  url: string;
  processes: WatchedProcess[];
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
  for (const t of opts.targets) for (const w of opts.workloads) await sanityCheck(t.name, t.url, w);
  const records: RunRecord[] = [];
  for (let r = 0; r < opts.repeat; r++) {
    for (const w of opts.workloads) {
      for (const c of opts.connections) {
        const order = r % 2 === 0 ? opts.targets : [...opts.targets].reverse();
        for (const t of order) {
          const load = {
            url: new URL(w.path, t.url).toString(),
            method: w.method,
            ...(w.body !== undefined ? { body: w.body } : {}),
            ...(w.headers ? { headers: w.headers } : {}),
            connections: c,
          };
          if (opts.warmupSec > 0) await runLoad({ ...load, durationSec: opts.warmupSec });
          const sampler = new ProcessSampler([...t.processes, { role: 'loadgen', pid: process.pid, measured: false }]).begin();
          const result = await runLoad({ ...load, durationSec: opts.durationSec });
          const usage = sampler.end();
          const rec: RunRecord = {
            target: t.name,
            workload: w.name,
            connections: c,
            repeat: r + 1,
            load: result,
            cpuSecondsPerRequest: result.requests > 0 ? usage.totalCpuSeconds / result.requests : NaN,
            usage,
          };
          records.push(rec);
          log(
            `  run ${r + 1}/${opts.repeat} ${w.name.padEnd(8)} c=${String(c).padEnd(3)} ${t.name.padEnd(10)} ` +
              `${result.reqPerSec.toFixed(0).padStart(7)} req/s  p50 ${result.latencyMs.p50.toFixed(3)} ms  p99 ${result.latencyMs.p99.toFixed(3)} ms  ` +
              `errors ${result.errors + result.timeouts + result.non2xx}  CPU ${(rec.cpuSecondsPerRequest * 1e6).toFixed(0)} µs/req`,
          );
        }
      }
    }
  }
  return records;
}
