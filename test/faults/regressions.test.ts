// Regression tests for bugs the fault suite found, each reduced to the smallest process-level
// setup that shows it (real sidecar processes, an in-test top firewall node).

import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { utf8 } from '../../src/codec/binary.js';
import { generateIdentity, IdentitySigner } from '../../src/crypto/identity.js';
import { MessageKind, type FrameMessage } from '../../src/transport/frame.js';
import { Link } from '../../src/transport/link.js';
import { startPeerServer, type DropReason } from '../../src/transport/peer-server.js';
import {
  TopClient,
  canonicalRequest,
  killAll,
  makeCluster,
  metric,
  startFixture,
  startSidecar,
  waitUntil,
  type Fixture,
  type Proc,
  type TestCluster,
} from '../sidecar/helpers.js';
import { fileClock, publishRows } from './helpers/results.js';

/** Wall time of this file, kept in RESULTS.md. */
const clock = fileClock(import.meta.url);

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});
afterAll(async () => {
  await killAll();
  publishRows([], clock);
});

async function sidecarCluster(chains: number) {
  const tc: TestCluster = await makeCluster({ chains });
  cleanup.push(() => tc.cleanup());
  // Port 0: the kernel's ephemeral range, which never overlaps the cluster's ports.
  const fixtures: Fixture[] = await Promise.all(tc.cluster.replicas.map((_, i) => startFixture(join(tc.dir, `count-${i}.jsonl`), 0)));
  const sidecars: Proc[] = await Promise.all(tc.cluster.replicas.map((r, i) => startSidecar(tc.dir, r.id, fixtures[i]!.url)));
  cleanup.push(async () => {
    await Promise.all([...sidecars, ...fixtures.map((f) => f.proc)].map((p) => p.kill('SIGKILL')));
  });
  return { tc, fixtures, sidecars };
}

describe('regressions found by the fault suite', () => {
  it('a top whose request reaches the primary after its batch ran gets s+1 partials at once, not after a retransmission', async () => {
    // Clients send every request through every chain. Under load one chain lags, so its top's
    // copy of a request often reaches the primary after the batch executed: the primary answered
    // it from its reply cache alone, the other replicas never learnt that this top waited, and
    // the top (which needs s+1 partials) waited retransmitMs every time before asking all replicas.
    const { tc } = await sidecarCluster(2);
    const retransmitMs = 15_000;
    const tops = [new TopClient(tc.cluster, tc.keys, 0, retransmitMs), new TopClient(tc.cluster, tc.keys, 1, retransmitMs)];
    for (const t of tops) await t.start();
    cleanup.push(async () => {
      for (const t of tops) await t.close();
    });
    const payload = canonicalRequest('POST', '/op/late-top', 'x');
    const first = await tops[0]!.submitToAll(payload, 30_000);
    await waitUntil('every replica executed the request', async () => {
      const seqs = await Promise.all(tc.cluster.replicas.map((r) => metric(r.adminUrl, 'cbft_sidecar_sequence')));
      return seqs.every((s) => (s ?? 0) >= first.seq);
    });
    const t0 = Date.now();
    const late = await tops[1]!.submit(payload, 2 * retransmitMs + 5_000);
    const tookMs = Date.now() - t0;
    expect(Buffer.from(late.replyBytes).equals(Buffer.from(first.replyBytes))).toBe(true);
    expect(tops[1]!.retransmissions, `the late top waited ${tookMs} ms and had to retransmit to all replicas`).toBe(0);
  }, 60_000);

  it('a sender restarted with a clock behind its previous run (a fast clock fixed) is heard again, not silently refused as a stale session', async () => {
    // The receiver keeps, per sender, the newest session start it saw and refuses older
    // sessions (replays of a previous run). A node that ran with a clock ahead and was
    // restarted with a correct one starts a session that looks older: every frame got 409
    // "stale-session", which the link took for "already delivered" and dropped, for good.
    const id = generateIdentity();
    const signer = new IdentitySigner(id.secretKey);
    const receiver = generateIdentity();
    const got: FrameMessage[] = [];
    const drops: DropReason[] = [];
    const server = await startPeerServer({
      host: '127.0.0.1',
      port: 0,
      self: 'b',
      senders: new Map([['a', id.publicKey]]),
      identity: new IdentitySigner(receiver.secretKey),
      allowed: () => true,
      onMessages: (_from, messages) => got.push(...messages),
      onDrop: (reason) => drops.push(reason),
    });
    cleanup.push(() => server.close());
    const url = `http://127.0.0.1:${server.port}`;
    const realNow = Date.now.bind(Date);
    // First run: the clock is 10 minutes ahead.
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 600_000);
    const first = new Link({ url, from: 'a', to: 'b', signer, peerPublicKey: receiver.publicKey, minBackoffMs: 10, maxBackoffMs: 50 });
    spy.mockRestore();
    first.send(MessageKind.Pbft, utf8('from the fast clock'));
    await first.idle();
    await first.close();
    // Restarted with the right time.
    const second = new Link({ url, from: 'a', to: 'b', signer, peerPublicKey: receiver.publicKey, minBackoffMs: 10, maxBackoffMs: 50 });
    cleanup.push(() => second.close());
    second.send(MessageKind.Pbft, utf8('after the fix'));
    second.send(MessageKind.Pbft, utf8('and later'));
    await waitUntil('the restarted sender is heard', () => got.length === 3, 5_000);
    expect(got.map((m) => Buffer.from(m.payload).toString())).toEqual(['from the fast clock', 'after the fix', 'and later']);
  });
});
