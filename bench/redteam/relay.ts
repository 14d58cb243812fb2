import { createServer, type Server } from 'node:http';
import { Pool } from 'undici';
import { toHex } from '../../src/codec/binary.js';
import { decodeReply } from '../../src/codec/canonical.js';
import { decodeFrame, MessageKind } from '../../src/transport/frame.js';
import { decodeSignedReply } from '../../src/wire/payloads.js';

/**
 * The Byzantine top firewall node of the timing red team, built from a real top node and this
 * relay: the top's frames to the bottom node below it pass through here, and the relay holds each
 * frame that carries a reply for `delayFor(digest)` ms before handing it on, unchanged. That is
 * exactly what a compromised top can do to the correct node below it (it cannot change a byte
 * without breaking the signature, and the correct node releases in order anyway), so the client
 * below sees the delays and nothing else. Frames leave in the order they came.
 */
export interface DelayRelay {
  url: string;
  /** Frames with replies relayed, and how many of them were held back. */
  stats: { frames: number; replies: number; delayed: number };
  close(): Promise<void>;
}

export async function startDelayRelay(o: { target: string; delayFor: (digestHex: string) => number }): Promise<DelayRelay> {
  const pool = new Pool(o.target, { connections: 2, pipelining: 1 });
  const stats = { frames: 0, replies: 0, delayed: 0 };
  let lastRelease = 0;
  let chain: Promise<void> = Promise.resolve();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const arrived = performance.now();
      const body = Buffer.concat(chunks);
      let delay = 0;
      try {
        const frame = decodeFrame(body);
        for (const m of frame.messages) {
          if (m.kind !== MessageKind.Reply) continue;
          stats.replies++;
          const digest = toHex(decodeReply(decodeSignedReply(m.payload, 1 << 26).reply).requestDigest);
          delay = Math.max(delay, o.delayFor(digest));
        }
      } catch {
        // not a frame we can read: pass it on untouched
      }
      stats.frames++;
      if (delay > 0) stats.delayed++;
      const releaseAt = Math.max(lastRelease, arrived + delay);
      lastRelease = releaseAt;
      const forward = async () => {
        const wait = releaseAt - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        try {
          const up = await pool.request({ method: 'POST', path: req.url ?? '/', headers: { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' }, body });
          const answer = Buffer.from(await up.body.arrayBuffer());
          res.writeHead(up.statusCode, { 'content-type': String(up.headers['content-type'] ?? 'text/plain') });
          res.end(answer);
        } catch (err) {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end((err as Error).message);
        }
      };
      chain = chain.then(forward);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.close().catch(() => undefined);
    },
  };
}
