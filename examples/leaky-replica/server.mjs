#!/usr/bin/env node
// The leaky replica: examples/bank, compromised. It serves the same API from the same code
// (createBank from ../bank/server.mjs) and then tries to smuggle the confidential data of OTHER
// accounts (owners and balances) to whoever called it, through every channel a replica has:
//
//   headers  extra response headers (x-leak*, set-cookie) and secrets folded into the signed,
//            allowlisted ones (cache-control, content-type parameters, location)
//   json     extra fields in the JSON body
//   status   a changed status code (200 + secret byte mod 100)
//   body     a completely different body (all accounts, plain, hex and base64)
//   timing   answer late (LEAK_DELAY_MS) when the current secret bit is 1
//   crash    exit in the middle of the request when the current secret bit is 1
//
// It is the adversary of the red team (`npm run redteam`, bench/redteam/): behind cbft none of the
// content channels may reach a client, and the timing and crash channels are measured. See
// README.md beside this file. Never run it anywhere but in a test.

import http from 'node:http';
import { readFileSync, writeSync } from 'node:fs';
import { createBank, isMain, SEED_ACCOUNTS, serveFromEnv } from '../bank/server.mjs';

export const CHANNELS = Object.freeze(['headers', 'json', 'status', 'body', 'timing', 'crash']);

/** A fixed, public bit pattern sent before the secret bits, so the receiver can calibrate. */
export const PREAMBLE_BYTE = 0xa5;

/** Bit i of the stream the timing and crash channels send: the preamble, then the secret, MSB first. */
export function streamBit(secret, i, preambleBits) {
  if (i < preambleBits) return (PREAMBLE_BYTE >> (7 - (i % 8))) & 1;
  const bytes = Buffer.from(secret, 'utf8');
  if (bytes.length === 0) return 0;
  const j = (i - preambleBits) % (bytes.length * 8);
  return (bytes[j >> 3] >> (7 - (j & 7))) & 1;
}

/** The secret the replica exfiltrates to `caller`: every other account, as `id owner balance;`. */
export function secretFor(balances, caller) {
  return SEED_ACCOUNTS.filter((a) => a.id !== caller)
    .map((a) => `${a.id} ${a.owner} ${balances.get(a.id)};`)
    .join('');
}

/** Parses a channel list: comma separated names, `all` or `none`. Unknown names are an error. */
export function parseChannels(text) {
  const names = String(text ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
  if (names.length === 0 || names.includes('none')) return new Set();
  if (names.includes('all')) return new Set(CHANNELS);
  for (const n of names) {
    if (!CHANNELS.includes(n)) throw new Error(`unknown leak channel ${JSON.stringify(n)}; use ${CHANNELS.join(', ')}, all or none`);
  }
  return new Set(names);
}

const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
const b64url = (s) => Buffer.from(s, 'utf8').toString('base64url');
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
/** Header values must be latin1 without control characters; names like "García" are latin1. */
const headerSafe = (s) => s.replace(/[^\x20-\x7e\xa0-\xff]/g, '?');

function logLine(value) {
  // Synchronous, so the line is out before a crash.
  try {
    writeSync(1, JSON.stringify(value) + '\n');
  } catch {
    // stdout closed: nothing to do
  }
}

/**
 * Creates the leaky server. `control()` returns the current settings `{channels: Set, delayMs,
 * preambleBits}` and is called for every request, so a harness can switch channels without a
 * restart (which would reset the in-memory bank).
 */
export function createLeakyBank({ admin = false, control, log = logLine, exit = (code) => process.exit(code) } = {}) {
  const bank = createBank({ admin });
  const [handler] = bank.listeners('request');
  // A shadow copy of every balance, kept up to date from the transfers this replica itself
  // executes: a compromised process sees everything that passes through it.
  const balances = new Map(SEED_ACCOUNTS.map((a) => [a.id, a.balance]));
  const tokens = new Map(SEED_ACCOUNTS.map((a) => [a.token, a.id]));
  let counter = 0;

  return http.createServer((req, res) => {
    const settings = control();
    const channels = settings.channels;
    const url = new URL(req.url ?? '/', 'http://x');
    const bitParam = url.searchParams.get('bit');
    const index = bitParam !== null && /^[0-9]{1,9}$/.test(bitParam) ? Number(bitParam) : counter;
    counter++;
    const m = /^Bearer +(\S+)/i.exec(req.headers.authorization ?? '');
    const caller = m ? tokens.get(m[1]) : undefined;

    const realWriteHead = res.writeHead;
    const realEnd = res.end;
    let head;
    res.writeHead = function (status, ...rest) {
      const headers = rest.find((x) => typeof x === 'object' && x !== null) ?? {};
      head = { status, headers: { ...headers } };
      return res;
    };
    res.end = function (chunk, ...rest) {
      res.writeHead = realWriteHead;
      res.end = realEnd;
      const body = chunk === undefined || typeof chunk === 'function' ? Buffer.alloc(0) : Buffer.from(chunk);
      finish(head ?? { status: res.statusCode, headers: {} }, body);
      return res;
    };

    const finish = ({ status, headers }, body) => {
      // Keep the shadow balances current (before leaking, so the leak is the freshest state).
      if (status === 201 && req.method === 'POST') {
        try {
          const t = JSON.parse(body.toString('utf8'));
          if (balances.has(t.from) && balances.has(t.to) && Number.isSafeInteger(t.amount)) {
            balances.set(t.from, balances.get(t.from) - t.amount);
            balances.set(t.to, balances.get(t.to) + t.amount);
          }
        } catch {
          // not a transfer
        }
      }
      const secret = secretFor(balances, caller);
      const bit = streamBit(secret, index, settings.preambleBits);
      let attempted = 0;
      const out = { ...headers };
      delete out['content-length'];
      let outStatus = status;
      let outBody = body;

      if (channels.has('json')) {
        try {
          const value = JSON.parse(outBody.toString('utf8'));
          if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
            const others = Object.fromEntries(SEED_ACCOUNTS.filter((a) => a.id !== caller).map((a) => [a.id, { owner: a.owner, balance: balances.get(a.id) }]));
            value._accounts = others;
            value._leak_b64 = b64(secret);
            value._leak_hex = hex(secret);
            outBody = Buffer.from(JSON.stringify(value) + '\n', 'utf8');
            attempted += Buffer.byteLength(JSON.stringify(others)) + 3 * Buffer.byteLength(secret);
          }
        } catch {
          // not JSON: leave it
        }
      }
      if (channels.has('body')) {
        const lines = [
          'all accounts, courtesy of a compromised replica:',
          ...SEED_ACCOUNTS.filter((a) => a.id !== caller).map((a) => `${a.id}\t${a.owner}\t${balances.get(a.id)}`),
          `base64: ${b64(secret)}`,
          `hex: ${hex(secret)}`,
          '',
        ];
        outBody = Buffer.from(lines.join('\n'), 'utf8');
        out['content-type'] = 'text/plain; charset=utf-8';
        attempted += outBody.length;
      }
      if (channels.has('headers')) {
        out['x-leak'] = headerSafe(secret);
        out['x-leak-b64'] = b64(secret);
        out['x-leak-hex'] = hex(secret);
        out['set-cookie'] = `leak=${b64url(secret)}; Path=/`;
        // Folded into headers that ARE signed and released: content-type parameters,
        // cache-control extensions and a location.
        out['cache-control'] = `${out['cache-control'] ?? 'no-store'}, x-leak="${b64(secret)}"`;
        out['content-type'] = `${out['content-type'] ?? 'application/json'}; leak=${b64url(secret)}`;
        out.location = `/leak/${encodeURIComponent(secret)}`;
        attempted += Buffer.byteLength(secret) * 7;
      }
      if (channels.has('status')) {
        const bytes = Buffer.from(secret, 'utf8');
        outStatus = 200 + (bytes.length > 0 ? bytes[index % bytes.length] % 100 : 0);
        attempted += 1;
      }
      const crash = channels.has('crash') && bit === 1;
      const delayMs = channels.has('timing') && bit === 1 ? settings.delayMs : 0;
      log({ leakyReplica: true, i: index, bit, channels: [...channels], attemptedBytes: attempted, status: outStatus, delayMs, crash, caller: caller ?? null, tag: url.searchParams.get('tag') });
      if (crash) {
        // Die in the middle of the request, before a byte of the answer is written.
        exit(70);
        return;
      }
      const send = () => {
        out['content-length'] = String(outBody.length);
        try {
          res.writeHead(outStatus, out);
          res.end(req.method === 'HEAD' ? undefined : outBody);
        } catch {
          // a header the runtime refuses: fall back to the honest answer
          if (!res.headersSent) {
            res.writeHead(status, { ...headers, 'content-length': String(body.length) });
            res.end(req.method === 'HEAD' ? undefined : body);
          }
        }
      };
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    };

    handler(req, res);
  });
}

/** Settings from the environment, re-reading LEAK_CONTROL_FILE (JSON) on every call if set. */
export function controlFromEnv(env = process.env) {
  const base = {
    channels: parseChannels(env.LEAK_CHANNELS ?? 'all'),
    delayMs: Number(env.LEAK_DELAY_MS ?? 50),
    preambleBits: Number(env.LEAK_PREAMBLE_BITS ?? 16),
  };
  for (const [k, v] of [['LEAK_DELAY_MS', base.delayMs], ['LEAK_PREAMBLE_BITS', base.preambleBits]]) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${k} must be a non-negative integer`);
  }
  const file = env.LEAK_CONTROL_FILE;
  if (!file) return () => base;
  let last = base;
  return () => {
    try {
      const c = JSON.parse(readFileSync(file, 'utf8'));
      last = {
        channels: c.channels === undefined ? base.channels : parseChannels(Array.isArray(c.channels) ? c.channels.join(',') : c.channels),
        delayMs: Number.isInteger(c.delayMs) && c.delayMs >= 0 ? c.delayMs : base.delayMs,
        preambleBits: Number.isInteger(c.preambleBits) && c.preambleBits >= 0 ? c.preambleBits : base.preambleBits,
      };
    } catch {
      // missing or half-written file: keep the last settings
    }
    return last;
  };
}

if (isMain(import.meta.url)) {
  const admin = process.env.BANK_ADMIN === '1';
  let control;
  try {
    control = controlFromEnv();
    control();
  } catch (err) {
    console.error(`leaky-replica: ${err.message}`);
    process.exit(2);
  }
  serveFromEnv('leaky-replica', () => createLeakyBank({ admin, control }), () => ` leaking through ${[...control().channels].join(',') || 'nothing'}`);
}
