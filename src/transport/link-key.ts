import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { Writer } from '../codec/binary.js';
import type { IdentitySigner } from '../crypto/identity.js';

export const LINK_MAC_BYTES = 32;
const LINK_KEY_SALT = 'cbft/link-key/v1';

/**
 * The key that authenticates the frames of one direction of one link (invariant I6), in place of
 * an Ed25519 signature per frame (42 µs to sign, 116 µs to verify here, against 5 µs for an
 * HMAC of a 2 KiB frame). Frames are only ever checked by their receiver, so a key the two ends
 * share does: nobody else can compute it, and neither end needs to prove anything to a third
 * party (PBFT messages, request envelopes and partial signatures carry their own signatures).
 * Derived once per link: HKDF-SHA256 over the X25519 secret of the two identities, with the
 * direction (`from`, `to`) in the info, so a frame cannot be reflected back to its sender.
 */
export class LinkKey {
  private constructor(private readonly key: Buffer) {}

  static derive(identity: IdentitySigner, peerPublicKey: Uint8Array, from: string, to: string): LinkKey {
    const info = new Writer(64).string(from).string(to).finish();
    return new LinkKey(Buffer.from(hkdfSync('sha256', identity.sharedSecret(peerPublicKey), LINK_KEY_SALT, info, 32)));
  }

  /** A key from raw bytes (known-answer tests). */
  static fromBytes(key: Uint8Array): LinkKey {
    return new LinkKey(Buffer.from(key));
  }

  mac(bytes: Uint8Array): Uint8Array {
    return createHmac('sha256', this.key).update(bytes).digest();
  }

  /** Constant-time check of `tag` against the MAC of `bytes`. */
  verify(bytes: Uint8Array, tag: Uint8Array): boolean {
    return tag.length === LINK_MAC_BYTES && timingSafeEqual(this.mac(bytes), tag);
  }
}
