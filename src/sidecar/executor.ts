import { setTimeout as delay } from 'node:timers/promises';
import { Pool } from 'undici';
import { utf8 } from '../codec/binary.js';
import { DEFAULT_DECODE_LIMITS, decodeRequest, encodeReply, type CanonicalRequest } from '../codec/canonical.js';
import { HOP_BY_HOP, canonicalHeaders, type HeaderField } from '../codec/headers.js';

/**
 * The executor: sends one committed request at a time to the local legacy service over a
 * keep-alive undici pool, and turns the answer into the canonical reply every correct replica
 * computes identically.
 *
 * Request: method, target, the (already allowlisted, canonical) request headers and the body of
 * the canonical request, plus `cbft-sequence`, `cbft-timestamp` and `cbft-seed`; hop-by-hop
 * headers never travel. Reply: status, the reply-allowlisted headers (lower-cased, sorted,
 * hop-by-hop and `connection`-named fields dropped) and the body.
 *
 * Outcomes of one attempt:
 * - `reply`: the canonical reply bytes. Also the fixed, deterministic error replies this module
 *   defines (`reply_too_large`, `bad_upstream_reply`, `malformed_request`), which are functions of
 *   the agreed request and the service's (deterministic) answer, so every correct replica produces
 *   the same bytes.
 * - `not-sent`: the upstream could not be reached before anything was sent (connection refused,
 *   no route, connect timeout): safe to retry, the replica falls behind meanwhile.
 * - `unknown`: the request may have reached the service but no complete answer came back (timeout,
 *   reset): the outcome is unknown, so the request must never be re-sent and no reply may be
 *   invented for it (I7).
 */
export const SEQUENCE_HEADER = 'cbft-sequence';
export const TIMESTAMP_HEADER = 'cbft-timestamp';
export const SEED_HEADER = 'cbft-seed';

export interface UpstreamRequest {
  seq: number;
  /** Effective batch timestamp, ms. */
  timestamp: number;
  /** Per-request seed, 64 hex chars. */
  seedHex: string;
  digest: Uint8Array;
  /** Canonical request bytes as ordered by PBFT. */
  payload: Uint8Array;
}

export type AttemptResult =
  | { kind: 'reply'; reply: Uint8Array; status: number; latencyMs: number; note?: FixedErrorCode }
  | { kind: 'not-sent'; error: Error }
  | { kind: 'unknown'; reason: 'timeout' | 'error'; error: Error; latencyMs: number };

export type FixedErrorCode = 'reply_too_large' | 'bad_upstream_reply' | 'malformed_request';

export interface ExecutorOptions {
  /** Origin of the legacy service, e.g. http://127.0.0.1:8080. */
  upstream: string;
  /** Reply header allowlist (lower-case). */
  replyAllow: ReadonlySet<string>;
  maxRequestBodyBytes: number;
  maxReplyBodyBytes: number;
  upstreamTimeoutMs: number;
  /** Header limits when decoding committed requests (same on every replica). */
  maxHeaderBytes?: number;
}

/** Network errors that mean nothing was sent: the connection was never established. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function errorCodes(err: unknown): string[] {
  const out: string[] = [];
  const visit = (e: unknown, depth: number) => {
    if (depth > 4 || typeof e !== 'object' || e === null) return;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') out.push(code);
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors)) for (const x of errors) visit(x, depth + 1);
    visit((e as { cause?: unknown }).cause, depth + 1);
  };
  visit(err, 0);
  return out;
}

/** True when the error proves the request never left this process (a connect failure). */
export function isNotSent(err: unknown): boolean {
  const codes = errorCodes(err);
  return codes.length > 0 && codes.some((c) => NOT_SENT_CODES.has(c)) && !codes.includes('UND_ERR_ABORTED');
}

/** A fixed canonical error reply: JSON `{"error": CODE, "message": ...}` with status `status`. */
export function fixedErrorReply(digest: Uint8Array, status: number, code: string, message: string): Uint8Array {
  return encodeReply({
    requestDigest: digest,
    status,
    headers: [['content-type', 'application/json']],
    body: utf8(JSON.stringify({ error: code, message })),
  });
}

/** The reply for an upstream answer over the configured limit; identical on every replica. */
export function replyTooLarge(digest: Uint8Array, limit: number): Uint8Array {
  return fixedErrorReply(digest, 502, 'reply_too_large', `the service's reply body exceeds the configured limit of ${limit} bytes`);
}

const CBFT_HEADERS = new Set([SEQUENCE_HEADER, TIMESTAMP_HEADER, SEED_HEADER]);
// Framing the sidecar computes itself; a canonical request never dictates them.
const FRAMING = new Set(['content-length', 'host', 'expect']);

/** The headers sent upstream for one canonical request. Exported for tests. */
export function upstreamHeaders(req: CanonicalRequest, u: Pick<UpstreamRequest, 'seq' | 'timestamp' | 'seedHex'>): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of req.headers) {
    if (HOP_BY_HOP.has(name) || CBFT_HEADERS.has(name) || FRAMING.has(name)) continue;
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else headers[name] = [prev, value];
  }
  headers[SEQUENCE_HEADER] = String(u.seq);
  headers[TIMESTAMP_HEADER] = String(u.timestamp);
  headers[SEED_HEADER] = u.seedHex;
  return headers;
}

function pairs(headers: Record<string, string | string[] | undefined>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push([name, v]);
    else out.push([name, value]);
  }
  return out;
}

const BODYLESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE']);

export class Executor {
  private readonly pool: Pool;
  private readonly limits;

  constructor(private readonly o: ExecutorOptions) {
    this.pool = new Pool(o.upstream, {
      connections: 4,
      pipelining: 1,
      // Below Node's default server keep-alive (5 s), so the pool drops an idle connection before
      // the service does and a request is never written onto a socket the service is closing.
      keepAliveTimeout: 2_000,
      keepAliveMaxTimeout: 2_000,
      connectTimeout: Math.min(10_000, o.upstreamTimeoutMs),
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    this.limits = {
      ...DEFAULT_DECODE_LIMITS,
      maxBody: o.maxRequestBodyBytes,
      ...(o.maxHeaderBytes !== undefined ? { maxHeaderBytes: o.maxHeaderBytes } : {}),
    };
  }

  /** One attempt; never throws. */
  async attempt(u: UpstreamRequest): Promise<AttemptResult> {
    const started = performance.now();
    let req: CanonicalRequest;
    try {
      req = decodeRequest(u.payload, this.limits);
    } catch (err) {
      // A Byzantine primary can order bytes that are not a canonical request; every correct
      // replica refuses them the same way, without contacting the service.
      return {
        kind: 'reply',
        reply: fixedErrorReply(u.digest, 400, 'malformed_request', 'the ordered request is not a valid canonical request'),
        status: 400,
        latencyMs: 0,
        note: 'malformed_request',
      };
    }
    const headers = upstreamHeaders(req, u);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new UpstreamTimeout(this.o.upstreamTimeoutMs)), this.o.upstreamTimeoutMs);
    let phase: 'send' | 'body' = 'send';
    try {
      const body = req.body.length > 0 || !BODYLESS.has(req.method) ? Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength) : undefined;
      if (body !== undefined) headers['content-length'] = String(body.length);
      let res;
      try {
        res = await this.pool.request({ path: req.target, method: req.method, headers, body, signal: controller.signal });
      } catch (err) {
        if ((err as { code?: string }).code === 'UND_ERR_INVALID_ARG') {
          // undici refused the request before sending it (e.g. a target it cannot express).
          return {
            kind: 'reply',
            reply: fixedErrorReply(u.digest, 400, 'malformed_request', 'the ordered request cannot be sent to the service'),
            status: 400,
            latencyMs: performance.now() - started,
            note: 'malformed_request',
          };
        }
        throw err;
      }
      phase = 'body';
      // Destroying the body early (oversized replies) must not surface as an uncaught error.
      res.body.on('error', () => undefined);
      const limit = this.o.maxReplyBodyBytes;
      const declared = Number(res.headers['content-length'] ?? NaN);
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = declared > limit;
      if (!tooLarge) {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > limit) {
            tooLarge = true;
            break;
          }
          chunks.push(chunk);
        }
      }
      const latencyMs = performance.now() - started;
      if (tooLarge) {
        res.body.destroy();
        return { kind: 'reply', reply: replyTooLarge(u.digest, limit), status: 502, latencyMs, note: 'reply_too_large' };
      }
      const replyHeaders: HeaderField[] = canonicalHeaders(pairs(res.headers), this.o.replyAllow);
      try {
        const reply = encodeReply({ requestDigest: u.digest, status: res.statusCode, headers: replyHeaders, body: Buffer.concat(chunks, size) });
        return { kind: 'reply', reply, status: res.statusCode, latencyMs };
      } catch {
        return {
          kind: 'reply',
          reply: fixedErrorReply(u.digest, 502, 'bad_upstream_reply', 'the service answered with a status or header that cannot be signed'),
          status: 502,
          latencyMs,
          note: 'bad_upstream_reply',
        };
      }
    } catch (err) {
      const latencyMs = performance.now() - started;
      const error = controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason : (err as Error);
      if (controller.signal.aborted) return { kind: 'unknown', reason: 'timeout', error, latencyMs };
      if (phase === 'send' && isNotSent(err)) return { kind: 'not-sent', error };
      return { kind: 'unknown', reason: 'error', error, latencyMs };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

export class UpstreamTimeout extends Error {
  constructor(ms: number) {
    super(`the service did not answer within ${ms} ms`);
    this.name = 'UpstreamTimeout';
  }
}

export interface RetryHooks {
  /** Called (and must make the "started" record durable) right before each attempt. */
  beforeSend(attempt: number): void | Promise<void>;
  /** Called after an attempt that provably sent nothing, before waiting to retry. */
  notSent(error: Error, attempt: number, retryInMs: number): void | Promise<void>;
  signal?: AbortSignal;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export type ExecutionResult = Exclude<AttemptResult, { kind: 'not-sent' }> | { kind: 'stopped' };

/**
 * Runs one request to completion: retries with exponential backoff while the upstream is
 * unreachable (nothing sent), and returns the first reply or unknown outcome. Resolves `stopped`
 * if `signal` aborts while waiting to retry (the request was then provably not sent).
 */
export async function executeWithRetry(executor: Pick<Executor, 'attempt'>, u: UpstreamRequest, hooks: RetryHooks): Promise<ExecutionResult> {
  const min = hooks.minBackoffMs ?? 50;
  const max = hooks.maxBackoffMs ?? 2_000;
  let backoff = min;
  for (let attempt = 0; ; attempt++) {
    if (hooks.signal?.aborted) return { kind: 'stopped' };
    await hooks.beforeSend(attempt);
    const r = await executor.attempt(u);
    if (r.kind !== 'not-sent') return r;
    await hooks.notSent(r.error, attempt, backoff);
    try {
      await delay(backoff, undefined, hooks.signal ? { signal: hooks.signal } : undefined);
    } catch {
      return { kind: 'stopped' };
    }
    backoff = Math.min(max, backoff * 2);
  }
}
