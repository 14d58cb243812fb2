import { bls12_381 } from '@noble/curves/bls12-381.js';
import { hash_to_field } from '@noble/curves/abstract/hash-to-curve.js';
import type * as McL from 'mcl-wasm';

/**
 * The public-data half of cbft's threshold BLS (verify, combine) on mcl-wasm (herumi/mcl compiled
 * to WebAssembly): 3–4× faster than @noble/curves, byte-identical results (bench/CRYPTO-BACKENDS.md,
 * test/crypto/mcl.test.ts). src/crypto/threshold.ts uses it once `usePublicBackend()` loaded it.
 *
 * Never for secret data: mcl-wasm exports only the variable-time G1 multiplication, so signing
 * with a secret share stays on noble (threshold.partialSign, deal, publicKeyOf).
 *
 * - Hash-to-curve: mcl-wasm cannot take cbft's DST, so RFC 9380 hash_to_field with cbft's DST runs
 *   in noble (SHA-256, tens of µs) and mcl maps both field elements (SSWU, isogeny, cofactor
 *   clearing in IRTF mode) and adds them, which equals the RFC construction.
 * - Decoding is strict: compressed ZCash encoding only, x < p, never the point at infinity, the
 *   point on the curve and in the prime-order subgroup (mcl's verifyOrder), and the bytes must be
 *   exactly what mcl would serialise for that point, so no second encoding of a signature is ever
 *   accepted (a faulty node cannot vary signature bytes to signal anything).
 */
let mcl: typeof McL | undefined;
let loading: Promise<typeof McL> | undefined;

export function loadMcl(): Promise<typeof McL> {
  loading ??= (async () => {
    const m = await import('mcl-wasm');
    await m.init(m.BLS12_381);
    m.setETHserialization(true); // ZCash/IETF compressed encoding, big-endian scalars
    m.setMapToMode(m.IRTF); // RFC 9380 map-to-curve
    m.verifyOrderG1(true); // deserialisation checks subgroup membership
    m.verifyOrderG2(true);
    mcl = m;
    return m;
  })();
  return loading;
}

function ready(): typeof McL {
  if (!mcl) throw new Error('mcl-wasm is not loaded (await loadMcl() first)');
  return mcl;
}

const P = bls12_381.fields.Fp.ORDER;

function bigEndian(bytes: Uint8Array): bigint {
  let x = 0n;
  for (const b of bytes) x = (x << 8n) | BigInt(b);
  return x;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Canonical compressed encoding check before mcl sees the bytes: compression flag set, infinity
 * flag clear, each coordinate word of x below p (for G2, x = x1·u + x0 as two 48-byte words).
 */
function canonicalCompressed(bytes: Uint8Array, words: number): boolean {
  if (bytes.length !== 48 * words) return false;
  const flags = bytes[0]! & 0xe0;
  if ((flags & 0x80) === 0 || (flags & 0x40) !== 0) return false;
  for (let w = 0; w < words; w++) {
    const word = bytes.slice(48 * w, 48 * (w + 1));
    if (w === 0) word[0]! &= 0x1f;
    if (bigEndian(word) >= P) return false;
  }
  return true;
}

/** A G1 point from its canonical compressed encoding; throws on anything else or infinity. */
export function decodeG1(bytes: Uint8Array): McL.G1 {
  const m = ready();
  if (!canonicalCompressed(bytes, 1)) throw new Error('not a canonical compressed G1 encoding');
  const p = new m.G1();
  p.deserialize(bytes); // throws unless on the curve and in the subgroup
  if (p.isZero()) throw new Error('point at infinity');
  if (!sameBytes(p.serialize(), bytes)) throw new Error('not a canonical compressed G1 encoding');
  return p;
}

function decodeG2(bytes: Uint8Array): McL.G2 {
  const m = ready();
  if (!canonicalCompressed(bytes, 2)) throw new Error('not a canonical compressed G2 encoding');
  const q = new m.G2();
  q.deserialize(bytes);
  if (q.isZero()) throw new Error('point at infinity');
  if (!sameBytes(q.serialize(), bytes)) throw new Error('not a canonical compressed G2 encoding');
  return q;
}

const CACHE_LIMIT = 256;
const messageCache = new Map<string, McL.G1>();
const keyCache = new Map<string, McL.PrecomputedG2>();
let negG2: McL.PrecomputedG2 | undefined;

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** H(message) in G1 with cbft's DST (see the module comment), cached per message. */
export function hashToG1(message: Uint8Array, dst: string): McL.G1 {
  const m = ready();
  const key = hex(message);
  const hit = messageCache.get(key);
  if (hit) return hit;
  const [u0, u1] = hash_to_field(message, 2, { ...bls12_381.G1.defaults, DST: dst }) as [bigint[], bigint[]];
  const fp = (u: bigint) => {
    const f = new m.Fp();
    f.setBigEndianMod(bls12_381.fields.Fp.toBytes(u));
    return f;
  };
  const h = m.add(fp(u0[0]!).mapToG1(), fp(u1[0]!).mapToG1());
  if (messageCache.size >= CACHE_LIMIT) messageCache.delete(messageCache.keys().next().value as string);
  messageCache.set(key, h);
  return h;
}

function keyPrecompute(publicKey: Uint8Array): McL.PrecomputedG2 {
  const m = ready();
  const key = hex(publicKey);
  let pre = keyCache.get(key);
  if (pre) return pre;
  pre = new m.PrecomputedG2(decodeG2(publicKey));
  if (keyCache.size >= CACHE_LIMIT) {
    const oldest = keyCache.keys().next().value as string;
    keyCache.get(oldest)?.destroy(); // wasm memory: freed explicitly
    keyCache.delete(oldest);
  }
  keyCache.set(key, pre);
  return pre;
}

/** e(S, −G2) · e(H(m), PK) == 1, both G2 sides precomputed. Never throws: bad input is invalid. */
export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, dst: string): boolean {
  try {
    const m = ready();
    if (!negG2) negG2 = new m.PrecomputedG2(m.neg(decodeG2(bls12_381.G2.Point.BASE.toBytes(true))));
    const pk = keyPrecompute(publicKey);
    const s = decodeG1(signature);
    const h = hashToG1(message, dst);
    return m.finalExp(m.precomputedMillerLoop2(s, negG2, h, pk)).isOne();
  } catch {
    return false;
  }
}

/**
 * Lagrange interpolation at 0 of already decoded partials (threshold.ts checks indices, sizes and
 * decodes each partial with decodeG1 first, for its own error messages). Returns the compressed
 * encoding, or undefined when the result is the point at infinity.
 */
export function interpolate(points: McL.G1[], indices: number[]): Uint8Array | undefined {
  const m = ready();
  const ids = indices.map((i) => {
    const id = new m.Fr();
    id.setInt(i);
    return id;
  });
  const s = m.recoverG1(ids, points);
  return s.isZero() ? undefined : s.serialize();
}

/** Forgets hashed messages and frees precomputed keys (tests, benchmarks of cold paths). */
export function clearMclCaches(): void {
  messageCache.clear();
  for (const pre of keyCache.values()) pre.destroy();
  keyCache.clear();
}
