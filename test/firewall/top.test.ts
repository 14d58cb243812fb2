import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { call, expectSigned, makeCluster, metricsOf, metricValue, chainsPerTest, startNodes, waitFor } from './helpers.js';

const { cleanups, setup } = chainsPerTest();

describe('the top as PBFT client', () => {
  it('re-sends to every replica when the primary is silent, and learns the primary from the view', async () => {
    const { tc, url, replicas, nodes } = await setup({ firewall: { retransmitMs: 300 } }, { dropDirect: [0], view: 1 });
    const r1 = await call(url(), '/first');
    expectSigned(tc, r1);
    expect(replicas.received[0]).toBeGreaterThanOrEqual(2); // once directly, then in the retransmission(s)
    const top = nodes[0]![1]!;
    const retransmitted = metricValue(await metricsOf(top), 'cbft_firewall_retransmissions_total');
    expect(retransmitted).toBeGreaterThanOrEqual(1);
    expect(metricValue(await metricsOf(top), 'cbft_firewall_primary')).toBe(1);
    // Now the top sends to replica-1 (the primary of view 1) first.
    const received0 = replicas.received[0]!;
    const received1 = replicas.received[1]!;
    const r2 = await call(url(), '/second');
    expectSigned(tc, r2);
    expect(replicas.received[1]).toBeGreaterThan(received1);
    if (metricValue(await metricsOf(top), 'cbft_firewall_retransmissions_total') === retransmitted) {
      expect(replicas.received[0]).toBe(received0); // no retransmission: replica-0 never saw it
    }
  });

  it('submits in rounds: while a round is in flight, new requests wait and go together', async () => {
    const { tc, url, replicas } = await setup({}, { delays: { 0: 150, 1: 150, 2: 150, 3: 150 } });
    const first = [call(url(), '/r/a'), call(url(), '/r/b')];
    await waitFor(() => replicas.batches() >= 1, 3_000, 'first batch');
    const rest = Array.from({ length: 30 }, (_, i) => call(url(), `/r/${i}`));
    const all = await Promise.all([...first, ...rest]);
    for (const r of all) expectSigned(tc, r);
    // 32 requests, but only a handful of batches (and so of signatures and pairings).
    expect(replicas.batches()).toBeLessThanOrEqual(10); // without the window: ~18
  });

  it('a replica whose replies differ never gets its bytes to a client, and is named', async () => {
    const { tc, url, nodes } = await setup({}, { differ: [1] });
    const rs = await Promise.all(Array.from({ length: 5 }, (_, i) => call(url(), `/secret/${i}`)));
    for (const r of rs) {
      expectSigned(tc, r);
      expect(r.body.toString()).not.toMatch(/leaks a secret/);
    }
    const top = nodes[0]![1]!;
    await waitFor(async () => metricValue(await metricsOf(top), 'cbft_alarms_total', { kind: 'replica-mismatch', peer: 'replica-1' }) >= 5, 3_000, 'mismatch alarms');
    expect(metricValue(await metricsOf(top), 'cbft_alarms_total', { peer: 'replica-0' })).toBe(0);
  });

  it('a replica that signs garbage is found by checking partials one by one and named', async () => {
    // replica-2 answers first, so its bad partial is among the first s+1 the top combines.
    const { tc, url, nodes } = await setup({}, { garbage: [2], delays: { 0: 60, 1: 120, 3: 120 } });
    const r = await call(url(), '/g');
    expectSigned(tc, r);
    const m = await metricsOf(nodes[0]![1]!);
    expect(metricValue(m, 'cbft_alarms_total', { kind: 'bad-partial', peer: 'replica-2' })).toBe(1);
    expect(metricValue(m, 'cbft_alarms_total', { kind: 'bad-partial', peer: 'replica-0' })).toBe(0);
  });

  it('answers 502 replicas_disagree when only s replicas answer, 504 when none do', async () => {
    const { url, nodes, replicas } = await setup({ firewall: { requestTimeoutMs: 1_200, retransmitMs: 100 } }, { silent: [1, 2, 3] });
    const t0 = Date.now();
    const r = await call(url(), '/lonely');
    expect(r.status).toBe(502);
    expect(r.json()).toMatchObject({ error: 'replicas_disagree' });
    expect(Date.now() - t0).toBeLessThan(1_200); // the top's earlier deadline (1050 ms), not the bottom's
    replicas.update({ silent: [0, 1, 2, 3] });
    const none = await call(url(), '/nobody');
    expect(none.status).toBe(504);
    expect(none.json()).toMatchObject({ error: 'timeout' });
    const m = await metricsOf(nodes[0]![0]!);
    expect(metricValue(m, 'cbft_firewall_releases_total', { outcome: 'replicas_disagree' })).toBe(1);
    expect(metricValue(m, 'cbft_firewall_releases_total', { outcome: 'timeout' })).toBe(1);
    expect(metricValue(m, 'cbft_firewall_late_total')).toBe(0);
  });

  it('answers 503 overloaded when the bottom queue is full', async () => {
    const { tc, url } = await setup({ firewall: { maxQueue: 2, requestTimeoutMs: 2_000 } }, { delays: { 0: 300, 1: 300, 2: 300, 3: 300 } });
    const rs = await Promise.all(Array.from({ length: 5 }, (_, i) => call(url(), `/q/${i}`)));
    const statuses = rs.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 503, 503, 503]);
    for (const r of rs) {
      if (r.status === 503) expect(r.json()).toMatchObject({ error: 'overloaded' });
      else expectSigned(tc, r);
    }
  });
});

describe('readiness', () => {
  it('a bottom whose upper neighbour is down is not ready, and answers 503 not_ready once the link failed', async () => {
    const tc = await makeCluster({ firewall: { requestTimeoutMs: 400 } });
    const [bottom] = await startNodes(tc, ['fw-0-0']);
    cleanups.push(() => bottom!.close());
    await waitFor(() => bottom!.readiness().reasons.some((r) => r.includes('fw-0-1')), 3_000, 'not ready');
    expect(bottom!.readiness().ready).toBe(false);
    const admin = await request(tc.cluster.chains[0]![0]!.adminUrl + '/readyz');
    expect(admin.statusCode).toBe(503);
    expect(await admin.body.json()).toMatchObject({ status: 'not_ready', reasons: [expect.stringContaining('not reachable')] });
    const first = await call(tc.cluster.chains[0]![0]!.url, '/x');
    expect([503, 504]).toContain(first.status);
    await waitFor(async () => (await call(tc.cluster.chains[0]![0]!.url, '/y')).status === 503, 3_000, '503 not_ready');
    const r = await call(tc.cluster.chains[0]![0]!.url, '/z');
    expect(r.json()).toMatchObject({ error: 'not_ready' });
  });
});

describe('quantized release', () => {
  it('releases on multiples of the quantum at every node', async () => {
    const q = 50;
    const { tc, url, nodes } = await setup({ firewall: { releasePolicy: 'quantized', quantumMs: q } });
    // Phase of the wall clock when the bottom finished writing each response.
    const phases: number[] = [];
    nodes[0]![0]!.server!.on('request', (_req, res) => res.once('finish', () => phases.push(Date.now() % q)));
    for (let i = 0; i < 6; i++) expectSigned(tc, await call(url(), `/tick/${i}`));
    expect(phases).toHaveLength(6);
    // Released right after a tick (timers may fire a little late on a busy machine).
    const onTick = phases.filter((p) => p < q / 2);
    expect(onTick.length, `phases ${phases.join(',')}`).toBeGreaterThanOrEqual(4);
  });
});
