import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { toHex } from '../codec/binary.js';
import { batchMessage } from '../codec/merkle.js';
import { combine, usePublicBackend, verify, type Partial } from '../crypto/threshold.js';

/**
 * Where a firewall node does its BLS work. A pairing check costs 16–70 ms of pure JS (more under
 * CPU contention); done on the event loop it stalls every frame acknowledgement, HTTP accept and
 * relay of the node for that long, so under load batches queue behind each other. The worker
 * backend runs the same functions on a worker thread; the inline backend (used when the compiled
 * worker is not available, e.g. tests running from TypeScript sources) runs them in place.
 */
export type CryptoRequest =
  | { id: number; op: 'verify'; publicKey: Uint8Array; message: Uint8Array; signature: Uint8Array }
  | { id: number; op: 'verifyMany'; message: Uint8Array; items: Array<{ publicKey: Uint8Array; signature: Uint8Array }> }
  | { id: number; op: 'combine'; partials: Partial[]; threshold: number };

export type CryptoResponse = { id: number; ok: true; value: boolean | boolean[] | Uint8Array } | { id: number; ok: false; error: string };

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

export interface CryptoBackend {
  readonly kind: 'worker' | 'inline';
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
  verifyMany(message: Uint8Array, items: Array<{ publicKey: Uint8Array; signature: Uint8Array }>): Promise<boolean[]>;
  /** Rejects when a partial is malformed or the result is the point at infinity. */
  combine(partials: Partial[], threshold: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

export function inlineBackend(): CryptoBackend {
  // mcl-wasm for the public-data operations, as in the worker (this process-wide switch only
  // changes speed: both backends give the same answers and bytes).
  const ready = usePublicBackend().catch(() => 'noble');
  return {
    kind: 'inline',
    verify: async (pk, m, s) => (await ready, verify(pk, m, s)),
    verifyMany: async (m, items) => (await ready, items.map((i) => verify(i.publicKey, m, i.signature))),
    combine: async (partials, threshold) => (await ready, combine(partials, threshold)),
    close: async () => undefined,
  };
}

/** The compiled worker next to this module, if there is one. */
export function defaultWorkerFile(): URL | undefined {
  const url = new URL('./crypto-worker.js', import.meta.url);
  return existsSync(fileURLToPath(url)) ? url : undefined;
}

export function workerBackend(file: URL): CryptoBackend {
  const worker = new Worker(file);
  worker.unref();
  let next = 1;
  let failed: Error | undefined;
  const waiting = new Map<number, { resolve(v: CryptoResponse): void }>();
  const failAll = (err: Error) => {
    failed = err;
    for (const w of waiting.values()) w.resolve({ id: 0, ok: false, error: err.message });
    waiting.clear();
  };
  worker.on('message', (res: CryptoResponse) => {
    const w = waiting.get(res.id);
    waiting.delete(res.id);
    if (waiting.size === 0) worker.unref();
    w?.resolve(res);
  });
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`crypto worker exited with ${code}`)));
  const call = (req: DistributiveOmit<CryptoRequest, 'id'>): Promise<CryptoResponse> => {
    if (failed) return Promise.resolve({ id: 0, ok: false, error: failed.message });
    const id = next++;
    if (waiting.size === 0) worker.ref();
    return new Promise((resolve) => {
      waiting.set(id, { resolve });
      worker.postMessage({ ...req, id });
    });
  };
  const value = <T>(res: CryptoResponse): T => {
    if (!res.ok) throw new Error(res.error);
    return res.value as T;
  };
  return {
    kind: 'worker',
    // A broken worker must not turn into "valid": errors read as invalid signatures.
    verify: async (publicKey, message, signature) => {
      const res = await call({ op: 'verify', publicKey, message, signature });
      return res.ok && res.value === true;
    },
    verifyMany: async (message, items) => {
      const res = await call({ op: 'verifyMany', message, items });
      return res.ok ? (res.value as boolean[]) : items.map(() => false);
    },
    combine: async (partials, threshold) => value<Uint8Array>(await call({ op: 'combine', partials, threshold })),
    close: async () => {
      failAll(new Error('crypto worker closed'));
      await worker.terminate();
    },
  };
}

/**
 * Checks that a batch root carries the service signature, with a cache of verified
 * (root, signature) pairs and coalescing of concurrent checks of the same pair: one pairing per
 * batch per node, however many replies the batch carries and however they arrive.
 */
export class RootVerifier {
  private readonly verified = new Map<string, true>();
  private readonly inFlight = new Map<string, Promise<boolean>>();
  /** Pairing checks started (tests use it to show the cache works). */
  pairingChecks = 0;

  constructor(
    private readonly servicePublicKey: Uint8Array,
    private readonly depth: number,
    private readonly backend: CryptoBackend,
    private readonly onCheck?: (seconds: number) => void,
    private readonly cacheLimit = 4096,
  ) {}

  /** true when already known good (no work), otherwise undefined. */
  known(root: Uint8Array, signature: Uint8Array): boolean | undefined {
    return this.verified.has(toHex(root) + toHex(signature)) ? true : undefined;
  }

  check(root: Uint8Array, signature: Uint8Array): Promise<boolean> {
    const key = toHex(root) + toHex(signature);
    if (this.verified.has(key)) return Promise.resolve(true);
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    this.pairingChecks++;
    const t0 = performance.now();
    const p = this.backend.verify(this.servicePublicKey, batchMessage(root, this.depth), signature).then(
      (ok) => {
        this.inFlight.delete(key);
        this.onCheck?.((performance.now() - t0) / 1000);
        if (ok) {
          if (this.verified.size >= this.cacheLimit) this.verified.delete(this.verified.keys().next().value as string);
          this.verified.set(key, true);
        }
        return ok;
      },
      () => {
        this.inFlight.delete(key);
        return false;
      },
    );
    this.inFlight.set(key, p);
    return p;
  }
}
