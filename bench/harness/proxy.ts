import Fastify, { type FastifyInstance } from 'fastify';
import httpProxy from '@fastify/http-proxy';
import { serveFromCommandLine } from './service.js';

/** The reference: one plain @fastify/http-proxy (default options: undici, keep-alive pool). */
export async function createProxy(upstream: string): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  await app.register(httpProxy, { upstream });
  return app;
}

await serveFromCommandLine(import.meta.url, (args) => {
  const i = args.indexOf('--upstream');
  const upstream = i >= 0 ? args[i + 1] : undefined;
  if (!upstream) throw new Error('proxy needs --upstream URL');
  return createProxy(upstream);
});
