import type { Batch, PbftMessage, ViewChangeMsg } from '../../src/pbft/index.js';

/** Fixed messages of every type for the known-answer tests (not real signatures). */
const D = new Uint8Array(32).fill(0x11);
const SEED = new Uint8Array(32).fill(0x22);
const SIG = new Uint8Array(32).fill(0xab);

export const KAT_BATCH: Batch = { timestamp: 1_700_000_000_000, seed: SEED, requests: [{ digest: D, payload: new Uint8Array([1, 2, 3]) }] };

const VC: ViewChangeMsg = {
  type: 'view-change',
  sender: 1,
  newView: 2,
  stable: { seq: 4, digest: D, sigs: [1, 2, 3].map((replica) => ({ replica, sig: SIG })) },
  prepared: [{ view: 1, seq: 5, digest: D, primarySig: SIG, prepares: [2, 3].map((replica) => ({ replica, sig: SIG })) }],
  sig: SIG,
};

export const KAT_MESSAGES: Record<PbftMessage['type'], PbftMessage> = {
  request: { type: 'request', sender: 2, request: { digest: D, payload: new Uint8Array([0x68, 0x69]) }, sig: SIG },
  'pre-prepare': { type: 'pre-prepare', sender: 1, view: 1, seq: 2, digest: D, batch: KAT_BATCH, sig: SIG },
  prepare: { type: 'prepare', sender: 3, view: 1, seq: 2, digest: D, sig: SIG },
  commit: { type: 'commit', sender: 3, view: 1, seq: 2, digest: D, sig: SIG },
  checkpoint: { type: 'checkpoint', sender: 0, seq: 4, digest: D, sig: SIG },
  'view-change': VC,
  'new-view': { type: 'new-view', sender: 2, view: 2, viewChanges: [VC], prePrepares: [{ seq: 5, digest: D, sig: SIG }], sig: SIG },
  status: { type: 'status', sender: 1, view: 1, inViewChange: true, stableSeq: 4, committedThrough: 7, sig: SIG },
  fetch: { type: 'fetch', sender: 3, fromSeq: 5, toSeq: 8, sig: SIG },
  'fetch-reply': {
    type: 'fetch-reply',
    sender: 0,
    oldestAvailable: 1,
    entries: [{ seq: 5, batch: KAT_BATCH, cert: { view: 1, digest: D, commits: [0, 1, 2].map((replica) => ({ replica, sig: SIG })) } }],
    sig: SIG,
  },
};
