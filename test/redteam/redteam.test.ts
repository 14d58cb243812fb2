// The red team (npm run redteam) as a test: 3 honest banks and 1 leaky replica behind real cbft
// processes, the top node of chain 1 Byzantine. It asserts what must hold whatever the machine:
// no secret byte reaches a client, every reply is signed, verified and correct, the honest ledgers
// agree and every acknowledged transfer ran exactly once, and the timing capacities are computed
// from real samples. It never asserts how fast anything is or how large a capacity is.

import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bscCapacity, estimateCapacity, type Sample } from '../../bench/redteam/capacity.js';
import { rawRequest } from '../../bench/redteam/raw-client.js';
import { verdict } from '../../bench/redteam/report.js';
import { CONTENT_CHANNELS, LEAKY_SERVER, QUICK, runRedteam, secretFor, streamBit, type RedteamResult } from '../../bench/redteam/run.js';
import { Scanner, secretSet } from '../../bench/redteam/scan.js';
import { allowlist, DEFAULT_FORWARD_HEADERS } from '../../src/codec/headers.js';
import { CLI_PATH } from '../../src/up/local-cluster.js';

interface LeakyModule {
  CHANNELS: readonly string[];
  streamBit(secret: string, i: number, preambleBits: number): number;
  secretFor(balances: Map<string, number>, caller: string | undefined): string;
  parseChannels(text: string): Set<string>;
  createLeakyBank(o: { admin?: boolean; control: () => { channels: Set<string>; delayMs: number; preambleBits: number }; log?: (v: unknown) => void; exit?: (code: number) => void }): Server;
}
interface BankModule {
  SEED_ACCOUNTS: ReadonlyArray<{ id: string; owner: string; balance: number; token: string }>;
}

const leakyModule = () => import(pathToFileURL(LEAKY_SERVER).href) as Promise<LeakyModule>;
const bankModule = () => import(pathToFileURL(join(LEAKY_SERVER, '..', '..', 'bank', 'server.mjs')).href) as Promise<BankModule>;

describe('the leaky replica and the scanner (no cluster)', () => {
  let server: Server;
  let url: string;
  let channels = new Set<string>();
  let crashed = 0;
  let bank: BankModule;

  beforeAll(async () => {
    const m = await leakyModule();
    bank = await bankModule();
    server = m.createLeakyBank({ control: () => ({ channels, delayMs: 30, preambleBits: 16 }), log: () => undefined, exit: () => {
      // What a crash looks like from outside: the connection drops without an answer.
      crashed++;
      server.closeAllConnections();
    } });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const scannerFor = (viewer: string) => {
    const others = bank.SEED_ACCOUNTS.filter((a) => a.id !== viewer);
    return new Scanner(secretSet({ names: others.map((a) => a.owner), balances: others.map((a) => a.balance), entitled: [bank.SEED_ACCOUNTS.find((a) => a.id === viewer)!.balance] }));
  };
  const get = (path: string) => rawRequest(url, { method: 'GET', path, headers: [['authorization', 'Bearer token-acc-1']] }, allowlist(DEFAULT_FORWARD_HEADERS));

  it('answers exactly like the bank when it leaks nothing, and the scanner finds nothing there', async () => {
    channels = new Set();
    const res = await get('/accounts/acc-1');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({ id: 'acc-1', owner: 'Ada Okafor', balance: 1_250_000, currency: 'EUR' });
    expect(scannerFor('acc-1').scan(res.raw).bytes).toBe(0);
  });

  it.each(['headers', 'json', 'body'])('leaks other accounts through %s, and the scanner sees it in every encoding', async (channel) => {
    channels = new Set([channel]);
    const res = await get('/accounts/acc-1');
    const found = scannerFor('acc-1').scan(res.raw);
    expect(found.bytes).toBeGreaterThan(100);
    const encodings = new Set(found.hits.map((h) => h.encoding));
    expect(encodings.has('plain')).toBe(true);
    expect(encodings.has('hex')).toBe(true);
    expect(encodings.has('base64')).toBe(true);
    // Never the caller's own data: its own balance is not counted as a secret.
    expect(found.hits.some((h) => h.secret === '1250000' || h.secret === 'Ada Okafor')).toBe(false);
  });

  it('changes the status, delays 1 bits and crashes on 1 bits when told to', async () => {
    channels = new Set(['status']);
    expect((await get('/accounts/acc-1')).status).not.toBe(200);
    const m = await leakyModule();
    const secret = m.secretFor(new Map(bank.SEED_ACCOUNTS.map((a) => [a.id, a.balance])), 'acc-1');
    const one = [...Array(16).keys()].find((i) => m.streamBit(secret, i, 16) === 1)!;
    const zero = [...Array(16).keys()].find((i) => m.streamBit(secret, i, 16) === 0)!;
    channels = new Set(['timing']);
    const slow = await get(`/accounts/acc-1?bit=${one}`);
    const fast = await get(`/accounts/acc-1?bit=${zero}`);
    expect(slow.latencyMs).toBeGreaterThanOrEqual(25);
    expect(slow.body.equals(fast.body)).toBe(true);
    channels = new Set(['crash']);
    const before = crashed;
    await get(`/accounts/acc-1?bit=${zero}`);
    expect(crashed).toBe(before);
    await expect(get(`/accounts/acc-1?bit=${one}`)).rejects.toThrow();
    expect(crashed).toBe(before + 1);
  });

  it('uses the same bit stream and secret as the harness', async () => {
    const m = await leakyModule();
    const balances = new Map(bank.SEED_ACCOUNTS.map((a) => [a.id, a.balance]));
    const a = m.secretFor(balances, 'acc-1');
    expect(secretFor(bank.SEED_ACCOUNTS, (id) => balances.get(id)!, 'acc-1')).toBe(a);
    for (let i = 0; i < 400; i++) expect(streamBit(a, i, 16)).toBe(m.streamBit(a, i, 16));
    expect(() => m.parseChannels('headers,telepathy')).toThrow(/unknown leak channel/);
    expect([...m.parseChannels('all')].sort()).toEqual([...m.CHANNELS].sort());
  });

  it('estimates capacity from samples: ~1 bit for a clean channel, ~0 for noise', () => {
    const clean: Sample[] = Array.from({ length: 80 }, (_, i) => ({ bit: (i % 3 === 0 ? 1 : 0) as 0 | 1, latencyMs: i % 3 === 0 ? 150 + (i % 7) : 100 + (i % 5) }));
    const e = estimateCapacity(clean.slice(0, 24), clean.slice(24));
    expect(e.pErr).toBe(0);
    expect(e.bscBits).toBe(1);
    let x = 7;
    const noise: Sample[] = Array.from({ length: 400 }, (_, i) => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return { bit: (i % 2) as 0 | 1, latencyMs: 100 + (x % 50) };
    });
    const n = estimateCapacity(noise.slice(0, 100), noise.slice(100));
    expect(n.bscBits).toBeLessThan(0.1);
    expect(n.miBits).toBeLessThan(0.05);
    expect(bscCapacity(0.5)).toBe(0);
    expect(bscCapacity(0.11)).toBeCloseTo(0.5, 1);
    // An anti-correlated decoder leaks as much as a correlated one.
    expect(bscCapacity(0.89)).toBeCloseTo(bscCapacity(0.11), 10);
  });
});

describe('npm run redteam --quick: 3 honest + 1 leaky replica behind cbft', () => {
  let result: RedteamResult;
  const lines: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run npm run build first (npm test does)`);
    result = await runRedteam({ ...QUICK, log: (l) => lines.push(l) });
  }, 600_000);

  it('ran every phase without an unexpected process exit', () => {
    expect(result.findings, lines.join('\n')).toEqual([]);
  });

  it('no secret byte reached a client on any content channel, and the leaky replica really tried', () => {
    expect(result.content.map((c) => c.channel)).toEqual([...CONTENT_CHANNELS, 'all']);
    for (const c of result.content) {
      expect(c.requests, c.channel).toBeGreaterThanOrEqual(QUICK.contentSteps);
      expect(c.secretBytes, `${c.channel}: ${c.examples.join('; ')}`).toBe(0);
      if (c.channel === 'none') continue;
      expect(c.attemptedBytes, c.channel).toBeGreaterThan(0);
      expect(c.leakyAnswers, c.channel).toBeGreaterThan(0);
    }
    for (const ch of ['headers', 'json', 'body', 'all']) expect(result.content.find((c) => c.channel === ch)!.controlBytes, `control ${ch}`).toBeGreaterThan(100);
    expect(result.content.find((c) => c.channel === 'status')!.controlStatusChanged).toBe(true);
  });

  it('every reply on every row was signed, verified against the own request digest, and exactly what an honest bank answers', () => {
    for (const row of [...result.content, ...result.timing]) {
      const name = `${'channel' in row ? row.channel : row.key} (${row.policy}): ${row.examples.join('; ')}`;
      expect(row.requests, name).toBeGreaterThan(0);
      expect(row.verified, name).toBe(row.requests);
      expect(row.firewallErrors + row.unsignedOther + row.badSignature + row.transportErrors, name).toBe(0);
      expect(row.wrong, name).toBe(0);
      expect(row.extraHeaders, name).toBe(0);
      expect(row.secretBytes, name).toBe(0);
    }
    expect(verdict(result)).toEqual([]);
  });

  it('computes each timing capacity from real samples of both bits, under both release policies', () => {
    const keys = ['leaky-timing', 'leaky-timing-critical', ...QUICK.byzantineDelaysMs.map((d) => `byzantine-top-${d}ms`), 'leaky-crash'];
    for (const policy of ['immediate', 'quantized (10 ms)']) {
      for (const key of keys) {
        const row = result.timing.find((t) => t.key === key && t.policy === policy && !t.phaseLocked);
        expect(row, `${key} ${policy}`).toBeDefined();
        const e = row!.estimate!;
        expect(e, `${key} ${policy}`).toBeDefined();
        expect(e.samples).toBeGreaterThanOrEqual(QUICK.samples * 0.9);
        expect(e.train).toBeGreaterThanOrEqual(8);
        expect(e.test).toBeGreaterThanOrEqual(16);
        expect(e.ones).toBeGreaterThan(3);
        expect(e.zeros).toBeGreaterThan(3);
        for (const v of [e.bscBits, e.bscBitsInSample, e.miBits]) {
          expect(v).toBeGreaterThanOrEqual(0);
          expect(v).toBeLessThanOrEqual(1);
        }
        expect(Number.isFinite(e.medianMs0) && Number.isFinite(e.medianMs1)).toBe(true);
      }
      expect(result.timing.find((t) => t.key === 'leaky-crash' && t.policy === policy)!.crashes).toBeGreaterThan(0);
    }
  });

  it('the honest ledgers stayed identical and every acknowledged transfer was applied exactly once', () => {
    expect(result.invariants).toHaveLength(2);
    for (const i of result.invariants) {
      expect(i.problems, i.policy).toEqual([]);
      expect(i.ledgersIdentical).toBe(true);
      expect(i.exactlyOnce).toBe(true);
      expect(i.modelMatchesLedger).toBe(true);
      expect(new Set(i.sidecars.map((s) => s.sequence)).size, `${i.policy}: replicas at different sequences`).toBe(1);
    }
    expect(result.invariants[0]!.acknowledgedTransfers).toBeGreaterThan(0);
  });
});
