import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { threshold } from '../../src/index.js';
import { batchMessage } from '../../src/codec/merkle.js';
import { inlineBackend, RootVerifier, workerBackend, type CryptoBackend } from '../../src/firewall/crypto-pool.js';
import { ensureBuilt, WORKER_URL } from './helpers.js';

const dealt = threshold.deal(2, 4);
const depth = 4;
const root = randomBytes(32);
const msg = batchMessage(root, depth);
const partials = dealt.shares.map((s) => ({ index: s.index, signature: threshold.partialSign(s, msg) }));
const signature = threshold.combine(partials.slice(0, 2), 2);

describe.each(['inline', 'worker'] as const)('%s crypto backend', (kind) => {
  let backend: CryptoBackend;
  beforeAll(() => {
    if (kind === 'worker') ensureBuilt();
    backend = kind === 'worker' ? workerBackend(WORKER_URL) : inlineBackend();
  });
  afterAll(() => backend.close());

  it('verifies, combines and checks partials one by one like the threshold module', async () => {
    expect(backend.kind).toBe(kind);
    expect(await backend.verify(dealt.groupPublicKey, msg, signature)).toBe(true);
    expect(await backend.verify(dealt.groupPublicKey, batchMessage(randomBytes(32), depth), signature)).toBe(false);
    expect(await backend.verify(dealt.groupPublicKey, msg, new Uint8Array(48))).toBe(false);
    const combined = await backend.combine([partials[1]!, partials[3]!], 2);
    expect(Buffer.from(combined).equals(Buffer.from(signature))).toBe(true); // I4: any s+1 give the same bytes
    await expect(backend.combine([partials[0]!, { index: 2, signature: new Uint8Array(48).fill(7) }], 2)).rejects.toThrow();
    const garbage = threshold.partialSign(dealt.shares[2]!, batchMessage(randomBytes(32), depth));
    expect(
      await backend.verifyMany(msg, [
        { publicKey: dealt.shares[0]!.publicKey, signature: partials[0]!.signature },
        { publicKey: dealt.shares[2]!.publicKey, signature: garbage },
      ]),
    ).toEqual([true, false]);
  });

  it('RootVerifier: one pairing per (root, signature), concurrent checks coalesce, failures are not cached', async () => {
    const seen: number[] = [];
    const v = new RootVerifier(dealt.groupPublicKey, depth, backend, (s) => seen.push(s));
    expect(v.known(root, signature)).toBeUndefined();
    const results = await Promise.all([v.check(root, signature), v.check(root, signature), v.check(root, signature)]);
    expect(results).toEqual([true, true, true]);
    expect(v.pairingChecks).toBe(1);
    expect(seen).toHaveLength(1);
    expect(v.known(root, signature)).toBe(true);
    expect(await v.check(root, signature)).toBe(true);
    expect(v.pairingChecks).toBe(1);
    const bad = partials[0]!.signature;
    expect(await v.check(root, bad)).toBe(false);
    expect(await v.check(root, bad)).toBe(false);
    expect(v.pairingChecks).toBe(3);
  });
});
