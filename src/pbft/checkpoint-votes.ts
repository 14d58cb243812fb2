import { bytesEqual } from '../codec/binary.js';
import { digestKey } from './digests.js';
import type { CheckpointProof, VoteSig } from './types.js';

interface Vote {
  readonly digest: Uint8Array;
  readonly sig: Uint8Array;
}

export type AddResult = 'added' | 'duplicate' | 'equivocation';

/**
 * CHECKPOINT messages received (own included), bounded per replica: a replica flooding
 * checkpoints for many sequence numbers only evicts its own oldest entries.
 */
export class CheckpointVotes {
  private readonly byReplica: Map<number, Vote>[];

  constructor(n: number, private readonly perReplica: number) {
    this.byReplica = Array.from({ length: n }, () => new Map<number, Vote>());
  }

  add(replica: number, seq: number, digest: Uint8Array, sig: Uint8Array): AddResult {
    const votes = this.byReplica[replica];
    if (!votes) return 'duplicate';
    const existing = votes.get(seq);
    if (existing) return bytesEqual(existing.digest, digest) ? 'duplicate' : 'equivocation';
    votes.set(seq, { digest, sig });
    if (votes.size > this.perReplica) {
      const lowest = Math.min(...votes.keys());
      votes.delete(lowest);
    }
    return 'added';
  }

  /** A proof for `seq` if `quorum` replicas agree on one digest. */
  proofFor(seq: number, quorum: number): CheckpointProof | null {
    const groups = new Map<string, { digest: Uint8Array; sigs: VoteSig[] }>();
    this.byReplica.forEach((votes, replica) => {
      const v = votes.get(seq);
      if (!v) return;
      const key = digestKey(v.digest);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { digest: v.digest, sigs: [] }));
      g.sigs.push({ replica, sig: v.sig });
    });
    for (const g of groups.values()) {
      if (g.sigs.length >= quorum) return { seq, digest: g.digest, sigs: g.sigs.slice(0, quorum) };
    }
    return null;
  }

  /** Sequence numbers that have at least one vote, highest first. */
  seqsDescending(): number[] {
    const all = new Set<number>();
    for (const votes of this.byReplica) for (const seq of votes.keys()) all.add(seq);
    return [...all].sort((a, b) => b - a);
  }

  pruneThrough(seq: number): void {
    for (const votes of this.byReplica) for (const s of [...votes.keys()]) if (s <= seq) votes.delete(s);
  }

  get size(): number {
    let total = 0;
    for (const votes of this.byReplica) total += votes.size;
    return total;
  }
}
