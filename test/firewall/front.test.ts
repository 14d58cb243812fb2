import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { toHex } from '../../src/codec/binary.js';
import { canonicalTarget, MAX_REQUEST_HEADERS } from '../../src/firewall/front.js';
import { call, captureLogs, chainsPerTest, expectSigned, header, metricsOf, metricValue, rawExchange, waitFor } from './helpers.js';

const { cleanups, setup } = chainsPerTest();

/** `n` small, distinct header fields: `<i in base 36>:` (empty values). */
const fields = (n: number) => Array.from({ length: n }, (_, i) => `${i.toString(36)}:\r\n`).join('');

describe('the bottom node HTTP front (shared chain, captured logs)', () => {
  let env: Awaited<ReturnType<typeof setup>>;
  const logs = captureLogs();
  let host: string;
  const afterAllCleanups: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    env = await setup({}, { batchDelayMs: 5 }, undefined, logs);
    afterAllCleanups.push(...cleanups.splice(0));
    host = new URL(env.url()).host;
  });
  afterAll(async () => {
    for (const c of afterAllCleanups) await c();
  });
  const bottomId = () => env.tc.cluster.chains[0]![0]!.id;
  const accessLines = () => logs.lines(bottomId(), 'request');
  const httpRequests = async () => metricValue(await metricsOf(env.nodes[0]![0]!), 'cbft_firewall_requests_total', { kind: 'http' });

  it('refuses a request with more header fields than the limit (431), instead of dropping the ones after the 2000th', async () => {
    const nonce = toHex(randomBytes(16));
    // 2100 small fields (about 12 KB, under the 16 KiB byte limit), then the client's nonce.
    const head = `GET /many-headers HTTP/1.1\r\nhost: ${host}\r\n${fields(2100)}cbft-nonce: ${nonce}\r\nauthorization: Bearer t\r\n\r\n`;
    expect(head.length).toBeLessThan(env.tc.cluster.firewall.maxHeaderBytes);
    const { responses, closed } = await rawExchange(env.url(), [head]);
    expect(responses[0]!.status).toBe(431);
    expect(JSON.parse(responses[0]!.body.toString())).toEqual({ error: 'headers_too_large', message: expect.stringContaining(String(MAX_REQUEST_HEADERS)) });
    expect(responses[0]!.head).not.toContain(nonce);
    expect(closed).toBe(true);
    expect(accessLines().at(-1)).toMatchObject({ method: 'GET', path: '/many-headers', status: 431, outcome: 'headers_too_large' });
  });

  it('accepts exactly the limit of header fields, and keeps the client nonce', async () => {
    const nonce = toHex(randomBytes(16));
    // host + cbft-nonce + (limit - 2) others = the limit.
    const head = `GET /at-limit HTTP/1.1\r\nhost: ${host}\r\n${fields(MAX_REQUEST_HEADERS - 2)}cbft-nonce: ${nonce}\r\n\r\n`;
    const { responses } = await rawExchange(env.url(), [head]);
    expect(responses[0]!.status).toBe(200);
    expect(responses[0]!.headers.find(([n]) => n === 'cbft-nonce')?.[1]).toBe(nonce);
    const over = await rawExchange(env.url(), [`GET /over HTTP/1.1\r\nhost: ${host}\r\n${fields(MAX_REQUEST_HEADERS - 1)}cbft-nonce: ${nonce}\r\n\r\n`]);
    expect(over.responses[0]!.status).toBe(431);
  });

  it('counts and logs requests the HTTP parser rejects (400, 431, broken body, CONNECT)', async () => {
    const before = await httpRequests();
    const linesBefore = accessLines().length;
    const garbage = await rawExchange(env.url(), ['NOT HTTP AT ALL\r\n\r\n']);
    expect(garbage.responses[0]!.status).toBe(400);
    const unknown = await rawExchange(env.url(), [`FROB /frob HTTP/1.1\r\nhost: ${host}\r\n\r\n`]);
    expect(unknown.responses[0]!.status).toBe(400);
    const fat = await rawExchange(env.url(), [`GET /fat HTTP/1.1\r\nhost: ${host}\r\nx-big: ${'h'.repeat(env.tc.cluster.firewall.maxHeaderBytes + 10)}\r\n\r\n`]);
    expect(fat.responses[0]!.status).toBe(431);
    const chunk = await rawExchange(env.url(), [`POST /bad-chunk HTTP/1.1\r\nhost: ${host}\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n`]);
    expect(chunk.responses[0]!.status).toBe(400);
    const tunnel = await rawExchange(env.url(), [`CONNECT example.org:443 HTTP/1.1\r\nhost: example.org:443\r\n\r\n`]);
    expect(tunnel.responses[0]!.status).toBe(400);
    expect(JSON.parse(tunnel.responses[0]!.body.toString())).toMatchObject({ error: 'malformed_request' });

    expect(await httpRequests()).toBe(before + 5);
    const lines = accessLines().slice(linesBefore);
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatchObject({ status: 400, outcome: 'malformed_request' });
    expect(lines[1]).toMatchObject({ status: 400, outcome: 'malformed_request' });
    expect(lines[2]).toMatchObject({ method: 'GET', path: '/fat', status: 431, outcome: 'headers_too_large' });
    // Reached the handler before its body broke: still one count and one line.
    expect(lines[3]).toMatchObject({ method: 'POST', path: '/bad-chunk', status: 400, outcome: 'malformed_request' });
    expect(lines[4]).toMatchObject({ method: 'CONNECT', path: 'example.org:443', status: 400, outcome: 'malformed_request' });
    for (const l of lines) expect(typeof l.ms).toBe('number');
  });

  it('answers a malformed request pipelined behind a pending one only after that one’s signed answer', async () => {
    const { responses, closed } = await rawExchange(env.url(), [`GET /first HTTP/1.1\r\nhost: ${host}\r\n\r\n`, 'BAD STUFF\r\n\r\n']);
    expect(responses.map((r) => r.status)).toEqual([200, 400]);
    expect(JSON.parse(responses[0]!.body.toString())).toMatchObject({ target: '/first' });
    expectSigned(env.tc, { status: 200, headers: responses[0]!.headers.map(([n, v]) => [n.toLowerCase(), v]), body: responses[0]!.body, json: () => ({}) });
    expect(closed).toBe(true);
  });

  it('cuts a slow client off with 408 malformed_request, and logs and counts it', async () => {
    const server = env.nodes[0]![0]!.server!;
    const [headersTimeout, requestTimeout] = [server.headersTimeout, server.requestTimeout];
    server.headersTimeout = 300;
    server.requestTimeout = 600;
    try {
      const before = await httpRequests();
      const u = new URL(env.url());
      const socket = connect(Number(u.port), u.hostname);
      let got = '';
      let ended = false;
      socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
      socket.on('end', () => (ended = true));
      socket.on('error', () => undefined);
      socket.write(`GET /slow HTTP/1.1\r\nhost: ${host}\r\n`);
      await waitFor(() => ended, 5_000, '408 and close');
      socket.destroy();
      expect(got).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(JSON.parse(got.slice(got.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: 'malformed_request' });
      expect(await httpRequests()).toBe(before + 1);
      expect(accessLines().at(-1)).toMatchObject({ status: 408, outcome: 'malformed_request' });
    } finally {
      server.headersTimeout = headersTimeout;
      server.requestTimeout = requestTimeout;
    }
  });

  it('accepts an absolute-form target and signs only its path and query', async () => {
    const nonce = toHex(randomBytes(16));
    const { responses } = await rawExchange(env.url(), [`GET http://Elsewhere.example:8080/abs/x?q=1 HTTP/1.1\r\nhost: ${host}\r\ncbft-nonce: ${nonce}\r\n\r\n`]);
    expect(responses[0]!.status).toBe(200);
    const abs = { status: 200, headers: responses[0]!.headers.map(([n, v]) => [n.toLowerCase(), v] as [string, string]), body: responses[0]!.body, json: () => ({}) };
    expectSigned(env.tc, abs);
    expect(JSON.parse(abs.body.toString())).toMatchObject({ target: '/abs/x?q=1' });
    // The same request in origin-form has the same digest (so it is the same request to PBFT).
    const origin = await call(env.url(), '/abs/x?q=1', { headers: { 'cbft-nonce': nonce } });
    expect(header(origin, 'cbft-request-digest')).toBe(header(abs, 'cbft-request-digest'));
    expect(accessLines().some((l) => l.nonce === nonce && l.path === '/abs/x?q=1' && l.status === 200)).toBe(true);
    for (const bad of ['ftp://host/x', 'http://user@host/x', 'http:///x', 'elsewhere/x']) {
      const r = await rawExchange(env.url(), [`GET ${bad} HTTP/1.1\r\nhost: ${host}\r\n\r\n`]);
      expect(r.responses[0]!.status, bad).toBe(400);
    }
  });

  it('logs status as a number and the outcome as a word at the bottom', async () => {
    const nonce = toHex(randomBytes(16));
    const r = await call(env.url(), '/word', { headers: { 'cbft-nonce': nonce } });
    expect(r.status).toBe(200);
    await waitFor(() => logs.lines(env.tc.cluster.chains[0]![1]!.id, 'request').some((l) => l.nonce === nonce), 3_000, 'top line');
    expect(accessLines().find((l) => l.nonce === nonce)).toMatchObject({ method: 'GET', path: '/word', status: 200, outcome: 'reply' });
    expect(logs.lines(env.tc.cluster.chains[0]![1]!.id, 'request').find((l) => l.nonce === nonce)).toMatchObject({ status: 200, outcome: 'reply' });
  });
});

describe('canonicalTarget', () => {
  it('keeps origin- and asterisk-form, reduces absolute-form to path and query, refuses the rest', () => {
    expect(canonicalTarget('GET', '/a?b')).toBe('/a?b');
    expect(canonicalTarget('OPTIONS', '*')).toBe('*');
    expect(canonicalTarget('GET', 'HTTPS://h:1/p/../q?x#')).toBe('/p/../q?x#');
    expect(canonicalTarget('GET', 'http://h')).toBe('/');
    expect(canonicalTarget('OPTIONS', 'http://h')).toBe('*');
    expect(canonicalTarget('GET', 'http://h?x=1')).toBe('/?x=1');
    expect(canonicalTarget('GET', 'http://[::1]:80/v6')).toBe('/v6');
    for (const bad of ['', 'h/x', 'ftp://h/x', 'http://', 'http:///x', 'http://u@h/x', 'http://h#f', 'example.org:443']) {
      expect(canonicalTarget('GET', bad), bad).toBeUndefined();
    }
  });
});

describe('middle and top nodes', () => {
  it('log status as a number (the one the client gets) and the outcome as a word', async () => {
    const logs = captureLogs();
    const { tc, url, replicas } = await setup({ length: 3, firewall: { requestTimeoutMs: 1_000, retransmitMs: 100 } }, {}, undefined, logs);
    const ids = tc.cluster.chains[0]!.map((n) => n.id);
    const ok = toHex(randomBytes(16));
    expect((await call(url(), '/ok', { headers: { 'cbft-nonce': ok } })).status).toBe(200);
    replicas.update({ silent: [0, 1, 2, 3] });
    const lost = toHex(randomBytes(16));
    const r = await call(url(), '/lost', { headers: { 'cbft-nonce': lost } });
    expect(r.status).toBe(504);
    for (const id of ids) {
      await waitFor(() => logs.lines(id, 'request').some((l) => l.nonce === lost), 3_000, `${id} line`);
      const lines = logs.lines(id, 'request');
      expect(lines.find((l) => l.nonce === ok), id).toMatchObject({ path: '/ok', status: 200, outcome: 'reply' });
      expect(lines.find((l) => l.nonce === lost), id).toMatchObject({ path: '/lost', status: 504, outcome: 'timeout' });
    }
  });
});
