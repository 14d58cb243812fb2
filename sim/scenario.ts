import type { MutantName, PbftConfig } from '../src/pbft/index.js';
import { Prng } from './prng.js';

export const BYZANTINE_BEHAVIOURS = ['twins', 'equivocate', 'replay', 'forge', 'silent', 'slow-primary', 'mixed'] as const;
export type ByzantineBehaviour = (typeof BYZANTINE_BEHAVIOURS)[number];

export interface NetworkProfile {
  readonly dropRate: number;
  readonly duplicateRate: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  /** Share of messages held back much longer (reordering across views and checkpoints). */
  readonly longDelayRate: number;
  readonly longDelayMaxMs: number;
}

/** Everything random about one run, drawn from the seed before anything happens. */
export interface Scenario {
  readonly seed: number;
  readonly s: number;
  readonly n: number;
  readonly tickMs: number;
  readonly engine: Omit<PbftConfig, 'id' | 's' | 'n'>;
  readonly network: NetworkProfile;
  readonly byzantine: ReadonlyMap<number, ByzantineBehaviour>;
  readonly clockOffsetMs: readonly number[];
  /** Mean gap between client requests during the fault phase. */
  readonly requestGapMs: number;
  /** Chance that the top submits a new request to a given replica (else that replica learns late). */
  readonly submitCoverage: number;
  /** Per chaos event (every chaosEveryMs). */
  readonly chaosEveryMs: number;
  readonly crashChance: number;
  readonly partitionChance: number;
  readonly executionDelayMaxMs: number;
  /** Slow primary: how long it holds back its PRE-PREPAREs. */
  readonly slowPrimaryDelayMs: number;
  /** Liveness phase budget in virtual ms, plus livenessPerBatchMs per outstanding batch of requests. */
  readonly livenessBudgetMs: number;
  readonly livenessPerBatchMs: number;
}

export function drawScenario(seed: number, s: number, mutant?: MutantName): Scenario {
  const rng = new Prng(seed ^ (s * 0x9e3779b1));
  const n = 3 * s + 1;
  const tickMs = 10;
  const checkpointInterval = rng.pick([2, 4, 8]);
  const watermarkWindow = checkpointInterval * rng.pick([2, 3, 4]);
  const viewChangeTicks = rng.pick([15, 25, 40]);
  const engine: Omit<PbftConfig, 'id' | 's' | 'n'> = {
    checkpointInterval,
    watermarkWindow,
    batchMax: rng.pick([1, 2, 4, 8]),
    batchDelayTicks: rng.pick([0, 1, 3]),
    viewChangeTicks,
    maxViewChangeBackoff: 3,
    statusTicks: rng.pick([4, 8, 12]),
    fetchRetryTicks: rng.pick([4, 8]),
    fetchMaxBatches: rng.pick([2, 4, 8]),
    forwardAfterTicks: rng.pick([4, 8]),
    maxClockSkewMs: 2_000,
    dedupWindow: 1 << 14,
    maxPendingRequests: 512,
    archiveBatches: 4096,
    maxRequestBytes: 256,
    ...(mutant ? { mutant } : {}),
  };
  const calm = rng.chance(0.15);
  const network: NetworkProfile = {
    dropRate: calm ? 0 : rng.pick([0, 0.01, 0.05, 0.1, 0.2]),
    duplicateRate: calm ? 0 : rng.pick([0, 0.02, 0.1]),
    minDelayMs: 1,
    maxDelayMs: rng.pick([3, 10, 30]),
    longDelayRate: calm ? 0 : rng.pick([0, 0.01, 0.05]),
    longDelayMaxMs: rng.pick([100, 400, 1000]),
  };
  const byzantine = new Map<number, ByzantineBehaviour>();
  const faulty = rng.chance(0.1) ? 0 : rng.chance(0.2) ? rng.range(1, s) : s;
  const ids = rng.shuffle(Array.from({ length: n }, (_, i) => i));
  // Replica 0 is the first primary: make it Byzantine often, so faulty primaries are exercised early.
  if (faulty > 0 && rng.chance(0.5)) ids.unshift(...ids.splice(ids.indexOf(0), 1));
  for (const id of ids.slice(0, faulty)) byzantine.set(id, rng.pick(BYZANTINE_BEHAVIOURS));
  // Drawn last, so every earlier draw (and thus each seed's scenario) is what it was before.
  const clockOffsetMs = Array.from({ length: n }, () => rng.range(-200, 200));
  const requestGapMs = rng.pick([5, 15, 40]);
  const submitCoverage = rng.pick([1, 0.9, 0.6]);
  const crashChance = calm ? 0 : rng.pick([0, 0.02, 0.06, 0.12]);
  const partitionChance = calm ? 0 : rng.pick([0, 0.02, 0.05]);
  const executionDelayMaxMs = rng.pick([0, 5, 30]);
  // Adaptive batching (what the sidecar runs) in half of the scenarios.
  if (rng.chance(0.5)) Object.assign(engine, { adaptiveBatching: true, batchHoldTicks: rng.pick([1, 3, 10]) });
  return {
    seed,
    s,
    n,
    tickMs,
    engine,
    network,
    byzantine,
    clockOffsetMs,
    requestGapMs,
    submitCoverage,
    chaosEveryMs: 50,
    crashChance,
    partitionChance,
    executionDelayMaxMs,
    slowPrimaryDelayMs: viewChangeTicks * tickMs * 3,
    livenessBudgetMs: viewChangeTicks * tickMs * 120,
    livenessPerBatchMs: 2 * network.maxDelayMs,
  };
}

export function describeScenario(sc: Scenario): string {
  const byz = [...sc.byzantine].map(([id, b]) => `${id}:${b}`).join(',') || 'none';
  const e = sc.engine;
  return (
    `seed=${sc.seed} s=${sc.s} n=${sc.n} K=${e.checkpointInterval} L=${e.watermarkWindow} batchMax=${e.batchMax} ` +
    `batchDelay=${e.adaptiveBatching ? `adaptive(hold ${e.batchHoldTicks})` : e.batchDelayTicks} vcTicks=${e.viewChangeTicks} status=${e.statusTicks} byzantine=[${byz}] ` +
    `drop=${sc.network.dropRate} dup=${sc.network.duplicateRate} delay=${sc.network.minDelayMs}-${sc.network.maxDelayMs}ms ` +
    `long=${sc.network.longDelayRate}/${sc.network.longDelayMaxMs}ms crash=${sc.crashChance} partition=${sc.partitionChance} ` +
    `reqGap=${sc.requestGapMs}ms coverage=${sc.submitCoverage}` +
    (e.mutant ? ` mutant=${e.mutant}` : '')
  );
}
