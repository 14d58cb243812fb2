import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { IdentitySigner } from '../crypto/identity.js';
import { decodeFrame, verifyFrame, type FrameMessage, type MessageKind } from './frame.js';
import { LinkKey } from './link-key.js';
import { FRAME_PATH, SESSION_START_HEADER } from './link.js';
import { ReplayWindow } from './replay-window.js';

export type DropReason =
  | 'malformed'
  | 'too-large'
  | 'wrong-recipient'
  | 'unknown-sender'
  | 'bad-signature'
  | 'not-allowed'
  | 'replay'
  | 'stale-session'
  | 'too-old';

export interface PeerServerOptions {
  host: string;
  port: number;
  /** This node's id: frames addressed to anyone else are dropped. */
  self: string;
  /** Identity public keys of every node that may ever send to this one. */
  senders: ReadonlyMap<string, Uint8Array>;
  /** This node's identity: with a sender's public key it gives the key of that sender's link. */
  identity: IdentitySigner;
  /** I6: whether `from` may send messages of `kind` to this node. */
  allowed(from: string, kind: MessageKind): boolean;
  onMessages(from: string, messages: FrameMessage[]): void;
  onDrop?(reason: DropReason, from: string | undefined): void;
  maxFrameBytes?: number;
  /** Bounds concurrent inbound connections (I8); neighbours need only a few. */
  maxConnections?: number;
}

export interface PeerServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

const STATUS: Record<DropReason, number> = {
  malformed: 400,
  'too-large': 413,
  'wrong-recipient': 403,
  'unknown-sender': 403,
  'bad-signature': 403,
  'not-allowed': 403,
  replay: 409,
  'stale-session': 409,
  'too-old': 409,
};

/**
 * The listener for authenticated frames from neighbours. Everything is checked before a single
 * message is handed on: size, framing, recipient, sender, MAC, per-kind permission and
 * replay. A frame failing any check is dropped whole, counted, and answered with a bare status.
 */
export async function startPeerServer(o: PeerServerOptions): Promise<PeerServer> {
  const maxFrameBytes = o.maxFrameBytes ?? 96 * 1024 * 1024;
  const replay = new ReplayWindow();
  // One key per sender, derived on its first frame (an X25519 agreement, about 2 ms).
  const keys = new Map<string, LinkKey>();
  const keyOf = (from: string, publicKey: Uint8Array): LinkKey => {
    let k = keys.get(from);
    if (!k) keys.set(from, (k = LinkKey.derive(o.identity, publicKey, from, o.self)));
    return k;
  };

  const reject = (res: ServerResponse, reason: DropReason, from?: string) => {
    o.onDrop?.(reason, from);
    // Content-length set: the sender reads a reason only when it is declared short.
    const headers: Record<string, string> = { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(reason)) };
    // A sender restarted with a clock behind its previous run needs a start after this one.
    const start = reason === 'stale-session' && from !== undefined ? replay.sessionStart(from) : undefined;
    if (start !== undefined) headers[SESSION_START_HEADER] = String(start);
    res.writeHead(STATUS[reason], headers);
    res.end(reason);
  };

  const handleFrame = (res: ServerResponse, body: Uint8Array) => {
    let frame;
    try {
      frame = decodeFrame(body);
    } catch {
      return reject(res, 'malformed');
    }
    if (frame.to !== o.self) return reject(res, 'wrong-recipient', frame.from);
    const key = o.senders.get(frame.from);
    if (!key) return reject(res, 'unknown-sender', frame.from);
    if (!verifyFrame(keyOf(frame.from, key), frame)) return reject(res, 'bad-signature', frame.from);
    for (const m of frame.messages) if (!o.allowed(frame.from, m.kind)) return reject(res, 'not-allowed', frame.from);
    const verdict = replay.accept(frame.from, frame.session, frame.sessionStart, frame.counter);
    if (verdict !== 'fresh') return reject(res, verdict, frame.from);
    res.writeHead(204);
    res.end();
    o.onMessages(frame.from, frame.messages);
  };

  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 30_000 }, (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || req.url !== FRAME_PATH) {
      req.resume();
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > maxFrameBytes) {
      req.resume();
      return reject(res, 'too-large');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let aborted = false;
    req.on('data', (chunk: Buffer) => {
      if (aborted) return;
      size += chunk.length;
      if (size > maxFrameBytes) {
        aborted = true;
        reject(res, 'too-large');
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (aborted) return;
      const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      handleFrame(res, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    });
    req.on('error', () => {
      aborted = true;
    });
  });
  server.maxConnections = o.maxConnections ?? 256;
  server.headersTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** host and port to listen on for a node URL; `bindHost` overrides the host (e.g. 0.0.0.0 in a pod). */
export function listenAddress(url: string, bindHost?: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: bindHost ?? u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
}
