import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { bls12_381 } from '@noble/curves/bls12-381.js';
import * as threshold from '../../src/crypto/threshold.js';
import { fromHex, toHex, utf8 } from '../../src/codec/binary.js';
import type { Partial } from '../../src/crypto/threshold.js';
import { subsets } from '../../bench/lib/subsets.js';

/**
 * Cross-checks of the two implementations of the public-data operations behind
 * src/crypto/threshold.ts: noble (the reference) and mcl-wasm (what the firewall nodes use after
 * usePublicBackend()). Same verdicts, same bytes, same refusals, including for malformed,
 * non-canonical, non-subgroup and infinity encodings.
 */
const message = utf8('cbft cross-check message');

/** Runs `f` once with each backend and returns both results. */
async function both<T>(f: () => T): Promise<{ noble: T; mcl: T }> {
  await threshold.usePublicBackend('noble');
  const noble = f();
  expect(await threshold.usePublicBackend('mcl')).toBe('mcl');
  const mcl = f();
  return { noble, mcl };
}

function outcome(f: () => Uint8Array): string {
  try {
    return toHex(f());
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

/** A point on E(Fp) outside the prime-order subgroup, compressed by hand. */
function nonSubgroupPoint(): Uint8Array {
  const { Fp } = bls12_381.fields;
  const G1 = bls12_381.G1.Point;
  for (let x = 1n; ; x++) {
    let y: bigint;
    try {
      y = Fp.sqrt(Fp.add(Fp.pow(x, 3n), 4n));
    } catch {
      continue;
    }
    const p = G1.fromAffine({ x, y });
    if (p.isTorsionFree()) continue;
    const bytes = fromHex(x.toString(16).padStart(96, '0'));
    bytes[0]! |= 0x80 | (y > (Fp.ORDER - 1n) / 2n ? 0x20 : 0);
    return bytes;
  }
}

/** A point on the G2 twist outside the prime-order subgroup, compressed by hand (x.c1 || x.c0). */
function nonSubgroupG2Point(): Uint8Array {
  const { Fp, Fp2 } = bls12_381.fields;
  const G2 = bls12_381.G2.Point;
  for (let i = 1n; ; i++) {
    const x = Fp2.fromBigTuple([i, 1n]);
    let y: ReturnType<typeof Fp2.sqrt> | undefined;
    try {
      y = Fp2.sqrt(Fp2.add(Fp2.mul(Fp2.sqr(x), x), G2.CURVE().b));
    } catch {
      continue;
    }
    if (!y || G2.fromAffine({ x, y }).isTorsionFree()) continue;
    const bytes = fromHex(x.c1.toString(16).padStart(96, '0') + x.c0.toString(16).padStart(96, '0'));
    const half = (Fp.ORDER - 1n) / 2n;
    bytes[0]! |= 0x80 | ((y.c1 !== 0n ? y.c1 > half : y.c0 > half) ? 0x20 : 0);
    return bytes;
  }
}

beforeAll(async () => {
  expect(await threshold.usePublicBackend('mcl')).toBe('mcl');
});
afterAll(async () => {
  await threshold.usePublicBackend('noble');
});

describe.each([
  { t: 2, n: 4 },
  { t: 3, n: 7 },
])('noble and mcl-wasm agree, threshold $t of $n', ({ t, n }) => {
  const dealt = threshold.deal(t, n);
  const partials: Partial[] = dealt.shares.map((s) => ({ index: s.index, signature: threshold.partialSign(s, message) }));

  it('every t-subset combines to the same bytes on both, and the result verifies on both', async () => {
    for (const combo of subsets(partials, t)) {
      const r = await both(() => threshold.combine(combo, t));
      expect(toHex(r.mcl)).toBe(toHex(r.noble));
      const v = await both(() => threshold.verify(dealt.groupPublicKey, message, r.noble));
      expect(v).toEqual({ noble: true, mcl: true });
    }
  });

  it('partials verify against their own share key only, on both', async () => {
    for (const [i, p] of partials.entries()) {
      for (const [j, s] of dealt.shares.entries()) {
        const v = await both(() => threshold.verifyPartial(s.publicKey, message, p.signature));
        expect(v).toEqual({ noble: i === j, mcl: i === j });
      }
    }
  });

  it('a wrong message, a foreign key and a spoiled combination are refused by both', async () => {
    const sig = threshold.combine(partials.slice(0, t), t);
    const other = threshold.deal(t, n);
    const wrong = threshold.partialSign(dealt.shares[0]!, utf8('another message'));
    expect(await both(() => threshold.verify(dealt.groupPublicKey, utf8('another message'), sig))).toEqual({ noble: false, mcl: false });
    expect(await both(() => threshold.verify(other.groupPublicKey, message, sig))).toEqual({ noble: false, mcl: false });
    const spoiled = await both(() => threshold.combine([{ index: 1, signature: wrong }, ...partials.slice(1, t)], t));
    expect(toHex(spoiled.mcl)).toBe(toHex(spoiled.noble));
    expect(await both(() => threshold.verify(dealt.groupPublicKey, message, spoiled.noble))).toEqual({ noble: false, mcl: false });
  });
});

describe('noble and mcl-wasm refuse the same encodings', () => {
  const dealt = threshold.deal(2, 4);
  const partials: Partial[] = dealt.shares.map((s) => ({ index: s.index, signature: threshold.partialSign(s, message) }));
  const good = threshold.combine(partials.slice(0, 2), 2);

  const variants = (): Array<[string, Uint8Array]> => {
    const out: Array<[string, Uint8Array]> = [];
    const flip = (i: number, mask: number) => {
      const b = new Uint8Array(good);
      b[i]! ^= mask;
      return b;
    };
    out.push(['sort flag flipped (the other y)', flip(0, 0x20)]);
    out.push(['compression flag cleared', flip(0, 0x80)]);
    out.push(['infinity flag set', flip(0, 0x40)]);
    out.push(['last byte flipped', flip(47, 0x01)]);
    out.push(['infinity encoding', fromHex('c0' + '00'.repeat(47))]);
    out.push(['all ones', new Uint8Array(48).fill(0xff)]);
    out.push(['all zeros', new Uint8Array(48)]);
    out.push(['outside the subgroup', nonSubgroupPoint()]);
    // x + p: the same x modulo p, a second (non-canonical) encoding if it fits in 381 bits.
    const p = bls12_381.fields.Fp.ORDER;
    const x = BigInt('0x' + toHex(good.slice(0, 48)).replace(/^./, (c) => (parseInt(c, 16) & 1).toString(16)));
    if (x + p < 1n << 381n) {
      const b = fromHex((x + p).toString(16).padStart(96, '0'));
      b[0]! |= good[0]! & 0xe0;
      out.push(['x + p', b]);
    }
    for (let i = 0; i < 64; i++) {
      const b = new Uint8Array(randomBytes(48));
      b[0] = (b[0]! & 0x1f) | (i % 2 ? 0x80 : 0xa0);
      out.push([`random compressed #${i}`, b]);
    }
    out.push(['47 bytes', good.slice(0, 47)]);
    out.push(['49 bytes', new Uint8Array([...good, 0])]);
    return out;
  };

  it('the good signature verifies on both', async () => {
    expect(await both(() => threshold.verify(dealt.groupPublicKey, message, good))).toEqual({ noble: true, mcl: true });
  });

  it('malformed, non-canonical, non-subgroup and infinity signatures: both say invalid', async () => {
    for (const [what, bytes] of variants()) {
      const v = await both(() => threshold.verify(dealt.groupPublicKey, message, bytes));
      expect({ what, ...v }).toEqual({ what, noble: false, mcl: false });
    }
  });

  it('as partials to combine: both refuse the same ones with the same message, or give the same bytes', async () => {
    for (const [what, bytes] of variants()) {
      const r = await both(() => outcome(() => threshold.combine([{ index: 1, signature: bytes }, partials[1]!], 2)));
      // Valid points (another y, a random point that happens to be in G1) combine identically.
      expect({ what, r: r.mcl }).toEqual({ what, r: r.noble });
    }
  });

  it('bad public keys: both say invalid', async () => {
    const pk = dealt.groupPublicKey;
    const flipped = new Uint8Array(pk);
    flipped[95]! ^= 1;
    const offSubgroup = nonSubgroupG2Point();
    expect(() => bls12_381.G2.Point.fromBytes(offSubgroup)).toThrow(/not in prime-order subgroup/);
    const badKeys = [new Uint8Array(96), new Uint8Array(96).fill(0xff), pk.slice(0, 95), fromHex('c0' + '00'.repeat(95)), flipped, offSubgroup];
    for (const key of badKeys) {
      expect(await both(() => threshold.verify(key, message, good))).toEqual({ noble: false, mcl: false });
    }
  });

  it('the known-answer partial signature verifies on both', async () => {
    const secretKey = fromHex('0000000000000000000000000000000000000000000000000000000000000007');
    const publicKey = threshold.publicKeyOf(secretKey);
    const sig = fromHex('8cc0fbc4ee4c551b75c99235b58e89923611ffc4d43e240ff3c6b3fd3e245049e384869bb6f7418c1bf02cecbc8ea8fa');
    expect(await both(() => threshold.verify(publicKey, utf8('abc'), sig))).toEqual({ noble: true, mcl: true });
    expect(await both(() => threshold.verify(publicKey, utf8('abd'), sig))).toEqual({ noble: false, mcl: false });
  });

  it('CBFT_BLS_BACKEND=noble and unknown names', async () => {
    expect(await threshold.usePublicBackend('noble')).toBe('noble');
    expect(threshold.publicBackend()).toBe('noble');
    await expect(threshold.usePublicBackend('blst')).rejects.toThrow(/unknown BLS backend/);
    expect(await threshold.usePublicBackend('mcl')).toBe('mcl');
    expect(threshold.publicBackend()).toBe('mcl');
  });
});
