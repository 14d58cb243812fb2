import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../src/codec/binary.js';
import { decodeReply, digestOf, encodeRequest } from '../../src/codec/canonical.js';
import { DEFAULT_REPLY_HEADERS, allowlist, type HeaderField } from '../../src/codec/headers.js';
import {
  Executor,
  executeWithRetry,
  fixedErrorReply,
  isNotSent,
  replyTooLarge,
  type ExecutorOptions,
  type UpstreamRequest,
} from '../../src/sidecar/executor.js';
import { freePorts } from './helpers.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: string;
}

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function server(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void, port = 0): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const s = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise((r) => {
        s.closeAllConnections();
        s.close(r);
      }),
  );
  return { url: `http://127.0.0.1:${(s.address() as { port: number }).port}`, seen, server: s };
}

function executor(upstream: string, o: Partial<ExecutorOptions> = {}): Executor {
  const e = new Executor({
    upstream,
    replyAllow: allowlist(DEFAULT_REPLY_HEADERS),
    maxRequestBodyBytes: 1024 * 1024,
    maxReplyBodyBytes: 1024,
    upstreamTimeoutMs: 2_000,
    ...o,
  });
  closers.push(() => e.close());
  return e;
}

function request(method: string, target: string, body = '', headers: HeaderField[] = []): UpstreamRequest {
  const payload = encodeRequest({ nonce: new Uint8Array(16).fill(7), method, target, headers, body: utf8(body) });
  return { seq: 42, timestamp: 1_767_225_600_123, seedHex: 'ab'.repeat(32), digest: digestOf(payload), payload };
}

const okJson = (res: ServerResponse, body = '{"ok":true}', headers: Record<string, string | string[]> = {}) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
};

describe('executor: request to the service', () => {
  it('sends method, target, canonical headers and body, plus cbft-sequence/timestamp/seed; never hop-by-hop or spoofed cbft headers', async () => {
    const up = await server((_req, res) => okJson(res));
    const e = executor(up.url);
    const u = request('POST', '/transfers?x=1&y=%20', '{"amount":5}', [
      ['accept', 'application/json'],
      ['authorization', 'Bearer t'],
      ['cbft-sequence', '999'], // a client cannot choose the sequence the service sees
      ['connection', 'close'],
      ['content-length', '9999'],
      ['content-type', 'application/json'],
      ['te', 'trailers'],
      ['x-multi', 'a'],
      ['x-multi', 'b'],
    ]);
    const r = await e.attempt(u);
    expect(r.kind).toBe('reply');
    expect(up.seen).toHaveLength(1);
    const s = up.seen[0]!;
    expect(s.method).toBe('POST');
    expect(s.url).toBe('/transfers?x=1&y=%20');
    expect(s.body).toBe('{"amount":5}');
    expect(s.headers['cbft-sequence']).toBe('42');
    expect(s.headers['cbft-timestamp']).toBe('1767225600123');
    expect(s.headers['cbft-seed']).toBe('ab'.repeat(32));
    expect(s.headers['accept']).toBe('application/json');
    expect(s.headers['authorization']).toBe('Bearer t');
    expect(s.headers['content-type']).toBe('application/json');
    expect(s.headers['content-length']).toBe('12');
    expect(s.headers['x-multi']).toBe('a, b');
    expect(s.headers['te']).toBeUndefined();
    expect(s.headers['transfer-encoding']).toBeUndefined();
    // Exactly one of each cbft header (the spoofed one was dropped).
    expect(s.rawHeaders.filter((h) => h.toLowerCase() === 'cbft-sequence')).toHaveLength(1);
    expect(s.headers['connection']).not.toBe('close');
  });

  it('sends a GET without a body or body framing', async () => {
    const up = await server((_req, res) => okJson(res));
    const r = await executor(up.url).attempt(request('GET', '/accounts/acc-1'));
    expect(r.kind).toBe('reply');
    expect(up.seen[0]!.headers['content-length']).toBeUndefined();
    expect(up.seen[0]!.headers['transfer-encoding']).toBeUndefined();
  });

  it('answers a committed payload that is not a canonical request with a fixed 400, without contacting the service', async () => {
    const up = await server((_req, res) => okJson(res));
    const payload = utf8('garbage ordered by a faulty primary');
    const digest = digestOf(payload);
    const r = await executor(up.url).attempt({ seq: 1, timestamp: 1, seedHex: '00'.repeat(32), digest, payload });
    expect(r).toMatchObject({ kind: 'reply', status: 400, note: 'malformed_request' });
    expect(up.seen).toHaveLength(0);
    if (r.kind !== 'reply') throw new Error('unreachable');
    expect(toHex(r.reply)).toBe(toHex(fixedErrorReply(digest, 400, 'malformed_request', 'the ordered request is not a valid canonical request')));
  });
});

describe('executor: canonical reply', () => {
  const messy = (res: ServerResponse, date: string) =>
    okJson(res, '{"id":"t-1"}', {
      connection: 'keep-alive, x-conn-named',
      'keep-alive': 'timeout=5',
      'x-conn-named': 'leak',
      'x-powered-by': 'Express',
      server: 'legacy/1.0',
      date,
      'set-cookie': ['a=1', 'b=2'],
      'cache-control': 'no-store',
      location: '/transfers/t-1',
    });

  it('keeps only allowlisted, non hop-by-hop headers, lower-cased and sorted; drops what the service adds on its own', async () => {
    const up = await server((_req, res) => messy(res, new Date().toUTCString()));
    const u = request('POST', '/transfers', '{}');
    const r = await executor(up.url).attempt(u);
    if (r.kind !== 'reply') throw new Error(`expected a reply, got ${r.kind}`);
    const rep = decodeReply(r.reply);
    expect(rep.status).toBe(200);
    expect(toHex(rep.requestDigest)).toBe(toHex(u.digest));
    expect(rep.headers).toEqual([
      ['cache-control', 'no-store'],
      ['content-type', 'application/json'],
      ['location', '/transfers/t-1'],
    ]);
    expect(Buffer.from(rep.body).toString()).toBe('{"id":"t-1"}');
  });

  it('honours a configured extra reply header (in received order) and never a connection-named one', async () => {
    const up = await server((_req, res) => messy(res, 'x'));
    const r = await executor(up.url, { replyAllow: allowlist(DEFAULT_REPLY_HEADERS, ['set-cookie', 'x-conn-named']) }).attempt(request('GET', '/'));
    if (r.kind !== 'reply') throw new Error('expected a reply');
    const names = decodeReply(r.reply).headers;
    expect(names.filter(([n]) => n === 'set-cookie')).toEqual([
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
    ]);
    expect(names.find(([n]) => n === 'x-conn-named')).toBeUndefined();
  });

  it('two services that differ only in unsigned headers give byte-identical canonical replies', async () => {
    const a = await server((_req, res) => messy(res, 'Mon, 01 Jan 2024 00:00:00 GMT'));
    const b = await server((_req, res) => messy(res, 'Tue, 02 Jan 2024 00:00:00 GMT'));
    const u = request('POST', '/transfers', '{}');
    const ra = await executor(a.url).attempt(u);
    const rb = await executor(b.url).attempt(u);
    if (ra.kind !== 'reply' || rb.kind !== 'reply') throw new Error('expected replies');
    expect(toHex(ra.reply)).toBe(toHex(rb.reply));
  });

  it('turns a reply body over maxReplyBodyBytes into the fixed 502 reply_too_large, identically with or without content-length', async () => {
    const limit = 1000;
    const big = 'y'.repeat(limit + 1);
    const declared = await server((_req, res) => okJson(res, big));
    const chunked = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      for (let i = 0; i < big.length; i += 100) res.write(big.slice(i, i + 100));
      res.end();
    });
    const exact = await server((_req, res) => okJson(res, 'z'.repeat(limit)));
    const u = request('GET', '/big');
    const r1 = await executor(declared.url, { maxReplyBodyBytes: limit }).attempt(u);
    const r2 = await executor(chunked.url, { maxReplyBodyBytes: limit }).attempt(u);
    const r3 = await executor(exact.url, { maxReplyBodyBytes: limit }).attempt(u);
    if (r1.kind !== 'reply' || r2.kind !== 'reply' || r3.kind !== 'reply') throw new Error('expected replies');
    expect(r1.note).toBe('reply_too_large');
    expect(toHex(r1.reply)).toBe(toHex(r2.reply));
    expect(toHex(r1.reply)).toBe(toHex(replyTooLarge(u.digest, limit)));
    const rep = decodeReply(r1.reply);
    expect(rep.status).toBe(502);
    expect(JSON.parse(Buffer.from(rep.body).toString())).toMatchObject({ error: 'reply_too_large' });
    // At the limit exactly, the reply goes through untouched.
    expect(r3.status).toBe(200);
    expect(decodeReply(r3.reply).body.length).toBe(limit);
  });
});

describe('executor: failures', () => {
  it('reports an upstream that does not answer in time as an unknown outcome (timeout), never as a reply', async () => {
    const up = await server(() => {
      /* never answers */
    });
    const t0 = Date.now();
    const r = await executor(up.url, { upstreamTimeoutMs: 300 }).attempt(request('POST', '/slow', 'x'));
    expect(r.kind).toBe('unknown');
    if (r.kind !== 'unknown') throw new Error('unreachable');
    expect(r.reason).toBe('timeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(up.seen).toHaveLength(1); // it did reach the service: re-sending could apply it twice
  });

  it('reports a connection reset after the request was sent as an unknown outcome', async () => {
    const up = await server((req) => req.socket.destroy());
    const r = await executor(up.url).attempt(request('POST', '/reset', 'x'));
    expect(r).toMatchObject({ kind: 'unknown', reason: 'error' });
  });

  it('reports an unreachable upstream as not sent', async () => {
    const [port] = await freePorts(1);
    const r = await executor(`http://127.0.0.1:${port}`).attempt(request('GET', '/'));
    expect(r.kind).toBe('not-sent');
    if (r.kind !== 'not-sent') throw new Error('unreachable');
    expect(isNotSent(r.error)).toBe(true);
    expect(isNotSent(new Error('other side closed'))).toBe(false);
  });

  it('retries with backoff while the upstream is unreachable and sends exactly once when it comes up', async () => {
    const [port] = await freePorts(1);
    const e = executor(`http://127.0.0.1:${port}`);
    const events: string[] = [];
    let upSeen: Seen[] = [];
    setTimeout(() => {
      void server((_req, res) => okJson(res, '{"late":true}'), port).then((s) => (upSeen = s.seen));
    }, 400);
    const r = await executeWithRetry(e, request('POST', '/op/once', 'b'), {
      beforeSend: (attempt) => void events.push(`send:${attempt}`),
      notSent: (_err, attempt, retryIn) => void events.push(`not-sent:${attempt}:${retryIn}`),
      minBackoffMs: 20,
      maxBackoffMs: 160,
    });
    expect(r.kind).toBe('reply');
    expect(upSeen).toHaveLength(1);
    const sends = events.filter((x) => x.startsWith('send:'));
    const notSent = events.filter((x) => x.startsWith('not-sent:'));
    expect(sends.length).toBe(notSent.length + 1);
    expect(notSent.length).toBeGreaterThanOrEqual(2);
    // Exponential backoff, capped.
    const waits = notSent.map((x) => Number(x.split(':')[2]));
    expect(waits.slice(0, 4)).toEqual([20, 40, 80, 160].slice(0, Math.min(4, waits.length)));
    expect(Math.max(...waits)).toBe(160);
  });

  it('stops retrying when asked to drain, without having sent anything', async () => {
    const [port] = await freePorts(1);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 150);
    const r = await executeWithRetry(executor(`http://127.0.0.1:${port}`), request('GET', '/'), {
      beforeSend: () => undefined,
      notSent: () => undefined,
      signal: ac.signal,
      minBackoffMs: 20,
    });
    expect(r.kind).toBe('stopped');
  });
});
