import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { toHex, utf8 } from '../../src/codec/binary.js';
import { digestOf, encodeRequest } from '../../src/codec/canonical.js';
import { canonicalHeaders } from '../../src/codec/headers.js';
import type { ResponseCheck, ResponseVerifier } from '../../src/client/verify-response.js';

/**
 * A curl-like client: one HTTP/1.1 request per TCP connection, written by hand, and the response
 * kept as the exact bytes that came off the socket (status line, headers, body), so the scanner
 * sees everything a client sees. It computes the digest of its own request the way the bottom
 * node does and checks the reply's threshold signature against it.
 */
export interface RawRequest {
  method: string;
  path: string;
  headers: Array<[string, string]>;
  body?: string;
  nonce?: string;
}

export interface RawResponse {
  /** Every byte received. */
  raw: Buffer;
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
  /** From the last request byte written to the last response byte read. */
  latencyMs: number;
  /** Wall-clock ms when the request was written. */
  sentAt: number;
  nonce: string;
  digest: string;
}

export interface RawResult {
  response?: RawResponse;
  error?: string;
  check?: ResponseCheck;
}

function parse(raw: Buffer): { status: number; headers: Array<[string, string]>; body: Buffer; complete: boolean } | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.push([line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim()]);
  }
  const body = raw.subarray(end + 4);
  const cl = headers.find(([n]) => n === 'content-length');
  const complete = cl !== undefined ? body.length >= Number(cl[1]) : false;
  return { status: Number(m[1]), headers, body: cl ? body.subarray(0, Number(cl[1])) : body, complete };
}

export function rawRequest(baseUrl: string, r: RawRequest, forwardAllow: ReadonlySet<string>, timeoutMs = 20_000): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const nonce = r.nonce ?? toHex(randomBytes(16));
  const body = utf8(r.body ?? '');
  const fields: Array<[string, string]> = [['host', url.host], ...r.headers];
  const digest = toHex(digestOf(encodeRequest({ nonce: Buffer.from(nonce, 'hex'), method: r.method, target: r.path, headers: canonicalHeaders(fields, forwardAllow), body })));
  let head = `${r.method} ${r.path} HTTP/1.1\r\n`;
  for (const [n, v] of fields) head += `${n}: ${v}\r\n`;
  head += `cbft-nonce: ${nonce}\r\n`;
  if (body.length > 0 || !['GET', 'HEAD'].includes(r.method)) head += `content-length: ${body.length}\r\n`;
  head += 'connection: close\r\n\r\n';
  const payload = Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body)]);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), noDelay: true });
    const chunks: Buffer[] = [];
    let sentAt = 0;
    let t0 = 0;
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no complete response in ${timeoutMs} ms`)), timeoutMs);
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const t1 = performance.now();
      socket.destroy();
      if (err) return reject(err);
      const raw = Buffer.concat(chunks);
      try {
        const p = parse(raw);
        if (!p) return reject(new Error(`incomplete response (${raw.length} bytes)`));
        resolve({ raw, status: p.status, headers: p.headers, body: p.body, latencyMs: t1 - t0, sentAt, nonce, digest });
      } catch (e) {
        reject(e as Error);
      }
    };
    socket.once('connect', () => {
      sentAt = Date.now();
      t0 = performance.now();
      socket.write(payload);
    });
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      try {
        if (parse(Buffer.concat(chunks))?.complete) finish();
      } catch (e) {
        finish(e as Error);
      }
    });
    socket.once('end', () => finish());
    socket.once('error', (e) => finish(e));
  });
}

/** Sends, then checks the signature against the client's own request digest. */
export async function verifiedRawRequest(baseUrl: string, r: RawRequest, forwardAllow: ReadonlySet<string>, verifier: ResponseVerifier): Promise<RawResult> {
  try {
    const response = await rawRequest(baseUrl, r, forwardAllow);
    const check = verifier.check({ status: response.status, headers: response.headers, body: response.body }, response.digest);
    return { response, check };
  } catch (err) {
    return { error: (err as Error).message };
  }
}
