import { createServer, connect } from 'node:net';

/** True when nothing listens on host:port and we may bind it. */
export function portFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

export async function takenPorts(ports: number[], host = '127.0.0.1'): Promise<number[]> {
  const taken: number[] = [];
  for (const p of ports) if (!(await portFree(p, host))) taken.push(p);
  return taken;
}

/** A base port with `count` consecutive free ports, picked at random in [low, high). */
export async function findFreeRange(count: number, low = 20_000, high = 60_000, host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = low + Math.floor(Math.random() * (high - low - count));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await takenPorts(ports, host)).length === 0) return base;
  }
  throw new Error(`no range of ${count} free ports found in ${low}..${high}`);
}

/** Resolves once something accepts TCP connections on host:port, or rejects after `timeoutMs`. */
export async function waitForPort(port: number, host: string, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error('process exited before it listened');
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect({ port, host });
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
}
