/**
 * Deliberate bugs that the simulator must catch (issue 3). Production code reads
 * `config.mutant` in exactly one place per mutant; grep for `mutant ===` to find them.
 *
 * - `quorum-2s`: every quorum is 2s instead of 2s+1.
 * - `skip-prepared-cert`: the new primary ignores prepared certificates when building NEW-VIEW.
 * - `no-watermark`: sequence numbers outside the watermarks are accepted (and proposed).
 * - `commit-before-prepared`: a replica sends COMMIT as soon as it accepts a PRE-PREPARE, and
 *   treats 2s+1 commits as committed without having prepared.
 */
export const MUTANT_NAMES = ['quorum-2s', 'skip-prepared-cert', 'no-watermark', 'commit-before-prepared'] as const;

export type MutantName = (typeof MUTANT_NAMES)[number];

export function isMutantName(name: string): name is MutantName {
  return (MUTANT_NAMES as readonly string[]).includes(name);
}
