// Two copies of examples/bank, each run with the determinism adapter, receive the same ordered
// requests with the same cbft headers (as two cbft sidecars would send them) and must answer
// byte-identically; without the adapter the same experiment must show differences.

import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BANK, cbftHeaders, comparable, json, request, startNode, stopAll, type RawResponse, type Running,
} from './helpers.js';

interface Step {
  method: string;
  target: string | ((ids: string[]) => string);
  as?: string;
  body?: unknown;
  contentType?: string;
}

const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, the primary's clock at sequence 1

/** A fixed workload: successes, reads of generated ids, and every error class. */
function workload(): Step[] {
  const post = (as: string, body: unknown): Step => ({ method: 'POST', target: '/transfers', as, body });
  const steps: Step[] = [
    { method: 'GET', target: '/healthz' },
    post('acc-1', { from: 'acc-1', to: 'acc-2', amount: 1000 }),
    { method: 'GET', target: (ids) => `/transfers/${ids[0]}`, as: 'acc-2' },
    { method: 'GET', target: '/accounts/acc-1', as: 'acc-1' },
    post('acc-3', { from: 'acc-3', to: 'acc-6', amount: 250_000 }),
    post('acc-6', { from: 'acc-6', to: 'acc-4', amount: 1000 }),
    post('acc-4', { from: 'acc-4', to: 'acc-1', amount: 999_999_999 }), // 409
    { method: 'POST', target: '/transfers', as: 'acc-1', body: '{oops' }, // 400
    { method: 'POST', target: '/transfers', body: { from: 'acc-1', to: 'acc-2', amount: 1 } }, // 401
    post('acc-1', { from: 'acc-2', to: 'acc-1', amount: 1 }), // 403
    { method: 'GET', target: '/accounts/acc-2', as: 'acc-1' }, // 403
    { method: 'GET', target: '/nope' }, // 404
    { method: 'DELETE', target: '/transfers', as: 'acc-1' }, // 405
    post('acc-1', { from: 'acc-1', to: 'acc-2', amount: 1, pad: 'x'.repeat(20_000) }), // 413
    { method: 'POST', target: '/transfers', as: 'acc-1', body: { from: 'acc-1', to: 'acc-2', amount: 1 }, contentType: 'text/plain' }, // 415
  ];
  for (let i = 0; i < 12; i++) {
    const from = `acc-${1 + ((i * 5) % 8)}`;
    const to = `acc-${1 + ((i * 3 + 1) % 8)}`;
    steps.push(post(from, { from, to: from === to ? 'acc-8' : to, amount: 100 + i * 37 }));
    steps.push({ method: 'GET', target: (ids) => `/transfers/${ids[ids.length - 1] ?? 'none'}`, as: from });
  }
  for (let k = 1; k <= 8; k++) steps.push({ method: 'GET', target: `/accounts/acc-${k}`, as: `acc-${k}` });
  steps.push({ method: 'GET', target: (ids) => `/transfers/${ids[1]}`, as: 'acc-5' }); // 403: not a party
  return steps;
}

/**
 * Sends the workload to every replica in the same order with the same cbft headers, one request at
 * a time per replica (as a sidecar's executor does) over a kept-alive connection. Ids used by later
 * steps come from the first replica's answers, as a client of the firewall would see them.
 */
async function run(replicas: Running[], seedLabel: string): Promise<RawResponse[][]> {
  const agents = replicas.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const results: RawResponse[][] = replicas.map(() => []);
  const ids: string[] = [];
  try {
    const steps = workload();
    for (const [i, step] of steps.entries()) {
      const seq = i + 1;
      const headers: Record<string, string> = {
        ...cbftHeaders(seq, T0 + seq * 1000 + ((seq * 7919) % 997), seedLabel),
      };
      if (step.as !== undefined) headers.authorization = `Bearer token-${step.as}`;
      let body: string | undefined;
      if (step.body !== undefined) {
        body = typeof step.body === 'string' ? step.body : JSON.stringify(step.body);
        headers['content-type'] = step.contentType ?? 'application/json';
      }
      const target = typeof step.target === 'string' ? step.target : step.target(ids);
      const answers = await Promise.all(replicas.map((r, j) =>
        request(r.url, target, { method: step.method, headers, body, agent: agents[j] })));
      answers.forEach((a, j) => results[j]!.push(a));
      const first = answers[0]!;
      if (step.method === 'POST' && first.status === 201) ids.push(json<{ id: string }>(first).id);
    }
  } finally {
    for (const a of agents) a.destroy();
  }
  return results;
}

async function ledger(r: Running): Promise<RawResponse> {
  const res = await request(r.url, '/admin/ledger');
  expect(res.status).toBe(200);
  return res;
}

describe('bank replicas behind cbft headers', () => {
  afterAll(stopAll);

  it('with the adapter, two copies answer byte-identically (status, headers, body) and end in the same state', async () => {
    const a = await startNode(BANK, { adapter: true, env: { BANK_ADMIN: '1', TZ: 'UTC' } });
    await new Promise((r) => setTimeout(r, 150)); // the copies do not even share a start time...
    const b = await startNode(BANK, { adapter: true, env: { BANK_ADMIN: '1', TZ: 'Asia/Kolkata' } }); // ...or a zone

    const results = await run([a, b], 'replicas');
    const ra = results[0]!;
    const rb = results[1]!;
    expect(ra.length).toBe(workload().length);
    for (let i = 0; i < ra.length; i++) {
      expect(comparable(rb[i]!), `step ${i + 1}`).toEqual(comparable(ra[i]!));
    }
    // The workload exercised what matters: generated ids and timestamps, and every error class.
    const statuses = new Set(ra.map((r) => r.status));
    for (const s of [200, 201, 400, 401, 403, 404, 405, 409, 413, 415]) expect(statuses, `status ${s}`).toContain(s);
    const created = ra.filter((r) => r.status === 201).map((r) => json<{ id: string; createdAt: string }>(r));
    expect(created.length).toBeGreaterThanOrEqual(10);
    expect(new Set(created.map((t) => t.id)).size).toBe(created.length);
    expect(created[0]!.createdAt).toBe(new Date(T0 + 2 * 1000 + ((2 * 7919) % 997)).toISOString());

    const [la, lb] = [await ledger(a), await ledger(b)];
    expect(lb.body.equals(la.body)).toBe(true);
    expect(json<{ count: number }>(la).count).toBe(created.length);
  });

  it('a copy started later and replaying the same sequence reproduces the same answers', async () => {
    const first = await startNode(BANK, { adapter: true });
    const r1 = (await run([first], 'replay'))[0]!;
    await first.stop();
    const second = await startNode(BANK, { adapter: true });
    const r2 = (await run([second], 'replay'))[0]!;
    expect(r2.map(comparable)).toEqual(r1.map(comparable));
  });

  it('without the adapter the same experiment shows differences (the comparison has teeth)', async () => {
    const [c, d] = await Promise.all([
      startNode(BANK, { env: { BANK_ADMIN: '1' } }),
      startNode(BANK, { env: { BANK_ADMIN: '1' } }),
    ]);
    const results = await run([c, d], 'replicas');
    const rc = results[0]!;
    const rd = results[1]!;
    const differing = rc.map((r, i) => i).filter((i) =>
      JSON.stringify(comparable(rc[i]!)) !== JSON.stringify(comparable(rd[i]!)));
    const created = rc.filter((r) => r.status === 201).length;
    expect(created).toBeGreaterThanOrEqual(10);
    // Every 201 differs (transfer id, Location, createdAt), and so do the reads of those ids.
    expect(differing.length).toBeGreaterThanOrEqual(created);
    const [lc, ld] = [await ledger(c), await ledger(d)];
    expect(lc.body.equals(ld.body)).toBe(false);
  });

  it('with the adapter but different seeds, the generated ids differ (the seed is what they depend on)', async () => {
    const [a, b] = await Promise.all([startNode(BANK, { adapter: true }), startNode(BANK, { adapter: true })]);
    const [resultsA, resultsB] = await Promise.all([run([a], 'seed-one'), run([b], 'seed-two')]);
    const ra = resultsA[0]!;
    const rb = resultsB[0]!;
    const idsA = ra.filter((r) => r.status === 201).map((r) => json<{ id: string }>(r).id);
    const idsB = rb.filter((r) => r.status === 201).map((r) => json<{ id: string }>(r).id);
    expect(idsA.length).toBe(idsB.length);
    expect(idsA.filter((id, i) => id === idsB[i])).toEqual([]);
  });
});
