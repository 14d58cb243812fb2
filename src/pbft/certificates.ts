import { bytesEqual } from '../codec/binary.js';
import { DIGEST_BYTES } from '../crypto/hash.js';
import { GENESIS_HISTORY } from './digests.js';
import type { Quorums } from './quorums.js';
import { primaryOf } from './quorums.js';
import type { PbftCrypto } from './signing.js';
import { checkpointBytes, voteBytes } from './signing.js';
import type { CheckpointProof, CommitCert, PreparedCert, VoteSig } from './types.js';

/**
 * Checks of certificates received from peers. Signature lists must be exactly quorum-sized and
 * sorted by strictly increasing replica id, so each certificate has one canonical form.
 */
export interface CertContext {
  readonly n: number;
  readonly checkpointInterval: number;
  readonly quorums: Quorums;
  readonly crypto: PbftCrypto;
}

export function safeVerify(crypto: PbftCrypto, replica: number, bytes: Uint8Array, sig: Uint8Array): boolean {
  try {
    return crypto.verify(replica, bytes, sig);
  } catch {
    return false;
  }
}

function canonicalVoters(votes: readonly VoteSig[], expected: number, n: number, excluded?: number): boolean {
  if (votes.length !== expected) return false;
  let prev = -1;
  for (const v of votes) {
    if (v.replica <= prev || v.replica >= n || v.replica === excluded) return false;
    prev = v.replica;
  }
  return true;
}

export function validCheckpointProof(ctx: CertContext, proof: CheckpointProof): boolean {
  if (proof.digest.length !== DIGEST_BYTES) return false;
  if (proof.seq === 0) return proof.sigs.length === 0 && bytesEqual(proof.digest, GENESIS_HISTORY);
  if (proof.seq % ctx.checkpointInterval !== 0) return false;
  if (!canonicalVoters(proof.sigs, ctx.quorums.checkpoint, ctx.n)) return false;
  return proof.sigs.every((v) => safeVerify(ctx.crypto, v.replica, checkpointBytes(v.replica, proof.seq, proof.digest), v.sig));
}

export function validPreparedCert(ctx: CertContext, cert: PreparedCert): boolean {
  if (cert.digest.length !== DIGEST_BYTES) return false;
  const primary = primaryOf(cert.view, ctx.n);
  if (!canonicalVoters(cert.prepares, ctx.quorums.prepares, ctx.n, primary)) return false;
  if (!safeVerify(ctx.crypto, primary, voteBytes('pre-prepare', primary, cert.view, cert.seq, cert.digest), cert.primarySig)) {
    return false;
  }
  return cert.prepares.every((v) =>
    safeVerify(ctx.crypto, v.replica, voteBytes('prepare', v.replica, cert.view, cert.seq, cert.digest), v.sig),
  );
}

export function validCommitCert(ctx: CertContext, seq: number, cert: CommitCert): boolean {
  if (cert.digest.length !== DIGEST_BYTES) return false;
  if (!canonicalVoters(cert.commits, ctx.quorums.commit, ctx.n)) return false;
  return cert.commits.every((v) =>
    safeVerify(ctx.crypto, v.replica, voteBytes('commit', v.replica, cert.view, seq, cert.digest), v.sig),
  );
}

/** Picks `count` votes in canonical order (sorted by replica id). */
export function canonicalVotes(votes: Iterable<VoteSig>, count: number): VoteSig[] {
  return [...votes].sort((a, b) => a.replica - b.replica).slice(0, count);
}
