import * as mcl from 'mcl-wasm';
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { hash_to_field } from '@noble/curves/abstract/hash-to-curve.js';
import { DST, type Partial } from '../../src/crypto/threshold.js';

/**
 * cbft's threshold scheme (signatures in G1, keys in G2, cbft DST, ZCash compressed encoding)
 * on mcl-wasm (herumi/mcl compiled to WebAssembly).
 *
 * mcl-wasm does not export mcl's DST setter (`mclBnG1_setDst`), and its `hashAndMapToG1` uses
 * mcl's built-in DST. So hash-to-curve is split: RFC 9380 hash_to_field with cbft's DST in noble
 * (expand_message_xmd, SHA-256: tens of µs), then mcl's `Fp.mapToG1` (simplified SWU, 11-isogeny
 * and cofactor clearing, IRTF mode) on both field elements, summed. Cofactor clearing is linear,
 * so clear(map(u0)) + clear(map(u1)) = clear(map(u0) + map(u1)), which the RFC specifies; the
 * suite checks the bytes against noble.
 *
 * mcl-wasm exports only the variable-time `mclBnG1_mul` (the C API's constant-time
 * `mclBnG1_mulCT` is not in the wasm build), so partial signing with it is NOT constant-time in
 * the secret share. Combine and verify work on public data only.
 */
let ready: Promise<void> | undefined;

export function initMcl(): Promise<void> {
  ready ??= (async () => {
    await mcl.init(mcl.BLS12_381);
    mcl.setETHserialization(true); // ZCash/IETF compressed encoding, big-endian scalars
    mcl.setMapToMode(mcl.IRTF); // RFC 9380 map-to-curve
    mcl.verifyOrderG1(true); // deserialize checks subgroup membership
    mcl.verifyOrderG2(true);
  })();
  return ready;
}

const h2fOpts = { ...bls12_381.G1.defaults, DST };

function fpOf(u: bigint): mcl.Fp {
  const f = new mcl.Fp();
  f.setBigEndianMod(bls12_381.fields.Fp.toBytes(u));
  return f;
}

export function hashToG1(message: Uint8Array): mcl.G1 {
  const [u0, u1] = hash_to_field(message, 2, h2fOpts) as [bigint[], bigint[]];
  return mcl.add(fpOf(u0[0]!).mapToG1(), fpOf(u1[0]!).mapToG1());
}

const messageCache = new Map<string, mcl.G1>();
function hashCached(message: Uint8Array): mcl.G1 {
  const k = Buffer.from(message).toString('hex');
  let h = messageCache.get(k);
  if (!h) {
    h = hashToG1(message);
    if (messageCache.size >= 256) messageCache.delete(messageCache.keys().next().value as string);
    messageCache.set(k, h);
  }
  return h;
}

export function clearMessageCache(): void {
  messageCache.clear();
}

function secretOf(secretKey: Uint8Array): mcl.Fr {
  const x = new mcl.Fr();
  x.deserialize(secretKey); // big-endian with ETH serialization; rejects ≥ r
  if (x.isZero()) throw new Error('zero secret key');
  return x;
}

export function partialSign(secretKey: Uint8Array, message: Uint8Array, useCache = false): Uint8Array {
  const h = useCache ? hashCached(message) : hashToG1(message);
  return mcl.mul(h, secretOf(secretKey)).serialize();
}

function decodeG1(bytes: Uint8Array): mcl.G1 {
  if (bytes.length !== 48) throw new Error('G1 point must be 48 bytes');
  const p = new mcl.G1();
  p.deserialize(bytes); // throws unless on the curve and (verifyOrderG1) in the subgroup
  if (p.isZero()) throw new Error('point at infinity');
  return p;
}

export function combine(partials: Partial[], threshold: number): Uint8Array {
  if (partials.length < threshold || partials.length === 0) throw new Error('not enough partials');
  const ids = partials.map((p) => {
    const id = new mcl.Fr();
    id.setInt(p.index);
    return id;
  });
  const ys = partials.map((p) => decodeG1(p.signature));
  const s = mcl.recoverG1(ids, ys); // Lagrange interpolation at 0
  if (s.isZero()) throw new Error('combined signature is the point at infinity');
  return s.serialize();
}

let negG2: mcl.PrecomputedG2 | undefined;
const keyCache = new Map<string, mcl.PrecomputedG2>();

function keyPrecompute(publicKey: Uint8Array): mcl.PrecomputedG2 {
  const k = Buffer.from(publicKey).toString('hex');
  let pre = keyCache.get(k);
  if (!pre) {
    if (publicKey.length !== 96) throw new Error('G2 point must be 96 bytes');
    const q = new mcl.G2();
    q.deserialize(publicKey);
    if (q.isZero()) throw new Error('public key is infinity');
    pre = new mcl.PrecomputedG2(q);
    keyCache.set(k, pre);
  }
  return pre;
}

export function clearKeyCache(): void {
  for (const pre of keyCache.values()) pre.destroy();
  keyCache.clear();
}

/** e(S, −G2) · e(H(m), PK) == 1 with both G2 sides precomputed; never throws. */
export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, useCache = true): boolean {
  try {
    if (!negG2) {
      const g2 = new mcl.G2();
      g2.deserialize(bls12_381.G2.Point.BASE.toBytes(true));
      negG2 = new mcl.PrecomputedG2(mcl.neg(g2));
    }
    const pk = keyPrecompute(publicKey);
    const s = decodeG1(signature);
    const h = useCache ? hashCached(message) : hashToG1(message);
    return mcl.finalExp(mcl.precomputedMillerLoop2(s, negG2, h, pk)).isOne();
  } catch {
    return false;
  }
}

/** Variable-time probe: G1 multiplication by a given scalar (big-endian bytes). */
export function mulG1(point: mcl.G1, scalar: Uint8Array): mcl.G1 {
  return mcl.mul(point, secretOf(scalar));
}
