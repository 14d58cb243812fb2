import { toHex } from '../src/codec/binary.js';
import type { ExecuteBatch, ReplicaInspection, ResolvedConfig } from '../src/pbft/index.js';

/** Everything about an execution that must be identical on every correct replica. */
export function executionFingerprint(b: ExecuteBatch): string {
  const reqs = b.requests.map((r) => toHex(r.digest).slice(0, 16)).join(',');
  const dups = b.duplicates.map((d) => `${toHex(d.digest).slice(0, 16)}@${d.seq}`).join(',');
  return `${toHex(b.batchDigest).slice(0, 16)} ts=${b.timestamp} seed=${toHex(b.seed).slice(0, 8)} null=${b.isNull} run=[${reqs}] dup=[${dups}]`;
}

/**
 * Safety invariants across correct replicas: one decided execution per sequence number
 * (so executed prefixes agree), timestamps never decrease along the sequence.
 */
export class AgreementChecker {
  private readonly decided = new Map<number, { fingerprint: string; replica: number; timestamp: number }>();

  check(replica: number, batch: ExecuteBatch): string | null {
    const fingerprint = executionFingerprint(batch);
    const first = this.decided.get(batch.seq);
    if (first) {
      if (first.fingerprint !== fingerprint) {
        return `AGREEMENT: replicas ${first.replica} and ${replica} executed different batches at seq ${batch.seq}:\n  r${first.replica}: ${first.fingerprint}\n  r${replica}: ${fingerprint}`;
      }
      return null;
    }
    this.decided.set(batch.seq, { fingerprint, replica, timestamp: batch.timestamp });
    const prev = this.decided.get(batch.seq - 1);
    if (prev && prev.timestamp > batch.timestamp) return `TIMESTAMP: seq ${batch.seq} has timestamp ${batch.timestamp} < ${prev.timestamp} at seq ${batch.seq - 1}`;
    const next = this.decided.get(batch.seq + 1);
    if (next && next.timestamp < batch.timestamp) return `TIMESTAMP: seq ${batch.seq} has timestamp ${batch.timestamp} > ${next.timestamp} at seq ${batch.seq + 1}`;
    return null;
  }

  get decidedCount(): number {
    return this.decided.size;
  }
}

/** Per-replica invariants after every step: the log within the watermarks, every store bounded. */
export function checkReplicaState(state: ReplicaInspection, cfg: ResolvedConfig): string | null {
  const r = `replica ${state.id}`;
  if (state.minSlotSeq !== null && state.minSlotSeq <= state.lowWatermark) {
    return `WATERMARK: ${r} holds log slot ${state.minSlotSeq} at or below the low watermark ${state.lowWatermark}`;
  }
  if (state.maxSlotSeq !== null && state.maxSlotSeq > state.highWatermark) {
    return `WATERMARK: ${r} holds log slot ${state.maxSlotSeq} above the high watermark ${state.highWatermark}`;
  }
  if (state.diverged) return `DIVERGED: ${r} found its history different from a stable checkpoint`;
  const K = cfg.checkpointInterval;
  const L = cfg.watermarkWindow;
  const bounds: [string, number, number][] = [
    ['log slots', state.slotCount, L],
    ['pending requests', state.pendingRequests, cfg.maxPendingRequests],
    ['archived batches', state.archivedBatches, cfg.archiveBatches + L + 2 * cfg.fetchMaxBatches + cfg.maxExecutionBacklog],
    ['checkpoint votes', state.checkpointVotes, cfg.n * (L / K + 2)],
    ['view-change messages', state.viewChangeMessages, 3 * cfg.n],
    ['execution snapshots', state.execSnapshots, Math.max(L, cfg.maxExecutionBacklog) / K + 3],
    ['dedup entries', state.dedupEntries, cfg.dedupWindow],
  ];
  for (const [what, value, bound] of bounds) if (value > bound) return `BOUND: ${r} has ${value} ${what} (bound ${bound})`;
  return null;
}
