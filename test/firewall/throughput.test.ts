import { describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLI } from '../helpers/cli.js';
import { startFakeReplicas } from '../helpers/fake-replicas.js';
import { freePorts, makeCluster, waitFor, waitReady } from './helpers.js';

/**
 * Throughput and latency of one chain of 2 firewall nodes (real `cbft firewall` processes, fake
 * replicas in this process) against a plain @fastify/http-proxy in front of a trivial service, in
 * the same run, both driven by autocannon. Not part of the normal suite (it takes ~40 s):
 *   CBFT_BENCH=1 npx vitest run test/firewall/throughput.test.ts
 * Knobs: CBFT_BENCH_CONNECTIONS (comma-separated, default 32,128), CBFT_BENCH_SECONDS (default 10).
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const AUTOCANNON = `${root}node_modules/autocannon/autocannon.js`;
const connectionCounts = (process.env.CBFT_BENCH_CONNECTIONS ?? '32,128').split(',').map(Number);
const seconds = Number(process.env.CBFT_BENCH_SECONDS ?? 10);

interface Result {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}

function node(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, args, { stdio: 'ignore', env: { ...process.env, ...env } });
}

function autocannon(url: string, duration: number, connections: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AUTOCANNON, '-c', String(connections), '-d', String(duration), '-j', url], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', () => {
      try {
        resolve(JSON.parse(out) as Result);
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

async function listening(url: string) {
  await waitFor(
    async () => {
      try {
        const res = await fetch(url);
        await res.arrayBuffer();
        return true;
      } catch {
        return false;
      }
    },
    10_000,
    url,
  );
}

describe.skipIf(!process.env.CBFT_BENCH)('throughput: cbft chain of 2 vs @fastify/http-proxy', () => {
  it('measures both in one run', async () => {
    const children: ChildProcess[] = [];
    try {
      // Baseline: trivial service behind @fastify/http-proxy.
      const [servicePort, proxyPort] = await freePorts(2);
      children.push(
        node(['-e', `require('node:http').createServer((q,s)=>{q.resume();q.on('end',()=>{const b=JSON.stringify({method:q.method,target:q.url});s.writeHead(200,{'content-type':'application/json','content-length':Buffer.byteLength(b)});s.end(b)})}).listen(${servicePort},'127.0.0.1')`]),
      );
      children.push(
        node(['--input-type=module', '-e', `import Fastify from 'fastify'; import proxy from '@fastify/http-proxy'; const app = Fastify(); await app.register(proxy, { upstream: 'http://127.0.0.1:${servicePort}' }); await app.listen({ port: ${proxyPort}, host: '127.0.0.1' });`]),
      );
      // cbft: fake replicas here, top and bottom as processes.
      const tc = await makeCluster({ firewall: { requestTimeoutMs: 10_000, retransmitMs: 1_000, maxQueue: 4096 } });
      const replicas = await startFakeReplicas({ cluster: tc.cluster, keys: tc.keys });
      children.push(node([CLI, 'firewall', '--cluster', tc.dir, '--id', 'fw-0-1']));
      children.push(node([CLI, 'firewall', '--cluster', tc.dir, '--id', 'fw-0-0']));
      await waitReady(tc.cluster.chains[0]![1]!.adminUrl);
      await waitReady(tc.cluster.chains[0]![0]!.adminUrl);
      const proxyUrl = `http://127.0.0.1:${proxyPort}/accounts/1`;
      const cbftUrl = `${tc.cluster.chains[0]![0]!.url}/accounts/1`;
      await listening(proxyUrl);

      const row = (name: string, r: Result) =>
        `${name.padEnd(30)} ${r.requests.average.toFixed(0).padStart(7)} req/s   p50 ${String(r.latency.p50).padStart(5)} ms   p99 ${String(r.latency.p99).padStart(5)} ms   errors ${r.errors + r.timeouts + r.non2xx}`;
      let report = `\nGET, ${seconds} s per measurement after a 2 s warm-up, ${process.env.CBFT_BENCH_NOTE ?? ''}\n`;
      for (const connections of connectionCounts) {
        await autocannon(proxyUrl, 2, connections);
        const proxy = await autocannon(proxyUrl, seconds, connections);
        const batches = replicas.batches();
        const executed = replicas.executions.size;
        await autocannon(cbftUrl, 2, connections);
        const cbft = await autocannon(cbftUrl, seconds, connections);
        report +=
          `${connections} connections\n` +
          row('  @fastify/http-proxy', proxy) +
          '\n' +
          row('  cbft chain of 2 (fake reps)', cbft) +
          `   (${((replicas.executions.size - executed) / (replicas.batches() - batches)).toFixed(1)} requests per batch incl. warm-up)\n`;
        for (const r of [proxy, cbft]) {
          expect(r.requests.total).toBeGreaterThan(0);
          expect(r.errors + r.timeouts + r.non2xx).toBe(0);
        }
      }
      process.stdout.write(report);
      await replicas.close();
    } finally {
      for (const c of children) c.kill('SIGKILL');
    }
  }, 300_000);
});
