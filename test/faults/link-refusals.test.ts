// Messages a sidecar's link to a peer refuses (its bounded send queue is full: the peer is slow
// or unreachable) are dropped, but never silently: each is counted in
// cbft_sidecar_messages_refused_total{peer,kind} and logged, rate-limited. Found by an audit of
// the fault suite (issues 4 and 9): the PBFT and peer-message sends ignored Link.send()'s refusal.
//
// In-process and cheap: a sidecar driven by a scripted engine (as in test/sidecar/shell.test.ts),
// whose link to replica-1 is swapped for one with a queue of a single message to a port nobody
// listens on, so everything sent to replica-1 in the same tick after the first message is refused.

import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../src/codec/canonical.js';
import { fromHex } from '../../src/codec/binary.js';
import { loadCluster, loadNodeKeys } from '../../src/cluster/keys.js';
import { IdentitySigner } from '../../src/crypto/identity.js';
import type { Action, PbftMessage } from '../../src/pbft/index.js';
import { Sidecar } from '../../src/sidecar/sidecar.js';
import { MessageKind } from '../../src/transport/frame.js';
import { Link } from '../../src/transport/link.js';
import { signSubmission } from '../../src/wire/submission.js';
import { FakeEngine, canonicalRequest, makeCluster, waitUntil } from '../sidecar/helpers.js';
import { fileClock, publishRows } from './helpers/results.js';

/** Wall time of this file, kept in RESULTS.md. */
const clock = fileClock(import.meta.url);
afterAll(() => {
  publishRows([], clock);
});

const closers: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (closers.length) await Promise.resolve(closers.pop()!()).catch(() => undefined);
});

const REFUSED = 'cbft_sidecar_messages_refused_total';
const LOG_MSG = 'message to a peer dropped: its link refused it (send queue full or link closed)';

async function refused(sidecar: Sidecar, peer: string, kind: string): Promise<number> {
  const m = (await sidecar.registry.getSingleMetric(REFUSED)?.get())?.values ?? [];
  return m.filter((v) => v.labels.peer === peer && v.labels.kind === kind).reduce((a, v) => a + v.value, 0);
}

describe('sidecar: messages a full link refuses are counted and logged', () => {
  it('PBFT messages and peer notices refused by a full link to a peer', async () => {
    const tc = await makeCluster({ chains: 1 });
    closers.push(() => tc.cleanup());
    const cluster = await loadCluster(tc.dir);
    const keys = await loadNodeKeys(tc.dir, cluster, 'replica-0');
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    let engine!: FakeEngine;
    const sidecar = await Sidecar.start({
      cluster,
      keys,
      // Never called: nothing is executed here.
      upstream: 'http://127.0.0.1:9',
      dataDir: join(tc.dir, 'data', 'replica-0'),
      log: pino({ level: 'warn' }, sink),
      engine: (_config, _crypto, restored) => (engine = new FakeEngine(restored)),
    });
    closers.push(() => sidecar.stop());

    // replica-1's link: room for one message, to a port nobody listens on (makeCluster's ports
    // are free): the first message goes in flight and stays there, retried; the rest is refused.
    const links = (sidecar as unknown as { links: Map<string, Link> }).links;
    await links.get('replica-1')?.close();
    links.set('replica-1', new Link({ url: cluster.replicas[1]!.url, from: 'replica-0', to: 'replica-1', signer: keys.identity, peerPublicKey: fromHex(cluster.replicas[1]!.identityPublicKey), maxQueuedMessages: 1 }));

    // 30 PBFT messages to everyone in one action list: carried out in one go, in one tick.
    const status = { type: 'status', sender: 0, view: 0, inViewChange: false, stableSeq: 0, committedThrough: 0, sig: new Uint8Array(64) } as PbftMessage;
    engine.push(...Array.from({ length: 30 }, (): Action => ({ type: 'send', to: 'all', msg: status })));
    await waitUntil('refused PBFT messages counted', async () => (await refused(sidecar, 'replica-1', 'pbft')) >= 29, 10_000);
    // The other peers' links have room: nothing refused there.
    expect(await refused(sidecar, 'replica-2', 'pbft')).toBe(0);
    expect(await refused(sidecar, 'replica-3', 'pbft')).toBe(0);

    // Two requests from the top in one frame: the sidecar tells every peer who waits for each
    // ("submitted" notices) in the same tick; replica-1's link refuses at least the second.
    const top = cluster.chains[0]![1]!;
    const topSigner = new IdentitySigner(fromHex(tc.keys.find((k) => k.id === top.id)!.identitySecretKey));
    const topLink = new Link({ url: cluster.replicas[0]!.url, from: top.id, to: 'replica-0', signer: topSigner, peerPublicKey: fromHex(cluster.replicas[0]!.identityPublicKey) });
    closers.push(() => topLink.close());
    const A = canonicalRequest('POST', '/op/a', 'a');
    const B = canonicalRequest('POST', '/op/b', 'b');
    topLink.send(MessageKind.Request, signSubmission(topSigner, top.id, A));
    topLink.send(MessageKind.Request, signSubmission(topSigner, top.id, B));
    await waitUntil('engine got both requests', () => engine.submitted.length === 2, 10_000);
    expect(engine.submitted.map((r) => r.digest)).toEqual([digestOf(A), digestOf(B)]);
    await waitUntil('refused peer notices counted', async () => (await refused(sidecar, 'replica-1', 'replica')) >= 1, 10_000);
    expect(await refused(sidecar, 'replica-2', 'replica')).toBe(0);

    // Logged, rate-limited per peer and kind (LogLimiter: 10 lines per 10 s, then a count).
    const logged = lines.filter((l) => l.msg === LOG_MSG);
    const pbftLines = logged.filter((l) => l.to === 'replica-1' && l.kind === 'pbft');
    expect(pbftLines.length).toBeGreaterThanOrEqual(1);
    expect(pbftLines.length).toBeLessThanOrEqual(10);
    expect(pbftLines[0]).toMatchObject({ level: 40, to: 'replica-1', kind: 'pbft', type: 'status' });
    expect(logged.filter((l) => l.to === 'replica-1' && l.kind === 'replica')[0]).toMatchObject({ type: 'submitted' });
    expect(logged.every((l) => l.to === 'replica-1')).toBe(true);

    // And exposed on /metrics.
    const text = await sidecar.registry.metrics();
    expect(text).toMatch(/cbft_sidecar_messages_refused_total\{[^}]*peer="replica-1"[^}]*kind="pbft"[^}]*\} (\d+)/);
  }, 60_000);
});
