import { Worker } from 'node:worker_threads';
import type { VerifyJob } from './verify-worker.js';

/**
 * A tiny worker-thread pool for BLS verification: each worker keeps its own decoded-key and
 * pairing-precompute caches, jobs go to the worker with the fewest in flight.
 */
export class VerifyPool {
  private readonly workers: { worker: Worker; inFlight: number }[] = [];
  private readonly pending = new Map<number, (ok: boolean) => void>();
  private nextId = 0;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL('./verify-worker.js', import.meta.url));
      const slot = { worker, inFlight: 0 };
      worker.on('message', (m: { id: number; ok: boolean }) => {
        slot.inFlight--;
        const done = this.pending.get(m.id);
        this.pending.delete(m.id);
        done?.(m.ok);
      });
      worker.on('error', (err) => {
        for (const done of this.pending.values()) done(false);
        this.pending.clear();
        process.stderr.write(`verify worker failed: ${String(err)}\n`);
      });
      this.workers.push(slot);
    }
  }

  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    const id = this.nextId++;
    let slot = this.workers[0]!;
    for (const w of this.workers) if (w.inFlight < slot.inFlight) slot = w;
    slot.inFlight++;
    const job: VerifyJob = { id, publicKey, message, signature };
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      slot.worker.postMessage(job);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
