import { createHash } from 'node:crypto';
import { Writer } from '../src/codec/binary.js';
import { equalBytes, sha256 } from '../src/crypto/hash.js';
import type { PbftCrypto } from '../src/pbft/index.js';

/**
 * A fast deterministic stand-in for Ed25519: replica i "signs" with SHA-256(key_i || bytes). Every
 * engine instance only gets its own key, so a Byzantine replica can sign only as itself (Twins
 * share one key); verification knows every key, as a public-key check would. A keyed prefix hash
 * is enough here because every signed encoding is prefix-free (length-prefixed, fixed layout), so
 * a length extension can never produce the signed bytes of another message.
 */
export function simKeys(n: number, seed: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => sha256(new Writer().string('cbft/sim/key/v1').u32(seed >>> 0).u16(i).finish()));
}

function mac(key: Uint8Array, bytes: Uint8Array): Uint8Array {
  const d = createHash('sha256').update(key).update(bytes).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

export function simCrypto(keys: readonly Uint8Array[], id: number): PbftCrypto {
  const own = keys[id];
  if (!own) throw new Error(`no key for replica ${id}`);
  return {
    sign: (bytes) => mac(own, bytes),
    verify: (replica, bytes, sig) => {
      const key = keys[replica];
      return key !== undefined && sig.length === 32 && equalBytes(mac(key, bytes), sig);
    },
  };
}
