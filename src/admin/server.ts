import { createServer, type Server } from 'node:http';
import { Registry, collectDefaultMetrics } from 'prom-client';

export interface Readiness {
  ready: boolean;
  /** What is missing when not ready (shown to operators on /readyz). */
  reasons: string[];
}

export interface AdminServerOptions {
  host: string;
  port: number;
  id: string;
  role: string;
  registry: Registry;
  readiness(): Readiness;
}

export interface AdminServer {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/** A fresh metrics registry with process metrics and the node's labels on every series. */
export function createRegistry(id: string, role: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ node: id, role });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * The admin listener every node has on its own port: /healthz (the process is alive), /readyz
 * (it can do its job now, with reasons when not) and Prometheus /metrics. Kept off the data port
 * so probes and scrapes never queue behind traffic, and so the data port exposes nothing else.
 */
export async function startAdminServer(o: AdminServerOptions): Promise<AdminServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' }).end('{"error":"method_not_allowed"}');
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', id: o.id, role: o.role }));
    } else if (path === '/readyz') {
      const r = o.readiness();
      res
        .writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: r.ready ? 'ready' : 'not_ready', id: o.id, role: o.role, reasons: r.reasons }));
    } else if (path === '/metrics') {
      o.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': o.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.message),
      );
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
    }
  });
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : o.port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
