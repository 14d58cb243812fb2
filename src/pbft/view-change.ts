import { compareBytes } from '../codec/binary.js';
import type { CertContext } from './certificates.js';
import { validCheckpointProof, validPreparedCert } from './certificates.js';
import { NULL_DIGEST } from './digests.js';
import type { MutantName } from './mutants.js';
import type { CheckpointProof, PreparedCert, ViewChangeMsg } from './types.js';

/** What a NEW-VIEW decides, recomputed identically by the new primary and every backup. */
export interface NewViewPlan {
  /** The highest stable checkpoint among the view changes (min-s). */
  readonly stable: CheckpointProof;
  /** Highest re-proposed sequence number (max-s); new proposals start after it. */
  readonly maxSeq: number;
  /** One entry per seq in (min-s, max-s]: the highest-view prepared digest, or the null batch. */
  readonly reproposals: readonly { readonly seq: number; readonly digest: Uint8Array }[];
}

/**
 * Castro–Liskov new-view rule: start from the highest stable checkpoint in V; for every sequence
 * number above it up to the highest prepared one, re-propose the digest of the prepared
 * certificate with the highest view, or a null batch if no view change reports one. Any batch
 * committed at a correct replica was prepared at 2s+1 replicas, so at least one correct member of
 * V reports it and it keeps its sequence number.
 */
export function planNewView(viewChanges: readonly ViewChangeMsg[], mutant?: MutantName): NewViewPlan {
  let stable: CheckpointProof | null = null;
  for (const vc of viewChanges) if (stable === null || vc.stable.seq > stable.seq) stable = vc.stable;
  if (stable === null) throw new Error('planNewView needs at least one view change');
  const best = new Map<number, PreparedCert>();
  if (mutant !== 'skip-prepared-cert') {
    for (const vc of viewChanges) {
      for (const cert of vc.prepared) {
        if (cert.seq <= stable.seq) continue;
        const current = best.get(cert.seq);
        if (!current || cert.view > current.view || (cert.view === current.view && compareBytes(cert.digest, current.digest) < 0)) {
          best.set(cert.seq, cert);
        }
      }
    }
  }
  let maxSeq = stable.seq;
  for (const seq of best.keys()) if (seq > maxSeq) maxSeq = seq;
  const reproposals: { seq: number; digest: Uint8Array }[] = [];
  for (let seq = stable.seq + 1; seq <= maxSeq; seq++) reproposals.push({ seq, digest: best.get(seq)?.digest ?? NULL_DIGEST });
  return { stable, maxSeq, reproposals };
}

/**
 * Content check of a VIEW-CHANGE (its own signature is checked by the caller): a valid stable
 * checkpoint proof, and valid prepared certificates for distinct, increasing sequence numbers
 * inside that checkpoint's watermark window, each from a view before the new one.
 */
export function validViewChangeContent(ctx: CertContext, vc: ViewChangeMsg, watermarkWindow: number): boolean {
  if (!validCheckpointProof(ctx, vc.stable)) return false;
  if (vc.prepared.length > watermarkWindow) return false;
  let prevSeq = vc.stable.seq;
  for (const cert of vc.prepared) {
    if (cert.seq <= prevSeq || cert.seq > vc.stable.seq + watermarkWindow) return false;
    if (cert.view >= vc.newView) return false;
    prevSeq = cert.seq;
  }
  return vc.prepared.every((cert) => validPreparedCert(ctx, cert));
}
