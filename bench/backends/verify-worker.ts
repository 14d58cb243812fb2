import { parentPort } from 'node:worker_threads';
import { verify } from '../../src/crypto/threshold.js';

/** Worker side of the verification pool: verifies with src/crypto/threshold.ts (noble). */
export interface VerifyJob {
  id: number;
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

parentPort?.on('message', (job: VerifyJob) => {
  parentPort!.postMessage({ id: job.id, ok: verify(job.publicKey, job.message, job.signature) });
});
