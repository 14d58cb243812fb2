// API behaviour of examples/bank/server.mjs, run as an ordinary process (no adapter, no cbft).

import fs from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BANK, header, json, request, startNode, stopAll, type RawResponse, type Running } from './helpers.js';

const JSON_TYPE = 'application/json; charset=utf-8';
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Account { id: string; owner: string; balance: number; currency: string }
interface Transfer { id: string; from: string; to: string; amount: number; currency: string; createdAt: string }
interface ErrorBody { error: string; message: string }
interface Ledger { count: number; transfers: Transfer[]; balances: Record<string, number> }

const auth = (id: string): Record<string, string> => ({ authorization: `Bearer token-${id}` });

function expectError(res: RawResponse, status: number, code: string): ErrorBody {
  expect(res.status, res.body.toString()).toBe(status);
  expect(header(res, 'content-type')).toBe(JSON_TYPE);
  const body = json<ErrorBody>(res);
  expect(body.error).toBe(code);
  expect(typeof body.message).toBe('string');
  expect(Object.keys(body)).toEqual(['error', 'message']);
  return body;
}

describe('examples/bank', () => {
  let bank: Running;
  let noAdmin: Running;

  beforeAll(async () => {
    [bank, noAdmin] = await Promise.all([
      startNode(BANK, { env: { BANK_ADMIN: '1' } }),
      startNode(BANK),
    ]);
  });
  afterAll(stopAll);

  const get = (target: string, headers: Record<string, string> = {}, on: Running = bank) =>
    request(on.url, target, { headers });
  const transfer = (as: string, body: unknown, extra: Record<string, string> = {}) =>
    request(bank.url, '/transfers', {
      method: 'POST',
      headers: { ...auth(as), 'content-type': 'application/json', ...extra },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const balance = async (id: string): Promise<number> => json<Account>(await get(`/accounts/${id}`, auth(id))).balance;

  it('GET /healthz', async () => {
    const res = await get('/healthz');
    expect(res.status).toBe(200);
    expect(json(res)).toEqual({ status: 'ok' });
  });

  it('GET /accounts/:id returns the account to its own token only', async () => {
    const res = await get('/accounts/acc-8', auth('acc-8'));
    expect(res.status).toBe(200);
    expect(header(res, 'content-type')).toBe(JSON_TYPE);
    expect(header(res, 'cache-control')).toBe('no-store');
    expect(res.body.toString('utf8')).toBe(
      '{"id":"acc-8","owner":"Hugo Lefèvre","balance":31415,"currency":"EUR"}\n');
    expect(Number(header(res, 'content-length'))).toBe(res.body.length);
    expect(header(res, 'x-powered-by')).toBeUndefined();

    expect((await get('/accounts/acc-8', { authorization: 'bearer token-acc-8' })).status).toBe(200);
    const missing = await get('/accounts/acc-8');
    expectError(missing, 401, 'unauthorized');
    expect(header(missing, 'www-authenticate')).toBe('Bearer realm="bank"');
    const wrong = await get('/accounts/acc-8', { authorization: 'Bearer token-acc-99' });
    expectError(wrong, 401, 'unauthorized');
    expect(header(wrong, 'www-authenticate')).toMatch(/invalid_token/);
    expectError(await get('/accounts/acc-8', { authorization: 'Basic dG9rZW4=' }), 401, 'unauthorized');
    expectError(await get('/accounts/acc-8', auth('acc-1')), 403, 'forbidden');
    expectError(await get('/accounts/acc-99', auth('acc-1')), 403, 'forbidden');
  });

  it('POST /transfers moves money and returns 201 with a Location; GET /transfers/:id for both parties', async () => {
    const [from0, to0] = [await balance('acc-1'), await balance('acc-2')];
    const before = Date.now();
    const res = await transfer('acc-1', { from: 'acc-1', to: 'acc-2', amount: 2500 });
    const after = Date.now();
    expect(res.status, res.body.toString()).toBe(201);
    expect(header(res, 'content-type')).toBe(JSON_TYPE);
    const t = json<Transfer>(res);
    expect(Object.keys(t)).toEqual(['id', 'from', 'to', 'amount', 'currency', 'createdAt']);
    expect(t).toMatchObject({ from: 'acc-1', to: 'acc-2', amount: 2500, currency: 'EUR' });
    expect(t.id).toMatch(UUID_V4);
    expect(header(res, 'location')).toBe(`/transfers/${t.id}`);
    expect(new Date(t.createdAt).toISOString()).toBe(t.createdAt);
    expect(Date.parse(t.createdAt)).toBeGreaterThanOrEqual(before - 5);
    expect(Date.parse(t.createdAt)).toBeLessThanOrEqual(after + 5);
    expect(await balance('acc-1')).toBe(from0 - 2500);
    expect(await balance('acc-2')).toBe(to0 + 2500);

    for (const party of ['acc-1', 'acc-2']) {
      const r = await get(`/transfers/${t.id}`, auth(party));
      expect(r.status).toBe(200);
      expect(json(r)).toEqual(t);
    }
    expectError(await get(`/transfers/${t.id}`, auth('acc-3')), 403, 'forbidden');
    expectError(await get(`/transfers/${t.id}`), 401, 'unauthorized');
    expectError(await get('/transfers/00000000-0000-4000-8000-000000000000', auth('acc-1')), 404, 'not_found');
  });

  it('validates transfers', async () => {
    const cases: [unknown, number, string][] = [
      ['{not json', 400, 'invalid_json'],
      ['[1,2]', 400, 'invalid_json'],
      ['null', 400, 'invalid_json'],
      ['', 400, 'invalid_json'],
      [{ to: 'acc-2', amount: 1 }, 400, 'validation_failed'],
      [{ from: 'acc-1', amount: 1 }, 400, 'validation_failed'],
      [{ from: 'acc-1', to: 'acc-2' }, 400, 'validation_failed'],
      [{ from: 'acc-1', to: 'acc-2', amount: 0 }, 400, 'validation_failed'],
      [{ from: 'acc-1', to: 'acc-2', amount: -5 }, 400, 'validation_failed'],
      [{ from: 'acc-1', to: 'acc-2', amount: 1.5 }, 400, 'validation_failed'],
      [{ from: 'acc-1', to: 'acc-2', amount: '10' }, 400, 'validation_failed'],
      [{ from: 'acc-1', to: 'acc-2', amount: 2 ** 53 }, 400, 'validation_failed'],
      [{ from: 'acc-1', to: 'acc-2', amount: 1, note: 'hi' }, 400, 'validation_failed'],
      [{ from: 'acc-1', to: 'acc-1', amount: 1 }, 400, 'validation_failed'],
      [{ from: 'acc-1', to: 'acc-42', amount: 1 }, 400, 'validation_failed'],
      [{ from: 'acc-2', to: 'acc-1', amount: 1 }, 403, 'forbidden'],
    ];
    const balance1 = await balance('acc-1');
    for (const [body, status, code] of cases) {
      expectError(await transfer('acc-1', body), status, code);
    }
    expectError(await transfer('acc-1', { from: 'acc-1', to: 'acc-2', amount: 1 }, { 'content-type': 'text/plain' }),
      415, 'unsupported_media_type');
    expectError(await request(bank.url, '/transfers', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
    }), 401, 'unauthorized');
    expectError(await transfer('acc-1', { from: 'acc-1', to: 'acc-2', amount: 1 }, { authorization: 'Bearer nope' }),
      401, 'unauthorized');
    expect(await balance('acc-1')).toBe(balance1);
  });

  it('refuses overdrafts with 409 and leaves balances unchanged', async () => {
    const [b4, b5] = [await balance('acc-4'), await balance('acc-5')];
    expectError(await transfer('acc-4', { from: 'acc-4', to: 'acc-5', amount: b4 + 1 }), 409, 'insufficient_funds');
    expectError(await transfer('acc-6', { from: 'acc-6', to: 'acc-5', amount: 1 }), 409, 'insufficient_funds');
    expect([await balance('acc-4'), await balance('acc-5')]).toEqual([b4, b5]);
    const all = await transfer('acc-4', { from: 'acc-4', to: 'acc-5', amount: b4 });
    expect(all.status).toBe(201);
    expect(await balance('acc-4')).toBe(0);
  });

  it('limits the body size (413), declared or streamed', async () => {
    const big = JSON.stringify({ from: 'acc-1', to: 'acc-2', amount: 1, pad: 'x'.repeat(20_000) });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const headers = { ...auth('acc-1'), 'content-type': 'application/json' };
      const declared = await request(bank.url, '/transfers', { method: 'POST', headers, body: big, agent });
      expectError(declared, 413, 'payload_too_large');
      const streamed = await request(bank.url, '/transfers', { method: 'POST', headers, body: big, chunked: true, agent });
      expectError(streamed, 413, 'payload_too_large');
      expect(streamed.body.equals(declared.body)).toBe(true);
      // The oversized bodies were drained: the same connection keeps working.
      const next = await request(bank.url, '/healthz', { agent });
      expect(next.status).toBe(200);
      expect(next.reusedSocket).toBe(true);
    } finally {
      agent.destroy();
    }
  });

  it('answers 405 with Allow, 404 for unknown paths, and HEAD like GET without a body', async () => {
    const del = await request(bank.url, '/transfers', { method: 'DELETE', headers: auth('acc-1') });
    expectError(del, 405, 'method_not_allowed');
    expect(header(del, 'allow')).toBe('POST');
    const put = await request(bank.url, '/accounts/acc-1', { method: 'PUT', headers: auth('acc-1'), body: '{}' });
    expectError(put, 405, 'method_not_allowed');
    expect(header(put, 'allow')).toBe('GET, HEAD');
    expectError(await get('/nope'), 404, 'not_found');
    expectError(await get('/accounts/acc-1/extra', auth('acc-1')), 404, 'not_found');
    expectError(await get('/accounts/', auth('acc-1')), 404, 'not_found');
    const head = await request(bank.url, '/accounts/acc-3', { method: 'HEAD', headers: auth('acc-3') });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(Number(header(head, 'content-length'))).toBeGreaterThan(0);
    expect((await get('/healthz?x=1')).status).toBe(200);
  });

  it('GET /admin/ledger lists applied transfers in order, only with BANK_ADMIN=1', async () => {
    expectError(await get('/admin/ledger', {}, noAdmin), 404, 'not_found');
    const made: Transfer[] = [];
    for (const [from, to, amount] of [['acc-7', 'acc-8', 11], ['acc-8', 'acc-7', 7], ['acc-7', 'acc-1', 3]] as const) {
      const r = await transfer(from, { from, to, amount });
      expect(r.status).toBe(201);
      made.push(json<Transfer>(r));
    }
    expectError(await transfer('acc-7', { from: 'acc-7', to: 'acc-8', amount: 10 ** 12 }), 409, 'insufficient_funds');
    const res = await get('/admin/ledger');
    expect(res.status).toBe(200);
    const ledger = json<Ledger>(res);
    expect(ledger.count).toBe(ledger.transfers.length);
    expect(ledger.transfers.slice(-3)).toEqual(made);
    expect(ledger.balances['acc-7']).toBe(await balance('acc-7'));
    expect(Object.keys(ledger.balances)).toEqual(['acc-1', 'acc-2', 'acc-3', 'acc-4', 'acc-5', 'acc-6', 'acc-7', 'acc-8']);
    const total = Object.values(ledger.balances).reduce((a, b) => a + b, 0);
    expect(total).toBe(1_250_000 + 87_310 + 5_000_000 + 12_045 + 420_000 + 0 + 999_999 + 31_415);
  });

  it('does not read the cbft headers itself (only the adapter does)', async () => {
    expect(fs.readFileSync(BANK, 'utf8')).not.toMatch(/cbft-(sequence|timestamp|seed)/i);
    const res = await transfer('acc-3', { from: 'acc-3', to: 'acc-4', amount: 1 }, {
      'cbft-sequence': '1', 'cbft-timestamp': '1000', 'cbft-seed': 'ab'.repeat(32),
    });
    expect(res.status).toBe(201);
    expect(json<Transfer>(res).createdAt).not.toBe('1970-01-01T00:00:01.000Z');
  });

  it('refuses an invalid PORT with a clear message', async () => {
    await expect(startNode(BANK, { env: { PORT: 'eighty' }, timeoutMs: 5000 })).rejects.toThrow(/PORT must be an integer/);
  });
});
