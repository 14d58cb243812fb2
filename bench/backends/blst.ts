import * as blst from '@chainsafe/blst';

/**
 * @chainsafe/blst 2.x (napi-rs bindings to supranational/blst, prebuilt binary shipped in the
 * registry package @chainsafe/blst-linux-x64-gnu). Its configuration is hard-coded to Ethereum's:
 * public keys in G1, signatures in G2, DST `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`, and the
 * API has no scalar multiplication of points and no hash with a caller-chosen DST. So it cannot
 * produce cbft's signatures (G1, cbft DST) nor a Lagrange combine; it is measured here as the
 * native reference for the same operations in the mirrored scheme (sign = hash to G2 + multiply,
 * verify = 2-pair pairing product), which tells what a native backend would buy.
 */
export const ETH_DST = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';

const skCache = new Map<string, blst.SecretKey>();
const pkCache = new Map<string, blst.PublicKey>();

export function sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  const k = Buffer.from(secretKey).toString('hex');
  let sk = skCache.get(k);
  if (!sk) skCache.set(k, (sk = blst.SecretKey.fromBytes(secretKey)));
  return sk.sign(message).toBytes(true);
}

export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return blst.SecretKey.fromBytes(secretKey).toPublicKey().toBytes(true);
}

/** Cached key (validated once); the signature is decoded with its subgroup check every time. */
export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    const k = Buffer.from(publicKey).toString('hex');
    let pk = pkCache.get(k);
    if (!pk) pkCache.set(k, (pk = blst.PublicKey.fromBytes(publicKey, true)));
    const sig = blst.Signature.fromBytes(signature, true, true);
    return blst.verify(message, pk, sig, false, false);
  } catch {
    return false;
  }
}

/** Plain sum of signatures (what blst offers): NOT a Lagrange combine, a lower bound for one. */
export function aggregate(signatures: Uint8Array[]): Uint8Array {
  return blst.aggregateSerializedSignatures(signatures, true).toBytes(true);
}
