// Raw TCP and HTTP helpers for bad input: bytes no HTTP library would send, slow writers, floods,
// crafted frames for peer ports, and a recording proxy to capture real frames for replay.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { fromHex } from '../../../src/codec/binary.js';
import type { NodeKeys } from '../../../src/cluster/keys.js';
import { IdentitySigner } from '../../../src/crypto/identity.js';
import { LinkKey } from '../../../src/transport/link-key.js';
import { encodeFrame, type FrameMessage } from '../../../src/transport/frame.js';
import { FRAME_PATH } from '../../../src/transport/link.js';
import { sleep } from './cluster.js';

export interface RawResult {
  /** Everything the server sent before closing (or before the timeout). */
  data: Buffer;
  status: number | undefined;
  /** Parsed JSON body when the response had one. */
  json: Record<string, unknown> | undefined;
  /** The server closed the connection. */
  closed: boolean;
  ms: number;
}

export function parseRaw(data: Buffer): { status: number | undefined; json: Record<string, unknown> | undefined } {
  const text = data.toString('latin1');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  const status = m ? Number(m[1]) : undefined;
  const at = text.indexOf('\r\n\r\n');
  let json: Record<string, unknown> | undefined;
  if (at >= 0) {
    try {
      json = JSON.parse(text.slice(at + 4)) as Record<string, unknown>;
    } catch {
      json = undefined;
    }
  }
  return { status, json };
}

/** Writes `chunks` (with `gapMs` between them) and collects the answer until close or timeout. */
export function rawExchange(port: number, chunks: Array<Buffer | string>, o: { gapMs?: number; timeoutMs?: number; host?: string } = {}): Promise<RawResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const sock = connect({ port, host: o.host ?? '127.0.0.1' });
    const got: Buffer[] = [];
    let closed = false;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      const data = Buffer.concat(got);
      resolve({ data, ...parseRaw(data), closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(finish, o.timeoutMs ?? 10_000);
    sock.on('data', (d) => got.push(d));
    sock.on('close', () => {
      closed = true;
      finish();
    });
    sock.on('error', () => {
      closed = true;
      finish();
    });
    sock.on('connect', () => {
      void (async () => {
        for (const c of chunks) {
          if (sock.destroyed || closed) return;
          sock.write(c);
          if (o.gapMs) await sleep(o.gapMs);
        }
      })();
    });
  });
}

/**
 * A client that sends `prefix` and then one byte of `drip` every `everyMs` until the server
 * closes the connection or `maxMs` passes (slowloris).
 */
export function slowClient(port: number, prefix: string, drip: string, everyMs: number, maxMs: number): Promise<RawResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' });
    const got: Buffer[] = [];
    let closed = false;
    let i = 0;
    let interval: NodeJS.Timeout | undefined;
    const finish = () => {
      if (interval) clearInterval(interval);
      clearTimeout(timer);
      sock.destroy();
      const data = Buffer.concat(got);
      resolve({ data, ...parseRaw(data), closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(finish, maxMs);
    sock.on('data', (d) => got.push(d));
    sock.on('close', () => {
      closed = true;
      finish();
    });
    sock.on('error', () => undefined);
    sock.on('connect', () => {
      sock.write(prefix);
      interval = setInterval(() => {
        if (!sock.writable) return;
        sock.write(drip[i++ % drip.length]!);
      }, everyMs);
    });
  });
}

/** Opens `n` idle TCP connections; resolves with the sockets that connected. */
export async function openIdle(port: number, n: number): Promise<Socket[]> {
  const socks = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket | undefined>((resolve) => {
          const s = connect({ port, host: '127.0.0.1' });
          s.on('connect', () => resolve(s));
          s.on('error', () => resolve(undefined));
          s.setTimeout(30_000, () => s.destroy());
        }),
    ),
  );
  const out = socks.filter((s): s is Socket => s !== undefined);
  for (const s of out) s.on('error', () => undefined);
  return out;
}

/** How many of these sockets the server has closed. */
export function closedCount(socks: Socket[]): number {
  return socks.filter((s) => s.destroyed || s.readyState === 'closed' || !s.readable).length;
}

/** POSTs bytes to a peer port's frame path; resolves with the status (or the error code). */
export async function postFrame(url: string, body: Uint8Array, path = FRAME_PATH, method = 'POST'): Promise<number | string> {
  try {
    const res = await request(url + path, { method: method as 'POST', body: method === 'GET' ? undefined : Buffer.from(body), headersTimeout: 10_000, bodyTimeout: 10_000 });
    await res.body.dump();
    return res.statusCode;
  } catch (err) {
    const e = err as { code?: string; message: string };
    return e.code ?? e.message;
  }
}

export function signerOf(keys: readonly NodeKeys[], id: string): IdentitySigner {
  const k = keys.find((x) => x.id === id);
  if (!k) throw new Error(`no key for ${id}`);
  return new IdentitySigner(fromHex(k.identitySecretKey));
}

/**
 * A frame from `from` to `to`, authenticated with the link key `signer` shares with the
 * receiver (`toPublicKey`; without it, with nobody: the receiver will find the MAC wrong).
 */
export function frame(o: { from: string; to: string; signer: IdentitySigner; toPublicKey?: Uint8Array; messages: FrameMessage[]; sessionStart?: number; counter?: number; session?: Uint8Array }): Uint8Array {
  return encodeFrame(
    { from: o.from, to: o.to, session: o.session ?? new Uint8Array(16).fill(7), sessionStart: o.sessionStart ?? 1, counter: o.counter ?? 0 },
    o.messages,
    LinkKey.derive(o.signer, o.toPublicKey ?? o.signer.publicKey, o.from, o.to),
  );
}

/**
 * A recording HTTP proxy for frames: forwards every request to `target` unchanged and keeps the
 * bodies of frame POSTs, so a test can replay real, correctly signed frames later.
 */
export async function recordingProxy(target: string): Promise<{ url: string; frames: Uint8Array[]; close(): Promise<void> }> {
  const frames: Uint8Array[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && req.url === FRAME_PATH && frames.length < 10_000) frames.push(new Uint8Array(body));
      request(target + (req.url ?? '/'), { method: (req.method ?? 'GET') as 'GET', body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body, headersTimeout: 15_000, bodyTimeout: 15_000 }).then(
        async (r) => {
          const b = Buffer.from(await r.body.arrayBuffer());
          res.writeHead(r.statusCode, { 'content-type': String(r.headers['content-type'] ?? 'application/octet-stream') });
          res.end(b);
        },
        () => {
          res.writeHead(502);
          res.end();
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    frames,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
