import { randomBytes } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { toBase64, toHex } from '../codec/binary.js';
import { digestOf, encodeRequest, NONCE_BYTES, type CanonicalReply } from '../codec/canonical.js';
import { canonicalHeaders, pairRawHeaders } from '../codec/headers.js';
import type { Logger } from '../log.js';
import { FailCode } from '../wire/payloads.js';
import type { FirewallMetrics } from './metrics.js';
import type { Entry, Outcome, ReleaseQueue } from './queue.js';

/**
 * The bottom node's client-facing HTTP/1.1 server: a plain node:http server (no framework on the
 * hot path, no JSON except on error paths). It accepts every method node's parser knows (others,
 * and CONNECT, get 400) with an origin-form, asterisk-form or absolute-form target (the latter is
 * reduced to path and query, RFC 9112 §3.2.2), keeps connections alive, bounds header bytes
 * (`maxHeaderBytes` → 431) and header count (`maxHeaders` → 431), bodies (→ 413), connections and
 * the time a client may take to send a request (slowloris → 408), builds the canonical request and
 * hands it to the node. The response is built only from the signed canonical reply (I1, I3): its
 * status, its headers, its body, the four cbft headers and the bottom's own content-length; `date`
 * is off and node adds nothing but its own connection framing. Every request that reaches the
 * listener, including those node's parser rejects, is counted and gets one access-log line.
 */
export interface FrontContext {
  res: ServerResponse;
  method: string;
  path: string;
  nonceHex: string;
}

export interface FrontOptions {
  forwardAllow: ReadonlySet<string>;
  replyAllow: ReadonlySet<string>;
  maxBodyBytes: number;
  maxHeaderBytes: number;
  /** Most header fields a request may carry (default {@link MAX_REQUEST_HEADERS}). */
  maxHeaders?: number;
  maxConnections: number;
  queue: ReleaseQueue<FrontContext>;
  /** Forwards the canonical request up; false when the link refuses it (overload). */
  submit(bytes: Uint8Array): boolean;
  /** Whether requests are accepted right now (not draining, upper neighbour reachable). */
  state(): 'ok' | 'draining' | 'not-ready';
  metrics: FirewallMetrics;
  log: Logger;
}

export const FirewallErrors = {
  malformed_request: 400,
  body_too_large: 413,
  headers_too_large: 431,
  replicas_disagree: 502,
  bad_reply: 502,
  overloaded: 503,
  not_ready: 503,
  timeout: 504,
} as const;
export type FirewallErrorCode = keyof typeof FirewallErrors;

const NONCE_RE = /^[0-9a-fA-F]{32}$/;

/**
 * Default bound on the number of header fields of a client request (answered with 431
 * `headers_too_large`). It equals the canonical request decoder's header limit, so every request
 * the bottom accepts can be decoded by the nodes above it. Node's own cap (`maxHeadersCount`,
 * 2000) silently drops the fields after it, which would change the request, so it is switched off
 * and this one enforced instead; `maxHeaderBytes` still bounds what the parser holds.
 */
export const MAX_REQUEST_HEADERS = 256;

// absolute-form (RFC 9112 §3.2.2): http(s)://authority[path][?query]; no userinfo, no empty host.
const ABSOLUTE_RE = /^https?:\/\/[A-Za-z0-9\-._~!$&'()*+,;=:[\]%]+(?=[/?]|$)/i;

/**
 * The canonical (origin- or asterisk-form) target of a request target, or undefined when it has
 * none. An absolute-form target keeps only its path and query, byte for byte (no normalization),
 * so the same request sent in either form has the same digest and the authority, which the service
 * never sees, cannot change it.
 */
export function canonicalTarget(method: string, target: string): string | undefined {
  if (target.startsWith('/') || target === '*') return target;
  const m = ABSOLUTE_RE.exec(target);
  if (!m) return undefined;
  const rest = target.slice(m[0].length);
  if (rest === '') return method === 'OPTIONS' ? '*' : '/';
  return rest.startsWith('?') ? '/' + rest : rest;
}

/** Method and target of the request whose head begins a client-error packet, when it shows them. */
const REQUEST_LINE_RE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}) ([\x21-\x7e]{1,8192}) HTTP\/\d\.\d\r?\n/;

export function errorBody(code: FirewallErrorCode, message: string): Buffer {
  return Buffer.from(JSON.stringify({ error: code, message }));
}

function sendError(res: ServerResponse, code: FirewallErrorCode, message: string, close = false): number {
  const status = FirewallErrors[code];
  if (res.headersSent || res.destroyed) return status;
  const body = errorBody(code, message);
  const headers = ['content-type', 'application/json', 'content-length', String(body.length)];
  if (close) headers.push('connection', 'close');
  res.writeHead(status, headers);
  res.end(body);
  return status;
}

export function failError(code: FailCode): FirewallErrorCode {
  return code === FailCode.ReplicasDisagree ? 'replicas_disagree' : code === FailCode.Overloaded ? 'overloaded' : 'timeout';
}

const FAIL_MESSAGES: Record<FirewallErrorCode, string> = {
  malformed_request: 'malformed request',
  body_too_large: 'request body too large',
  headers_too_large: 'request headers too large',
  replicas_disagree: 'no s+1 replicas agreed on a reply in time',
  bad_reply: 'the signed reply cannot be presented as an HTTP response',
  overloaded: 'the firewall is overloaded; retry later',
  not_ready: 'the firewall is not ready',
  timeout: 'no ordered reply in time',
};

/** Why a signed reply cannot be shown faithfully (so the client could not verify it), or undefined. */
export function unpresentable(reply: CanonicalReply, replyAllow: ReadonlySet<string>): string | undefined {
  if (reply.status < 200) return `status ${reply.status} is not a final response`;
  if ((reply.status === 204 || reply.status === 304) && reply.body.length > 0) return `status ${reply.status} with a body`;
  for (const [name] of reply.headers) {
    if (!replyAllow.has(name) || name === 'content-length' || name.startsWith('cbft-')) return `header ${name} is not on the reply allowlist`;
  }
  return undefined;
}

/** The response head the bottom writes for a signed reply (exported for tests of I3). */
export function signedResponseHeaders(reply: CanonicalReply, proof: Uint8Array, signature: Uint8Array, nonceHex: string, digestHex: string): string[] {
  const h: string[] = [];
  for (const [name, value] of reply.headers) h.push(name, value);
  h.push('cbft-nonce', nonceHex, 'cbft-proof', toBase64(proof), 'cbft-request-digest', digestHex, 'cbft-signature', toBase64(signature));
  if (reply.status !== 204 && reply.status !== 304) h.push('content-length', String(reply.body.length));
  return h;
}

export function createFront(o: FrontOptions): Server {
  const requests = o.metrics.requests.labels('http');
  const rejected = (code: FirewallErrorCode) => o.metrics.releases.inc({ outcome: code });
  const maxHeaders = o.maxHeaders ?? MAX_REQUEST_HEADERS;

  const logLine = (ctx: Partial<Pick<FrontContext, 'method' | 'path' | 'nonceHex'>>, status: number, outcome: string, digestHex: string | undefined, start: number) => {
    o.log.info(
      { method: ctx.method, path: ctx.path, status, outcome, nonce: ctx.nonceHex, digest: digestHex, ms: Math.round((performance.now() - start) * 1000) / 1000 },
      'request',
    );
  };

  // Per connection: the last response created on it (answers to requests node's parser rejects
  // wait behind it, so they cannot be taken for its answer) and when the connection was opened or
  // last finished a response (the start of a request the parser rejects, as far as we know).
  const lastResponse = new WeakMap<Socket, ServerResponse>();
  const idleSince = new WeakMap<Socket, number>();

  const server = createServer(
    {
      maxHeaderSize: o.maxHeaderBytes,
      keepAliveTimeout: 5_000,
      headersTimeout: 10_000,
      // Time to receive a whole request (headers and body), not to answer it: slowloris bound.
      requestTimeout: 30_000,
      connectionsCheckingInterval: 1_000,
      noDelay: true,
      // Checked below instead, so a request without Host gets the firewall's own JSON 400 rather
      // than node's bare one (with a Date header).
      requireHostHeader: false,
    },
    (req: IncomingMessage, res: ServerResponse) => {
      const start = performance.now();
      res.sendDate = false;
      requests.inc();
      const socket = req.socket;
      lastResponse.set(socket, res);
      res.once('finish', () => idleSince.set(socket, performance.now()));
      const method = req.method ?? 'GET';
      let target = req.url ?? '/';
      const state = o.state();
      const early = (code: FirewallErrorCode, message: string, close: boolean, nonceHex = '') => {
        req.resume();
        rejected(code);
        const status = sendError(res, code, message, close);
        if (close) res.once('finish', () => req.socket.destroySoon());
        logLine({ method, path: target, nonceHex }, status, code, undefined, start);
      };
      // Node keeps every field (maxHeadersCount is 0), bounded in bytes by maxHeaderSize.
      if (req.rawHeaders.length / 2 > maxHeaders) {
        return early('headers_too_large', `more than ${maxHeaders} request header fields`, true);
      }
      if (state !== 'ok') return early('not_ready', state === 'draining' ? 'the firewall is shutting down' : 'the upper firewall node is unreachable', state === 'draining');
      // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for more than one Host.
      const hosts = req.headersDistinct.host?.length ?? 0;
      if (hosts > 1 || (hosts === 0 && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1)) {
        return early('malformed_request', 'the request must carry exactly one Host header', true);
      }
      const canonical = canonicalTarget(method, target);
      if (canonical === undefined) {
        return early('malformed_request', 'the request target must be origin-form, * or an absolute http(s) URI', false);
      }
      target = canonical;

      const nonceHeader = req.headers['cbft-nonce'];
      let nonce: Uint8Array;
      if (nonceHeader === undefined) {
        nonce = randomBytes(NONCE_BYTES);
      } else if (typeof nonceHeader === 'string' && NONCE_RE.test(nonceHeader)) {
        nonce = Buffer.from(nonceHeader, 'hex');
      } else {
        return early('malformed_request', 'cbft-nonce must be 32 hex characters', false);
      }
      const nonceHex = toHex(nonce);
      const declared = req.headers['content-length'];
      if (declared !== undefined && Number(declared) > o.maxBodyBytes) {
        return early('body_too_large', `request body exceeds ${o.maxBodyBytes} bytes`, true, nonceHex);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let over = false;
      req.on('data', (chunk: Buffer) => {
        if (over) return;
        size += chunk.length;
        if (size > o.maxBodyBytes) {
          over = true;
          chunks.length = 0;
          rejected('body_too_large');
          const status = sendError(res, 'body_too_large', `request body exceeds ${o.maxBodyBytes} bytes`, true);
          res.once('finish', () => req.socket.destroySoon());
          logLine({ method, path: target, nonceHex }, status, 'body_too_large', undefined, start);
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => {
        if (over) return;
        const body = chunks.length === 0 ? new Uint8Array(0) : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
        let bytes: Uint8Array;
        try {
          bytes = encodeRequest({ nonce, method, target, headers: canonicalHeaders(pairRawHeaders(req.rawHeaders), o.forwardAllow), body });
        } catch {
          return early('malformed_request', 'the request cannot be represented (target must be origin-form)', false, nonceHex);
        }
        const digest = digestOf(bytes);
        const digestHex = toHex(digest);
        const ctx: FrontContext = { res, method, path: target, nonceHex };
        const entry = o.queue.enqueue(digest, digestHex, ctx);
        if (!entry) {
          rejected('overloaded');
          const status = sendError(res, 'overloaded', `more than ${o.queue.size} requests are queued`);
          logLine(ctx, status, 'overloaded', digestHex, start);
          return;
        }
        if (!o.submit(bytes)) o.queue.resolveEntry(entry, { kind: 'fail', code: FailCode.Overloaded, local: true });
      });
      req.on('error', () => {
        over = true;
      });
    },
  );
  server.maxConnections = o.maxConnections;
  // Unlimited here: node would silently drop every field after the 2000th; counted above instead.
  server.maxHeadersCount = 0;
  server.on('connection', (socket: Socket) => idleSince.set(socket, performance.now()));
  // `Expect: 100-continue`: refuse an oversized body (or head) before the client sends the body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (Number(req.headers['content-length'] ?? 0) <= o.maxBodyBytes && req.rawHeaders.length / 2 <= maxHeaders) res.writeContinue();
    server.emit('request', req, res);
  });

  /**
   * Answers a request node's parser rejected (or CONNECT) on the raw socket and closes it; counts
   * and logs it like any other, once. Pipelined requests before it are answered first, in order.
   */
  const rawError = (socket: Socket, status: number, code: FirewallErrorCode, message: string, line: { method?: string; path?: string }) => {
    const pending = lastResponse.get(socket);
    // The broken request already reached the handler (an error in its body, or a body sent too
    // slowly): it was counted there, and its response was never written unless it was refused.
    const own = pending !== undefined && !pending.req.complete;
    if (own && pending.headersSent) {
      socket.destroy();
      return;
    }
    if (!own) requests.inc();
    rejected(code);
    const start = idleSince.get(socket) ?? performance.now();
    logLine(own ? { method: pending.req.method, path: pending.req.url, nonceHex: '' } : { ...line, nonceHex: '' }, status, code, undefined, start);
    const body = errorBody(code, message);
    const write = () => {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n` +
          body.toString(),
      );
    };
    // A response still owed to an earlier, complete request goes first.
    if (!own && pending && !pending.writableFinished && !pending.destroyed) pending.once('close', write);
    else write();
  };
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number }, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, code] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? ([431, 'headers_too_large'] as const)
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? ([408, 'malformed_request'] as const)
          : ([400, 'malformed_request'] as const);
    const message = status === 431 ? `request headers exceed ${o.maxHeaderBytes} bytes` : status === 408 ? 'request not received in time' : 'malformed HTTP request';
    rawError(socket, status, code, message, requestLineOf(err.rawPacket, err.bytesParsed));
  });
  // CONNECT (authority-form target): without a listener node drops the connection unanswered.
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    rawError(socket, 400, 'malformed_request', 'the request cannot be represented (target must be origin-form)', { method: req.method, path: req.url });
  });
  return server;
}

/**
 * Best effort: the method and target of the request a parser error was in, from the packet being
 * parsed (the request begins after the last blank line before the error, if it is in the packet).
 */
function requestLineOf(packet: Buffer | undefined, errorAt: number | undefined): { method?: string; path?: string } {
  if (!packet || packet.length === 0) return {};
  const at = Math.min(packet.length, errorAt ?? packet.length);
  const end = at >= 4 ? packet.lastIndexOf('\r\n\r\n', at - 4) : -1;
  const from = end < 0 ? 0 : end + 4;
  const m = REQUEST_LINE_RE.exec(packet.subarray(from, from + 8300).toString('latin1'));
  return m ? { method: m[1], path: m[2] } : {};
}

/**
 * Writes the released outcome of a bottom-node entry to its client. Only the signed reply's
 * status, headers and body, plus the cbft headers and content-length, are written (I3).
 */
export function releaseToClient(
  entry: Entry<FrontContext>,
  outcome: Outcome,
  replyAllow: ReadonlySet<string>,
  draining: boolean,
): { status: number; outcome: string } {
  const { res, nonceHex } = entry.ctx;
  if (outcome.kind === 'fail') {
    const code = failError(outcome.code);
    const status = sendError(res, code, FAIL_MESSAGES[code], draining);
    return { status, outcome: code };
  }
  const { reply, signed } = outcome;
  const why = unpresentable(reply, replyAllow);
  if (why !== undefined) {
    const status = sendError(res, 'bad_reply', `${FAIL_MESSAGES.bad_reply}: ${why}`, draining);
    return { status, outcome: 'bad_reply' };
  }
  if (res.headersSent || res.destroyed) return { status: reply.status, outcome: 'reply' };
  const headers = signedResponseHeaders(reply, signed.proof, signed.signature, nonceHex, entry.digestHex);
  if (draining) headers.push('connection', 'close');
  res.writeHead(reply.status, headers);
  res.end(reply.body);
  return { status: reply.status, outcome: 'reply' };
}
