import { randomBytes } from 'node:crypto';
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { pippenger } from '@noble/curves/abstract/curve.js';
import { DST, lagrangeIntegers, type Partial } from '../../src/crypto/threshold.js';

/**
 * Pure-noble variants of cbft's threshold operations, measured beside src/crypto/threshold.ts
 * (which they do not change). Every function here produces the same bytes as threshold.ts; the
 * crypto-backends suite cross-checks that before timing anything.
 */
const { Fp, Fr, Fp12 } = bls12_381.fields;
const G1 = bls12_381.G1.Point;
const G2 = bls12_381.G2.Point;
type G1Point = InstanceType<typeof G1>;
type Precompute = ReturnType<typeof bls12_381.utils.calcPairingPrecomputes>;

const HALF_P = (Fp.ORDER - 1n) / 2n;
const B = 4n; // y² = x³ + 4

/**
 * Compressed ZCash encoding of a G1 point without noble's `toBytes()` re-check of subgroup
 * membership (≈ 1 ms): only for points that are in G1 by construction (a multiple of a point that
 * was hashed to G1 or decoded with the subgroup check).
 */
export function encodeG1(point: G1Point): Uint8Array {
  if (point.is0()) throw new Error('cannot encode the point at infinity');
  const { x, y } = point.toAffine();
  const out = Fp.toBytes(x);
  out[0]! |= 0x80; // compressed
  if (y > HALF_P) out[0]! |= 0x20; // sort bit: y is the lexicographically larger root
  return out;
}

/**
 * Decode a compressed G1 point. With `subgroupCheck` it is noble's `fromBytes` (on-curve and
 * prime-order subgroup); without, only the curve equation holds (the square root makes sure of
 * it) and the caller must verify whatever it computes from the point.
 */
export function decodeG1(bytes: Uint8Array, subgroupCheck: boolean): G1Point {
  if (subgroupCheck) {
    const p = G1.fromBytes(bytes);
    p.assertValidity();
    if (p.is0()) throw new Error('point at infinity');
    return p;
  }
  if (bytes.length !== 48) throw new Error('G1 point must be 48 bytes');
  const flags = bytes[0]! & 0xe0;
  if ((flags & 0x80) === 0 || (flags & 0x40) !== 0) throw new Error('expected a compressed, finite G1 point');
  const raw = Uint8Array.from(bytes);
  raw[0]! &= 0x1f;
  let x = 0n;
  for (const b of raw) x = (x << 8n) | BigInt(b);
  if (x >= Fp.ORDER) throw new Error('x is not a canonical field element');
  let y = Fp.sqrt(Fp.add(Fp.mul(Fp.sqr(x), x), B)); // throws when x³ + 4 is not a square
  if (y > HALF_P !== ((flags & 0x20) !== 0)) y = Fp.neg(y);
  return G1.fromAffine({ x, y });
}

function mulSmall(p: G1Point, k: bigint): G1Point {
  return k < 0n ? p.multiplyUnsafe(-k).negate() : p.multiplyUnsafe(k);
}

export interface CombineOptions {
  /** Check each partial's subgroup membership (threshold.ts does); off only if the result is verified. */
  subgroupCheck: boolean;
  /** 'integer': Σ c_i·P_i then ·D⁻¹; 'unsafe': one public-scalar multiplication per partial; 'msm': pippenger. */
  method: 'integer' | 'unsafe' | 'msm';
}

export function combineOpt(partials: Partial[], threshold: number, opts: CombineOptions): Uint8Array {
  if (partials.length < threshold || partials.length === 0) throw new Error('not enough partials');
  const indices = partials.map((p) => p.index);
  if (new Set(indices).size !== indices.length) throw new Error('duplicate index');
  const points = partials.map((p) => decodeG1(p.signature, opts.subgroupCheck));
  let acc: G1Point;
  if (opts.method === 'integer') {
    const { c, D } = lagrangeIntegers(indices);
    acc = G1.ZERO;
    for (let i = 0; i < points.length; i++) acc = acc.add(mulSmall(points[i]!, c[i]!));
    if (D !== 1n && !acc.is0()) acc = acc.multiplyUnsafe(Fr.inv(Fr.create(D)));
  } else {
    const xs = indices.map(BigInt);
    const lambdas = xs.map((xi, i) => {
      let num = 1n;
      let den = 1n;
      for (let j = 0; j < xs.length; j++) {
        if (i === j) continue;
        num = Fr.mul(num, xs[j]!);
        den = Fr.mul(den, Fr.sub(xs[j]!, xi));
      }
      return Fr.div(num, den);
    });
    if (opts.method === 'msm') acc = pippenger(G1, points, lambdas);
    else {
      acc = G1.ZERO;
      for (let i = 0; i < points.length; i++) acc = acc.add(points[i]!.multiplyUnsafe(lambdas[i]!));
    }
  }
  if (acc.is0()) throw new Error('combined signature is the point at infinity');
  return encodeG1(acc);
}

/** threshold.partialSign without the redundant subgroup re-check in noble's toBytes. */
export function partialSignOpt(secretKey: Uint8Array, message: Uint8Array, hashed?: G1Point): Uint8Array {
  let x = 0n;
  for (const b of secretKey) x = (x << 8n) | BigInt(b);
  if (x === 0n || x >= Fr.ORDER) throw new Error('bad secret key');
  const h = hashed ?? bls12_381.shortSignatures.hash(message, DST);
  return encodeG1(h.multiply(x)); // constant-time multiply: the scalar is secret
}

let negG2: Precompute | undefined;
const keyCache = new Map<string, Precompute>();

export function publicKeyPrecompute(publicKey: Uint8Array): Precompute {
  const k = Buffer.from(publicKey).toString('hex');
  let hit = keyCache.get(k);
  if (!hit) {
    const p = G2.fromBytes(publicKey);
    p.assertValidity();
    hit = bls12_381.utils.calcPairingPrecomputes(p);
    keyCache.set(k, hit);
  }
  return hit;
}

export function hashToG1(message: Uint8Array): G1Point {
  return bls12_381.shortSignatures.hash(message, DST);
}

/**
 * Batch verification of k signatures under one key (each firewall node verifies every batch
 * under the same service key): with random 64-bit r_i,
 *   e(Σ r_i·S_i, −G2) · e(Σ r_i·H(m_i), PK) == 1,
 * so k signatures cost one 2-pair Miller loop and one final exponentiation instead of k, plus
 * 2k short multiplications. Every signature still gets its own subgroup check. A forged
 * signature passes with probability ≤ 2^-64; on failure the caller re-verifies one by one.
 */
export function batchVerify(publicKey: Uint8Array, items: { message: Uint8Array; signature: Uint8Array; hashed?: G1Point }[]): boolean {
  if (items.length === 0) return true;
  negG2 ??= bls12_381.utils.calcPairingPrecomputes(G2.BASE.negate());
  let pk: Precompute;
  const sigs: G1Point[] = [];
  try {
    pk = publicKeyPrecompute(publicKey);
    for (const it of items) sigs.push(decodeG1(it.signature, true));
  } catch {
    return false;
  }
  const hashes = items.map((it) => it.hashed ?? hashToG1(it.message));
  const rs = items.map(() => {
    const b = randomBytes(8);
    return (b.readBigUInt64BE(0) | 1n) as bigint; // non-zero
  });
  const S = items.length > 2 ? pippenger(G1, sigs, rs) : sigs.reduce((a, s, i) => a.add(s.multiplyUnsafe(rs[i]!)), G1.ZERO);
  const H = items.length > 2 ? pippenger(G1, hashes, rs) : hashes.reduce((a, h, i) => a.add(h.multiplyUnsafe(rs[i]!)), G1.ZERO);
  if (S.is0() || H.is0()) return false;
  const s = S.toAffine();
  const h = H.toAffine();
  const f = bls12_381.millerLoopBatch([
    [negG2, s.x, s.y],
    [pk, h.x, h.y],
  ]);
  return Fp12.eql(Fp12.finalExponentiate(f), Fp12.ONE);
}

/** noble's own short-signature verify (no cached key precompute): the naive baseline. */
export function verifyNaive(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const ss = bls12_381.shortSignatures;
  return ss.verify(ss.Signature.fromBytes(signature), ss.hash(message, DST), G2.fromBytes(publicKey));
}
