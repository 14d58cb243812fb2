import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { CbftError, ErrorCodes } from '../errors.js';
import { asBytes } from './hash.js';

/**
 * Ed25519 node identities on node:crypto (about 15x faster than pure JS). Keys travel as raw
 * 32-byte values: the secret is the RFC 8032 seed, the public key the encoded point.
 */
export const IDENTITY_PUBLIC_KEY_BYTES = 32;
export const IDENTITY_SECRET_KEY_BYTES = 32;
export const IDENTITY_SIGNATURE_BYTES = 64;

// DER prefixes that wrap a raw Ed25519 key into PKCS#8 / SPKI, so node:crypto can import it.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface IdentityKeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export function generateIdentity(): IdentityKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return {
    secretKey: new Uint8Array(der.subarray(PKCS8_PREFIX.length)),
    publicKey: new Uint8Array(spki.subarray(SPKI_PREFIX.length)),
  };
}

function checkLength(b: Uint8Array, n: number, what: string): void {
  if (!(b instanceof Uint8Array) || b.length !== n) {
    throw new CbftError(ErrorCodes.KEY, `${what} must be ${n} bytes`);
  }
}

/** A signer holds the imported private key, so signing does no per-call key parsing. */
export class IdentitySigner {
  private readonly key: KeyObject;
  private readonly montgomerySecret: Uint8Array;
  readonly publicKey: Uint8Array;

  constructor(secretKey: Uint8Array) {
    checkLength(secretKey, IDENTITY_SECRET_KEY_BYTES, 'identity secret key');
    this.key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
    this.montgomerySecret = ed25519.utils.toMontgomerySecret(secretKey);
    const spki = createPublicKey(this.key).export({ format: 'der', type: 'spki' });
    this.publicKey = new Uint8Array(spki.subarray(SPKI_PREFIX.length));
  }

  sign(message: Uint8Array): Uint8Array {
    return asBytes(sign(null, message, this.key));
  }

  /**
   * The X25519 secret this identity shares with the holder of `peerPublicKey` (both Ed25519 keys
   * mapped to Curve25519, as libsodium's crypto_sign_ed25519_*_to_curve25519 do). Only the two
   * of them can compute it; links derive their MAC keys from it (src/transport/link-key.ts).
   */
  sharedSecret(peerPublicKey: Uint8Array): Uint8Array {
    checkLength(peerPublicKey, IDENTITY_PUBLIC_KEY_BYTES, 'identity public key');
    try {
      // Refuses low-order points (an all-zero secret).
      return x25519.getSharedSecret(this.montgomerySecret, ed25519.utils.toMontgomery(peerPublicKey));
    } catch (cause) {
      throw new CbftError(ErrorCodes.KEY, 'identity public key is not usable for key agreement', { cause });
    }
  }
}

const publicKeyCache = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE_LIMIT = 1024;

function importPublicKey(publicKey: Uint8Array): KeyObject {
  checkLength(publicKey, IDENTITY_PUBLIC_KEY_BYTES, 'identity public key');
  const id = Buffer.from(publicKey).toString('hex');
  let key = publicKeyCache.get(id);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    if (publicKeyCache.size >= PUBLIC_KEY_CACHE_LIMIT) publicKeyCache.delete(publicKeyCache.keys().next().value as string);
    publicKeyCache.set(id, key);
  }
  return key;
}

/** Checks that a raw public key is importable; used when loading a cluster file. */
export function assertIdentityPublicKey(publicKey: Uint8Array): void {
  try {
    importPublicKey(publicKey);
  } catch (cause) {
    if (cause instanceof CbftError) throw cause;
    throw new CbftError(ErrorCodes.KEY, 'identity public key is not a valid Ed25519 key', { cause });
  }
}

/** Never throws for bad signatures or keys: an invalid input is just not a valid signature. */
export function verifyIdentity(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== IDENTITY_SIGNATURE_BYTES) return false;
  try {
    return verify(null, message, importPublicKey(publicKey), signature);
  } catch {
    return false;
  }
}
