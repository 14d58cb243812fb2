import Fastify, { type FastifyInstance } from 'fastify';
import { serveFromCommandLine } from './service.js';

/**
 * The trivial legacy service every benchmark configuration puts behind its front:
 *   GET  /json  → 1 KiB JSON
 *   POST /echo  → the request body back (1 KiB in the standard workload)
 *   GET  /64k   → 64 KiB body
 *   GET  /bytes/N → N bytes (1 ≤ N ≤ 16 MiB; the reply-size curve), built once per size
 *   GET  /healthz
 * Bodies are built once; the handlers do no work per request beyond what fastify does.
 */
export const JSON_1K = makeJson(1024);
export const BODY_64K = Buffer.alloc(64 * 1024, 'x');

function makeJson(size: number): string {
  const base = { id: 1, name: 'cbft bench', items: [1, 2, 3], pad: '' };
  const pad = size - JSON.stringify(base).length;
  if (pad < 0) throw new Error('size too small');
  return JSON.stringify({ ...base, pad: 'p'.repeat(pad) });
}

export function createUpstream(): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  // Echo raw bytes: no parse/serialize round trip, so the service stays trivial.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.get('/json', (_req, reply) => {
    void reply.header('content-type', 'application/json; charset=utf-8').send(JSON_1K);
  });
  app.post('/echo', (req, reply) => {
    void reply.header('content-type', req.headers['content-type'] ?? 'application/octet-stream').send(req.body as Buffer);
  });
  app.get('/64k', (_req, reply) => {
    void reply.header('content-type', 'application/octet-stream').send(BODY_64K);
  });
  const sized = new Map<number, Buffer>();
  app.get<{ Params: { n: string } }>('/bytes/:n', (req, reply) => {
    const n = Number(req.params.n);
    if (!Number.isInteger(n) || n < 1 || n > 16 * 1024 * 1024) return void reply.code(400).send('bad size');
    let body = sized.get(n);
    if (!body) sized.set(n, (body = Buffer.alloc(n, 'y')));
    void reply.header('content-type', 'application/octet-stream').send(body);
  });
  app.get('/healthz', (_req, reply) => {
    void reply.send('ok');
  });
  return app;
}

await serveFromCommandLine(import.meta.url, () => createUpstream());
