// In-process unit tests of adapters/node-deterministic.cjs: the adapter is loaded into this test
// worker (as --require would) and driven through its small API (run/exit/current/parseHeaders).
// Process-level behaviour (HTTP hooking, NODE_OPTIONS, ESM imports) is in adapter.test.ts.

import * as nodeCrypto from 'node:crypto';
import { createCipheriv, createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ADAPTER, seedHex } from './helpers.js';

interface Context {
  timestamp: number;
  sequence: string | undefined;
}
interface Adapter {
  version: number;
  headers: { sequence: string; timestamp: string; seed: string };
  options: { strict: boolean; monotonic: boolean };
  parseHeaders(headers: unknown): { context?: Context; error?: string };
  run<T>(init: unknown, fn: () => T): T;
  exit<T>(fn: () => T): T;
  current(): Context | undefined;
  realNow(): number;
}

const require = createRequire(import.meta.url);
const RealDateBefore = Date;
const adapter = require(ADAPTER) as Adapter;
// node:crypto as CommonJS sees it (the namespace import above is the ESM view of the same module).
const cjsCrypto = require('node:crypto') as typeof import('node:crypto');

const SEED = seedHex('unit');
const TS = 1_767_225_600_123; // 2026-01-01T00:00:00.123Z
const ctx = { timestamp: TS, seed: SEED };

/** The documented derivation: AES-256-CTR keystream under HMAC-SHA256(seed, prefix + label). */
function stream(seed: string, label: string, n: number): Buffer {
  const key = createHmac('sha256', Buffer.from(seed, 'hex')).update(`cbft-adapter/v1/${label}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}
function expectedRandom(b: Buffer, i: number): number {
  return (b.readUInt32BE(8 * i) * 2 ** 21 + (b.readUInt32BE(8 * i + 4) >>> 11)) / 2 ** 53;
}
function expectedUuid(b: Buffer, i: number): string {
  const u = Buffer.from(b.subarray(16 * i, 16 * i + 16));
  u[6] = (u[6]! & 0x0f) | 0x40;
  u[8] = (u[8]! & 0x3f) | 0x80;
  const h = u.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function errorOf(fn: () => unknown): { name: string; code: unknown } {
  try {
    fn();
  } catch (e) {
    const err = e as { name: string; code?: unknown };
    return { name: err.name, code: err.code };
  }
  return { name: 'none', code: undefined };
}

describe('loading', () => {
  it('installs once and exposes the same API through the global symbol', () => {
    const sym = Symbol.for('cbft.adapter.node-deterministic');
    expect((globalThis as Record<symbol, unknown>)[sym]).toBe(adapter);
    delete require.cache[require.resolve(ADAPTER)];
    expect(require(ADAPTER)).toBe(adapter);
    expect(adapter.version).toBe(1);
    expect(adapter.headers).toEqual({ sequence: 'cbft-sequence', timestamp: 'cbft-timestamp', seed: 'cbft-seed' });
    expect(Date).not.toBe(RealDateBefore);
  });
});

describe('parseHeaders: the header contract', () => {
  const seed = 'a'.repeat(64);
  it('accepts decimal ms and 64 hex chars, with an optional sequence', () => {
    const p = adapter.parseHeaders({ 'cbft-timestamp': '1700000000000', 'cbft-seed': seed, 'cbft-sequence': '42' });
    expect(p.error).toBeUndefined();
    expect(p.context?.timestamp).toBe(1_700_000_000_000);
    expect(p.context?.sequence).toBe('42');
    expect(adapter.parseHeaders({ 'cbft-timestamp': '0', 'cbft-seed': seed.toUpperCase() }).context?.timestamp).toBe(0);
    expect(adapter.parseHeaders({ 'cbft-timestamp': '8640000000000000', 'cbft-seed': seed }).context).toBeDefined();
  });
  it('reads WHATWG Headers too', () => {
    const h = new Headers({ 'CBFT-Timestamp': '5', 'cbft-seed': seed });
    expect(adapter.parseHeaders(h).context?.timestamp).toBe(5);
  });
  it('treats absent headers as absent', () => {
    expect(adapter.parseHeaders({})).toEqual({});
    expect(adapter.parseHeaders({ 'cbft-sequence': '3', host: 'x' })).toEqual({});
  });
  it.each([
    ['only a timestamp', { 'cbft-timestamp': '1' }],
    ['only a seed', { 'cbft-seed': seed }],
    ['negative timestamp', { 'cbft-timestamp': '-1', 'cbft-seed': seed }],
    ['fractional timestamp', { 'cbft-timestamp': '1.5', 'cbft-seed': seed }],
    ['timestamp beyond the Date range', { 'cbft-timestamp': '8640000000000001', 'cbft-seed': seed }],
    ['hex timestamp', { 'cbft-timestamp': '0x10', 'cbft-seed': seed }],
    ['empty timestamp', { 'cbft-timestamp': '', 'cbft-seed': seed }],
    ['short seed', { 'cbft-timestamp': '1', 'cbft-seed': seed.slice(1) }],
    ['long seed', { 'cbft-timestamp': '1', 'cbft-seed': seed + 'a' }],
    ['non-hex seed', { 'cbft-timestamp': '1', 'cbft-seed': 'g'.repeat(64) }],
    ['duplicated header (array)', { 'cbft-timestamp': ['1', '2'], 'cbft-seed': seed }],
  ])('rejects %s', (_name, headers) => {
    const p = adapter.parseHeaders(headers);
    expect(p.context).toBeUndefined();
    expect(p.error).toMatch(/cbft-(timestamp|seed)/);
  });
  it('run() refuses a malformed context instead of silently using real randomness', () => {
    expect(() => adapter.run({ timestamp: 1, seed: 'nope' }, () => 0)).toThrow(TypeError);
    expect(() => adapter.run({}, () => 0)).toThrow(TypeError);
  });
});

describe('outside any request context', () => {
  it('behaves like the unpatched runtime', () => {
    expect(adapter.current()).toBeUndefined();
    const before = adapter.realNow();
    const now = Date.now();
    const d = new Date().getTime();
    const after = adapter.realNow();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(d).toBeLessThanOrEqual(after);
    expect(Math.abs(now - RealDateBefore.now())).toBeLessThan(1000);
    expect(typeof Date()).toBe('string');
    expect(Math.random()).not.toBe(Math.random());
    expect(nodeCrypto.randomUUID()).not.toBe(nodeCrypto.randomUUID());
    expect(globalThis.crypto.randomUUID()).not.toBe(globalThis.crypto.randomUUID());
    expect(cjsCrypto.randomBytes(16).equals(cjsCrypto.randomBytes(16))).toBe(false);
  });
  it('exit() leaves a context for the real clock', () => {
    adapter.run(ctx, () => {
      expect(Date.now()).toBe(TS);
      expect(adapter.exit(() => Date.now())).not.toBe(TS);
      expect(adapter.exit(() => adapter.current())).toBeUndefined();
    });
  });
});

describe('inside a context: every patched source', () => {
  it('Date: no-argument forms return the timestamp, everything else is native', () => {
    adapter.run(ctx, () => {
      expect(Date.now()).toBe(TS);
      expect(new Date().getTime()).toBe(TS);
      expect(new Date().toISOString()).toBe('2026-01-01T00:00:00.123Z');
      expect(Date()).toBe(new RealDateBefore(TS).toString());
      expect((Date as unknown as (x: number) => string)(0)).toBe(new RealDateBefore(TS).toString());
      expect(new Date(0).getTime()).toBe(0);
      expect(new Date('2020-02-29T12:00:00Z').getTime()).toBe(1_582_977_600_000);
      expect(new Date(2020, 1, 29).getDate()).toBe(29);
      expect(Number.isNaN(new Date(undefined as unknown as number).getTime())).toBe(true);
      expect(Date.parse('2020-01-01T00:00:00Z')).toBe(1_577_836_800_000);
      expect(Date.UTC(2020, 0, 1)).toBe(1_577_836_800_000);
      expect(new Date() instanceof Date).toBe(true);
      expect(new RealDateBefore() instanceof Date).toBe(true);
      expect(new Date() instanceof RealDateBefore).toBe(true);
      expect(new Date().constructor).toBe(Date);
      expect(Object.prototype.toString.call(new Date())).toBe('[object Date]');
      class Sub extends Date {}
      const s = new Sub();
      expect(s instanceof Sub && s instanceof Date).toBe(true);
      expect(s.getTime()).toBe(TS);
      expect(new Sub(7).getTime()).toBe(7);
    });
    expect(Date.name).toBe('Date');
    expect(Date.length).toBe(7);
    expect(Date.prototype).toBe(RealDateBefore.prototype);
  });

  it('Math.random: the documented "math" stream, uniform in [0, 1)', () => {
    const expected = stream(SEED, 'math', 24);
    adapter.run(ctx, () => {
      expect([Math.random(), Math.random(), Math.random()]).toEqual([0, 1, 2].map((i) => expectedRandom(expected, i)));
    });
    const draws = adapter.run(ctx, () => Array.from({ length: 4000 }, () => Math.random()));
    expect(draws.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(new Set(draws).size).toBe(draws.length);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(mean).toBeGreaterThan(0.47);
    expect(mean).toBeLessThan(0.53);
  });

  it('randomUUID (node:crypto, ESM and CJS views, and webcrypto) share the "uuid" stream', () => {
    const expected = stream(SEED, 'uuid', 16 * 5);
    const got = adapter.run(ctx, () => [
      nodeCrypto.randomUUID(),
      cjsCrypto.randomUUID(),
      nodeCrypto.randomUUID({ disableEntropyCache: true }),
      globalThis.crypto.randomUUID(),
      cjsCrypto.webcrypto.randomUUID(),
    ]);
    expect(got).toEqual([0, 1, 2, 3, 4].map((i) => expectedUuid(expected, i)));
    for (const u of got) expect(u).toMatch(UUID_V4);
  });

  it('randomBytes / randomFillSync / getRandomValues draw from the "bytes" stream in call order', () => {
    const expected = stream(SEED, 'bytes', 64);
    adapter.run(ctx, () => {
      expect(nodeCrypto.randomBytes(5).equals(expected.subarray(0, 5))).toBe(true);
      expect(nodeCrypto.randomBytes(0).length).toBe(0);
      expect(cjsCrypto.randomBytes(1.9).equals(expected.subarray(5, 6))).toBe(true); // node truncates sizes
      const buf = Buffer.alloc(10);
      nodeCrypto.randomFillSync(buf, 2, 4);
      expect(buf.equals(Buffer.concat([Buffer.alloc(2), expected.subarray(6, 10), Buffer.alloc(4)]))).toBe(true);
      const u32 = new Uint32Array(4);
      nodeCrypto.randomFillSync(u32, 1, 2); // offset and size count elements
      expect(u32[0]).toBe(0);
      expect(u32[3]).toBe(0);
      expect(Buffer.from(u32.buffer, 4, 8).equals(expected.subarray(10, 18))).toBe(true);
      const ab = new ArrayBuffer(4);
      expect(nodeCrypto.randomFillSync(ab as unknown as Uint8Array)).toBe(ab); // node accepts ArrayBuffer
      expect(Buffer.from(ab).equals(expected.subarray(18, 22))).toBe(true);
      const dv = new DataView(new ArrayBuffer(6), 1, 4);
      nodeCrypto.randomFillSync(dv);
      expect(Buffer.from(dv.buffer, 1, 4).equals(expected.subarray(22, 26))).toBe(true);
      const g = new Uint8Array(6);
      expect(globalThis.crypto.getRandomValues(g)).toBe(g);
      expect(Buffer.from(g).equals(expected.subarray(26, 32))).toBe(true);
      const g16 = new Int16Array(new ArrayBuffer(12), 2, 2);
      cjsCrypto.getRandomValues(g16);
      expect(Buffer.from(g16.buffer, 2, 4).equals(expected.subarray(32, 36))).toBe(true);
      const g64 = new BigUint64Array(1);
      cjsCrypto.webcrypto.getRandomValues(g64);
      expect(Buffer.from(g64.buffer).equals(expected.subarray(36, 44))).toBe(true);
    });
  });

  it('randomInt: node\'s unbiased 48-bit algorithm on the "int" stream', () => {
    const b = stream(SEED, 'int', 6 * 50);
    const RAND_MAX = 0xffff_ffff_ffff;
    const expectedInts = (ranges: [number, number][]): number[] => {
      let pos = 0;
      return ranges.map(([min, max]) => {
        const range = max - min;
        const limit = RAND_MAX - (RAND_MAX % range);
        for (;;) {
          const x = b.readUIntBE(pos, 6);
          pos += 6;
          if (x < limit) return (x % range) + min;
        }
      });
    };
    const ranges: [number, number][] = [[0, 10], [-5, 5], [0, 2 ** 48 - 1], [100, 101], [0, 1_000_000]];
    const got = adapter.run(ctx, () => [
      nodeCrypto.randomInt(10),
      nodeCrypto.randomInt(-5, 5),
      nodeCrypto.randomInt(2 ** 48 - 1),
      nodeCrypto.randomInt(100, 101),
      cjsCrypto.randomInt(0, 1_000_000),
    ]);
    expect(got).toEqual(expectedInts(ranges));
    const many = adapter.run(ctx, () => Array.from({ length: 500 }, () => nodeCrypto.randomInt(3, 9)));
    expect(Math.min(...many)).toBe(3);
    expect(Math.max(...many)).toBe(8);
  });

  it('streams are independent: extra Math.random calls do not shift uuids or bytes', () => {
    const a = adapter.run(ctx, () => [nodeCrypto.randomUUID(), nodeCrypto.randomBytes(8).toString('hex')]);
    const b = adapter.run(ctx, () => {
      for (let i = 0; i < 17; i++) Math.random();
      nodeCrypto.randomInt(5);
      return [nodeCrypto.randomUUID(), nodeCrypto.randomBytes(8).toString('hex')];
    });
    expect(b).toEqual(a);
  });

  it('the same context always yields the same sequence; another seed or time does not', () => {
    const sample = (): unknown[] => [
      Date.now(), Math.random(), nodeCrypto.randomUUID(), nodeCrypto.randomBytes(8).toString('hex'), nodeCrypto.randomInt(1e6),
    ];
    const a = adapter.run(ctx, sample);
    expect(adapter.run({ ...ctx }, sample)).toEqual(a);
    expect(adapter.run({ timestamp: String(TS), seed: SEED.toUpperCase() }, sample)).toEqual(a);
    const other = adapter.run({ timestamp: TS, seed: seedHex('other') }, sample);
    expect(other[0]).toBe(a[0]);
    expect(other.slice(1)).not.toEqual(a.slice(1));
    expect(adapter.run({ timestamp: TS + 1, seed: SEED }, sample).slice(1)).toEqual(a.slice(1));
  });

  it('large requests are served (randomBytes of 1 MiB, 20k Math.random calls)', () => {
    const t0 = adapter.realNow();
    adapter.run(ctx, () => {
      expect(nodeCrypto.randomBytes(1 << 20).equals(stream(SEED, 'bytes', 1 << 20))).toBe(true);
      for (let i = 0; i < 20_000; i++) Math.random();
    });
    expect(adapter.realNow() - t0).toBeLessThan(10_000);
  });
});

describe('the test vectors in adapters/README.md', () => {
  it('hold', () => {
    const seed = Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('hex');
    const got = adapter.run({ timestamp: 1_767_225_600_000, seed }, () => ({
      iso: new Date().toISOString(),
      random: [Math.random(), Math.random()],
      uuid: [nodeCrypto.randomUUID(), nodeCrypto.randomUUID()],
      bytes: nodeCrypto.randomBytes(16).toString('hex'),
      int: nodeCrypto.randomInt(1000),
    }));
    expect(got).toEqual({
      iso: '2026-01-01T00:00:00.000Z',
      random: [0.6050106963648766, 0.7779466844994865],
      uuid: ['5446b15f-ac31-475d-a3df-3ab11dc5ea39', '4ff0a1c1-8736-4b20-ae2b-ac897fcb946a'],
      bytes: '877b81e2a8cf7c48a27aa669f16d61c1',
      int: 649,
    });
  });
});

describe('callback forms', () => {
  const viaCallback = <T>(register: (cb: (err: Error | null, v: T) => void) => void): Promise<T> =>
    new Promise((resolve, reject) => register((err, v) => (err ? reject(err) : resolve(v))));

  it('randomBytes, randomFill and randomInt call back asynchronously with deterministic values', async () => {
    const expectedBytes = stream(SEED, 'bytes', 32);
    const got = await adapter.run(ctx, async () => {
      let returned = false;
      const wasAsync = await new Promise<{ v: Buffer; sync: boolean }>((resolve) => {
        nodeCrypto.randomBytes(4, (_err, v) => resolve({ v, sync: !returned }));
        returned = true;
      });
      const f1 = await viaCallback<Buffer>((cb) => nodeCrypto.randomFill(Buffer.alloc(4), cb));
      const f2 = await viaCallback<Buffer>((cb) => nodeCrypto.randomFill(Buffer.alloc(4), 1, cb));
      const f3 = await viaCallback<Buffer>((cb) => nodeCrypto.randomFill(Buffer.alloc(6), 1, 2, cb));
      const n = await viaCallback<number>((cb) => nodeCrypto.randomInt(10, 20, cb));
      const n2 = await viaCallback<number>((cb) => nodeCrypto.randomInt(7, cb));
      return { wasAsync, f1, f2, f3, n, n2, now: Date.now() };
    });
    expect(got.wasAsync.sync).toBe(false); // the callback ran after randomBytes returned
    expect(got.wasAsync.v.equals(expectedBytes.subarray(0, 4))).toBe(true);
    expect(got.f1.equals(expectedBytes.subarray(4, 8))).toBe(true);
    expect(got.f2.equals(Buffer.concat([Buffer.alloc(1), expectedBytes.subarray(8, 11)]))).toBe(true);
    expect(got.f3.equals(Buffer.concat([Buffer.alloc(1), expectedBytes.subarray(11, 13), Buffer.alloc(3)]))).toBe(true);
    expect(got.n).toBeGreaterThanOrEqual(10);
    expect(got.n).toBeLessThan(20);
    expect(got.n2).toBeLessThan(7);
    expect(got.now).toBe(TS);
    const again = await adapter.run(ctx, async () => {
      await viaCallback<Buffer>((cb) => nodeCrypto.randomBytes(4, cb));
      await viaCallback<Buffer>((cb) => nodeCrypto.randomFill(Buffer.alloc(4), cb));
      await viaCallback<Buffer>((cb) => nodeCrypto.randomFill(Buffer.alloc(4), 1, cb));
      await viaCallback<Buffer>((cb) => nodeCrypto.randomFill(Buffer.alloc(6), 1, 2, cb));
      return [
        await viaCallback<number>((cb) => nodeCrypto.randomInt(10, 20, cb)),
        await viaCallback<number>((cb) => nodeCrypto.randomInt(7, cb)),
      ];
    });
    expect(again).toEqual([got.n, got.n2]);
  });
});

describe('invalid arguments keep node\'s own errors inside a context', () => {
  it.each([
    ['randomBytes(-1)', () => nodeCrypto.randomBytes(-1)],
    ['randomBytes("8")', () => nodeCrypto.randomBytes('8' as unknown as number)],
    ['randomBytes(n, notAFunction)', () => (nodeCrypto.randomBytes as (...a: unknown[]) => unknown)(8, 5)],
    ['randomFillSync(non-buffer)', () => nodeCrypto.randomFillSync('x' as unknown as Buffer)],
    ['randomFillSync offset past the end', () => nodeCrypto.randomFillSync(Buffer.alloc(4), 5)],
    ['randomFillSync size past the end', () => nodeCrypto.randomFillSync(Buffer.alloc(4), 1, 4)],
    ['randomFill without callback', () => (nodeCrypto.randomFill as (...a: unknown[]) => unknown)(Buffer.alloc(4))],
    ['randomFill(ArrayBuffer, offset, cb) (node computes NaN)', () =>
      (nodeCrypto.randomFill as (...a: unknown[]) => unknown)(new ArrayBuffer(4), 1, () => {})],
    ['randomInt(max <= min)', () => nodeCrypto.randomInt(5, 5)],
    ['randomInt(range > 2^48 - 1)', () => nodeCrypto.randomInt(2 ** 48)],
    ['randomInt(0.5, 3)', () => nodeCrypto.randomInt(0.5, 3)],
    ['randomUUID(null)', () => nodeCrypto.randomUUID(null as unknown as undefined)],
    ['randomUUID({disableEntropyCache: 1})', () =>
      nodeCrypto.randomUUID({ disableEntropyCache: 1 as unknown as boolean })],
    ['getRandomValues(Float64Array)', () => globalThis.crypto.getRandomValues(new Float64Array(1) as unknown as Uint8Array)],
    ['getRandomValues(DataView)', () => globalThis.crypto.getRandomValues(new DataView(new ArrayBuffer(1)) as unknown as Uint8Array)],
    ['getRandomValues(65537 bytes)', () => globalThis.crypto.getRandomValues(new Uint8Array(65537))],
    ['getRandomValues with a foreign this', () => {
      const g = globalThis.crypto.getRandomValues;
      return g.call({}, new Uint8Array(1));
    }],
  ])('%s', (_name, call) => {
    const outside = errorOf(call);
    const inside = adapter.run(ctx, () => errorOf(call));
    expect(outside.name).not.toBe('none');
    expect(inside).toEqual(outside);
  });
});

describe('context propagation', () => {
  it('survives await, timers, immediates, nextTick, microtasks and promise chains', async () => {
    const seen = await adapter.run(ctx, async () => {
      const out: number[] = [Date.now()];
      await sleep(15);
      out.push(Date.now());
      out.push(await new Promise<number>((r) => setTimeout(() => r(Date.now()), 5)));
      out.push(await new Promise<number>((r) => setImmediate(() => r(Date.now()))));
      out.push(await new Promise<number>((r) => process.nextTick(() => r(Date.now()))));
      out.push(await new Promise<number>((r) => queueMicrotask(() => r(Date.now()))));
      out.push(await Promise.resolve().then(() => sleep(2)).then(() => Date.now()));
      out.push(await new Promise<number>((r) => {
        const t = setInterval(() => {
          clearInterval(t);
          r(Date.now());
        }, 3);
      }));
      return out;
    });
    expect(seen).toEqual(Array(seen.length).fill(TS));
    expect(adapter.current()).toBeUndefined();
  });

  it('interleaved requests keep their own time and their own streams', async () => {
    const A = { timestamp: 1000, seed: seedHex('A'), sequence: 1 };
    const B = { timestamp: 2000, seed: seedHex('B'), sequence: 2 };
    const work = async (tag: string): Promise<string[]> => {
      const out: string[] = [];
      for (let i = 0; i < 5; i++) {
        out.push(`${tag}:${Date.now()}:${adapter.current()?.sequence}:${nodeCrypto.randomUUID()}`);
        await sleep(1 + (i % 3));
      }
      return out;
    };
    const [a, b] = await Promise.all([adapter.run(A, () => work('A')), adapter.run(B, () => work('B'))]);
    const aAlone = await adapter.run(A, () => work('A'));
    const bAlone = await adapter.run(B, () => work('B'));
    expect(a).toEqual(aAlone);
    expect(b).toEqual(bAlone);
    expect(a.every((s) => s.startsWith('A:1000:1:'))).toBe(true);
    expect(b.every((s) => s.startsWith('B:2000:2:'))).toBe(true);
  });

  it('a timer created outside a context stays outside while a request runs', async () => {
    let background = 0;
    const timer = setInterval(() => {
      background = Date.now();
    }, 2);
    try {
      await adapter.run(ctx, () => sleep(20));
      expect(background).not.toBe(TS);
      expect(Math.abs(background - adapter.realNow())).toBeLessThan(5000);
    } finally {
      clearInterval(timer);
    }
  });
});

describe('monotonic clocks (default mode)', () => {
  it('performance.now and process.hrtime stay real inside a context', async () => {
    expect(adapter.options.monotonic).toBe(false);
    const [p1, h1] = adapter.run(ctx, () => [performance.now(), process.hrtime.bigint()] as const);
    await sleep(5);
    const [p2, h2] = adapter.run(ctx, () => [performance.now(), process.hrtime.bigint()] as const);
    expect(p2 - p1).toBeGreaterThanOrEqual(2);
    expect(h2 - h1).toBeGreaterThanOrEqual(2_000_000n);
    expect(p1).toBeLessThan(TS);
  });
});
