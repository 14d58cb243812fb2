import { describe, expect, it } from 'vitest';
import { threshold } from '../../src/index.js';
import { encodeReply, leafHash } from '../../src/codec/canonical.js';
import { batchMessage, buildTree } from '../../src/codec/merkle.js';
import { sha256 } from '../../src/crypto/hash.js';
import { utf8 } from '../../src/codec/binary.js';
import { ReplyVerifier } from '../../src/reply/signed-reply.js';

const dealt = threshold.deal(2, 4);
const depth = 3;

function signedBatch(n: number) {
  const replies = Array.from({ length: n }, (_, i) =>
    encodeReply({ requestDigest: sha256(utf8(`req ${i}`)), status: 200, headers: [], body: utf8(`body ${i}`) }),
  );
  const tree = buildTree(replies.map(leafHash), depth, sha256(utf8('salt')));
  const msg = batchMessage(tree.root, depth);
  const signature = threshold.combine(
    dealt.shares.slice(0, 2).map((s) => ({ index: s.index, signature: threshold.partialSign(s, msg) })),
    2,
  );
  return replies.map((reply, i) => ({ reply, proof: tree.proof(i), signature }));
}

describe('ReplyVerifier', () => {
  it('accepts every reply of a signed batch with one pairing check', () => {
    const v = new ReplyVerifier(dealt.groupPublicKey, depth);
    const batch = signedBatch(5);
    for (const [i, r] of batch.entries()) {
      const res = v.check(r, sha256(utf8(`req ${i}`)));
      expect(res.ok).toBe(true);
    }
    expect(v.pairingChecks).toBe(1);
  });

  it('rejects a wrong digest, a swapped proof, a foreign signature and garbage', () => {
    const v = new ReplyVerifier(dealt.groupPublicKey, depth);
    const [a, b] = signedBatch(2);
    expect(v.check(a!, sha256(utf8('req 1')))).toEqual({ ok: false, reason: 'wrong-digest' });
    expect(v.check({ ...a!, proof: b!.proof })).toEqual({ ok: false, reason: 'bad-signature' });
    const other = new ReplyVerifier(threshold.deal(2, 4).groupPublicKey, depth);
    expect(other.check(a!)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(v.check({ ...a!, reply: utf8('garbage') })).toEqual({ ok: false, reason: 'malformed' });
    expect(v.check({ ...a!, proof: a!.proof.subarray(1) })).toEqual({ ok: false, reason: 'malformed' });
    const tampered = a!.reply.slice();
    tampered[tampered.length - 1]! ^= 1;
    expect(v.check({ ...a!, reply: tampered })).toEqual({ ok: false, reason: 'bad-signature' });
  });
});
