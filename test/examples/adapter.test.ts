// Process-level tests of adapters/node-deterministic.cjs: a plain node:http probe server
// (test/examples/fixtures/probe-server.mjs) runs with NODE_OPTIONS=--require <adapter>, exactly as
// an operator would deploy it, and reports what its clocks and random sources returned.

import { execFileSync } from 'node:child_process';
import { createCipheriv, createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PROBE, ROOT, cbftHeaders, comparable, json, request, seedHex, startNode, stopAll, type Running,
} from './helpers.js';

interface Snapshot {
  dateNow: number;
  newDate: number;
  dateString: string;
  dateStringArgsIgnored: string;
  random: number[];
  uuid: string[];
  uuidNoCache: string;
  webUuid: string;
  cjsUuid: string;
  bytes: string;
  cjsBytes: string;
  bytesZero: number;
  fillSync: string;
  fillSyncRegion: number[];
  fillSyncArrayBuffer: string;
  getRandomValues: string;
  getRandomValues32: number[];
  nodeGetRandomValues: string;
  webcryptoGetRandomValues: string;
  randomInt: number[];
  semantics: Record<string, unknown>;
  context: { timestamp: number; sequence?: string } | null;
}

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TS = 1_767_225_600_123;

function stream(seed: string, label: string, n: number): Buffer {
  const key = createHmac('sha256', Buffer.from(seed, 'hex')).update(`cbft-adapter/v1/${label}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}
function uuidAt(b: Buffer, i: number): string {
  const u = Buffer.from(b.subarray(16 * i, 16 * i + 16));
  u[6] = (u[6]! & 0x0f) | 0x40;
  u[8] = (u[8]! & 0x3f) | 0x80;
  const h = u.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const headersFor = (seq: number, ts = TS, label = 'probe'): Record<string, string> => cbftHeaders(seq, ts, label);

async function snapshot(p: Running, headers: Record<string, string> = {}): Promise<Snapshot> {
  const res = await request(p.url, '/sync', { headers });
  expect(res.status, res.body.toString()).toBe(200);
  return json<Snapshot>(res);
}

describe('node-deterministic adapter in real processes', () => {
  let withA: Running;
  let withB: Running;
  let plain: Running;
  let startedAt = 0;
  let listeningAt = 0;

  beforeAll(async () => {
    startedAt = Date.now();
    [withA, plain] = await Promise.all([
      startNode(PROBE, { adapter: true }),
      startNode(PROBE, { adapter: false }),
    ]);
    listeningAt = Date.now();
    withB = await startNode(PROBE, { adapter: true });
  });
  afterAll(stopAll);

  it('serves every patched source from the headers, following the documented derivation', async () => {
    const h = headersFor(7);
    const seed = h['cbft-seed']!;
    const s = await snapshot(withA, h);

    expect(s.dateNow).toBe(TS);
    expect(s.newDate).toBe(TS);
    expect(s.dateString).toBe(new Date(TS).toString());
    expect(s.dateStringArgsIgnored).toBe(new Date(TS).toString());

    const math = stream(seed, 'math', 24);
    expect(s.random).toEqual([0, 1, 2].map((i) =>
      (math.readUInt32BE(8 * i) * 2 ** 21 + (math.readUInt32BE(8 * i + 4) >>> 11)) / 2 ** 53));

    const uuids = stream(seed, 'uuid', 16 * 5);
    expect([...s.uuid, s.uuidNoCache, s.webUuid, s.cjsUuid]).toEqual([0, 1, 2, 3, 4].map((i) => uuidAt(uuids, i)));
    for (const u of s.uuid) expect(u).toMatch(UUID_V4);

    // Call order in the probe: region(8) bytes(16) cjsBytes(4) bytes(0) fillSync(8) arrayBuffer(4)
    // getRandomValues(8) getRandomValues32(8) node getRandomValues(8) webcrypto getRandomValues(8).
    const b = stream(seed, 'bytes', 72);
    expect(s.fillSyncRegion).toEqual([0, b.readUInt32LE(0), b.readUInt32LE(4), 0]);
    expect(s.bytes).toBe(b.subarray(8, 24).toString('hex'));
    expect(s.cjsBytes).toBe(b.subarray(24, 28).toString('hex'));
    expect(s.bytesZero).toBe(0);
    expect(s.fillSync).toBe(b.subarray(28, 36).toString('hex'));
    expect(s.fillSyncArrayBuffer).toBe(b.subarray(36, 40).toString('hex'));
    expect(s.getRandomValues).toBe(b.subarray(40, 48).toString('hex'));
    expect(s.getRandomValues32).toEqual([b.readUInt32LE(48), b.readUInt32LE(52)]);
    expect(s.nodeGetRandomValues).toBe(b.subarray(56, 64).toString('hex'));
    expect(s.webcryptoGetRandomValues).toBe(b.subarray(64, 72).toString('hex'));

    expect(s.randomInt[0]).toBeGreaterThanOrEqual(0);
    expect(s.randomInt[0]).toBeLessThan(1000);
    expect(s.randomInt[1]).toBeGreaterThanOrEqual(10);
    expect(s.randomInt[1]).toBeLessThan(20);

    expect(s.semantics).toEqual({
      withArg: '1970-01-02T00:00:00.000Z',
      withString: 1_582_977_600_000,
      withParts: 2021,
      parse: 1_577_836_800_000,
      utc: 1_577_836_800_000,
      instanceOf: true,
      constructorIsDate: true,
      tag: '[object Date]',
      subclass: true,
      invalid: true,
      undefinedArg: true,
    });
    expect(s.context).toEqual({ timestamp: TS, sequence: '7' });
  });

  it('two processes give identical values for the same headers, and every request starts afresh', async () => {
    const h = headersFor(11);
    const [a, b] = await Promise.all([snapshot(withA, h), snapshot(withB, h)]);
    expect(b).toEqual(a);
    expect(await snapshot(withA, h)).toEqual(a); // same headers again: same values
    expect(new Set(a.random).size).toBe(3); // successive calls within one request differ
    expect(a.uuid[0]).not.toBe(a.uuid[1]);

    const otherSeed = await snapshot(withA, headersFor(11, TS, 'other'));
    expect(otherSeed.dateNow).toBe(TS);
    expect(otherSeed.uuid).not.toEqual(a.uuid);
    expect(otherSeed.bytes).not.toBe(a.bytes);
    expect(otherSeed.random).not.toEqual(a.random);

    const otherTime = await snapshot(withA, headersFor(11, TS + 60_000));
    expect(otherTime.dateNow).toBe(TS + 60_000);
    expect(otherTime.uuid).toEqual(a.uuid); // randomness depends on the seed only
  });

  it('keeps the context across the request body events, await, timers, nextTick, fs and emitters', async () => {
    const h = headersFor(12);
    const body = 'x'.repeat(200_000); // several 'data' events
    const [ra, rb] = await Promise.all([
      request(withA.url, '/async', { method: 'POST', headers: h, body, chunked: true }),
      request(withB.url, '/async', { method: 'POST', headers: h, body }),
    ]);
    expect(ra.status, ra.body.toString()).toBe(200);
    const a = json<Record<string, unknown> & { body: { dataNow: number[]; endNow: number; endUuid: string } }>(ra);
    const b = json<typeof a>(rb);
    expect(a.body.dataNow.length).toBeGreaterThan(0);
    expect(new Set(a.body.dataNow)).toEqual(new Set([TS]));
    expect(a.body.endNow).toBe(TS);
    for (const k of ['afterAwait', 'afterSleep', 'setTimeout', 'setImmediate', 'nextTick', 'queueMicrotask',
      'thenChain', 'fsCallback', 'emitter']) {
      expect(a[k], k).toBe(TS);
    }
    // Random values drawn after timers and in callback forms are the same in both processes.
    const { body: bodyA, ...restA } = a;
    const { body: bodyB, ...restB } = b;
    expect(restB).toEqual(restA);
    expect(bodyB.endUuid).toBe(bodyA.endUuid);
    expect(a.randomBytesCb).toMatch(/^[0-9a-f]{16}$/);
    expect(String(a.randomFillOffsetCb).slice(0, 4)).toBe('0000');
    expect(String(a.randomFillOffsetSizeCb)).toMatch(/^0000[0-9a-f]{6}000000$/);
  });

  it('requests without cbft headers behave exactly as without the adapter', async () => {
    const before = Date.now();
    const [s1, s2] = [await snapshot(withA), await snapshot(withA)];
    const after = Date.now();
    for (const s of [s1, s2]) {
      expect(s.dateNow).toBeGreaterThanOrEqual(before - 5);
      expect(s.dateNow).toBeLessThanOrEqual(after + 5);
      expect(s.context).toBeNull();
    }
    expect(s1.uuid).not.toEqual(s2.uuid);
    expect(s1.bytes).not.toBe(s2.bytes);
    expect(s1.random).not.toEqual(s2.random);
  });

  it('startup code and background timers use the real clock and real randomness', async () => {
    const startup = json<{ dateNow: number; newDate: number; uuid: string }>(
      await request(withA.url, '/startup', { headers: headersFor(13) }),
    );
    expect(startup.dateNow).toBeGreaterThanOrEqual(startedAt - 5);
    expect(startup.dateNow).toBeLessThanOrEqual(listeningAt + 5);
    expect(startup.uuid).toMatch(UUID_V4);

    const before = Date.now();
    const res = json<{ background: { dateNow: number; uuid: string }; now: number }>(
      await request(withA.url, '/background', { headers: headersFor(14) }),
    );
    expect(res.now).toBe(TS);
    expect(res.background.dateNow).toBeGreaterThanOrEqual(before - 5);
    const again = json<typeof res>(await request(withB.url, '/background', { headers: headersFor(14) }));
    expect(again.background.uuid).not.toBe(res.background.uuid);
  });

  it('does not leak a context into the next request on a kept-alive connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await request(withA.url, '/sync', { headers: headersFor(15), agent });
      const second = await request(withA.url, '/sync', { agent });
      const third = await request(withA.url, '/sync', { headers: headersFor(16), agent });
      expect(second.reusedSocket).toBe(true);
      expect(third.reusedSocket).toBe(true);
      expect(json<Snapshot>(first).dateNow).toBe(TS);
      const s2 = json<Snapshot>(second);
      expect(s2.context).toBeNull();
      expect(Math.abs(s2.dateNow - Date.now())).toBeLessThan(5000);
      expect(json<Snapshot>(third)).toEqual(await snapshot(withB, headersFor(16)));
    } finally {
      agent.destroy();
    }
  });

  it('malformed or partial headers: the request runs without the adapter and a warning is logged', async () => {
    const bad: Record<string, string>[] = [
      { 'cbft-timestamp': String(TS) },
      { 'cbft-timestamp': 'yesterday', 'cbft-seed': seedHex('x') },
      { 'cbft-timestamp': String(TS), 'cbft-seed': 'zz' },
    ];
    for (const headers of bad) {
      const s = await snapshot(withA, headers);
      expect(s.context).toBeNull();
      expect(Math.abs(s.dateNow - Date.now())).toBeLessThan(5000);
    }
    expect(withA.output()).toMatch(/CBFT_BAD_HEADERS/);
  });

  it('strict mode (CBFT_DETERMINISTIC_STRICT=1) answers malformed headers with a fixed 400', async () => {
    const strict = await startNode(PROBE, { adapter: true, env: { CBFT_DETERMINISTIC_STRICT: '1' } });
    try {
      const res = await request(strict.url, '/sync', { headers: { 'cbft-timestamp': String(TS) } });
      expect(res.status).toBe(400);
      expect(json(res)).toEqual({ error: 'cbft_bad_headers', message: 'cbft-seed must be 64 hex characters' });
      expect((await request(strict.url, '/sync', { headers: headersFor(1) })).status).toBe(200);
      expect(json<Snapshot>(await request(strict.url, '/sync')).context).toBeNull();
    } finally {
      await strict.stop();
    }
  });

  it('monotonic clocks are real by default and virtual with CBFT_DETERMINISTIC_MONOTONIC=1', async () => {
    interface Mono { p1: number; p2: number; b1: string; t: [number, number]; diff: [number, number] }
    const real = json<Mono>(await request(withA.url, '/monotonic', { headers: headersFor(20) }));
    expect(real.p1).toBeLessThan(TS);
    expect(real.diff[0] * 1e9 + real.diff[1]).toBeGreaterThanOrEqual(2_000_000);

    const mono = await startNode(PROBE, { adapter: true, env: { CBFT_DETERMINISTIC_MONOTONIC: '1' } });
    try {
      const a = json<Mono>(await request(mono.url, '/monotonic', { headers: headersFor(20) }));
      const b = json<Mono>(await request(mono.url, '/monotonic', { headers: headersFor(20) }));
      expect(b).toEqual(a);
      expect(a.p1).toBe(TS + 0.001);
      expect(a.p2).toBe(TS + 0.002);
      expect(a.b1).toBe((BigInt(TS) * 1_000_000n + 3000n).toString());
      expect(a.t).toEqual([Math.floor(TS / 1000), (TS % 1000) * 1e6 + 4000]);
      expect(a.diff).toEqual([0, 1000]);
      const outside = json<Mono>(await request(mono.url, '/monotonic'));
      expect(outside.p1).toBeLessThan(TS);
    } finally {
      await mono.stop();
    }
  });

  it('without the adapter the same headers change nothing (the tests above have teeth)', async () => {
    const h = headersFor(30);
    const [a, b] = [await snapshot(plain, h), await snapshot(plain, h)];
    expect(a.dateNow).not.toBe(TS);
    expect(a.context).toBeNull();
    expect(a.uuid).not.toEqual(b.uuid);
    expect(a.bytes).not.toBe(b.bytes);
    expect(json(await request(plain.url, '/adapter'))).toBeNull();
  });
});

describe('frameworks on top of node:http', () => {
  afterAll(stopAll);

  it('a Fastify app (hooks, async handlers, JSON body parsing, reply headers) answers identically', async () => {
    const script = path.join(ROOT, 'test', 'examples', 'fixtures', 'fastify-server.mjs');
    const [a, b, plain] = await Promise.all([
      startNode(script, { adapter: true }),
      startNode(script, { adapter: true }),
      startNode(script),
    ]);
    const send = (r: Running, seq: number) => request(r.url, '/items', {
      method: 'POST',
      headers: { ...headersFor(seq), 'content-type': 'application/json' },
      body: JSON.stringify({ n: seq, text: 'grüße' }),
    });
    for (const seq of [1, 2, 3]) {
      const [ra, rb] = await Promise.all([send(a, seq), send(b, seq)]);
      expect(ra.status, ra.body.toString()).toBe(201);
      expect(comparable(rb)).toEqual(comparable(ra));
      const body = json<{ id: string; startedAt: number; createdAt: string; echo: unknown }>(ra);
      expect(body.startedAt).toBe(TS);
      expect(body.createdAt).toBe(new Date(TS).toISOString());
      expect(body.echo).toEqual({ n: seq, text: 'grüße' });
    }
    const [p1, p2] = [await send(plain, 1), await send(plain, 1)];
    expect(comparable(p2)).not.toEqual(comparable(p1));
  });
});

// Needs the openssl binary to make a throw-away certificate; .ci/run installs it.
describe('node:https servers', () => {
  let dir = '';
  afterAll(async () => {
    await stopAll();
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  });

  it('are hooked the same way', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cbft-adapter-tls-'));
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore', timeout: 20_000 });
    const ca = fs.readFileSync(cert, 'utf8');
    const env = { TLS_KEY: key, TLS_CERT: cert };
    const [a, b] = await Promise.all([
      startNode(PROBE, { adapter: true, env }),
      startNode(PROBE, { adapter: true, env }),
    ]);
    expect(a.url.startsWith('https://')).toBe(true);
    const h = headersFor(40);
    const [ra, rb] = await Promise.all([
      request(a.url, '/sync', { headers: h, ca }),
      request(b.url, '/sync', { headers: h, ca }),
    ]);
    const sa = json<Snapshot>(ra);
    expect(sa.dateNow).toBe(TS);
    expect(json<Snapshot>(rb)).toEqual(sa);
    expect(sa.uuid[0]).toBe(uuidAt(stream(h['cbft-seed']!, 'uuid', 16), 0));
  });
});
