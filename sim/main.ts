import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { MUTANT_NAMES, isMutantName } from '../src/pbft/index.js';
import type { MutantName } from '../src/pbft/index.js';
import type { RunResult } from './world.js';
import { runSeed } from './world.js';

/**
 * npm run sim -- [--seeds N] [--steps M] [--s 1|2|3 ...] [--seed X] [--first-seed F]
 *                [--mutant NAME] [--jobs J] [--trace] [--verbose] [--keep-going]
 *
 * Runs seeds 1..N (or just X) for each s (default s = 1 and 2), spread over worker threads. Exits
 * non-zero at the first failure, printing the seed, the scenario, what broke, the tail of the trace
 * and the command that replays it exactly.
 */
interface CliOptions {
  seeds: number;
  firstSeed: number;
  steps: number;
  sValues: number[];
  seed: number | null;
  mutant: MutantName | undefined;
  jobs: number;
  trace: boolean;
  verbose: boolean;
  keepGoing: boolean;
}

interface Job {
  readonly seed: number;
  readonly s: number;
}

interface WorkerInput {
  readonly steps: number;
  readonly mutant: MutantName | undefined;
}

const USAGE = `usage: npm run sim -- [--seeds N] [--steps M] [--s 1|2|3] [--seed X] [--first-seed F] [--mutant ${MUTANT_NAMES.join('|')}] [--jobs J] [--trace] [--verbose] [--keep-going]`;

function parseArgs(argv: string[]): CliOptions {
  const opts: CliOptions = {
    seeds: 200,
    firstSeed: 1,
    steps: 5000,
    sValues: [],
    seed: null,
    mutant: undefined,
    jobs: Math.max(1, Math.min(availableParallelism(), 4)),
    trace: false,
    verbose: false,
    keepGoing: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    const int = (min: number): number => {
      const raw = value();
      const v = Number(raw);
      if (!Number.isSafeInteger(v) || v < min) usage(`${arg} needs an integer >= ${min}, got ${raw}`);
      return v;
    };
    switch (arg) {
      case '--seeds':
        opts.seeds = int(1);
        break;
      case '--first-seed':
        opts.firstSeed = int(0);
        break;
      case '--steps':
        opts.steps = int(1);
        break;
      case '--s': {
        const s = int(1);
        if (s > 3) usage('--s must be 1, 2 or 3');
        opts.sValues.push(s);
        break;
      }
      case '--seed':
        opts.seed = int(0);
        break;
      case '--mutant': {
        const name = value();
        if (!isMutantName(name)) usage(`unknown mutant ${name}`);
        opts.mutant = name;
        break;
      }
      case '--jobs':
        opts.jobs = int(1);
        break;
      case '--trace':
        opts.trace = true;
        break;
      case '--verbose':
        opts.verbose = true;
        break;
      case '--keep-going':
        opts.keepGoing = true;
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        usage(`unknown argument ${arg}`);
    }
  }
  if (opts.sValues.length === 0) opts.sValues = [1, 2];
  return opts;
}

function usage(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

function replayCommand(r: RunResult, opts: CliOptions): string {
  return `npm run sim -- --seed ${r.seed} --s ${r.s} --steps ${opts.steps}${opts.mutant ? ` --mutant ${opts.mutant}` : ''} --trace`;
}

function printFailure(r: RunResult, opts: CliOptions): void {
  console.error(`\nFAILED seed ${r.seed} (s=${r.s})`);
  console.error(`scenario: ${r.scenario}`);
  console.error(`${r.failure}`);
  console.error(`\ntrace (${opts.trace ? 'full' : 'last events'}):`);
  for (const line of r.trace ?? []) console.error(`  ${line}`);
  console.error(`\nreplay: ${replayCommand(r, opts)}`);
}

function summarize(results: RunResult[], elapsedMs: number, opts: CliOptions): void {
  const steps = results.reduce((a, r) => a + r.stats.steps + r.stats.livenessSteps, 0);
  const faultSteps = results.reduce((a, r) => a + r.stats.steps, 0);
  const sum = (f: (r: RunResult) => number): number => results.reduce((a, r) => a + f(r), 0);
  console.log(
    `${results.length} runs (${opts.sValues.map((s) => `s=${s}`).join(', ')}), ${faultSteps} fault-phase steps + ${steps - faultSteps} liveness steps ` +
      `in ${(elapsedMs / 1000).toFixed(1)} s wall (${Math.round(steps / (elapsedMs / 1000))} steps/s over ${opts.jobs} jobs)`,
  );
  console.log(
    `  decided seqs ${sum((r) => r.stats.decidedSeqs)}, requests ${sum((r) => r.stats.requests)}, view changes started ${sum((r) => r.stats.viewChanges)}, ` +
      `max view ${Math.max(0, ...results.map((r) => r.stats.maxView))}, stable checkpoints ${sum((r) => r.stats.stableCheckpoints)}, crashes ${sum((r) => r.stats.crashes)}, ` +
      `partitions ${sum((r) => r.stats.partitions)}, catch-ups ${sum((r) => r.stats.catchUps)}, messages ${sum((r) => r.stats.messages)}`,
  );
  const drops: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.stats.drops)) drops[k] = (drops[k] ?? 0) + v;
  const failures = results.filter((r) => !r.ok).length;
  if (failures > 0) console.log(`  ${failures} of ${results.length} runs FAILED`);
  console.log(`  drops at correct replicas: ${Object.entries(drops).map(([k, v]) => `${k}=${v}`).join(' ') || 'none'}`);
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const jobs: Job[] = [];
  const seeds = opts.seed !== null ? [opts.seed] : Array.from({ length: opts.seeds }, (_, i) => opts.firstSeed + i);
  for (const s of opts.sValues) for (const seed of seeds) jobs.push({ seed, s });
  console.log(
    `cbft PBFT simulator: ${jobs.length} runs x ${opts.steps} steps${opts.mutant ? `, mutant ${opts.mutant}` : ''}, ${Math.min(opts.jobs, jobs.length)} worker(s)`,
  );
  const started = Date.now();
  if (opts.seed !== null) {
    const results: RunResult[] = [];
    for (const job of jobs) {
      const r = runSeed({ seed: job.seed, s: job.s, steps: opts.steps, mutant: opts.mutant, fullTrace: opts.trace });
      results.push(r);
      if (opts.verbose || r.ok) console.log(`seed ${r.seed} s=${r.s}: ${r.ok ? 'ok' : 'FAILED'}  ${r.scenario}`);
      if (!r.ok) {
        printFailure(r, opts);
        process.exit(1);
      }
    }
    summarize(results, Date.now() - started, opts);
    return;
  }
  const results = await runParallel(jobs, opts);
  summarize(results, Date.now() - started, opts);
}

function runParallel(jobs: Job[], opts: CliOptions): Promise<RunResult[]> {
  return new Promise((resolve) => {
    const results: RunResult[] = [];
    let next = 0;
    let active = 0;
    let failed = false;
    const workers: Worker[] = [];
    const input: WorkerInput = { steps: opts.steps, mutant: opts.mutant };
    const feed = (w: Worker): void => {
      if (failed || next >= jobs.length) {
        void w.terminate();
        active--;
        if (active === 0 && !failed) resolve(results);
        return;
      }
      w.postMessage(jobs[next++]);
    };
    const count = Math.min(opts.jobs, jobs.length);
    for (let i = 0; i < count; i++) {
      const w = new Worker(new URL(import.meta.url), { workerData: input });
      workers.push(w);
      active++;
      w.on('message', (r: RunResult | 'ready') => {
        if (r !== 'ready') {
          results.push(r);
          if (opts.verbose) console.log(`seed ${r.seed} s=${r.s}: ${r.ok ? 'ok' : 'FAILED'}  steps ${r.stats.steps}+${r.stats.livenessSteps}`);
          if (!r.ok && opts.keepGoing) {
            console.error(`FAILED seed ${r.seed} s=${r.s}: ${r.failure?.split('\n')[0]}`);
            process.exitCode = 1;
          } else if (!r.ok && !failed) {
            failed = true;
            printFailure(r, opts);
            for (const other of workers) void other.terminate();
            process.exitCode = 1;
            return;
          }
          if (results.length % 50 === 0 && !opts.verbose) process.stdout.write(`  ${results.length}/${jobs.length} runs ok\n`);
        }
        feed(w);
      });
      w.on('error', (err) => {
        if (failed) return;
        failed = true;
        console.error(`worker crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        for (const other of workers) void other.terminate();
        process.exitCode = 1;
      });
    }
  });
}

function workerMain(): void {
  const input = workerData as WorkerInput;
  parentPort!.on('message', (job: Job) => {
    const r = runSeed({ seed: job.seed, s: job.s, steps: input.steps, mutant: input.mutant });
    parentPort!.postMessage(r);
  });
  parentPort!.postMessage('ready');
}

if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  });
} else {
  workerMain();
}
