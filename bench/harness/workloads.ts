import { JSON_1K } from './upstream.js';

/** The three standard workloads of issue 8 against the bench upstream (bench/harness/upstream.ts). */
export interface Workload {
  name: string;
  description: string;
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  headers?: Record<string, string>;
  /** Reply body size, for the sanity check before measuring. */
  replyBytes: number;
}

export const WORKLOADS: Record<string, Workload> = {
  'get-1k': { name: 'get-1k', description: 'GET, 1 KiB JSON reply', method: 'GET', path: '/json', replyBytes: 1024 },
  'post-1k': {
    name: 'post-1k',
    description: 'POST 1 KiB JSON body, echoed',
    method: 'POST',
    path: '/echo',
    body: JSON_1K,
    headers: { 'content-type': 'application/json' },
    replyBytes: 1024,
  },
  'get-64k': { name: 'get-64k', description: 'GET, 64 KiB reply', method: 'GET', path: '/64k', replyBytes: 64 * 1024 },
};

/** GET with a reply of `bytes` bytes (the reply-size curve). */
export function sizedWorkload(bytes: number): Workload {
  const name = bytes % (1024 * 1024) === 0 ? `get-${bytes / 1024 / 1024}m` : bytes % 1024 === 0 ? `get-${bytes / 1024}k` : `get-${bytes}b`;
  return { name, description: `GET, ${bytes}-byte reply`, method: 'GET', path: `/bytes/${bytes}`, replyBytes: bytes };
}

/** The standard workloads by name, and `get-<n>[k|m]` for a GET of that reply size. */
export function pickWorkloads(names: string[]): Workload[] {
  return names.map((n) => {
    const w = WORKLOADS[n];
    if (w) return w;
    const sized = /^get-(\d+)(k|m)?$/.exec(n);
    if (sized) return sizedWorkload(Number(sized[1]) * (sized[2] === 'm' ? 1024 * 1024 : sized[2] === 'k' ? 1024 : 1));
    throw new Error(`unknown workload ${JSON.stringify(n)}; known: ${Object.keys(WORKLOADS).join(', ')}, get-<n>[k|m]`);
  });
}

/** One request per workload through `baseUrl`: status 200 and the expected body size, or throw. */
export async function sanityCheck(target: string, baseUrl: string, workload: Workload): Promise<void> {
  const res = await fetch(new URL(workload.path, baseUrl), {
    method: workload.method,
    ...(workload.body !== undefined ? { body: workload.body } : {}),
    ...(workload.headers ? { headers: workload.headers } : {}),
  });
  const body = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200 || body.length !== workload.replyBytes) {
    throw new Error(`${target} ${workload.name}: status ${res.status}, ${body.length} bytes (expected 200, ${workload.replyBytes})`);
  }
}
