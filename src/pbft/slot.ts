import { bytesEqual } from '../codec/binary.js';
import { NULL_BATCH, digestKey, isNullDigest } from './digests.js';
import type { Batch, CommitCert, CommitMsg, PrePrepareMsg, PrepareMsg, PreparedCert, VoteSig } from './types.js';

export interface SlotVote {
  readonly digest: Uint8Array;
  readonly sig: Uint8Array;
}

export interface AcceptedPrePrepare {
  readonly view: number;
  readonly digest: Uint8Array;
  readonly sig: Uint8Array;
}

/** Batch bodies kept per slot: the accepted one, the prepared one, and a couple of spares. */
const MAX_BODIES_PER_SLOT = 4;

/**
 * Agreement state of one sequence number inside the watermarks. The per-view part (pre-prepare,
 * votes, flags) is reset on every view change; the prepared certificate and the batch bodies
 * survive, because the next VIEW-CHANGE must report the certificate and a re-proposal needs the
 * body. At most one vote per replica per kind is stored, so a slot holds at most 2n votes.
 */
export class Slot {
  prePrepare: AcceptedPrePrepare | null = null;
  readonly prepares = new Map<number, SlotVote>();
  readonly commits = new Map<number, SlotVote>();
  prepared = false;
  committed = false;
  /** Set with `committed`; the batch is recorded once its body is known. */
  commitCert: CommitCert | null = null;
  ownPrePrepare: PrePrepareMsg | null = null;
  ownPrepare: PrepareMsg | null = null;
  ownCommit: CommitMsg | null = null;
  preparedCert: PreparedCert | null = null;
  private readonly bodies = new Map<string, Batch>();

  constructor(readonly seq: number) {}

  resetForView(): void {
    this.prePrepare = null;
    this.prepares.clear();
    this.commits.clear();
    this.prepared = false;
    this.committed = false;
    this.commitCert = null;
    this.ownPrePrepare = null;
    this.ownPrepare = null;
    this.ownCommit = null;
  }

  bodyFor(digest: Uint8Array): Batch | undefined {
    if (isNullDigest(digest)) return NULL_BATCH;
    return this.bodies.get(digestKey(digest));
  }

  addBody(digest: Uint8Array, batch: Batch): void {
    if (isNullDigest(digest)) return;
    const key = digestKey(digest);
    if (this.bodies.has(key)) return;
    this.bodies.set(key, batch);
    if (this.bodies.size > MAX_BODIES_PER_SLOT) {
      for (const k of this.bodies.keys()) {
        if (this.bodies.size <= MAX_BODIES_PER_SLOT) break;
        if (k !== key && !this.isReferenced(k)) this.bodies.delete(k);
      }
    }
  }

  /** Votes (of `kind`) that match `digest`. */
  matching(kind: 'prepares' | 'commits', digest: Uint8Array): VoteSig[] {
    const out: VoteSig[] = [];
    for (const [replica, v] of this[kind]) if (bytesEqual(v.digest, digest)) out.push({ replica, sig: v.sig });
    return out;
  }

  private isReferenced(key: string): boolean {
    return (
      (this.prePrepare !== null && digestKey(this.prePrepare.digest) === key) ||
      (this.preparedCert !== null && digestKey(this.preparedCert.digest) === key)
    );
  }
}
