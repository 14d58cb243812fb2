import { describe, expect, it } from 'vitest';
import { MUTANT_NAMES } from '../../src/pbft/index.js';
import type { MutantName } from '../../src/pbft/index.js';
import { BYZANTINE_BEHAVIOURS, drawScenario } from '../../sim/scenario.js';
import { runSeed } from '../../sim/world.js';
import type { RunResult } from '../../sim/world.js';

/**
 * The simulator in CI: a fixed set of seeds against the clean engine (every run must pass), and
 * every planted bug must be caught. The full campaign is `npm run sim` (200 seeds x 5000 steps,
 * s = 1 and 2).
 */
const CI_SEEDS = 24;
const CI_STEPS = 5000;

function describeFailure(r: RunResult): string {
  return `seed ${r.seed} s=${r.s}: ${r.failure}\n${r.scenario}\n${(r.trace ?? []).slice(-40).join('\n')}`;
}

describe('simulator, clean engine', () => {
  for (const s of [1, 2]) {
    it(`passes ${CI_SEEDS} seeds x ${CI_STEPS} steps with s = ${s}`, () => {
      let liveness = 0;
      for (let seed = 1; seed <= CI_SEEDS; seed++) {
        const r = runSeed({ seed, s, steps: CI_STEPS });
        if (!r.ok) expect.fail(describeFailure(r));
        expect(r.stats.steps).toBe(CI_STEPS);
        liveness += r.stats.livenessSteps;
      }
      expect(liveness).toBeGreaterThan(0);
    }, 120_000);
  }

  it('passes a few seeds with s = 3', () => {
    for (let seed = 1; seed <= 3; seed++) {
      const r = runSeed({ seed, s: 3, steps: 3000 });
      if (!r.ok) expect.fail(describeFailure(r));
    }
  }, 120_000);

  it('is deterministic: a seed replays exactly', () => {
    const a = runSeed({ seed: 5, s: 1, steps: 2000 });
    const b = runSeed({ seed: 5, s: 1, steps: 2000 });
    expect(b.stats).toEqual(a.stats);
    expect(b.scenario).toBe(a.scenario);
  });

  it('draws every Byzantine behaviour and network fault within the default seeds', () => {
    const seen = new Set<string>();
    let drops = 0;
    let crashes = 0;
    let partitions = 0;
    for (let seed = 1; seed <= 200; seed++) {
      for (const s of [1, 2]) {
        const sc = drawScenario(seed, s);
        for (const b of sc.byzantine.values()) seen.add(b);
        if (sc.network.dropRate > 0 && sc.network.duplicateRate > 0 && sc.network.longDelayRate > 0) drops++;
        if (sc.crashChance > 0) crashes++;
        if (sc.partitionChance > 0) partitions++;
      }
    }
    expect([...seen].sort()).toEqual([...BYZANTINE_BEHAVIOURS].sort());
    expect(drops).toBeGreaterThan(20);
    expect(crashes).toBeGreaterThan(100);
    expect(partitions).toBeGreaterThan(100);
  });
});

describe('simulator, planted bugs', () => {
  for (const mutant of MUTANT_NAMES) {
    it(`catches ${mutant}`, () => {
      const caught = firstFailure(mutant, 60);
      expect(caught, `${mutant} survived 60 seeds for s = 1 and 2`).not.toBeNull();
      // The failure replays exactly from its seed.
      const again = runSeed({ seed: caught!.seed, s: caught!.s, steps: CI_STEPS, mutant });
      expect(again.ok).toBe(false);
      expect(again.failure).toBe(caught!.failure);
      expect(caught!.trace!.length).toBeGreaterThan(0);
    }, 120_000);
  }
});

function firstFailure(mutant: MutantName, seeds: number): RunResult | null {
  for (let seed = 1; seed <= seeds; seed++) {
    for (const s of [1, 2]) {
      const r = runSeed({ seed, s, steps: CI_STEPS, mutant });
      if (!r.ok) return r;
    }
  }
  return null;
}
