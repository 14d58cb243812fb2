/**
 * Data types of the PBFT engine: requests, batches, certificates and the protocol messages.
 * Every message carries its `sender` and a signature over a domain-tagged canonical encoding
 * (signing.ts); the wire encoding is in codec.ts. Objects are treated as immutable once built.
 */

/** A client request as the top firewall node submits it: `digest` is sha256(payload). */
export interface ClientRequest {
  readonly digest: Uint8Array;
  readonly payload: Uint8Array;
}

/**
 * What the primary orders at one sequence number. `timestamp` (ms) and `seed` are the
 * primary-chosen non-deterministic inputs; the empty batch with timestamp 0 and an all-zero seed
 * is the null batch that fills gaps after a view change.
 */
export interface Batch {
  readonly timestamp: number;
  readonly seed: Uint8Array;
  readonly requests: readonly ClientRequest[];
}

/** One replica's signature inside a certificate; the signed fields are the certificate's. */
export interface VoteSig {
  readonly replica: number;
  readonly sig: Uint8Array;
}

/** 2s+1 CHECKPOINT signatures for (seq, history digest); seq 0 is the genesis, without signatures. */
export interface CheckpointProof {
  readonly seq: number;
  readonly digest: Uint8Array;
  readonly sigs: readonly VoteSig[];
}

/** A PRE-PREPARE by the primary of `view` and 2s matching PREPAREs by distinct backups. */
export interface PreparedCert {
  readonly view: number;
  readonly seq: number;
  readonly digest: Uint8Array;
  readonly primarySig: Uint8Array;
  readonly prepares: readonly VoteSig[];
}

/** 2s+1 matching COMMITs: proof that (seq, digest) is decided. */
export interface CommitCert {
  readonly view: number;
  readonly digest: Uint8Array;
  readonly commits: readonly VoteSig[];
}

/** A decided batch with its proof, as kept in the archive and served to lagging replicas. */
export interface CommittedBatch {
  readonly seq: number;
  readonly batch: Batch;
  readonly cert: CommitCert;
}

/** The new primary's PRE-PREPARE signature for a sequence number re-proposed in NEW-VIEW. */
export interface Reproposal {
  readonly seq: number;
  readonly digest: Uint8Array;
  readonly sig: Uint8Array;
}

interface Signed {
  readonly sender: number;
  readonly sig: Uint8Array;
}

/** A backup forwards a request that has waited too long to the primary. */
export interface RequestMsg extends Signed {
  readonly type: 'request';
  readonly request: ClientRequest;
}

/** The signature covers (sender, view, seq, digest) only; the batch body travels alongside. */
export interface PrePrepareMsg extends Signed {
  readonly type: 'pre-prepare';
  readonly view: number;
  readonly seq: number;
  readonly digest: Uint8Array;
  readonly batch: Batch;
}

export interface PrepareMsg extends Signed {
  readonly type: 'prepare';
  readonly view: number;
  readonly seq: number;
  readonly digest: Uint8Array;
}

export interface CommitMsg extends Signed {
  readonly type: 'commit';
  readonly view: number;
  readonly seq: number;
  readonly digest: Uint8Array;
}

/** `digest` is the execution-history digest after executing batch `seq`. */
export interface CheckpointMsg extends Signed {
  readonly type: 'checkpoint';
  readonly seq: number;
  readonly digest: Uint8Array;
}

export interface ViewChangeMsg extends Signed {
  readonly type: 'view-change';
  readonly newView: number;
  readonly stable: CheckpointProof;
  /** Highest-view prepared certificate per sequence number above the stable checkpoint. */
  readonly prepared: readonly PreparedCert[];
}

/** `prePrepares` must equal what every replica recomputes from `viewChanges` (view-change.ts). */
export interface NewViewMsg extends Signed {
  readonly type: 'new-view';
  readonly view: number;
  readonly viewChanges: readonly ViewChangeMsg[];
  readonly prePrepares: readonly Reproposal[];
}

/** Periodic gossip that lets peers retransmit, relay NEW-VIEW and start catch-up. */
export interface StatusMsg extends Signed {
  readonly type: 'status';
  readonly view: number;
  readonly inViewChange: boolean;
  readonly stableSeq: number;
  /** Highest seq such that every batch up to it is committed and handed to execution here. */
  readonly committedThrough: number;
}

export interface FetchMsg extends Signed {
  readonly type: 'fetch';
  readonly fromSeq: number;
  readonly toSeq: number;
}

export interface FetchReplyMsg extends Signed {
  readonly type: 'fetch-reply';
  /** Lowest seq this replica can still serve (its archive floor + 1). */
  readonly oldestAvailable: number;
  readonly entries: readonly CommittedBatch[];
}

export type PbftMessage =
  | RequestMsg
  | PrePrepareMsg
  | PrepareMsg
  | CommitMsg
  | CheckpointMsg
  | ViewChangeMsg
  | NewViewMsg
  | StatusMsg
  | FetchMsg
  | FetchReplyMsg;

export type MessageType = PbftMessage['type'];
