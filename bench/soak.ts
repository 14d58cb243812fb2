import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { loadAverage, machineDescription, numberOption, parseOptions } from './lib/timing.js';
import { startCbftTarget } from './harness/cbft.js';
import { CBFT_TARGETS } from './full.js';
import { readCpu, readMemory } from './harness/procstat.js';
import { resultsDir } from './harness/results.js';
import { pickWorkloads } from './harness/workloads.js';

/**
 * `npm run bench -- soak [--duration 300] [--connections 32] [--workload get-1k] [--target cbft]
 *   [--interval 2]`
 *
 * Drives the cbft target without pause for `duration` seconds and samples every process's RSS
 * (and CPU) every `interval` seconds, then decides per process whether memory is flat:
 *   - the first 20 % of the run (at least 10 s) is warm-up and not judged;
 *   - the rest is cut into 4 equal windows; growth = median RSS of the last window − median RSS
 *     of the first; slope = least-squares fit over the judged samples (MiB/min);
 *   - flat ⇔ growth ≤ max(8 MiB, 5 % of the first window's median).
 * The run is flat when every cbft process is, and its peak RSS is ≤ the limit (150 MiB).
 * Writes bench/results/soak.{json,md}.
 */
export interface SoakSample {
  t: number;
  rss: Record<string, number>;
  cpu: Record<string, number>;
  requests: number;
}

export interface MemoryVerdict {
  role: string;
  startMiB: number;
  firstWindowMiB: number;
  lastWindowMiB: number;
  peakMiB: number;
  growthMiB: number;
  slopeMiBPerMin: number;
  allowedMiB: number;
  flat: boolean;
}

const MiB = 1024 * 1024;

function med(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The flat-or-not verdict of one process from its samples (t in s, RSS in bytes). */
export function memoryVerdict(role: string, samples: Array<{ t: number; rss: number }>, durationSec: number): MemoryVerdict {
  const warm = Math.max(10, durationSec * 0.2);
  const judged = samples.filter((s) => s.t >= warm && s.rss > 0);
  const span = durationSec - warm;
  const windows: number[][] = [[], [], [], []];
  for (const s of judged) windows[Math.min(3, Math.floor(((s.t - warm) / Math.max(1e-9, span)) * 4))]!.push(s.rss / MiB);
  const first = med(windows[0]!);
  const last = med(windows[3]!.length ? windows[3]! : windows[2]!);
  const n = judged.length;
  const mt = judged.reduce((a, s) => a + s.t, 0) / Math.max(1, n);
  const mr = judged.reduce((a, s) => a + s.rss / MiB, 0) / Math.max(1, n);
  let num = 0;
  let den = 0;
  for (const s of judged) {
    num += (s.t - mt) * (s.rss / MiB - mr);
    den += (s.t - mt) ** 2;
  }
  const slope = den > 0 ? (num / den) * 60 : 0;
  const growth = last - first;
  const allowed = Math.max(8, 0.05 * first);
  return {
    role,
    startMiB: (samples.find((s) => s.rss > 0)?.rss ?? 0) / MiB,
    firstWindowMiB: first,
    lastWindowMiB: last,
    peakMiB: Math.max(0, ...samples.map((s) => s.rss / MiB)),
    growthMiB: growth,
    slopeMiBPerMin: slope,
    allowedMiB: allowed,
    flat: Number.isFinite(growth) && growth <= allowed,
  };
}

export async function main(args: string[]): Promise<void> {
  const opts = parseOptions(args, { duration: 'string', connections: 'string', workload: 'string', target: 'string', interval: 'string', limit: 'string' });
  const durationSec = numberOption(opts, 'duration', 300);
  const connections = numberOption(opts, 'connections', 32);
  const intervalSec = numberOption(opts, 'interval', 2);
  const limitMiB = numberOption(opts, 'limit', 150);
  const name = typeof opts.target === 'string' ? opts.target : 'cbft';
  const spec = CBFT_TARGETS[name];
  if (!spec) throw new Error(`unknown target ${name}; known: ${Object.keys(CBFT_TARGETS).join(', ')}`);
  const workload = pickWorkloads([typeof opts.workload === 'string' ? opts.workload : 'get-1k'])[0]!;
  const machine = machineDescription();
  const loadBefore = loadAverage();
  const c = await startCbftTarget({ name, ...spec });
  const samples: SoakSample[] = [];
  let requests = 0;
  let errors = 0;
  let non2xx = 0;
  let timeouts = 0;
  try {
    const urls = [c.target.url, ...(c.target.moreUrls ?? [])].map((u) => new URL(workload.path, u).toString());
    process.stderr.write(`soak: ${name} (${spec.description}), ${workload.name}, c=${connections}, ${durationSec} s, sampling every ${intervalSec} s\n`);
    const t0 = performance.now();
    const sample = () => {
      const s: SoakSample = { t: (performance.now() - t0) / 1000, rss: {}, cpu: {}, requests };
      for (const p of c.processes) {
        s.rss[p.role] = readMemory(p.pid)?.rssBytes ?? 0;
        const cpu = readCpu(p.pid);
        s.cpu[p.role] = cpu ? cpu.userSeconds + cpu.systemSeconds : 0;
      }
      samples.push(s);
      const last = samples[samples.length - 2];
      if (samples.length % Math.max(1, Math.round(30 / intervalSec)) === 0 && last) {
        const front = c.processes.filter((p) => p.group === 'front');
        const maxRss = Math.max(...front.map((p) => s.rss[p.role]! / MiB));
        process.stderr.write(`  t=${s.t.toFixed(0)} s  ${((s.requests - last.requests) / (s.t - last.t)).toFixed(0)} req/s  largest cbft RSS ${maxRss.toFixed(0)} MiB\n`);
      }
    };
    sample();
    const timer = setInterval(sample, intervalSec * 1000);
    await new Promise<void>((resolve, reject) => {
      const instance = autocannon(
        {
          url: urls.length === 1 ? urls[0]! : urls,
          method: workload.method,
          ...(workload.body !== undefined ? { body: workload.body } : {}),
          ...(workload.headers ? { headers: workload.headers } : {}),
          connections,
          duration: durationSec,
          timeout: 10,
        },
        (err, r) => {
          if (err) return reject(err);
          errors = r.errors;
          timeouts = r.timeouts;
          non2xx = r.non2xx;
          resolve();
        },
      );
      instance.on('response', () => {
        requests++;
      });
    });
    clearInterval(timer);
    sample();
  } finally {
    await c.stop();
  }
  const elapsed = samples[samples.length - 1]!.t;
  const verdicts = c.processes
    .filter((p) => p.group === 'front')
    .map((p) => memoryVerdict(p.role, samples.map((s) => ({ t: s.t, rss: s.rss[p.role] ?? 0 })), elapsed));
  const flat = verdicts.every((v) => v.flat);
  const underLimit = verdicts.every((v) => v.peakMiB <= limitMiB);
  const verdict = `${flat ? 'FLAT' : 'NOT FLAT'}: ${verdicts.filter((v) => v.flat).length}/${verdicts.length} cbft processes flat; peak RSS ${Math.max(...verdicts.map((v) => v.peakMiB)).toFixed(0)} MiB (${underLimit ? '≤' : '>'} ${limitMiB} MiB)`;
  // Throughput over time in ~10 windows.
  const step = Math.max(1, Math.floor(samples.length / 10));
  const tp: string[] = [];
  for (let i = step; i < samples.length; i += step) {
    const a = samples[i - step]!;
    const b = samples[i]!;
    const roles = c.processes.filter((p) => p.group === 'front').map((p) => `${p.role} ${(b.rss[p.role]! / MiB).toFixed(0)}`);
    tp.push(`| ${a.t.toFixed(0)}–${b.t.toFixed(0)} | ${((b.requests - a.requests) / (b.t - a.t)).toFixed(0)} | ${roles.join(', ')} |`);
  }
  const md =
    `## soak: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC\n\n` +
    `${machine}; load average ${loadBefore} → ${loadAverage()}. ${name} (${spec.description}), ${workload.name}, ${connections} connections, ${elapsed.toFixed(0)} s without pause, ` +
    `${requests} requests (${(requests / elapsed).toFixed(0)} req/s), errors ${errors + timeouts + non2xx}. RSS sampled every ${intervalSec} s.\n\n` +
    `**Verdict: ${verdict}.** Rule: first 20 % (≥ 10 s) is warm-up; the rest is cut into 4 windows; flat ⇔ median RSS of the last window − median of the first ≤ max(8 MiB, 5 %).\n\n` +
    '| process | start MiB | first window MiB | last window MiB | peak MiB | growth MiB (allowed) | slope MiB/min | flat |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n' +
    verdicts
      .map(
        (v) =>
          `| ${v.role} | ${v.startMiB.toFixed(0)} | ${v.firstWindowMiB.toFixed(1)} | ${v.lastWindowMiB.toFixed(1)} | ${v.peakMiB.toFixed(0)} | ${v.growthMiB.toFixed(1)} (${v.allowedMiB.toFixed(0)}) | ${v.slopeMiBPerMin.toFixed(2)} | ${v.flat ? 'yes' : '**no**'} |`,
      )
      .join('\n') +
    `\n\n| seconds | req/s | RSS MiB at the end of the window |\n| --- | ---: | --- |\n${tp.join('\n')}\n`;
  await writeFile(join(resultsDir(), 'soak.md'), md);
  await writeFile(
    join(resultsDir(), 'soak.json'),
    JSON.stringify({ suite: 'soak', date: new Date().toISOString(), machine, target: name, workload: workload.name, connections, durationSec: elapsed, requests, errors: errors + timeouts + non2xx, verdict, flat, underLimit, limitMiB, verdicts, samples }, null, 1) + '\n',
  );
  process.stdout.write(`\n${md}\nwrote bench/results/soak.{json,md}\n`);
}
