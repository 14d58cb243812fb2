import { cpus, loadavg } from 'node:os';

/**
 * One timed operation over a fixed time budget, after a warm-up: wall-clock µs per call, CPU µs
 * per call (process.cpuUsage: user + system of the whole process, so it includes GC and any
 * worker threads), and the best of ten equal time slices. On a shared 2-core machine the wall
 * figure moves with other people's load; CPU time and the best slice move much less.
 */
export interface Timing {
  usPerOp: number;
  cpuUsPerOp: number;
  bestSliceUsPerOp: number;
  opsPerSec: number;
  runs: number;
}

const SLICES = 10;

export function timeOp(budgetMs: number, op: (i: number) => unknown, minRuns = 5): Timing {
  for (let i = 0; i < 3; i++) op(i); // warm-up: JIT, caches
  let runs = 0;
  let best = Infinity;
  const sliceMs = budgetMs / SLICES;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let sliceStart = start;
  let sliceRuns = 0;
  for (;;) {
    op(runs++);
    sliceRuns++;
    const now = performance.now();
    if (now - sliceStart >= sliceMs) {
      best = Math.min(best, ((now - sliceStart) * 1000) / sliceRuns);
      sliceStart = now;
      sliceRuns = 0;
    }
    if (now - start >= budgetMs && runs >= minRuns) break;
  }
  const elapsed = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  const usPerOp = (elapsed * 1000) / runs;
  return {
    usPerOp,
    cpuUsPerOp: (cpu.user + cpu.system) / runs,
    bestSliceUsPerOp: Number.isFinite(best) ? best : usPerOp,
    opsPerSec: (runs * 1000) / elapsed,
    runs,
  };
}

export async function timeOpAsync(budgetMs: number, op: (i: number) => Promise<unknown>, minRuns = 3): Promise<Timing> {
  for (let i = 0; i < 2; i++) await op(i);
  let runs = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  while (performance.now() - start < budgetMs || runs < minRuns) await op(runs++);
  const elapsed = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  const usPerOp = (elapsed * 1000) / runs;
  return { usPerOp, cpuUsPerOp: (cpu.user + cpu.system) / runs, bestSliceUsPerOp: usPerOp, opsPerSec: (runs * 1000) / elapsed, runs };
}

export function machineDescription(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model ?? 'cpu'}, Node ${process.version}, ${process.platform}/${process.arch}`;
}

/** 1-minute load average: other work on the machine makes every figure noisier. */
export function loadAverage(): number {
  return Math.round((loadavg()[0] ?? 0) * 100) / 100;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `--name value` and `--flag` parsing for bench suites; unknown options are an error. */
export function parseOptions(args: string[], known: Record<string, 'string' | 'boolean'>): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    const kind = known[name];
    if (!kind) throw new Error(`unknown option --${name}; known: ${Object.keys(known).map((k) => '--' + k).join(', ')}`);
    if (kind === 'boolean') out[name] = inline === undefined ? true : inline !== 'false';
    else {
      const v = inline ?? args[++i];
      if (v === undefined) throw new Error(`--${name} needs a value`);
      out[name] = v;
    }
  }
  return out;
}

export function numberOption(opts: Record<string, string | boolean>, name: string, fallback: number): number {
  const v = opts[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}

/** A comma-separated option as a list (the fallback when absent). */
export function listOption(opts: Record<string, string | boolean>, name: string, fallback: string[]): string[] {
  const v = opts[name];
  return typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : fallback;
}

/** `--connections 1,32`: integers in 1..1024. */
export function connectionsOption(opts: Record<string, string | boolean>, fallback: string[]): number[] {
  return listOption(opts, 'connections', fallback).map((c) => {
    const n = Number(c);
    if (!Number.isInteger(n) || n < 1 || n > 1024) throw new Error(`bad --connections value ${c}`);
    return n;
  });
}

/** The options every load-matrix suite takes. */
export const MATRIX_OPTIONS = { duration: 'string', warmup: 'string', repeat: 'string', connections: 'string', workloads: 'string' } as const;

/** `--duration S --warmup S --repeat N` (warm-up may be 0), with the suite's defaults. */
export function runOptions(opts: Record<string, string | boolean>, defaults: { duration: number; repeat: number }): { durationSec: number; warmupSec: number; repeat: number } {
  return {
    durationSec: numberOption(opts, 'duration', defaults.duration),
    warmupSec: opts.warmup === '0' ? 0 : numberOption(opts, 'warmup', 1),
    repeat: numberOption(opts, 'repeat', defaults.repeat),
  };
}
