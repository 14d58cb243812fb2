import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult } from './load.js';
import type { SamplerReport } from './procstat.js';

/** One measured run: one target, one workload, one concurrency, one repeat. */
export interface RunRecord {
  target: string;
  workload: string;
  connections: number;
  repeat: number;
  load: LoadResult;
  /** CPU seconds of all measured processes of the target together, per request. */
  cpuSecondsPerRequest: number;
  usage: SamplerReport;
}

/** Ratios target ÷ reference, computed per repeat (same run) and summarised by the median. */
export interface Ratios {
  reqPerSec: number;
  reqPerSecRuns: number[];
  p50: number;
  p99: number;
  cpuPerRequest: number;
}

export interface SummaryRow {
  target: string;
  workload: string;
  connections: number;
  runs: number;
  reqPerSec: number;
  reqPerSecRuns: number[];
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p50MsRuns: number[];
  errors: number;
  cpuMsPerRequest: number;
  /** Largest peak RSS of any single measured process of the target, over all runs. */
  peakRssMiB: number;
  vsReference?: Ratios;
}

export const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const MiB = 1024 * 1024;

export function summarize(records: RunRecord[], reference = 'proxy'): SummaryRow[] {
  const key = (r: { target: string; workload: string; connections: number }) => `${r.workload}\u0000${r.connections}\u0000${r.target}`;
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) {
    const k = key(r);
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const rows: SummaryRow[] = [];
  for (const runs of groups.values()) {
    const f = runs[0]!;
    runs.sort((a, b) => a.repeat - b.repeat);
    rows.push({
      target: f.target,
      workload: f.workload,
      connections: f.connections,
      runs: runs.length,
      reqPerSec: median(runs.map((r) => r.load.reqPerSec)),
      reqPerSecRuns: runs.map((r) => r.load.reqPerSec),
      p50Ms: median(runs.map((r) => r.load.latencyMs.p50)),
      p90Ms: median(runs.map((r) => r.load.latencyMs.p90)),
      p99Ms: median(runs.map((r) => r.load.latencyMs.p99)),
      p50MsRuns: runs.map((r) => r.load.latencyMs.p50),
      errors: runs.reduce((s, r) => s + r.load.errors + r.load.timeouts + r.load.non2xx, 0),
      cpuMsPerRequest: median(runs.map((r) => r.cpuSecondsPerRequest * 1000)),
      peakRssMiB: Math.max(0, ...runs.map((r) => r.usage.maxPeakRssBytes / MiB)),
    });
  }
  // Ratios against the reference target of the same cell, repeat by repeat.
  for (const row of rows) {
    if (row.target === reference) continue;
    const mine = records.filter((r) => key(r) === key(row));
    const ratios = mine
      .map((r) => {
        const ref = records.find((x) => x.target === reference && x.workload === r.workload && x.connections === r.connections && x.repeat === r.repeat);
        if (!ref) return undefined;
        return {
          reqPerSec: r.load.reqPerSec / ref.load.reqPerSec,
          p50: r.load.latencyMs.p50 / ref.load.latencyMs.p50,
          p99: r.load.latencyMs.p99 / ref.load.latencyMs.p99,
          cpu: r.cpuSecondsPerRequest / ref.cpuSecondsPerRequest,
        };
      })
      .filter((x): x is NonNullable<typeof x> => x !== undefined);
    if (ratios.length) {
      row.vsReference = {
        reqPerSec: median(ratios.map((x) => x.reqPerSec)),
        reqPerSecRuns: ratios.map((x) => x.reqPerSec),
        p50: median(ratios.map((x) => x.p50)),
        p99: median(ratios.map((x) => x.p99)),
        cpuPerRequest: median(ratios.map((x) => x.cpu)),
      };
    }
  }
  const order = [...new Set(records.map((r) => r.target))];
  const wOrder = [...new Set(records.map((r) => r.workload))];
  rows.sort(
    (a, b) => wOrder.indexOf(a.workload) - wOrder.indexOf(b.workload) || a.connections - b.connections || order.indexOf(a.target) - order.indexOf(b.target),
  );
  return rows;
}

function num(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}

function ms(x: number): string {
  if (!Number.isFinite(x)) return '–';
  return x < 1 ? x.toFixed(3) : x < 10 ? x.toFixed(2) : x.toFixed(1);
}

export function markdownTable(rows: SummaryRow[], reference = 'proxy'): string {
  const head =
    `| workload | conns | target | req/s (median; runs) | p50 ms | p90 ms | p99 ms | errors | CPU ms/req | peak RSS MiB | ` +
    `req/s ÷ ${reference} (runs) | p50 ÷ ${reference} | p99 ÷ ${reference} | CPU/req ÷ ${reference} |`;
  const sep = '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
  const lines = rows.map((r) => {
    const v = r.vsReference;
    const ratio = v ? `${num(v.reqPerSec, 2)} (${v.reqPerSecRuns.map((x) => num(x, 2)).join(', ')})` : r.target === reference ? '1' : '–';
    return (
      `| ${r.workload} | ${r.connections} | ${r.target} | ${num(r.reqPerSec, 0)} (${r.reqPerSecRuns.map((x) => num(x, 0)).join(', ')}) | ` +
      `${ms(r.p50Ms)} | ${ms(r.p90Ms)} | ${ms(r.p99Ms)} | ${r.errors} | ${num(r.cpuMsPerRequest, 3)} | ${num(r.peakRssMiB, 0)} | ` +
      `${ratio} | ${v ? num(v.p50, 2) : r.target === reference ? '1' : '–'} | ${v ? num(v.p99, 2) : r.target === reference ? '1' : '–'} | ` +
      `${v ? num(v.cpuPerRequest, 2) : r.target === reference ? '1' : '–'} |`
    );
  });
  return [head, sep, ...lines].join('\n');
}

export interface ResultsFile {
  suite: string;
  date: string;
  machine: string;
  loadAverage: { before: number; after: number };
  config: Record<string, unknown>;
  notes: string[];
  summary: SummaryRow[];
  runs: RunRecord[];
}

/** The repository's bench/results directory (the compiled file lives in dist/bench/harness). */
export function resultsDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench', 'results');
}

/** Writes `<name>.json` and `<name>.md` (default `latest`) and returns the markdown. */
export async function writeResults(file: ResultsFile, opts: { dir?: string; name?: string; reference?: string } = {}): Promise<{ markdown: string; paths: string[] }> {
  const dir = opts.dir ?? resultsDir();
  const name = opts.name ?? 'latest';
  await mkdir(dir, { recursive: true });
  const markdown =
    `## ${file.suite}: ${file.date.slice(0, 16).replace('T', ' ')} UTC\n\n` +
    `${file.machine}; load average ${file.loadAverage.before} → ${file.loadAverage.after}. ` +
    `Everything on 127.0.0.1; ${Object.entries(file.config)
      .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : String(v)}`)
      .join('; ')}.\n` +
    (file.notes.length ? '\n' + file.notes.map((n) => `- ${n}`).join('\n') + '\n' : '') +
    `\n${markdownTable(file.summary, opts.reference)}\n`;
  const paths = [join(dir, `${name}.json`), join(dir, `${name}.md`)];
  await writeFile(paths[0]!, JSON.stringify(file, null, 2) + '\n');
  await writeFile(paths[1]!, markdown);
  return { markdown, paths };
}
