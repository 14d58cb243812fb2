import { bls12_381 } from '@noble/curves/bls12-381.js';
import { randomBytes } from 'node:crypto';
import { CbftError, ErrorCodes } from '../errors.js';
import { toHex } from '../codec/binary.js';
import * as fast from './mcl.js';

/**
 * Threshold BLS12-381 "short" signatures: signatures in G1 (48 bytes compressed), public keys in
 * G2 (96 bytes). A trusted dealer Shamir-shares the service secret key; any `threshold` partial
 * signatures combine by Lagrange interpolation in the exponent into exactly the signature the
 * master key would have made, so the combined bytes are unique (invariant I4).
 */
export const DST = 'CBFT-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_';

const sigs = bls12_381.shortSignatures;
const { Fp, Fr, Fp12 } = bls12_381.fields;
const G1 = bls12_381.G1.Point;
const G2 = bls12_381.G2.Point;
type G1Point = InstanceType<typeof G1>;
type G2Point = InstanceType<typeof G2>;
type Precompute = ReturnType<typeof bls12_381.utils.calcPairingPrecomputes>;

export const SIGNATURE_BYTES = 48;
export const PUBLIC_KEY_BYTES = 96;
export const SECRET_KEY_BYTES = 32;
/** Share indices are small positive integers; the bound keeps Lagrange work and inputs sane. */
export const MAX_SHARES = 1024;

export interface Share {
  index: number;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export interface Dealt {
  groupPublicKey: Uint8Array;
  shares: Share[];
}

export interface Partial {
  index: number;
  signature: Uint8Array;
}

/**
 * Which implementation does the public-data operations (verify, verifyPartial, combine): noble
 * until `usePublicBackend()` loads mcl-wasm (3–4× faster, byte-identical; bench/CRYPTO-BACKENDS.md).
 * Secret-share operations (deal, partialSign, publicKeyOf) always stay on noble: mcl-wasm's
 * multiplication is variable-time. (Hashing the batch root in partialSign on mcl would save a
 * sidecar about 2 ms per batch but costs it 24 MiB of resident memory: not worth it.)
 */
let publicOps: 'noble' | 'mcl' = 'noble';

/**
 * Loads mcl-wasm for verify, verifyPartial and combine (worth it where they are hot: the firewall
 * nodes). `CBFT_BLS_BACKEND=noble` (or kind 'noble') keeps noble; if mcl-wasm cannot be loaded
 * noble stays too. Resolves to the backend in use.
 */
export async function usePublicBackend(kind: string = process.env.CBFT_BLS_BACKEND ?? 'mcl'): Promise<'noble' | 'mcl'> {
  if (kind === 'noble') {
    publicOps = 'noble';
    return publicOps;
  }
  if (kind !== 'mcl') fail(`unknown BLS backend ${JSON.stringify(kind)} (mcl or noble)`);
  try {
    await fast.loadMcl();
    publicOps = 'mcl';
  } catch {
    publicOps = 'noble';
  }
  return publicOps;
}

/** CBFT_BLS_BACKEND checked at start (a typo must not silently mean noble): mcl when unset. */
export function blsBackendSetting(value = process.env.CBFT_BLS_BACKEND): 'mcl' | 'noble' {
  if (value === undefined || value === 'mcl' || value === 'noble') return value ?? 'mcl';
  throw new CbftError(ErrorCodes.USAGE, `CBFT_BLS_BACKEND must be mcl or noble, got ${JSON.stringify(value)}`);
}

export function publicBackend(): 'noble' | 'mcl' {
  return publicOps;
}

function fail(message: string, cause?: unknown): never {
  throw new CbftError(ErrorCodes.THRESHOLD, message, cause === undefined ? undefined : { cause });
}

function checkIndex(index: unknown): number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 1 || index > MAX_SHARES) {
    fail(`share index must be an integer in 1..${MAX_SHARES}, got ${String(index)}`);
  }
  return index;
}

function checkBytes(b: unknown, length: number, what: string): Uint8Array {
  if (!(b instanceof Uint8Array)) fail(`${what} must be a Uint8Array`);
  if (b.length !== length) fail(`${what} must be ${length} bytes, got ${b.length}`);
  return b;
}

/** Secret scalar in 1..r-1, big-endian 32 bytes; non-canonical or zero encodings are refused. */
function decodeSecret(secretKey: Uint8Array): bigint {
  checkBytes(secretKey, SECRET_KEY_BYTES, 'secret key');
  const x = BigInt('0x' + toHex(secretKey));
  if (x === 0n || x >= Fr.ORDER) fail('secret key is not a canonical non-zero scalar');
  return x;
}

function encodeScalar(x: bigint): Uint8Array {
  return Fr.toBytes(x);
}

function randomScalar(): bigint {
  for (;;) {
    // 64 bytes reduced mod r: bias below 2^-128.
    const x = Fr.create(BigInt('0x' + randomBytes(64).toString('hex')));
    if (x !== 0n) return x;
  }
}

// Decoding a point checks it is on the curve and in the prime-order subgroup; cache the result
// (and pairing precomputations) because the same keys are used for every batch.
const CACHE_LIMIT = 256;
const g2Cache = new Map<string, { point: G2Point; precompute: Precompute }>();
const messageCache = new Map<string, G1Point>();

function remember<V>(cache: Map<string, V>, key: string, value: V): V {
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  cache.set(key, value);
  return value;
}

/** Public keys decoded so far, i.e. g2Cache misses (cacheStats; tests check the cache works). */
let publicKeyDecodes = 0;

/**
 * Test hook: entries in the noble-side caches and how many public keys were decoded (cache
 * misses) since the process started. The mcl backend keeps its own caches (src/crypto/mcl.ts).
 */
export function cacheStats(): { publicKeys: number; messages: number; publicKeyDecodes: number } {
  return { publicKeys: g2Cache.size, messages: messageCache.size, publicKeyDecodes };
}

/** Forgets decoded keys and hashed messages (benchmarks measure cold paths with it). */
export function clearCaches(): void {
  g2Cache.clear();
  messageCache.clear();
  fast.clearMclCaches();
}

function decodePublicKey(publicKey: Uint8Array): { point: G2Point; precompute: Precompute } {
  checkBytes(publicKey, PUBLIC_KEY_BYTES, 'public key');
  const key = toHex(publicKey);
  const hit = g2Cache.get(key);
  if (hit) return hit;
  publicKeyDecodes++;
  let point: G2Point;
  try {
    point = G2.fromBytes(publicKey);
    point.assertValidity();
  } catch (cause) {
    fail('public key is not a valid G2 point in the prime-order subgroup', cause);
  }
  if (point.is0()) fail('public key is the point at infinity');
  return remember(g2Cache, key, { point, precompute: bls12_381.utils.calcPairingPrecomputes(point) });
}

function decodeSignature(signature: Uint8Array, what = 'signature'): G1Point {
  checkBytes(signature, SIGNATURE_BYTES, what);
  let point: G1Point;
  try {
    point = G1.fromBytes(signature);
    point.assertValidity();
  } catch (cause) {
    fail(`${what} is not a valid G1 point in the prime-order subgroup`, cause);
  }
  if (point.is0()) fail(`${what} is the point at infinity`);
  return point;
}

const HALF_P = (Fp.ORDER - 1n) / 2n;

/**
 * Compressed ZCash encoding of a point that is in G1 by construction (a multiple of a hashed
 * message or of subgroup-checked points). noble's `toBytes()` would re-run the subgroup check on
 * every fresh point, about 1 ms per signature; bench/CRYPTO-BACKENDS.md has the measurements.
 */
function encodeG1(point: G1Point): Uint8Array {
  if (point.is0()) return point.toBytes(true);
  const { x, y } = point.toAffine();
  const out = Fp.toBytes(x);
  out[0]! |= 0x80; // compressed
  if (y > HALF_P) out[0]! |= 0x20; // sort flag: y is the larger of the two roots
  return out;
}

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Integer Lagrange coefficients above this size are not worth the integer route. */
const SMALL_COEFFICIENT_BITS = 128;

/**
 * The Lagrange coefficients at 0 for these share indices as integers over one common denominator:
 * λ_i = c_i / D (fraction reduced), with the unreduced numerators and denominators of each λ_i.
 */
export function lagrangeIntegers(indices: number[]): { c: bigint[]; D: bigint; nums: bigint[]; dens: bigint[] } {
  const xs = indices.map(BigInt);
  const nums: bigint[] = [];
  const dens: bigint[] = [];
  for (let i = 0; i < xs.length; i++) {
    let num = 1n;
    let den = 1n;
    for (let j = 0; j < xs.length; j++) {
      if (i === j) continue;
      num *= xs[j]!;
      den *= xs[j]! - xs[i]!;
    }
    nums.push(num);
    dens.push(den);
  }
  let D = 1n;
  for (const d of dens) D = (D / gcd(D, d)) * (d < 0n ? -d : d);
  const c = nums.map((n, i) => (n * D) / dens[i]!);
  // Reduce the fraction c/D by the gcd of everything.
  let g = D;
  for (const ci of c) g = gcd(g, ci);
  return { c: c.map((ci) => ci / g), D: D / g, nums, dens };
}

/**
 * Σ λ_i·P_i with λ_i the Lagrange coefficients at 0 for the given share indices. The λ_i are
 * ratios of small integers: over a common denominator D, λ_i = c_i / D with small c_i, so the sum
 * costs short multiplications plus one multiplication by D⁻¹ (none when D = 1), instead of one
 * full-size multiplication per partial. The coefficients are public, so variable-time
 * multiplication is fine. The points must be in the prime-order subgroup (D·D⁻¹ ≡ 1 mod r).
 */
function interpolateAtZero(points: G1Point[], indices: number[]): G1Point {
  const { c, D, nums, dens } = lagrangeIntegers(indices);
  const limit = 1n << BigInt(SMALL_COEFFICIENT_BITS);
  let acc = G1.ZERO;
  if (D < limit && c.every((ci) => ci < limit && -ci < limit)) {
    for (let i = 0; i < points.length; i++) {
      const ci = c[i]!;
      acc = acc.add(ci < 0n ? points[i]!.multiplyUnsafe(-ci).negate() : points[i]!.multiplyUnsafe(ci));
    }
    return D === 1n || acc.is0() ? acc : acc.multiplyUnsafe(Fr.inv(D));
  }
  for (let i = 0; i < points.length; i++) acc = acc.add(points[i]!.multiplyUnsafe(Fr.div(Fr.create(nums[i]!), Fr.create(dens[i]!))));
  return acc;
}

function hashMessage(message: Uint8Array): G1Point {
  if (!(message instanceof Uint8Array)) fail('message must be a Uint8Array');
  const key = toHex(message);
  const hit = messageCache.get(key);
  if (hit) return hit;
  return remember(messageCache, key, sigs.hash(message, DST));
}

let negG2Precompute: Precompute | undefined;

/** e(S, -G2) · e(H(m), P) == 1, with both G2 sides precomputed. */
function pairingCheck(signature: G1Point, hashed: G1Point, publicKey: Precompute): boolean {
  negG2Precompute ??= bls12_381.utils.calcPairingPrecomputes(G2.BASE.negate());
  const s = signature.toAffine();
  const h = hashed.toAffine();
  const f = bls12_381.millerLoopBatch([
    [negG2Precompute, s.x, s.y],
    [publicKey, h.x, h.y],
  ]);
  return Fp12.eql(Fp12.finalExponentiate(f), Fp12.ONE);
}

/** Trusted-dealer Shamir sharing of a fresh master key: any `threshold` of `count` shares sign. */
export function deal(threshold: number, count: number): Dealt {
  if (!Number.isInteger(count) || count < 1 || count > MAX_SHARES) fail(`count must be an integer in 1..${MAX_SHARES}`);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > count) {
    fail(`threshold must be an integer in 1..count (${count}), got ${threshold}`);
  }
  const coefficients: bigint[] = [];
  for (let i = 0; i < threshold; i++) coefficients.push(randomScalar());
  const master = coefficients[0]!;
  const shares: Share[] = [];
  for (let index = 1; index <= count; index++) {
    // Horner evaluation of the polynomial at x = index.
    let y = 0n;
    for (let j = coefficients.length - 1; j >= 0; j--) y = Fr.add(Fr.mul(y, BigInt(index)), coefficients[j]!);
    if (y === 0n) return deal(threshold, count); // probability ~2^-255; a zero share would be unusable
    shares.push({ index, secretKey: encodeScalar(y), publicKey: G2.BASE.multiply(y).toBytes(true) });
  }
  return { groupPublicKey: G2.BASE.multiply(master).toBytes(true), shares };
}

/** The share's public key, derived from its secret key (used to check a loaded key file). */
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return G2.BASE.multiply(decodeSecret(secretKey)).toBytes(true);
}

export function partialSign(share: Pick<Share, 'index' | 'secretKey'>, message: Uint8Array): Uint8Array {
  checkIndex(share.index);
  const x = decodeSecret(share.secretKey);
  return encodeG1(hashMessage(message).multiply(x));
}

/** Verification never throws on bad signatures: malformed input is simply not valid. */
export function verifyPartial(sharePublicKey: Uint8Array, message: Uint8Array, partial: Uint8Array): boolean {
  return verify(sharePublicKey, message, partial);
}

export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicOps === 'mcl') return fast.verify(publicKey, message, signature, DST);
  let pk: Precompute;
  let sig: G1Point;
  try {
    pk = decodePublicKey(publicKey).precompute;
    sig = decodeSignature(signature);
  } catch {
    return false;
  }
  return pairingCheck(sig, hashMessage(message), pk);
}

/**
 * Combines partial signatures into the group signature: Lagrange interpolation at 0 over the
 * given partials. `threshold` (required) is the dealt threshold t: fewer than t partials would
 * interpolate a wrong signature in any threshold scheme, and a combiner cannot tell, so they are
 * refused with a CbftError (CBFT_ERR_THRESHOLD). More than t partials are fine: interpolating a
 * polynomial of degree t-1 over more points gives the same value (and the same bytes).
 */
export function combine(partials: Partial[], threshold: number): Uint8Array {
  if (typeof threshold !== 'number' || !Number.isInteger(threshold) || threshold < 1 || threshold > MAX_SHARES) {
    fail(`combine: threshold must be an integer in 1..${MAX_SHARES}, got ${String(threshold)}`);
  }
  if (!Array.isArray(partials) || partials.length === 0) fail('combine needs at least one partial signature');
  if (partials.length < threshold) {
    fail(`combine needs at least ${threshold} partial signatures (the threshold), got ${partials.length}`);
  }
  const seen = new Set<number>();
  if (publicOps === 'mcl') {
    const decoded = partials.map((p) => {
      const index = checkIndex(p.index);
      if (seen.has(index)) fail(`duplicate partial for share index ${index}`);
      seen.add(index);
      const what = `partial signature of share ${index}`;
      checkBytes(p.signature, SIGNATURE_BYTES, what);
      try {
        return fast.decodeG1(p.signature);
      } catch (cause) {
        if (p.signature[0] === 0xc0 && p.signature.every((b, i) => i === 0 || b === 0)) fail(`${what} is the point at infinity`);
        fail(`${what} is not a valid G1 point in the prime-order subgroup`, cause);
      }
    });
    const out = fast.interpolate(decoded, partials.map((p) => p.index));
    if (!out) fail('combined signature is the point at infinity');
    return out;
  }
  const points: G1Point[] = [];
  for (const p of partials) {
    const index = checkIndex(p.index);
    if (seen.has(index)) fail(`duplicate partial for share index ${index}`);
    seen.add(index);
    points.push(decodeSignature(p.signature, `partial signature of share ${index}`));
  }
  const acc = interpolateAtZero(points, partials.map((p) => p.index));
  if (acc.is0()) fail('combined signature is the point at infinity');
  return encodeG1(acc);
}
