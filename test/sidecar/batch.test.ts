import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../src/codec/binary.js';
import { decodeReply, encodeReply, leafHash } from '../../src/codec/canonical.js';
import { batchMessage, rootFromProof } from '../../src/codec/merkle.js';
import { combine, deal, verify, verifyPartial } from '../../src/crypto/threshold.js';
import { ReplyVerifier } from '../../src/reply/signed-reply.js';
import { batchTree, padSalt, requestSeed, requestSeedHex, signBatch } from '../../src/sidecar/batch.js';
import { decodePeerMessage, encodePeerMessage, type PeerMessage } from '../../src/sidecar/peer-messages.js';
import { ReplyCache, Submitters, partialFromCache } from '../../src/sidecar/reply-cache.js';
import { decodePartialReplies, encodePartialReplies } from '../../src/wire/payloads.js';

const DEPTH = 4;
const dealt = deal(2, 4); // s = 1: any 2 of 4 partials combine
const seed = new Uint8Array(32).fill(3);
const digest = (i: number) => new Uint8Array(32).fill(i + 1);
const reply = (i: number, body = `reply-${i}`) =>
  encodeReply({ requestDigest: digest(i), status: 200, headers: [['content-type', 'text/plain']], body: utf8(body) });

describe('per-batch derivations', () => {
  it('pad salt and request seeds are deterministic, 32 bytes, and distinct per seq and per index', () => {
    expect(toHex(padSalt(seed, 5))).toBe(toHex(padSalt(new Uint8Array(32).fill(3), 5)));
    expect(toHex(padSalt(seed, 5))).not.toBe(toHex(padSalt(seed, 6)));
    expect(toHex(padSalt(seed, 5))).not.toBe(toHex(padSalt(new Uint8Array(32).fill(4), 5)));
    const seeds = new Set([0, 1, 2, 3].map((i) => toHex(requestSeed(seed, 5, i))));
    expect(seeds.size).toBe(4);
    expect(requestSeedHex(seed, 5, 0)).toMatch(/^[0-9a-f]{64}$/);
    // Domain separation: the pad salt is not the seed of request 0.
    expect(toHex(padSalt(seed, 5))).not.toBe(toHex(requestSeed(seed, 5, 0)));
  });
});

describe('batch signing', () => {
  const replies = [reply(0), reply(1), reply(2)];

  it('every correct replica builds the same tree; s+1 partials combine into the service signature on the root', () => {
    const signed = dealt.shares.map((share) => signBatch(replies, DEPTH, seed, 9, share));
    // Same root and proofs everywhere (pad leaves come from the agreed seed).
    for (const s of signed) expect(toHex(s.root)).toBe(toHex(signed[0]!.root));
    const message = batchMessage(signed[0]!.root, DEPTH);
    signed.forEach((s, i) => expect(verifyPartial(dealt.shares[i]!.publicKey, message, s.partial!)).toBe(true));
    const a = combine([{ index: 1, signature: signed[0]!.partial! }, { index: 3, signature: signed[2]!.partial! }], 2);
    const b = combine([{ index: 2, signature: signed[1]!.partial! }, { index: 4, signature: signed[3]!.partial! }], 2);
    expect(toHex(a)).toBe(toHex(b)); // I4
    expect(verify(dealt.groupPublicKey, message, a)).toBe(true);
    // Each reply's proof leads to the signed root, and a client-side verifier accepts it.
    const verifier = new ReplyVerifier(dealt.groupPublicKey, DEPTH);
    replies.forEach((r, i) => {
      expect(toHex(rootFromProof(leafHash(r), signed[0]!.proofs[i]!, DEPTH))).toBe(toHex(signed[0]!.root));
      const check = verifier.check({ reply: r, proof: signed[0]!.proofs[i]!, signature: a }, digest(i));
      expect(check.ok).toBe(true);
    });
    expect(verifier.pairingChecks).toBe(1); // one pairing per batch, not per reply
  });

  it('a different reply (a lying replica) gives a different root, so its partial cannot combine with the others', () => {
    const honest = signBatch(replies, DEPTH, seed, 9, dealt.shares[0]!);
    const liar = signBatch([reply(0), reply(1, 'exfiltrated secret'), reply(2)], DEPTH, seed, 9, dealt.shares[1]!);
    expect(toHex(liar.root)).not.toBe(toHex(honest.root));
    const mixed = combine([{ index: 1, signature: honest.partial! }, { index: 2, signature: liar.partial! }], 2);
    expect(verify(dealt.groupPublicKey, batchMessage(honest.root, DEPTH), mixed)).toBe(false);
  });

  it('signs nothing when told not to (a batch holding an adopted reply, I7)', () => {
    const s = signBatch(replies, DEPTH, seed, 9, dealt.shares[0]!, false);
    expect(s.partial).toBeUndefined();
    expect(toHex(s.root)).toBe(toHex(batchTree(replies, DEPTH, seed, 9).root));
  });

  it('the Partial payload a top receives round-trips and carries the replica view', () => {
    const s = signBatch(replies, DEPTH, seed, 9, dealt.shares[0]!);
    const bytes = encodePartialReplies({ view: 3, seq: 9, partial: s.partial!, items: [{ reply: replies[1]!, proof: s.proofs[1]! }] });
    const p = decodePartialReplies(bytes, 1 << 20);
    expect(p.view).toBe(3);
    expect(p.seq).toBe(9);
    expect(toHex(decodeReply(p.items[0]!.reply).requestDigest)).toBe(toHex(digest(1)));
  });
});

describe('reply cache', () => {
  function finished(seq: number, n: number, signed = true) {
    const rs = Array.from({ length: n }, (_, i) => reply(seq * 100 + i));
    const s = signBatch(rs, DEPTH, seed, seq, dealt.shares[0]!, signed);
    return {
      f: {
        batch: { seq, seed, digests: rs.map((_, i) => digest(seq * 100 + i)), partial: s.partial },
        replies: rs.map((r) => ({ reply: r, own: true })),
      },
      s,
    };
  }

  it('answers a repeated request with the same reply, proof and partial (recomputed proofs match for restored batches)', () => {
    const cache = new ReplyCache(100, 1 << 20, DEPTH);
    const { f, s } = finished(1, 3);
    cache.add(f, s.proofs);
    const restored = new ReplyCache(100, 1 << 20, DEPTH);
    restored.add(f); // as after a restart: proofs rebuilt from the replies and the seed
    for (const c of [cache, restored]) {
      const hit = c.get(toHex(digest(101)))!;
      const p = partialFromCache(hit, 7)!;
      expect(p.seq).toBe(1);
      expect(p.view).toBe(7);
      expect(toHex(p.partial)).toBe(toHex(s.partial!));
      expect(toHex(p.items[0]!.reply)).toBe(toHex(f.replies[1]!.reply));
      expect(toHex(p.items[0]!.proof)).toBe(toHex(s.proofs[1]!));
    }
  });

  it('cannot answer from a batch this replica did not sign, and serves only its own replies to recovering peers', () => {
    const cache = new ReplyCache(100, 1 << 20, DEPTH);
    const { f } = finished(2, 2, false);
    f.replies[1] = undefined as never;
    cache.add(f);
    expect(partialFromCache(cache.get(toHex(digest(200)))!, 0)).toBeUndefined();
    expect(cache.ownReply(toHex(digest(200)), 2)).toBeDefined();
    expect(cache.ownReply(toHex(digest(200)), 3)).toBeUndefined(); // wrong seq
    cache.setAdopted(2, 1, reply(201));
    expect(cache.ownReply(toHex(digest(201)), 2)).toBeUndefined(); // adopted, not computed here
  });

  it('is bounded by requests and by bytes, evicting whole batches oldest first', () => {
    const byCount = new ReplyCache(5, 1 << 30, DEPTH);
    for (let seq = 1; seq <= 4; seq++) byCount.add(finished(seq, 2).f);
    expect(byCount.size).toBeLessThanOrEqual(5);
    expect(byCount.get(toHex(digest(100)))).toBeUndefined();
    expect(byCount.get(toHex(digest(400)))).toBeDefined();
    // (Each cached request also counts REQUEST_OVERHEAD_BYTES for its keys and objects.)
    const byBytes = new ReplyCache(1000, 4000, DEPTH);
    for (let seq = 1; seq <= 10; seq++) byBytes.add(finished(seq, 2).f);
    expect(byBytes.bytes).toBeLessThanOrEqual(4000);
    expect(byBytes.size).toBeGreaterThan(2);
    expect(byBytes.get(toHex(digest(1000)))).toBeDefined();
    expect([...byBytes.all()].map((b) => b.batch.seq)).toEqual([...byBytes.all()].map((b) => b.batch.seq).sort((a, b) => a - b));
  });
});

describe('top bookkeeping', () => {
  it('remembers every top that submitted a digest until answered, and is bounded', () => {
    const s = new Submitters(2);
    expect(s.add('d1', 'fw-0-1')).toBe(true);
    expect(s.add('d1', 'fw-0-1')).toBe(false); // a retransmission is not news
    expect(s.add('d1', 'fw-1-1')).toBe(true); // the same request through another chain
    expect(s.take('d1').sort()).toEqual(['fw-0-1', 'fw-1-1']);
    expect(s.take('d1')).toEqual([]);
    s.add('a', 't');
    s.add('b', 't');
    s.add('c', 't');
    expect(s.size).toBe(2);
    expect(s.has('a', 't')).toBe(false);
    expect(s.has('c', 't')).toBe(true);
  });
});

describe('peer messages', () => {
  it('round-trip and refuse malformed input', () => {
    const all: PeerMessage[] = [
      { type: 'submitted', digest: digest(1), top: 'fw-0-1' },
      { type: 'reply-query', seq: 12, digest: digest(2) },
      { type: 'reply-answer', seq: 12, digest: digest(2), reply: reply(2) },
      { type: 'reply-answer', seq: 12, digest: digest(2), reply: undefined },
    ];
    for (const m of all) expect(decodePeerMessage(encodePeerMessage(m), 1 << 20)).toEqual(m);
    expect(() => decodePeerMessage(new Uint8Array([9]), 100)).toThrow(/unknown type/);
    expect(() => decodePeerMessage(encodePeerMessage(all[2]!), 10)).toThrow(/exceeds/);
    expect(() => decodePeerMessage(encodePeerMessage(all[0]!).subarray(0, 20), 100)).toThrow(/truncated/);
  });
});
