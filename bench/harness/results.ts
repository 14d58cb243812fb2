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
  /** The same for the `front` group only (the cbft processes together, or the proxy). */
  frontCpuSecondsPerRequest: number;
  /** The same for the `service` group only (the upstream copies together). */
  serviceCpuSecondsPerRequest: number;
  usage: SamplerReport;
  /** Change of the target's counters over the run (cbft: batches and executions of replica-0, …). */
  counters?: Record<string, number>;
}

/** Ratios target ÷ reference, computed per repeat (same run) and summarised by the median. */
export interface Ratios {
  reqPerSec: number;
  reqPerSecRuns: number[];
  p50: number;
  p99: number;
  /** Total CPU per request (front and service together). */
  cpuPerRequest: number;
  /** Front CPU per request only (cbft processes ÷ the proxy process). */
  frontCpuPerRequest: number;
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
  frontCpuMsPerRequest: number;
  serviceCpuMsPerRequest: number;
  /** Largest peak RSS of any single measured process of the target, over all runs. */
  peakRssMiB: number;
  /** Largest peak RSS of any single front process (a cbft process, or the proxy). */
  frontPeakRssMiB: number;
  /** Peak RSS per process role (e.g. replica-0, fw-0-1, upstream-2), over all runs. */
  peakRssByRoleMiB: Record<string, number>;
  /** cbft: requests executed per PBFT batch (median over runs). */
  requestsPerBatch?: number;
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
      frontCpuMsPerRequest: median(runs.map((r) => r.frontCpuSecondsPerRequest * 1000)),
      serviceCpuMsPerRequest: median(runs.map((r) => r.serviceCpuSecondsPerRequest * 1000)),
      peakRssMiB: Math.max(0, ...runs.map((r) => r.usage.maxPeakRssBytes / MiB)),
      frontPeakRssMiB: Math.max(0, ...runs.map((r) => (r.usage.groups['front']?.maxPeakRssBytes ?? 0) / MiB)),
      peakRssByRoleMiB: peakByRole(runs),
      ...(runs.some((r) => r.counters?.['batches'])
        ? { requestsPerBatch: median(runs.map((r) => (r.counters?.['batches'] ? (r.counters['executions'] ?? 0) / r.counters['batches'] : NaN))) }
        : {}),
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
          front: r.frontCpuSecondsPerRequest / ref.frontCpuSecondsPerRequest,
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
        frontCpuPerRequest: median(ratios.map((x) => x.front)),
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

function peakByRole(runs: RunRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of runs) {
    for (const p of r.usage.processes) {
      if (!p.measured) continue;
      out[p.role] = Math.max(out[p.role] ?? 0, Math.round((p.peakRssBytes / MiB) * 10) / 10);
    }
  }
  return out;
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
    `| workload | conns | target | req/s (median; runs) | p50 ms | p90 ms | p99 ms | errors | front CPU ms/req | service CPU ms/req | peak RSS MiB | ` +
    `req/s ÷ ${reference} (runs) | p50 ÷ ${reference} | p99 ÷ ${reference} | CPU/req ÷ ${reference} (front; total) |`;
  const sep = '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
  const lines = rows.map((r) => {
    const v = r.vsReference;
    const isRef = r.target === reference;
    const ratio = v ? `${num(v.reqPerSec, 2)} (${v.reqPerSecRuns.map((x) => num(x, 2)).join(', ')})` : isRef ? '1' : '–';
    const cpu = v ? `${num(v.frontCpuPerRequest, 1)}; ${num(v.cpuPerRequest, 1)}` : isRef ? '1' : '–';
    return (
      `| ${r.workload} | ${r.connections} | ${r.target} | ${num(r.reqPerSec, 0)} (${r.reqPerSecRuns.map((x) => num(x, 0)).join(', ')}) | ` +
      `${ms(r.p50Ms)} | ${ms(r.p90Ms)} | ${ms(r.p99Ms)} | ${r.errors} | ${num(r.frontCpuMsPerRequest, 3)} | ${num(r.serviceCpuMsPerRequest, 3)} | ${num(r.frontPeakRssMiB || r.peakRssMiB, 0)} | ` +
      `${ratio} | ${v ? num(v.p50, 1) : isRef ? '1' : '–'} | ${v ? num(v.p99, 1) : isRef ? '1' : '–'} | ${cpu} |`
    );
  });
  return [head, sep, ...lines].join('\n');
}

/** Peak RSS per process role for each target (largest over all its runs). */
export function rssTable(rows: SummaryRow[]): string {
  const byTarget = new Map<string, Record<string, number>>();
  for (const r of rows) {
    const t = byTarget.get(r.target) ?? {};
    for (const [role, mib] of Object.entries(r.peakRssByRoleMiB)) t[role] = Math.max(t[role] ?? 0, mib);
    byTarget.set(r.target, t);
  }
  const lines = ['| target | peak RSS per process, MiB (all runs) |', '| --- | --- |'];
  for (const [target, roles] of byTarget) {
    lines.push(
      `| ${target} | ${Object.entries(roles)
        .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
        .map(([role, mib]) => `${role} ${mib.toFixed(0)}`)
        .join(', ')} |`,
    );
  }
  return lines.join('\n');
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
  /** More markdown after the main table (e.g. the RSS table, targets reached). */
  extraMarkdown?: string;
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
    `\n${markdownTable(file.summary, opts.reference)}\n` +
    (file.extraMarkdown ? `\n${file.extraMarkdown}\n` : '');
  const paths = [join(dir, `${name}.json`), join(dir, `${name}.md`)];
  await writeFile(paths[0]!, JSON.stringify(file, null, 2) + '\n');
  await writeFile(paths[1]!, markdown);
  return { markdown, paths };
}
