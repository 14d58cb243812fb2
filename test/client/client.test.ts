import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { request } from 'undici';
import { createClient, CLIENT_ERROR, CLIENT_REFUSED, parseCurlDump, ResponseVerifier } from '../../src/index.js';
import { toHex } from '../../src/codec/binary.js';
import type { FirewallNode } from '../../src/firewall/node.js';
import { startFakeReplicas } from '../../bench/harness/fake-replicas.js';
import { chainIds, makeCluster, startNodes, waitFor, type TestCluster } from '../firewall/helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function cluster(o: Parameters<typeof makeCluster>[0] = {}, startChains = [0, 1]) {
  const tc = await makeCluster({ chains: 2, ...o });
  const replicas = await startFakeReplicas({ cluster: tc.cluster, keys: tc.keys });
  const nodes: FirewallNode[] = [];
  for (const c of startChains) nodes.push(...(await startNodes(tc, chainIds(tc, c))));
  cleanups.push(async () => {
    for (const n of nodes) await n.close();
    await replicas.close();
  });
  return { tc, replicas, nodes };
}

/** A Byzantine bottom node: answers every request at once with the given response. */
async function fakeBottom(tc: TestCluster, chain: number, respond: (res: import('node:http').ServerResponse) => void) {
  const u = new URL(tc.cluster.chains[chain]![0]!.url);
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => respond(res));
  });
  await new Promise<void>((resolve) => server.listen(Number(u.port), u.hostname, resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
}

describe('createClient', () => {
  it('sends one nonce to every chain, returns the first verified reply, and the request executes once', async () => {
    const { tc, replicas } = await cluster();
    const client = createClient({ cluster: tc.cluster });
    cleanups.push(() => client.close());
    const res = await client.request({ method: 'POST', path: '/orders?x=1', headers: { 'content-type': 'application/json', 'x-ignored': 'y' }, body: '{"n":1}' });
    expect(res.status).toBe(200);
    expect([0, 1]).toContain(res.chain);
    expect(res.attempts).toBe(1);
    expect(res.json()).toMatchObject({ method: 'POST', target: '/orders?x=1', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
    expect(res.header('Content-Type')).toBe('application/json');
    expect(res.nonce).toMatch(/^[0-9a-f]{32}$/);
    // Both chains carried the same request: the replicated service executed it once.
    expect(replicas.executions.get(res.requestDigest)).toBe(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(replicas.executions.get(res.requestDigest)).toBe(1);
    const head = await client.request({ method: 'HEAD', path: '/orders' });
    expect(head.status).toBe(200);
    expect(head.body).toHaveLength(0);
  });

  it('loads the cluster from a directory, and survives a chain whose bottom is down', async () => {
    const { tc } = await cluster({}, [1]);
    const client = createClient({ cluster: tc.dir, timeoutMs: 2_000 });
    cleanups.push(() => client.close());
    const res = await client.request({ path: '/only-chain-1' });
    expect(res.chain).toBe(1);
    expect(res.text()).toContain('/only-chain-1');
  });

  it('never accepts a Byzantine bottom node’s forged, replayed or unsigned answers', async () => {
    const { tc } = await cluster({}, [1]);
    // A genuine signed response, but for another request.
    const other = await request(tc.cluster.chains[1]![0]!.url + '/someone-else');
    const otherHeaders = other.headers;
    const otherBody = Buffer.from(await other.body.arrayBuffer());
    let served = 0;
    await fakeBottom(tc, 0, (res) => {
      const variant = served++ % 3;
      const h: Record<string, string> = {};
      for (const [k, v] of Object.entries(otherHeaders)) if (typeof v === 'string' && !['connection', 'keep-alive', 'content-length'].includes(k)) h[k] = v;
      if (variant === 0) res.writeHead(200, h).end(otherBody); // replayed: someone else's signed reply
      else if (variant === 1) res.writeHead(200, { 'content-type': 'application/json' }).end('{"balance":1000000}'); // unsigned
      else res.writeHead(200, { ...h, 'cbft-request-digest': 'ff'.repeat(32) }).end(otherBody); // re-labelled
    });
    const client = createClient({ cluster: tc.cluster });
    cleanups.push(() => client.close());
    const res = await client.request({ path: '/mine' });
    expect(served).toBeGreaterThan(0);
    expect(res.chain).toBe(1);
    expect(res.text()).toContain('/mine');
    // With only the liar, the client refuses to return anything.
    served = 0;
    const liarOnly = createClient({ cluster: tc.cluster, chains: [0], attempts: 3, backoffMs: 10 });
    cleanups.push(() => liarOnly.close());
    const err = (await liarOnly.request({ path: '/mine' }).catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe(CLIENT_ERROR);
    expect(err.message).toMatch(/attempt 1: chain 0: the reply is for request .* not for the request sent/);
    expect(err.message).toMatch(/attempt 2: chain 0: 200 \(unsigned\)/);
    expect(err.message).toMatch(/attempt 3: chain 0: the reply is for request f{64}/);
  });

  it('retries with the same nonce after a failed attempt; the request still executes once', async () => {
    const { tc, replicas } = await cluster({ firewall: { requestTimeoutMs: 600, retransmitMs: 100 } }, [0]);
    replicas.update({ silent: [0, 1, 2, 3] });
    const client = createClient({ cluster: tc.cluster, chains: [0], attempts: 4, backoffMs: 50, timeoutMs: 500 });
    cleanups.push(() => client.close());
    const nonce = toHex(randomBytes(16));
    // Attempt 1 reaches the replicas (which execute it but stay silent) and fails at its deadline.
    const pending = client.request({ method: 'PUT', path: '/retry', body: 'v=1', nonce });
    await waitFor(() => replicas.executions.size === 1, 3_000, 'execution');
    await new Promise((r) => setTimeout(r, 700));
    replicas.update({ silent: [] });
    const res = await pending;
    expect(res.attempts).toBeGreaterThanOrEqual(2);
    expect(res.nonce).toBe(nonce);
    expect(replicas.executions.get(res.requestDigest)).toBe(1);
  });

  it('stops at once on errors a retry cannot fix, and gives up after bounded attempts otherwise', async () => {
    const { tc, replicas } = await cluster({ firewall: { requestTimeoutMs: 400, retransmitMs: 100 }, service: { maxRequestBodyBytes: 100 } }, [0]);
    const client = createClient({ cluster: tc.cluster, chains: [0], attempts: 2, backoffMs: 10 });
    cleanups.push(() => client.close());
    await expect(client.request({ method: 'POST', path: '/big', body: 'x'.repeat(101) })).rejects.toMatchObject({ code: CLIENT_REFUSED });
    await expect(client.request({ path: '/x', nonce: 'NOT-A-NONCE' })).rejects.toThrow(/nonce/);
    replicas.update({ silent: [0, 1, 2, 3] });
    const t0 = Date.now();
    await expect(client.request({ path: '/never' })).rejects.toMatchObject({ code: CLIENT_ERROR, message: expect.stringMatching(/attempt 2: chain 0: 504 timeout/) });
    expect(Date.now() - t0).toBeLessThan(3_000);
  });
});

describe('curl dump parsing and response verification', () => {
  it('parses CRLF and LF dumps, skips 1xx blocks, keeps the body bytes, refuses non-HTTP input', () => {
    const crlf = parseCurlDump(Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Type: a/b\r\ncontent-length: 3\r\n\r\n\r\nx'));
    expect(crlf).toMatchObject({ status: 201, headers: [['Content-Type', 'a/b'], ['content-length', '3']], declaredLength: 3 });
    expect(Buffer.from(crlf.body).toString()).toBe('\r\nx');
    const lf = parseCurlDump(Buffer.from('HTTP/2 404\nx: y\n\nbody'));
    expect(lf).toMatchObject({ status: 404, headers: [['x', 'y']] });
    expect(() => parseCurlDump(Buffer.from('hello'))).toThrow(/no HTTP status line/);
    expect(() => parseCurlDump(Buffer.from('SMTP 250 ok\r\n\r\n'))).toThrow(/not an HTTP status line/);
  });

  it('names the reason a response does not verify', async () => {
    const tc = await makeCluster();
    const v = new ResponseVerifier(tc.cluster);
    expect(v.check({ status: 200, headers: [], body: new Uint8Array() })).toMatchObject({ ok: false, unsigned: true });
    const h = (sig: string, proof: string, digest: string) => [
      ['cbft-signature', sig],
      ['cbft-proof', proof],
      ['cbft-request-digest', digest],
    ] as Array<[string, string]>;
    const digest = 'a'.repeat(64);
    const proof = Buffer.alloc(tc.cluster.merkleDepth * 32).toString('base64');
    expect(v.check({ status: 200, headers: h('!!', proof, digest), body: new Uint8Array() })).toMatchObject({ ok: false, reason: expect.stringMatching(/base64/) });
    expect(v.check({ status: 200, headers: h(Buffer.alloc(48).toString('base64'), 'AAAA', digest), body: new Uint8Array() })).toMatchObject({ ok: false, reason: expect.stringMatching(/cbft-proof must be/) });
    expect(v.check({ status: 200, headers: h(Buffer.alloc(48).toString('base64'), proof, digest), body: new Uint8Array() }, 'b'.repeat(64))).toMatchObject({ ok: false, reason: expect.stringMatching(/not for the request sent/) });
    expect(v.check({ status: 200, headers: h(Buffer.alloc(48).toString('base64'), proof, digest), body: new Uint8Array() })).toMatchObject({ ok: false, reason: expect.stringMatching(/signature does not match/) });
    expect(v.check({ status: 200, headers: [...h('x', 'y', digest), ['cbft-signature', 'z']], body: new Uint8Array() })).toMatchObject({ ok: false, reason: expect.stringMatching(/exactly once/) });
  });
});
