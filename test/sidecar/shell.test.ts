// The sidecar's engine shell, driven by a scripted fake engine in-process: action ordering
// (persist durable before a later send), execution of request, null and duplicate batches with
// the cbft headers, one Partial per top with proofs and the partial signature, answers from the
// reply cache, and a restart that restores the engine's records and the reply cache from the log.

import fs, { readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/codec/binary.js';
import { decodeReply, digestOf, leafHash } from '../../src/codec/canonical.js';
import { batchMessage, rootFromProof } from '../../src/codec/merkle.js';
import { loadCluster, loadNodeKeys } from '../../src/cluster/keys.js';
import { IdentitySigner } from '../../src/crypto/identity.js';
import { verifyPartial } from '../../src/crypto/threshold.js';
import { NULL_BATCH, batchDigest, encodeMessage, encodeRecord, type ClientRequest, type PbftMessage, type PersistRecord } from '../../src/pbft/index.js';
import { requestSeedHex } from '../../src/sidecar/batch.js';
import { decodePeerMessage } from '../../src/sidecar/peer-messages.js';
import { Sidecar } from '../../src/sidecar/sidecar.js';
import { MessageKind, type FrameMessage } from '../../src/transport/frame.js';
import { signSubmission } from '../../src/wire/submission.js';
import { Link } from '../../src/transport/link.js';
import { startPeerServer, type PeerServer } from '../../src/transport/peer-server.js';
import { decodePartialReplies, type PartialReplies } from '../../src/wire/payloads.js';
import { FakeEngine, canonicalRequest, counts, freePorts, makeCluster, startFixture, waitUntil, type TestCluster } from './helpers.js';
import { metricValue } from '../firewall/helpers.js';

/** The sidecar answers a repeat of the same request to the same top at most once per this. */
const RETRANSMIT_MS = 1_000;
const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!().catch(() => undefined);
});

async function listener(tc: TestCluster, id: string, url: string, allowed: number[], onMessage: (from: string, m: FrameMessage) => void): Promise<PeerServer> {
  const senders = new Map([...tc.cluster.replicas, ...tc.cluster.chains.flat()].map((n) => [n.id, fromHex(n.identityPublicKey)]));
  const identity = new IdentitySigner(fromHex(tc.keys.find((k) => k.id === id)!.identitySecretKey));
  const u = new URL(url);
  const s = await startPeerServer({
    host: '127.0.0.1',
    port: Number(u.port),
    self: id,
    senders,
    identity,
    allowed: (_from, kind) => allowed.includes(kind),
    onMessages: (from, messages) => messages.forEach((m) => onMessage(from, m)),
  });
  closers.push(() => s.close());
  return s;
}

describe('sidecar engine shell (scripted engine, in-process)', () => {
  it('persists before sending, executes request/null/duplicate batches in order, signs once per batch, answers from the cache, and restores from its log', async () => {
    const tc = await makeCluster();
    closers.push(async () => tc.cleanup());
    const [port] = await freePorts(1);
    const fixture = await startFixture(join(tc.dir, 'count.jsonl'), port);
    closers.push(() => fixture.proc.kill());
    const loaded = await loadCluster(tc.dir);
    // A short retransmission interval: a repeat within it is not answered again (AnswerLimiter).
    const cluster = { ...loaded, firewall: { ...loaded.firewall, retransmitMs: RETRANSMIT_MS } };
    const keys = await loadNodeKeys(tc.dir, cluster, 'replica-0');
    const dataDir = join(tc.dir, 'data', 'replica-0');
    const wal = join(dataDir, 'wal.log');

    // replica-1 (a peer) and fw-0-1 (the top) are played by the test.
    const peerGot: Array<{ kind: number; payload: Uint8Array; walAtArrival: Buffer; at: number }> = [];
    await listener(tc, 'replica-1', cluster.replicas[1]!.url, [MessageKind.Pbft, MessageKind.Replica], (_from, m) => {
      peerGot.push({ kind: m.kind, payload: m.payload, walAtArrival: readFileSync(wal), at: Date.now() });
    });
    const partials: PartialReplies[] = [];
    const top = cluster.chains[0]![1]!;
    await listener(tc, top.id, top.peerUrl, [MessageKind.Partial], (from, m) => {
      expect(from).toBe('replica-0');
      partials.push(decodePartialReplies(m.payload, 1 << 20));
    });
    const topKey = tc.keys.find((k) => k.id === top.id)!;
    const topSigner = new IdentitySigner(fromHex(topKey.identitySecretKey));
    const seal = (p: Uint8Array) => signSubmission(topSigner, top.id, p);
    const topLink = new Link({ url: cluster.replicas[0]!.url, from: top.id, to: 'replica-0', signer: topSigner, peerPublicKey: fromHex(cluster.replicas[0]!.identityPublicKey) });
    closers.push(() => topLink.close());

    let engine!: FakeEngine;
    const start = () =>
      Sidecar.start({
        cluster,
        keys,
        upstream: fixture.url,
        dataDir,
        log: pino({ level: 'silent' }),
        engine: (_config, _crypto, restored) => (engine = new FakeEngine(restored)),
      });
    let sidecar = await start();
    closers.push(() => sidecar.stop());
    expect(engine.restored).toBeUndefined();

    // The top submits A and B: the engine gets them, the peers hear who is waiting.
    const A = canonicalRequest('POST', '/op/a', 'a');
    const B = canonicalRequest('POST', '/op/b', 'b');
    const C = canonicalRequest('POST', '/op/c', 'c');
    const req = (p: Uint8Array): ClientRequest => ({ digest: digestOf(p), payload: seal(p) });
    topLink.send(MessageKind.Request, seal(A));
    topLink.send(MessageKind.Request, seal(B));
    await waitUntil('engine got both requests', () => engine.submitted.length === 2);
    await waitUntil('peer told about both', () => peerGot.filter((g) => g.kind === MessageKind.Replica).length === 2);
    const notices = peerGot.filter((g) => g.kind === MessageKind.Replica).map((g) => decodePeerMessage(g.payload, 1 << 20));
    expect(notices).toEqual([
      { type: 'submitted', digest: digestOf(A), top: top.id },
      { type: 'submitted', digest: digestOf(B), top: top.id },
    ]);

    // A persist followed by a send: the message leaves only once the record is durable. Every
    // fdatasync is slowed down to 300 ms here, so a send that did not wait would arrive sooner.
    const realFdatasync = fs.fdatasync;
    const syncsDone: number[] = [];
    fs.fdatasync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) =>
      setTimeout(
        () =>
          realFdatasync(fd, (err) => {
            syncsDone.push(Date.now());
            cb(err);
          }),
        300,
      )) as unknown as typeof fs.fdatasync;
    syncBuiltinESMExports();
    closers.push(async () => {
      fs.fdatasync = realFdatasync;
      syncBuiltinESMExports();
    });
    const seed = new Uint8Array(32).fill(7);
    const T = Date.now();
    const batch1 = { timestamp: T, seed, requests: [req(A), req(B)] };
    const committed: PersistRecord = { kind: 'committed', entry: { seq: 1, batch: batch1, cert: { view: 0, digest: batchDigest(batch1), commits: [] } } };
    const status = { type: 'status', sender: 0, view: 0, inViewChange: false, stableSeq: 0, committedThrough: 1, sig: new Uint8Array(64) } as PbftMessage;
    engine.push(
      { type: 'persist', record: committed },
      { type: 'send', to: 1, msg: status },
      { type: 'execute', batch: { seq: 1, batchDigest: batchDigest(batch1), timestamp: T, seed, requests: batch1.requests, duplicates: [], isNull: false } },
      { type: 'execute', batch: { seq: 2, batchDigest: batchDigest(NULL_BATCH), timestamp: T, seed: NULL_BATCH.seed, requests: [], duplicates: [], isNull: true } },
      {
        type: 'execute',
        batch: { seq: 3, batchDigest: new Uint8Array(32), timestamp: T + 5, seed, requests: [req(C)], duplicates: [{ digest: digestOf(A), seq: 1 }], isNull: false },
      },
    );
    const pushedAt = Date.now();
    await waitUntil('status reached the peer', () => peerGot.some((g) => g.kind === MessageKind.Pbft));
    const got = peerGot.find((g) => g.kind === MessageKind.Pbft)!;
    expect(toHex(got.payload)).toBe(toHex(encodeMessage(status)));
    expect(got.walAtArrival.includes(Buffer.from(encodeRecord(committed)))).toBe(true);
    expect(syncsDone.length).toBeGreaterThanOrEqual(1);
    expect(syncsDone[0]!).toBeGreaterThanOrEqual(pushedAt + 290);
    expect(got.at).toBeGreaterThanOrEqual(syncsDone[0]!);
    fs.fdatasync = realFdatasync;
    syncBuiltinESMExports();

    // A retry of A right after its answer is not answered again (the answer is on its way). It
    // goes out as soon as the answer is seen: the checks below take long on a loaded machine.
    await waitUntil('partial for batch 1', () => partials.length >= 1);
    const answeredBy = Date.now();
    topLink.send(MessageKind.Request, seal(A));

    await waitUntil('three batches executed', () => engine.executedSeqs.length === 3);
    expect(engine.executedSeqs).toEqual([1, 2, 3]); // the null batch too, strictly in order
    const c = await counts(fixture.url);
    expect(c.perSeq).toEqual({ '1': ['a', 'b'], '3': ['c'] }); // nothing for the null batch, A not again
    expect(c.executions).toBe(3);

    // One Partial for the top's two requests of batch 1, with proofs to one root and a valid partial.
    const p1 = partials[0]!;
    expect(p1.seq).toBe(1);
    expect(p1.items).toHaveLength(2);
    const roots = p1.items.map((it) => toHex(rootFromProof(leafHash(it.reply), it.proof, cluster.merkleDepth)));
    expect(roots[0]).toBe(roots[1]);
    const share = fromHex(cluster.replicas[0]!.sharePublicKey);
    expect(verifyPartial(share, batchMessage(fromHex(roots[0]!), cluster.merkleDepth), p1.partial)).toBe(true);
    const bodyA = JSON.parse(Buffer.from(decodeReply(p1.items[0]!.reply).body).toString()) as Record<string, string>;
    expect(bodyA).toMatchObject({ key: 'a', seq: '1', timestamp: String(T), seed: requestSeedHex(seed, 1, 0) });
    const bodyB = JSON.parse(Buffer.from(decodeReply(p1.items[1]!.reply).body).toString()) as Record<string, string>;
    expect(bodyB.seed).toBe(requestSeedHex(seed, 1, 1));
    expect(partials).toHaveLength(1); // C was submitted by no top known here

    await waitUntil('repeat counted', async () => metricValue(await sidecar.registry.metrics(), 'cbft_sidecar_repeats_not_answered_total') === 1);
    expect(partials).toHaveLength(1);
    // One after the retransmission interval is answered from the reply cache: same reply, proof
    // and partial, seq 1.
    await new Promise((r) => setTimeout(r, Math.max(0, answeredBy + RETRANSMIT_MS + 50 - Date.now())));
    topLink.send(MessageKind.Request, seal(A));
    await waitUntil('cached answer', () => partials.length === 2);
    expect(partials[1]!.seq).toBe(1);
    expect(toHex(partials[1]!.partial)).toBe(toHex(p1.partial));
    expect(toHex(partials[1]!.items[0]!.proof)).toBe(toHex(p1.items[0]!.proof));
    expect(engine.submitted).toHaveLength(2); // the engine never saw the retry

    // Restart: the engine gets its records and lastExecuted back; the cache answers B again.
    await sidecar.stop();
    sidecar = await start();
    expect(engine.restored?.lastExecuted).toBe(3);
    expect(engine.restored?.records.map((r) => toHex(encodeRecord(r)))).toEqual([toHex(encodeRecord(committed))]);
    topLink.send(MessageKind.Request, seal(B));
    await waitUntil('cached answer after restart', () => partials.length === 3);
    expect(partials[2]!.seq).toBe(1);
    expect(toHex(partials[2]!.partial)).toBe(toHex(p1.partial));
    expect(toHex(partials[2]!.items[0]!.reply)).toBe(toHex(p1.items[1]!.reply));
    expect(toHex(partials[2]!.items[0]!.proof)).toBe(toHex(p1.items[1]!.proof));
    expect((await counts(fixture.url)).executions).toBe(3);
    const m = await sidecar.registry.getSingleMetricAsString('cbft_sidecar_reply_cache_hits_total');
    expect(m).toMatch(/cbft_sidecar_reply_cache_hits_total\{[^}]*\} 1/);
  });
});
