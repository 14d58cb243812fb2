import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { toHex } from '../../src/codec/binary.js';
import { call, expectSigned, header, metricsOf, metricValue, rawExchange, chainsPerTest, waitFor } from './helpers.js';

const { cleanups, setup } = chainsPerTest();

describe('a chain of 2 with fake replicas (shared cluster)', () => {
  let env: Awaited<ReturnType<typeof setup>>;
  beforeAll(async () => {
    env = await setup({}, { batchDelayMs: 5 });
    const keep = cleanups.splice(0);
    afterAllCleanups.push(...keep);
  });
  const afterAllCleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of afterAllCleanups) await c();
  });

  it('answers GET and POST with the signed reply only, and the reply verifies', async () => {
    const get = await call(env.url(), '/accounts/1?verbose=yes', { headers: { accept: 'application/json', 'x-not-forwarded': '1' } });
    expect(get.status).toBe(200);
    const check = expectSigned(env.tc, get);
    expect(get.json()).toMatchObject({ method: 'GET', target: '/accounts/1?verbose=yes', headers: { accept: 'application/json' } });
    expect(get.json().headers).not.toHaveProperty('x-not-forwarded');
    // The service's date, x-powered-by and set-cookie were dropped before signing; nothing else leaks.
    expect(get.headers.map(([n]) => n).sort()).toEqual(
      ['cache-control', 'cbft-nonce', 'cbft-proof', 'cbft-request-digest', 'cbft-signature', 'connection', 'content-length', 'content-type', 'keep-alive'].sort(),
    );
    expect(header(get, 'cbft-nonce')).toMatch(/^[0-9a-f]{32}$/);
    expect(header(get, 'cbft-request-digest')).toBe(check.ok ? check.requestDigest : '');
    expect(Buffer.from(header(get, 'cbft-proof')!, 'base64')).toHaveLength(env.tc.cluster.merkleDepth * 32);
    expect(Buffer.from(header(get, 'cbft-signature')!, 'base64')).toHaveLength(48);

    const nonce = toHex(randomBytes(16));
    const post = await call(env.url(), '/transfer', { method: 'POST', headers: { 'content-type': 'application/json', 'cbft-nonce': nonce }, body: '{"amount":5}' });
    expect(post.status).toBe(200);
    expectSigned(env.tc, post);
    expect(header(post, 'cbft-nonce')).toBe(nonce);
    expect(post.json()).toMatchObject({ method: 'POST', body: '{"amount":5}', headers: { 'content-type': 'application/json' } });
  });

  it('passes signed non-200 statuses through and verifies them', async () => {
    const r = await call(env.url(), '/status/404');
    expect(r.status).toBe(404);
    expectSigned(env.tc, r);
  });

  it('serves HEAD and keeps connections alive across requests (pipelined too)', async () => {
    const host = new URL(env.url()).host;
    const { responses, closed } = await rawExchange(
      env.url(),
      [
        `GET /one HTTP/1.1\r\nhost: ${host}\r\n\r\n`,
        `HEAD /two HTTP/1.1\r\nhost: ${host}\r\n\r\n`,
        `POST /three HTTP/1.1\r\nhost: ${host}\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
      ],
      [false, true, false],
    );
    expect(closed).toBe(false);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(JSON.parse(responses[0]!.body.toString())).toMatchObject({ target: '/one' });
    expect(responses[1]!.body).toHaveLength(0);
    expect(responses[1]!.head).toMatch(/cbft-signature: /);
    // HEAD: content-length is that of the signed body, which is empty (the service sent none).
    expect(responses[1]!.head).toMatch(/\r\ncontent-length: 0(\r\n|$)/i);
    expect(JSON.parse(responses[2]!.body.toString())).toMatchObject({ method: 'POST', target: '/three', body: 'abc' });
    for (const [i, r] of responses.entries()) {
      expect(r.head).toMatch(/\r\nConnection: keep-alive/i);
      if (i !== 1) expectSigned(env.tc, { status: r.status, headers: r.headers, body: r.body, json: () => ({}) });
    }
  });

  it('refuses malformed requests with 400 and fixed JSON errors', async () => {
    const badNonce = await call(env.url(), '/x', { headers: { 'cbft-nonce': 'not-hex' } });
    expect(badNonce.status).toBe(400);
    expect(badNonce.json()).toEqual({ error: 'malformed_request', message: expect.any(String) });
    expect(header(badNonce, 'cbft-signature')).toBeUndefined();
    const host = new URL(env.url()).host;
    // absolute-form is accepted for http(s) only (front.test.ts); another scheme cannot be represented.
    const { responses } = await rawExchange(env.url(), [`GET ftp://elsewhere/abs HTTP/1.1\r\nhost: ${host}\r\n\r\n`]);
    expect(responses[0]!.status).toBe(400);
    expect(JSON.parse(responses[0]!.body.toString())).toMatchObject({ error: 'malformed_request' });
    const garbage = await rawExchange(env.url(), ['NOT HTTP AT ALL\r\n\r\n']);
    expect(garbage.responses[0]!.status).toBe(400);
    expect(garbage.closed).toBe(true);
  });

  it('enforces the body limit (413, connection closed) and the header limit (431)', async () => {
    const limit = env.tc.cluster.service.maxRequestBodyBytes;
    const big = await call(env.url(), '/upload', { method: 'POST', body: Buffer.alloc(limit + 1, 97) });
    expect(big.status).toBe(413);
    expect(big.json()).toMatchObject({ error: 'body_too_large' });
    const host = new URL(env.url()).host;
    const chunked = await rawExchange(env.url(), [
      `POST /up HTTP/1.1\r\nhost: ${host}\r\ntransfer-encoding: chunked\r\n\r\n${(limit + 10).toString(16)}\r\n${'b'.repeat(limit + 10)}\r\n0\r\n\r\n`,
    ]);
    expect(chunked.responses[0]!.status).toBe(413);
    expect(chunked.closed).toBe(true);
    const fat = await rawExchange(env.url(), [`GET / HTTP/1.1\r\nhost: ${host}\r\nx-big: ${'h'.repeat(env.tc.cluster.firewall.maxHeaderBytes + 10)}\r\n\r\n`]);
    expect(fat.responses[0]!.status).toBe(431);
    expect(JSON.parse(fat.responses[0]!.body.toString())).toMatchObject({ error: 'headers_too_large' });
  });

  it('the same nonce and request twice through one chain is queued twice, answered twice, executed once', async () => {
    const nonce = toHex(randomBytes(16));
    const [a, b] = await Promise.all([
      call(env.url(), '/dup', { headers: { 'cbft-nonce': nonce } }),
      call(env.url(), '/dup', { headers: { 'cbft-nonce': nonce } }),
    ]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.body.equals(b.body)).toBe(true);
    expect(header(a, 'cbft-request-digest')).toBe(header(b, 'cbft-request-digest'));
    expect(env.replicas.executions.get(header(a, 'cbft-request-digest')!)).toBe(1);
    // A later retry with the same nonce is answered from the reply cache: still one execution.
    const c = await call(env.url(), '/dup', { headers: { 'cbft-nonce': nonce } });
    expect(c.body.equals(a.body)).toBe(true);
    expect(env.replicas.executions.get(header(a, 'cbft-request-digest')!)).toBe(1);
    const m = await metricsOf(env.nodes[0]![0]!);
    expect(metricValue(m, 'cbft_alarms_total')).toBe(0);
  });

  it('releases many concurrent requests, each with its own reply, one pairing per batch', async () => {
    const bottom = env.nodes[0]![0]!;
    const before = bottom.verifier.pairingChecks;
    const batchesBefore = env.replicas.batches();
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => call(env.url(), `/many/${i}`)));
    results.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ target: `/many/${i}` });
    });
    expect(bottom.verifier.pairingChecks - before).toBeLessThanOrEqual(env.replicas.batches() - batchesBefore);
    expect(env.replicas.batches() - batchesBefore).toBeLessThan(24);
  });

  it('exposes metrics and readiness on the admin port', async () => {
    const bottom = env.tc.cluster.chains[0]![0]!;
    const ready = await request(bottom.adminUrl + '/readyz');
    expect(ready.statusCode).toBe(200);
    await ready.body.dump();
    const metrics = await (await request(bottom.adminUrl + '/metrics')).body.text();
    expect(metricValue(metrics, 'cbft_firewall_requests_total')).toBeGreaterThan(0);
    expect(metricValue(metrics, 'cbft_firewall_releases_total', { outcome: 'reply' })).toBeGreaterThan(0);
    expect(metrics).toMatch(/cbft_firewall_queue_depth\{[^}]*\} 0/);
    expect(metricValue(metrics, 'cbft_firewall_verify_seconds_count')).toBeGreaterThan(0);
    expect(metricValue(metrics, 'cbft_firewall_latency_seconds_count')).toBeGreaterThan(0);
    const top = await (await request(env.tc.cluster.chains[0]![1]!.adminUrl + '/metrics')).body.text();
    expect(metricValue(top, 'cbft_firewall_partials_total')).toBeGreaterThan(0);
    expect(metricValue(top, 'cbft_firewall_combine_seconds_count')).toBeGreaterThan(0);
  });
});

describe('chains of different shapes', () => {
  it('works through a chain of 3 (bottom, middle, top)', async () => {
    const { tc, url, nodes } = await setup({ length: 3 });
    expect(nodes[0]!.map((n) => n.role)).toEqual(['bottom', 'middle', 'top']);
    const rs = await Promise.all([call(url(), '/a'), call(url(), '/b', { method: 'DELETE' })]);
    for (const r of rs) expectSigned(tc, r);
    expect(rs[1]!.json()).toMatchObject({ method: 'DELETE', target: '/b' });
  });

  it('two chains: the same nonce through both executes once and both answers verify', async () => {
    const { tc, url, replicas } = await setup({ chains: 2 });
    const nonce = toHex(randomBytes(16));
    const init = { method: 'POST', headers: { 'cbft-nonce': nonce, 'content-type': 'text/plain' }, body: 'pay 10' };
    const [a, b] = await Promise.all([call(url(0), '/pay', init), call(url(1), '/pay', init)]);
    expectSigned(tc, a);
    expectSigned(tc, b);
    expect(a.body.equals(b.body)).toBe(true);
    const digest = header(a, 'cbft-request-digest')!;
    expect(header(b, 'cbft-request-digest')).toBe(digest);
    expect(replicas.executions.get(digest)).toBe(1);
    // Sequentially too: the second chain gets the cached reply.
    const nonce2 = toHex(randomBytes(16));
    const c = await call(url(0), '/pay', { ...init, headers: { ...init.headers, 'cbft-nonce': nonce2 } });
    const d = await call(url(1), '/pay', { ...init, headers: { ...init.headers, 'cbft-nonce': nonce2 } });
    expect(d.body.equals(c.body)).toBe(true);
    expect(replicas.executions.get(header(c, 'cbft-request-digest')!)).toBe(1);
  });
});


describe('Expect: 100-continue', () => {
  it('continues a body within the limit and refuses an oversized one before it is sent', async () => {
    const { tc, url } = await setup({ service: { maxRequestBodyBytes: 1000 } });
    const host = new URL(url()).host;
    const big = await rawExchange(url(), [`POST /big HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 5000\r\nexpect: 100-continue\r\n\r\n`]);
    expect(big.responses[0]!.status).toBe(413);
    expect(big.responses[0]!.head).not.toMatch(/100 Continue/);
    const { connect } = await import('node:net');
    const u = new URL(url());
    const socket = connect(Number(u.port), u.hostname);
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.write(`POST /small HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n`);
    await waitFor(() => got.includes('100 Continue'), 3_000, '100 Continue');
    socket.write('hello');
    await waitFor(() => got.includes('"body":"hello"'), 5_000, 'the signed answer');
    socket.destroy();
    const final = got.slice(got.indexOf('\r\n\r\n') + 4);
    const head = final.slice(0, final.indexOf('\r\n\r\n'));
    expect(head).toMatch(/^HTTP\/1\.1 200 OK/);
    const headers = head.split('\r\n').slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as [string, string]);
    expectSigned(tc, { status: 200, headers, body: Buffer.from(final.slice(final.indexOf('\r\n\r\n') + 4), 'latin1'), json: () => ({}) });
  });
});
