import { describe, expect, it } from 'vitest';
import { fromHex, toHex, utf8 } from '../../src/codec/binary.js';
import { IdentitySigner, generateIdentity, verifyIdentity } from '../../src/crypto/identity.js';
import { equalBytes, hmacSha256, sha256 } from '../../src/crypto/hash.js';

describe('sha256 / hmac (node:crypto)', () => {
  it('matches FIPS 180-2 and RFC 4231 known answers', () => {
    expect(toHex(sha256(utf8('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(toHex(sha256(utf8('a'), utf8('bc')))).toBe(toHex(sha256(utf8('abc'))));
    expect(toHex(sha256())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    // RFC 4231 test case 2
    expect(toHex(hmacSha256(utf8('Jefe'), utf8('what do ya want for nothing?')))).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('compares in constant time and by length', () => {
    expect(equalBytes(utf8('ab'), utf8('ab'))).toBe(true);
    expect(equalBytes(utf8('ab'), utf8('ac'))).toBe(false);
    expect(equalBytes(utf8('ab'), utf8('abc'))).toBe(false);
  });
});

describe('Ed25519 identities (node:crypto)', () => {
  it('matches RFC 8032 test 1', () => {
    const signer = new IdentitySigner(fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'));
    expect(toHex(signer.publicKey)).toBe('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
    const sig = signer.sign(new Uint8Array(0));
    expect(toHex(sig)).toBe(
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    );
    expect(verifyIdentity(signer.publicKey, new Uint8Array(0), sig)).toBe(true);
  });

  it('generated keys sign and verify; tampering and wrong keys fail without throwing', () => {
    const a = generateIdentity();
    const b = generateIdentity();
    const signer = new IdentitySigner(a.secretKey);
    expect(toHex(signer.publicKey)).toBe(toHex(a.publicKey));
    const msg = utf8('frame');
    const sig = signer.sign(msg);
    expect(verifyIdentity(a.publicKey, msg, sig)).toBe(true);
    expect(verifyIdentity(b.publicKey, msg, sig)).toBe(false);
    expect(verifyIdentity(a.publicKey, utf8('frame!'), sig)).toBe(false);
    const bad = sig.slice();
    bad[0]! ^= 1;
    expect(verifyIdentity(a.publicKey, msg, bad)).toBe(false);
    expect(verifyIdentity(a.publicKey, msg, sig.subarray(1))).toBe(false);
    expect(verifyIdentity(new Uint8Array(31), msg, sig)).toBe(false);
    expect(() => new IdentitySigner(new Uint8Array(31))).toThrow(/32 bytes/);
  });
});
