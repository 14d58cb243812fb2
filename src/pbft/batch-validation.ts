import { bytesEqual } from '../codec/binary.js';
import { DIGEST_BYTES } from '../crypto/hash.js';
import { NULL_BATCH, SEED_BYTES, digestKey, requestDigestOf } from './digests.js';
import type { Batch, ClientRequest } from './types.js';

export interface BatchLimits {
  readonly batchMax: number;
  readonly maxRequestBytes: number;
}

/** Authenticates a payload and returns its request digest (see PbftCrypto.requestDigest). */
export type RequestDigestFn = (payload: Uint8Array) => Uint8Array | null;

/** Why a request is unacceptable, or null if it is fine. */
export function requestProblem(req: ClientRequest, limits: BatchLimits, digestOf: RequestDigestFn = requestDigestOf): string | null {
  if (!(req.digest instanceof Uint8Array) || req.digest.length !== DIGEST_BYTES) return 'digest is not 32 bytes';
  if (!(req.payload instanceof Uint8Array)) return 'payload is not bytes';
  if (req.payload.length > limits.maxRequestBytes) return `payload of ${req.payload.length} bytes exceeds ${limits.maxRequestBytes}`;
  const digest = digestOf(req.payload);
  if (digest === null) return 'request is not authenticated';
  if (!bytesEqual(digest, req.digest)) return 'digest does not match payload';
  return null;
}

/**
 * Why a batch from a PRE-PREPARE or a FETCH-REPLY is unacceptable, or null. Only the exact null
 * batch may be empty; no request may appear twice in one batch.
 */
export function batchProblem(batch: Batch, limits: BatchLimits, digestOf: RequestDigestFn = requestDigestOf): string | null {
  if (batch.seed.length !== SEED_BYTES) return 'seed is not 32 bytes';
  if (batch.requests.length === 0) {
    return batch.timestamp === NULL_BATCH.timestamp && bytesEqual(batch.seed, NULL_BATCH.seed) ? null : 'empty batch is not the null batch';
  }
  if (batch.requests.length > limits.batchMax) return `batch of ${batch.requests.length} requests exceeds ${limits.batchMax}`;
  const seen = new Set<string>();
  for (const req of batch.requests) {
    const problem = requestProblem(req, limits, digestOf);
    if (problem !== null) return problem;
    const key = digestKey(req.digest);
    if (seen.has(key)) return 'request appears twice in one batch';
    seen.add(key);
  }
  return null;
}
