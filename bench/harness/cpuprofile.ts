import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

/**
 * Reads V8 `.cpuprofile` files (written by `node --cpu-prof`) and reduces each to where its time
 * went: self time per function and per "area" (cbft source module, npm package, node internals,
 * GC, idle). File names are `CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`; thread 0 is the
 * main thread, others are worker threads (the firewall's crypto worker).
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface FunctionTime {
  name: string;
  where: string;
  area: string;
  selfMs: number;
}

export interface ProfileSummary {
  file: string;
  pid: number;
  thread: number;
  role: string;
  wallMs: number;
  /** Sampled time not idle (self time of everything but `(idle)`). */
  busyMs: number;
  idleMs: number;
  gcMs: number;
  functions: FunctionTime[];
  areas: Array<{ area: string; selfMs: number }>;
  /**
   * Time charged to the nearest cbft function on the stack (its own time plus everything it
   * called in node, npm packages or builtins): "which cbft code path costs what".
   */
  byCbftCaller: Array<{ name: string; selfMs: number }>;
}

export function areaOf(url: string, functionName: string): string {
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return 'program (native, unattributed)';
  if (!url) return 'native / builtins';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const m = /\/dist\/(src|bench)\/(.+?)\.js$/.exec(url);
  if (m) return `cbft ${m[1]}/${m[2]}`;
  return url.replace(/^file:\/\//, '');
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const d = url.indexOf('/dist/');
  if (d >= 0) return url.slice(d + 6);
  return url.replace(/^file:\/\//, '');
}

export function parseProfileName(file: string): { pid: number; thread: number } {
  const parts = basename(file).split('.');
  // CPU.20260101.120000.<pid>.<thread>.<seq>.cpuprofile
  return { pid: Number(parts[3]), thread: Number(parts[4]) };
}

/**
 * Monotonic clock in µs on the same time base as V8's profile timestamps (CLOCK_MONOTONIC), so a
 * measured window taken in the bench process selects the samples of other processes' profiles.
 */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export async function summarizeProfile(file: string, role: string, window?: { from: number; to: number }): Promise<ProfileSummary> {
  const p = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const callerMemo = new Map<number, string>();
  const cbftCaller = (id: number): string => {
    const hit = callerMemo.get(id);
    if (hit !== undefined) return hit;
    let out: string | undefined;
    const f0 = byId.get(id)!.callFrame;
    if (f0.functionName === '(garbage collector)' || f0.functionName === '(program)' || f0.functionName === '(idle)') out = f0.functionName;
    for (let cur: number | undefined = id; out === undefined && cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      const m = /\/dist\/(src|bench)\/(.+?)\.js$/.exec(f.url);
      if (m) out = `${m[2]}: ${f.functionName || '(anonymous)'}`;
    }
    out ??= `(no cbft frame) ${shortUrl(f0.url) || f0.functionName}`;
    callerMemo.set(id, out);
    return out;
  };
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  let t = p.startTime;
  let first = Infinity;
  let last = -Infinity;
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    if (window && (t < window.from || t > window.to)) continue;
    first = Math.min(first, t);
    last = Math.max(last, t);
    const dt = (deltas[i + 1] ?? 0) / 1000; // µs → ms, attributed to the sample it follows
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + dt);
  }
  const fn = new Map<string, FunctionTime>();
  const areas = new Map<string, number>();
  const callers = new Map<string, number>();
  let idleMs = 0;
  let gcMs = 0;
  let total = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const name = functionName || '(anonymous)';
    const area = areaOf(url, name);
    total += ms;
    if (area === 'idle') {
      idleMs += ms;
      continue;
    }
    if (area === 'GC') gcMs += ms;
    const caller = cbftCaller(id);
    callers.set(caller, (callers.get(caller) ?? 0) + ms);
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : '';
    const key = `${name}\u0000${where}`;
    const f = fn.get(key) ?? { name, where, area, selfMs: 0 };
    f.selfMs += ms;
    fn.set(key, f);
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  const { pid, thread } = parseProfileName(file);
  return {
    file,
    pid,
    thread,
    role,
    wallMs: window ? (Number.isFinite(first) ? (last - first) / 1000 : 0) : (p.endTime - p.startTime) / 1000,
    busyMs: total - idleMs,
    idleMs,
    gcMs,
    functions: [...fn.values()].sort((a, b) => b.selfMs - a.selfMs),
    areas: [...areas.entries()].map(([area, selfMs]) => ({ area, selfMs })).sort((a, b) => b.selfMs - a.selfMs),
    byCbftCaller: [...callers.entries()].map(([name, selfMs]) => ({ name, selfMs })).sort((a, b) => b.selfMs - a.selfMs),
  };
}

/** Markdown: per profile, busy time, the areas and the top self-time functions. */
export function profileMarkdown(summaries: ProfileSummary[], topN = 15, requests?: number): string {
  const out: string[] = [];
  const perReq = (ms: number) => (requests ? ` (${((ms * 1000) / requests).toFixed(0)} µs/req)` : '');
  for (const s of summaries) {
    out.push(
      `### ${s.role}${s.thread ? ` (worker thread ${s.thread})` : ''}: busy ${(s.busyMs / 1000).toFixed(1)} s of ${(s.wallMs / 1000).toFixed(1)} s${perReq(s.busyMs)}, GC ${(s.gcMs / 1000).toFixed(2)} s`,
      '',
      '| area | self s | share of busy |',
      '| --- | ---: | ---: |',
      ...s.areas.slice(0, 12).map((a) => `| ${a.area} | ${(a.selfMs / 1000).toFixed(2)} | ${((100 * a.selfMs) / Math.max(1, s.busyMs)).toFixed(1)} % |`),
      '',
      '| nearest cbft function on the stack | ms (self + what it called outside cbft) | share of busy |',
      '| --- | ---: | ---: |',
      ...s.byCbftCaller.slice(0, topN).map((f) => `| ${f.name.replace(/\|/g, '\\|')} | ${f.selfMs.toFixed(0)} | ${((100 * f.selfMs) / Math.max(1, s.busyMs)).toFixed(1)} % |`),
      '',
      '| function (self time) | where | self ms | share of busy |',
      '| --- | --- | ---: | ---: |',
      ...s.functions
        .slice(0, topN)
        .map((f) => `| ${f.name.replace(/\|/g, '\\|')} | ${f.where.replace(/\|/g, '\\|')} | ${f.selfMs.toFixed(0)} | ${((100 * f.selfMs) / Math.max(1, s.busyMs)).toFixed(1)} % |`),
      '',
    );
  }
  return out.join('\n');
}
