import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../src/codec/binary.js';
import { sha256 } from '../../src/crypto/hash.js';
import { IdentitySigner, generateIdentity } from '../../src/crypto/identity.js';
import { SubmissionVerifier, decodeSubmission, signRound, signSubmission, submitMessage } from '../../src/wire/submission.js';
import { buildTree } from '../../src/codec/merkle.js';
import { Writer } from '../../src/codec/binary.js';
import { Replica, type Action, type PbftCrypto } from '../../src/pbft/index.js';
import { simCrypto, simKeys } from '../../sim/fake-crypto.js';

const topA = generateIdentity();
const topB = generateIdentity();
const signerA = new IdentitySigner(topA.secretKey);
const keys = new Map([
  ['fw-0-1', topA.publicKey],
  ['fw-1-1', topB.publicKey],
]);

describe('request submissions signed by a top firewall node', () => {
  it('known answer: the signed message and the envelope layout', () => {
    const digest = sha256(utf8('req'));
    expect(toHex(submitMessage('fw-0-1', 0, digest))).toBe(
      '0000000e' + toHex(utf8('cbft/submit/v2')) + '00000006' + toHex(utf8('fw-0-1')) + '00' + toHex(digest),
    );
    const env = signSubmission(signerA, 'fw-0-1', utf8('req'));
    const s = decodeSubmission(env, 1024);
    expect(s.top).toBe('fw-0-1');
    expect(s.depth).toBe(0);
    expect(toHex(s.request)).toBe(toHex(utf8('req')));
    expect(env.length).toBe(4 + 6 + 64 + 1 + 4 + 3);
    // Ed25519 is deterministic: the signature is over submitMessage(top, 0, digest).
    expect(toHex(s.signature)).toBe(toHex(signerA.sign(submitMessage('fw-0-1', 0, digest))));
  });

  it('known answer: a round of three requests shares one signature over the root of their digests', () => {
    const requests = ['a', 'b', 'c'].map((x) => utf8(`req ${x}`));
    const envs = signRound(signerA, 'fw-0-1', requests.map((request) => ({ request })));
    const tree = buildTree(requests.map((r) => sha256(r)), 2, new Uint8Array(32));
    const decoded = envs.map((e) => decodeSubmission(e, 1024));
    for (const [i, s] of decoded.entries()) {
      expect(s.depth).toBe(2);
      expect(toHex(s.proof)).toBe(toHex(tree.proof(i)));
      expect(toHex(s.signature)).toBe(toHex(signerA.sign(submitMessage('fw-0-1', 2, tree.root))));
      expect(toHex(s.request)).toBe(toHex(requests[i]!));
    }
    const v = new SubmissionVerifier(keys, 1024);
    envs.forEach((e, i) => expect(toHex(v.digestOf(e)!)).toBe(toHex(sha256(requests[i]!))));
  });

  it('refuses a round envelope whose proof belongs to another request, or is tampered', () => {
    const requests = ['a', 'b', 'c', 'd', 'e'].map((x) => utf8(`req ${x}`));
    const envs = signRound(signerA, 'fw-0-1', requests.map((request) => ({ request })));
    const v = new SubmissionVerifier(keys, 1024);
    const s0 = decodeSubmission(envs[0]!, 1024);
    const s1 = decodeSubmission(envs[1]!, 1024);
    const rebuild = (proof: Uint8Array, request: Uint8Array) =>
      new Writer().string('fw-0-1').fixed(s0.signature, 64).u8(s0.depth).fixed(proof, proof.length).bytes(request).finish();
    expect(v.digestOf(rebuild(s0.proof, requests[0]!))).not.toBeNull(); // the rebuilt layout is right
    expect(v.digestOf(rebuild(s1.proof, requests[0]!))).toBeNull(); // b's proof with a's request
    const bad = s0.proof.slice();
    bad[5]! ^= 1;
    expect(v.digestOf(rebuild(bad, requests[0]!))).toBeNull();
    expect(v.digestOf(rebuild(s0.proof, utf8('req x')))).toBeNull(); // a request not in the round
    // Depth above 16 is malformed, not a huge allocation.
    const deep = new Writer().string('fw-0-1').fixed(s0.signature, 64).u8(17).finish();
    expect(() => decodeSubmission(deep, 1024)).toThrow(/depth 17/);
  });

  it('verifies the top signature and returns the request digest (not the envelope digest)', () => {
    const v = new SubmissionVerifier(keys, 1024);
    const env = signSubmission(signerA, 'fw-0-1', utf8('req'));
    expect(toHex(v.digestOf(env)!)).toBe(toHex(sha256(utf8('req'))));
    // The same request through another chain has another envelope but the same digest.
    const envB = signSubmission(new IdentitySigner(topB.secretKey), 'fw-1-1', utf8('req'));
    expect(toHex(v.digestOf(envB)!)).toBe(toHex(sha256(utf8('req'))));
  });

  it('refuses envelopes signed by the wrong node, for another request, from unknown tops, or malformed', () => {
    const v = new SubmissionVerifier(keys, 1024);
    expect(v.digestOf(signSubmission(signerA, 'fw-1-1', utf8('req')))).toBeNull(); // A claims to be B
    expect(v.digestOf(signSubmission(signerA, 'fw-9-9', utf8('req')))).toBeNull(); // not a top
    const env = signSubmission(signerA, 'fw-0-1', utf8('req'));
    const tampered = env.slice();
    tampered[tampered.length - 1]! ^= 1; // a byte of the request
    expect(v.digestOf(tampered)).toBeNull();
    expect(v.digestOf(utf8('garbage'))).toBeNull();
    expect(v.digestOf(env.subarray(0, env.length - 1))).toBeNull();
    expect(new SubmissionVerifier(keys, 2).digestOf(env)).toBeNull(); // request above the size limit
  });
});

describe('engine: a faulty primary cannot order a request no top submitted', () => {
  it('backups refuse the pre-prepare; authentic requests still execute', () => {
    const n = 4;
    const simK = simKeys(n, 7);
    const authentic = new Set<string>();
    const submit = (label: string) => {
      const payload = utf8(label);
      authentic.add(toHex(payload));
      return { digest: sha256(payload), payload };
    };
    const cryptoFor = (id: number): PbftCrypto => ({
      ...simCrypto(simK, id),
      // Replica 0, the primary of view 0, is faulty: it accepts anything.
      requestDigest: (p) => (id === 0 || authentic.has(toHex(p)) ? sha256(p) : null),
    });
    const replicas = Array.from({ length: n }, (_, id) =>
      new Replica({ s: 1, id, batchMax: 4, batchDelayTicks: 0, viewChangeTicks: 20 }, cryptoFor(id)),
    );
    const executed: string[][] = Array.from({ length: n }, () => []);
    const entropy = new Uint8Array(32).fill(1);
    let now = 1_000_000;
    const pump = () => {
      for (let round = 0; round < 50; round++) {
        let moved = false;
        for (const [id, r] of replicas.entries()) {
          for (const a of r.takeActions() as Action[]) {
            if (a.type === 'send') {
              moved = true;
              for (const to of a.to === 'all' ? replicas.keys() : [a.to]) if (to !== id) replicas[to]!.receive(id, a.msg);
            } else if (a.type === 'execute') {
              for (const q of a.batch.requests) executed[id]!.push(Buffer.from(q.payload).toString());
              r.executed(a.batch.seq);
              moved = true;
            }
          }
        }
        if (!moved) return;
      }
    };
    for (const r of replicas) r.tick(now, entropy);
    pump();
    const forged = utf8('POST /transfers made up by the primary');
    replicas[0]!.submit({ digest: sha256(forged), payload: forged });
    now += 10;
    for (const r of replicas) r.tick(now, entropy);
    pump();
    for (const id of [1, 2, 3]) {
      expect(executed[id]).toEqual([]);
      expect(replicas[id]!.counters().invalid).toBeGreaterThan(0);
    }
    const real = submit('GET /accounts/acc-1');
    for (const r of replicas) r.submit(real);
    // The forged batch never prepares, so the view changes (the faulty primary is replaced) and
    // the gap becomes a null batch; the authentic request then executes everywhere correct.
    for (let i = 0; i < 300 && executed.slice(1).some((e) => e.length === 0); i++) {
      now += 10;
      for (const r of replicas) r.tick(now, entropy);
      pump();
    }
    for (const id of [1, 2, 3]) expect(executed[id]).toEqual(['GET /accounts/acc-1']);
    expect(replicas[1]!.inspect().view).toBeGreaterThan(0);
  });
});
