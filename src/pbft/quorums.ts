import type { ResolvedConfig } from './config.js';

/**
 * Quorum sizes for n = 3s+1. Any two strong quorums (2s+1) intersect in at least one correct
 * replica; a weak quorum (s+1) contains at least one correct replica.
 */
export interface Quorums {
  /** Matching COMMITs (own included) for committed-local. */
  readonly commit: number;
  /** Matching PREPAREs from distinct backups, on top of the primary's PRE-PREPARE. */
  readonly prepares: number;
  /** VIEW-CHANGE messages in a NEW-VIEW. */
  readonly viewChange: number;
  /** CHECKPOINT messages in a stable-checkpoint proof. */
  readonly checkpoint: number;
  /** Enough to include a correct replica (join a view change, trust a catch-up target). */
  readonly weak: number;
}

export function quorumsFor(cfg: Pick<ResolvedConfig, 's' | 'mutant'>): Quorums {
  const strong = cfg.mutant === 'quorum-2s' ? 2 * cfg.s : 2 * cfg.s + 1;
  return { commit: strong, prepares: strong - 1, viewChange: strong, checkpoint: strong, weak: cfg.s + 1 };
}

export function primaryOf(view: number, n: number): number {
  return view % n;
}
