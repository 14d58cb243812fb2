import { parentPort } from 'node:worker_threads';
import { combine, usePublicBackend, verify } from '../crypto/threshold.js';
import type { CryptoRequest, CryptoResponse } from './crypto-pool.js';

/**
 * The BLS work of a firewall node (pairing checks, combining partials) on its own thread, so the
 * node's event loop keeps accepting, relaying and acknowledging while a batch root is checked.
 * Decoded keys, hashed messages and pairing precomputations stay cached in this thread. Verify
 * and combine (public data only) run on mcl-wasm, 3–4× faster than noble with the same bytes
 * (CBFT_BLS_BACKEND=noble keeps noble).
 */
// A backend that cannot load leaves noble in place (same answers, slower).
const ready = usePublicBackend().catch(() => 'noble');
function handle(req: CryptoRequest): CryptoResponse {
  try {
    switch (req.op) {
      case 'verify':
        return { id: req.id, ok: true, value: verify(req.publicKey, req.message, req.signature) };
      case 'verifyMany':
        return { id: req.id, ok: true, value: req.items.map((i) => verify(i.publicKey, req.message, i.signature)) };
      case 'combine':
        return { id: req.id, ok: true, value: combine(req.partials, req.threshold) };
    }
  } catch (err) {
    return { id: req.id, ok: false, error: (err as Error).message };
  }
}

parentPort?.on('message', (req: CryptoRequest) => {
  // Answers keep the order of requests: every one waits for the same load.
  void ready.then(() => parentPort!.postMessage(handle(req)));
});
