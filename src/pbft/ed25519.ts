import type { KeyObject } from 'node:crypto';
import { sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { PbftErrorCodes, pbftError } from './errors.js';
import type { PbftCrypto } from './signing.js';

/**
 * The production signature scheme: Ed25519 via node:crypto (much faster than pure JS). Ed25519
 * is deterministic, so re-signing a message after a restart yields the same bytes.
 */
export function createEd25519Crypto(privateKey: KeyObject, publicKeys: readonly KeyObject[]): PbftCrypto {
  if (privateKey.asymmetricKeyType !== 'ed25519' || privateKey.type !== 'private') {
    throw pbftError(PbftErrorCodes.CONFIG, 'privateKey must be an Ed25519 private key');
  }
  for (const k of publicKeys) {
    if (k.asymmetricKeyType !== 'ed25519') throw pbftError(PbftErrorCodes.CONFIG, 'public keys must be Ed25519');
  }
  return {
    sign(bytes) {
      const sig = nodeSign(null, bytes, privateKey);
      return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength);
    },
    verify(replica, bytes, sig) {
      const key = publicKeys[replica];
      if (!key || sig.length !== 64) return false;
      try {
        return nodeVerify(null, bytes, key, sig);
      } catch {
        return false;
      }
    },
  };
}
