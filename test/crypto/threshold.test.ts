import { describe, expect, it } from 'vitest';
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { CbftError, ErrorCodes, threshold } from '../../src/index.js';
import { DST, cacheStats, clearCaches, publicKeyOf } from '../../src/crypto/threshold.js';
import { fromHex, toHex, utf8 } from '../../src/codec/binary.js';
import type { Partial, Share } from '../../src/crypto/threshold.js';
import { subsets } from '../../bench/lib/subsets.js';

const Fr = bls12_381.fields.Fr;
const message = utf8('cbft test message');

/** The master secret, recovered in the test by interpolating `t` share secrets at 0. */
function masterSecret(shares: Share[]): bigint {
  let acc = 0n;
  for (const si of shares) {
    let num = 1n;
    let den = 1n;
    for (const sj of shares) {
      if (sj === si) continue;
      num = Fr.mul(num, BigInt(sj.index));
      den = Fr.mul(den, Fr.sub(BigInt(sj.index), BigInt(si.index)));
    }
    acc = Fr.add(acc, Fr.mul(BigInt('0x' + toHex(si.secretKey)), Fr.div(num, den)));
  }
  return acc;
}

describe.each([
  { t: 2, n: 4 },
  { t: 3, n: 7 },
])('threshold $t of $n', ({ t, n }) => {
  const dealt = threshold.deal(t, n);
  const partials: Partial[] = dealt.shares.map((s) => ({ index: s.index, signature: threshold.partialSign(s, message) }));

  it('deals n shares with indices 1..n and public keys matching their secrets', () => {
    expect(dealt.shares.map((s) => s.index)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    for (const s of dealt.shares) expect(toHex(publicKeyOf(s.secretKey))).toBe(toHex(s.publicKey));
    expect(dealt.groupPublicKey.length).toBe(96);
  });

  it('every partial verifies against its own share key and no other', () => {
    for (const [i, p] of partials.entries()) {
      for (const [j, s] of dealt.shares.entries()) {
        expect(threshold.verifyPartial(s.publicKey, message, p.signature)).toBe(i === j);
      }
    }
  });

  it('every t-subset combines to identical bytes, equal to the master key signature', () => {
    const master = masterSecret(dealt.shares.slice(0, t));
    const expected = bls12_381.shortSignatures.hash(message, DST).multiply(master).toBytes(true);
    const combos = subsets(partials, t);
    expect(combos.length).toBeGreaterThan(1);
    for (const combo of combos) {
      const sig = threshold.combine(combo, t);
      expect(toHex(sig)).toBe(toHex(expected));
      expect(threshold.verify(dealt.groupPublicKey, message, sig)).toBe(true);
    }
  });

  it('fewer than t partials are rejected with a clear error, never a wrong signature', () => {
    for (let k = 1; k < t; k++) {
      for (const few of subsets(partials, k)) {
        expect(() => threshold.combine(few, t)).toThrow(expect.objectContaining({ name: 'CbftError', code: ErrorCodes.THRESHOLD }));
        expect(() => threshold.combine(few, t)).toThrow(`combine needs at least ${t} partial signatures (the threshold), got ${k}`);
      }
    }
  });

  it('more than t partials combine to the same signature as any t of them', () => {
    const exact = threshold.combine(partials.slice(0, t), t);
    for (let k = t + 1; k <= n; k++) {
      const sig = threshold.combine(partials.slice(n - k), t);
      expect(toHex(sig)).toBe(toHex(exact));
    }
    expect(threshold.verify(dealt.groupPublicKey, message, exact)).toBe(true);
  });

  it('the threshold argument is required and checked', () => {
    const combineLoose = threshold.combine as (p: Partial[], t?: unknown) => Uint8Array;
    for (const bad of [undefined, 0, -1, 1.5, Number.NaN, '2', 1025]) {
      expect(() => combineLoose(partials.slice(0, t), bad)).toThrow(/combine: threshold must be an integer in 1\.\.1024/);
    }
  });

  it('a corrupted or foreign partial is caught by verifyPartial and spoils the combination', () => {
    const other = threshold.deal(t, n);
    const foreign = threshold.partialSign(other.shares[0]!, message);
    const wrongMessage = threshold.partialSign(dealt.shares[0]!, utf8('another message'));
    for (const bad of [foreign, wrongMessage]) {
      expect(threshold.verifyPartial(dealt.shares[0]!.publicKey, message, bad)).toBe(false);
      const combo = [{ index: 1, signature: bad }, ...partials.slice(1, t)];
      expect(threshold.verify(dealt.groupPublicKey, message, threshold.combine(combo, t))).toBe(false);
    }
    // A partial whose bytes are flipped no longer decodes to a subgroup point, or is a different point.
    const flipped = partials[0]!.signature.slice();
    flipped[47]! ^= 1;
    expect(threshold.verifyPartial(dealt.shares[0]!.publicKey, message, flipped)).toBe(false);
  });

  it('duplicates, malformed bytes and bad indices are rejected with a clear error', () => {
    expect(() => threshold.combine([partials[0]!, partials[0]!], 2)).toThrow(/duplicate partial/);
    expect(() => threshold.combine([{ index: 1, signature: new Uint8Array(47) }, partials[1]!], 2)).toThrow(/48 bytes/);
    expect(() => threshold.combine([{ index: 1, signature: new Uint8Array(48).fill(0xff) }, partials[1]!], 2)).toThrow(/G1 point/);
    expect(() => threshold.combine([{ index: 0, signature: partials[0]!.signature }, partials[1]!], 2)).toThrow(/share index/);
    expect(() => threshold.combine([], t)).toThrow(/at least one/);
    expect(threshold.verify(dealt.groupPublicKey, message, new Uint8Array(48))).toBe(false);
    expect(threshold.verify(new Uint8Array(96), message, partials[0]!.signature)).toBe(false);
  });
});

describe('threshold input checks', () => {
  it('refuses impossible deals', () => {
    expect(() => threshold.deal(0, 4)).toThrow(/threshold/);
    expect(() => threshold.deal(5, 4)).toThrow(/threshold/);
    expect(() => threshold.deal(1, 0)).toThrow(/count/);
  });

  it('rejects a G1 point outside the prime-order subgroup', () => {
    // A point on E(Fp) (y^2 = x^3 + 4) that is not in the r-torsion subgroup: found by trying x.
    const { Fp } = bls12_381.fields;
    const G1 = bls12_381.G1.Point;
    let off: InstanceType<typeof G1> | undefined;
    for (let x = 1n; !off; x++) {
      const y2 = Fp.add(Fp.pow(x, 3n), 4n);
      let y: bigint;
      try {
        y = Fp.sqrt(y2);
      } catch {
        continue;
      }
      const p = G1.fromAffine({ x, y });
      if (!p.isTorsionFree()) off = p;
    }
    // Compressed encoding by hand (ZCash format: flag bits on top of big-endian x), because
    // noble refuses to serialise a point outside the subgroup.
    const { x, y } = off.toAffine();
    const bytes = fromHex(x.toString(16).padStart(96, '0'));
    bytes[0]! |= 0x80 | (y > (Fp.ORDER - 1n) / 2n ? 0x20 : 0);
    const dealt = threshold.deal(2, 4);
    expect(threshold.verifyPartial(dealt.shares[0]!.publicKey, message, bytes)).toBe(false);
    expect(() => threshold.combine([{ index: 1, signature: bytes }, { index: 2, signature: threshold.partialSign(dealt.shares[1]!, message) }], 2)).toThrow(/subgroup/);
  });

  it('rejects a public key on the G2 curve but outside the prime-order subgroup', () => {
    // A point on the twist E'(Fp2): y^2 = x^3 + 4(1+u). Its cofactor is huge, so a point found by
    // trying x is almost surely outside G2; the loop checks that it is.
    const { Fp, Fp2 } = bls12_381.fields;
    const G2 = bls12_381.G2.Point;
    const b = G2.CURVE().b;
    let off: InstanceType<typeof G2> | undefined;
    for (let i = 1n; !off; i++) {
      const x = Fp2.fromBigTuple([i, 1n]);
      let y: ReturnType<typeof Fp2.sqrt> | undefined;
      try {
        y = Fp2.sqrt(Fp2.add(Fp2.mul(Fp2.sqr(x), x), b));
      } catch {
        continue;
      }
      if (!y) continue;
      const p = G2.fromAffine({ x, y });
      if (!p.isTorsionFree()) off = p;
    }
    // ZCash compressed encoding by hand (noble refuses to serialise a point outside G2):
    // x.c1 || x.c0, flags 0x80 (compressed) and 0x20 (y the larger root, c1 first, c0 if c1 = 0).
    const encode = (point: InstanceType<typeof G2>): Uint8Array => {
      const { x, y } = point.toAffine();
      const bytes = fromHex(x.c1.toString(16).padStart(96, '0') + x.c0.toString(16).padStart(96, '0'));
      const half = (Fp.ORDER - 1n) / 2n;
      const larger = y.c1 !== 0n ? y.c1 > half : y.c0 > half;
      bytes[0]! |= 0x80 | (larger ? 0x20 : 0);
      return bytes;
    };
    const dealt = threshold.deal(2, 4);
    // The hand encoder agrees with noble on real keys, so the bad key differs only in the subgroup.
    for (const key of [dealt.groupPublicKey, dealt.shares[0]!.publicKey]) expect(toHex(encode(G2.fromBytes(key)))).toBe(toHex(key));
    const bytes = encode(off);
    expect(bytes.length).toBe(96);
    // It decodes to a point on the curve (the exact point) and fails only the subgroup check.
    expect(() => G2.fromBytes(bytes)).toThrow(/not in prime-order subgroup/);
    const sig = threshold.partialSign(dealt.shares[0]!, message);
    expect(threshold.verifyPartial(dealt.shares[0]!.publicKey, message, sig)).toBe(true);
    const before = cacheStats();
    expect(threshold.verifyPartial(bytes, message, sig)).toBe(false);
    expect(threshold.verify(bytes, message, sig)).toBe(false);
    // Decoded twice (refused keys are never cached) and never entered into the cache.
    const after = cacheStats();
    expect(after.publicKeyDecodes - before.publicKeyDecodes).toBe(2);
    expect(after.publicKeys).toBe(before.publicKeys);
  });

  it('decoded public keys are cached: one decode per key, however many verifications', () => {
    clearCaches();
    expect(cacheStats()).toMatchObject({ publicKeys: 0, messages: 0 });
    const dealt = threshold.deal(2, 4);
    const partials = dealt.shares.map((s) => ({ index: s.index, signature: threshold.partialSign(s, message) }));
    const signature = threshold.combine(partials.slice(0, 2), 2);
    const start = cacheStats().publicKeyDecodes;
    for (let round = 0; round < 3; round++) {
      expect(threshold.verify(dealt.groupPublicKey, message, signature)).toBe(true);
      for (const [i, s] of dealt.shares.entries()) expect(threshold.verifyPartial(s.publicKey, message, partials[i]!.signature)).toBe(true);
    }
    // 5 distinct keys, 15 verifications: 5 decodes, 5 cached keys.
    expect(cacheStats().publicKeyDecodes - start).toBe(5);
    expect(cacheStats().publicKeys).toBe(5);
    clearCaches();
    expect(cacheStats().publicKeys).toBe(0);
    expect(threshold.verify(dealt.groupPublicKey, message, signature)).toBe(true);
    expect(cacheStats().publicKeyDecodes - start).toBe(6);
  });

  it('known answer: partial signature of a fixed key over a fixed message (cbft DST)', () => {
    const secretKey = fromHex('0000000000000000000000000000000000000000000000000000000000000007');
    const sig = threshold.partialSign({ index: 1, secretKey }, utf8('abc'));
    // Independent path: noble's own sign over the same hash-to-curve with our DST.
    const viaNoble = bls12_381.shortSignatures.sign(bls12_381.shortSignatures.hash(utf8('abc'), DST), secretKey).toBytes(true);
    expect(toHex(sig)).toBe(toHex(viaNoble));
    expect(toHex(sig)).toMatchInlineSnapshot(`"8cc0fbc4ee4c551b75c99235b58e89923611ffc4d43e240ff3c6b3fd3e245049e384869bb6f7418c1bf02cecbc8ea8fa"`);
    expect(DST).toBe('CBFT-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_');
  });
});
