import { request } from 'undici';

/** Polls a node's admin `/readyz` until it answers 200. */
export async function waitReady(adminUrl: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await request(adminUrl + '/readyz');
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${adminUrl} not ready after ${timeoutMs} ms`);
}

/** One sample of a node's Prometheus metric: the first series of that name (whose labels contain `labels`, if given). */
export async function metric(adminUrl: string, name: string, labels?: string): Promise<number | undefined> {
  const res = await request(adminUrl + '/metrics');
  const text = await res.body.text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith('{') || rest.startsWith(' '))) continue;
    if (labels && !line.includes(labels)) continue;
    return Number(line.split(' ').pop());
  }
  return undefined;
}
