#!/usr/bin/env node
// A small, ordinary bank REST service: plain node:http, zero dependencies, in-memory state.
// It knows nothing about cbft. Run behind cbft, it is made deterministic only by the Node.js
// preload adapter (adapters/node-deterministic.cjs), which serves crypto.randomUUID() and
// new Date() from the request headers the cbft sidecar adds. See README.md beside this file.

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const CURRENCY = 'EUR';
const MAX_BODY_BYTES = 16 * 1024;
const DRAIN_LIMIT = 1024 * 1024;
const JSON_TYPE = 'application/json; charset=utf-8';

/** Deterministic seed data: every copy of the service starts from exactly this state. */
export const SEED_ACCOUNTS = Object.freeze([
  { id: 'acc-1', owner: 'Ada Okafor', balance: 1_250_000 },
  { id: 'acc-2', owner: 'Bruno Lindqvist', balance: 87_310 },
  { id: 'acc-3', owner: 'Chiara Romano', balance: 5_000_000 },
  { id: 'acc-4', owner: 'Dmitri Volkov', balance: 12_045 },
  { id: 'acc-5', owner: 'Elena García', balance: 420_000 },
  { id: 'acc-6', owner: 'Farid Haddad', balance: 0 },
  { id: 'acc-7', owner: 'Grace Nakamura', balance: 999_999 },
  { id: 'acc-8', owner: 'Hugo Lefèvre', balance: 31_415 },
].map((a) => Object.freeze({ ...a, token: `token-${a.id}` })));

class HttpError extends Error {
  constructor(status, code, message, headers = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

function sendJson(res, status, value, headers = {}) {
  const body = Buffer.from(JSON.stringify(value) + '\n', 'utf8');
  res.writeHead(status, {
    'content-type': JSON_TYPE,
    'content-length': body.length,
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

function sendError(res, err) {
  sendJson(res, err.status, { error: err.code, message: err.message }, err.headers);
}

/**
 * Reads the whole body, at most `limit` bytes; a larger body is a 413. Up to DRAIN_LIMIT bytes of
 * an oversized body are read and discarded first so the client sees the 413 and the connection
 * stays usable; beyond that the 413 is sent at once and the connection is closed.
 */
function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const tooLarge = (close) => new HttpError(413, 'payload_too_large',
      `request body must be at most ${limit} bytes`, close ? { connection: 'close' } : {});
    const chunks = [];
    let size = 0;
    let settled = false;
    const settle = (fn) => {
      if (settled) return;
      settled = true;
      fn();
    };
    if (Number(req.headers['content-length']) > DRAIN_LIMIT) {
      req.resume();
      settle(() => reject(tooLarge(true)));
      return;
    }
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
      } else {
        chunks.length = 0; // keep draining, discard
        if (size > DRAIN_LIMIT) settle(() => reject(tooLarge(true)));
      }
    });
    req.on('end', () => settle(() => (size > limit ? reject(tooLarge(false)) : resolve(Buffer.concat(chunks, size)))));
    req.on('error', (err) => settle(() => reject(err)));
  });
}

export function createBank({ admin = false } = {}) {
  const accounts = new Map(SEED_ACCOUNTS.map((a) => [a.id, { ...a }]));
  const byToken = new Map(SEED_ACCOUNTS.map((a) => [a.token, a.id]));
  const transfers = new Map();
  const ledger = [];

  /** Returns the id of the account whose bearer token the request carries, or throws 401. */
  function authenticate(req) {
    const header = req.headers.authorization;
    if (header === undefined || header === '') {
      throw new HttpError(401, 'unauthorized', 'missing bearer token',
        { 'www-authenticate': 'Bearer realm="bank"' });
    }
    const m = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
    const id = m ? byToken.get(m[1]) : undefined;
    if (id === undefined) {
      throw new HttpError(401, 'unauthorized', 'invalid bearer token',
        { 'www-authenticate': 'Bearer realm="bank", error="invalid_token"' });
    }
    return id;
  }

  function publicAccount(a) {
    return { id: a.id, owner: a.owner, balance: a.balance, currency: CURRENCY };
  }

  function getAccount(req, res, id) {
    const caller = authenticate(req);
    if (caller !== id) {
      throw new HttpError(403, 'forbidden', 'this token does not grant access to that account');
    }
    sendJson(res, 200, publicAccount(accounts.get(id)));
  }

  function parseTransfer(raw) {
    let input;
    try {
      input = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new HttpError(400, 'invalid_json', 'request body must be a JSON object');
    }
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new HttpError(400, 'invalid_json', 'request body must be a JSON object');
    }
    const invalid = (message) => new HttpError(400, 'validation_failed', message);
    for (const key of Object.keys(input)) {
      if (key !== 'from' && key !== 'to' && key !== 'amount') throw invalid(`unknown field "${key}"`);
    }
    const { from, to, amount } = input;
    if (typeof from !== 'string' || from === '') throw invalid('"from" must be an account id');
    if (typeof to !== 'string' || to === '') throw invalid('"to" must be an account id');
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0) {
      throw invalid('"amount" must be a positive integer number of cents');
    }
    return { from, to, amount };
  }

  async function createTransfer(req, res) {
    const contentType = req.headers['content-type'];
    const raw = await readBody(req, MAX_BODY_BYTES);
    const caller = authenticate(req);
    if (contentType !== undefined && !/^application\/json\s*(;|$)/i.test(contentType)) {
      throw new HttpError(415, 'unsupported_media_type', 'content-type must be application/json');
    }
    const { from, to, amount } = parseTransfer(raw);
    if (from !== caller) {
      throw new HttpError(403, 'forbidden', 'this token does not authorize transfers from that account');
    }
    if (to === from) throw new HttpError(400, 'validation_failed', '"to" must differ from "from"');
    const source = accounts.get(from);
    const target = accounts.get(to);
    if (target === undefined) throw new HttpError(400, 'validation_failed', '"to" is not a known account');
    if (source.balance < amount) {
      throw new HttpError(409, 'insufficient_funds', 'the balance does not cover this transfer');
    }
    source.balance -= amount;
    target.balance += amount;
    const transfer = {
      id: randomUUID(),
      from,
      to,
      amount,
      currency: CURRENCY,
      createdAt: new Date().toISOString(),
    };
    transfers.set(transfer.id, transfer);
    ledger.push(transfer);
    sendJson(res, 201, transfer, { location: `/transfers/${transfer.id}` });
  }

  function getTransfer(req, res, id) {
    const caller = authenticate(req);
    const transfer = transfers.get(id);
    if (transfer === undefined) throw new HttpError(404, 'not_found', 'no such transfer');
    if (transfer.from !== caller && transfer.to !== caller) {
      throw new HttpError(403, 'forbidden', 'only the sender or the receiver may read a transfer');
    }
    sendJson(res, 200, transfer);
  }

  function getLedger(req, res) {
    const balances = {};
    for (const a of accounts.values()) balances[a.id] = a.balance;
    sendJson(res, 200, { count: ledger.length, transfers: ledger, balances });
  }

  const routes = [
    { pattern: /^\/healthz$/, methods: { GET: (req, res) => sendJson(res, 200, { status: 'ok' }) } },
    { pattern: /^\/accounts\/([^/]+)$/, methods: { GET: getAccount } },
    { pattern: /^\/transfers$/, methods: { POST: createTransfer } },
    { pattern: /^\/transfers\/([^/]+)$/, methods: { GET: getTransfer } },
  ];
  if (admin) routes.push({ pattern: /^\/admin\/ledger$/, methods: { GET: getLedger } });

  async function handle(req, res) {
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const path = q === -1 ? target : target.slice(0, q);
    for (const route of routes) {
      const m = route.pattern.exec(path);
      if (m === null) continue;
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      const handler = Object.hasOwn(route.methods, method) ? route.methods[method] : undefined;
      if (handler === undefined) {
        const allow = Object.keys(route.methods).flatMap((k) => (k === 'GET' ? ['GET', 'HEAD'] : [k]));
        throw new HttpError(405, 'method_not_allowed', `use ${allow.join(' or ')}`, { allow: allow.join(', ') });
      }
      await handler(req, res, ...m.slice(1));
      return;
    }
    throw new HttpError(404, 'not_found', 'no such resource');
  }

  return http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) {
        sendError(res, err);
      } else {
        sendError(res, new HttpError(500, 'internal_error', 'internal error'));
      }
    });
  });
}

/**
 * Listens on PORT/HOST (default 127.0.0.1:8080) until SIGTERM or SIGINT; `make()` builds the
 * server once the address is checked. Shared with examples/leaky-replica.
 */
export function serveFromEnv(name, make, describe = () => '') {
  const port = Number(process.env.PORT || 8080);
  const host = process.env.HOST || '127.0.0.1';
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`${name}: PORT must be an integer in 0..65535, got ${JSON.stringify(process.env.PORT)}`);
    process.exit(2);
  }
  const server = make();
  server.on('error', (err) => {
    console.error(`${name}: cannot listen on ${host}:${port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(port, host, () => {
    const addr = server.address();
    const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    console.log(`${name}: listening on http://${shown}:${addr.port}${describe()}`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return server;
}

/** Whether the module at `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl) {
  if (process.argv[1] === undefined) return false;
  try {
    return moduleUrl === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isMain(import.meta.url)) {
  const admin = process.env.BANK_ADMIN === '1';
  serveFromEnv('bank', () => createBank({ admin }), () => (admin ? ' (admin endpoints enabled)' : ''));
}
