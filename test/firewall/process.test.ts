import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { CLI, runCli } from '../helpers/cli.js';
import { startFakeReplicas, type FakeReplicas } from '../../bench/harness/fake-replicas.js';
import { ensureBuilt, kill, makeCluster, spawnFirewall, waitFor, waitReady, type Proc, type TestCluster } from './helpers.js';

/** curl -si, asynchronously: the fake replicas live in this process and must keep running. */
function curl(args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    execFile('curl', ['-si', '--max-time', '10', ...args], { encoding: 'buffer' }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
}

describe('cbft firewall and cbft verify as processes', () => {
  let tc: TestCluster;
  let replicas: FakeReplicas;
  const procs: Proc[] = [];
  let bottomUrl: string;

  beforeAll(async () => {
    ensureBuilt();
    tc = await makeCluster({ firewall: { requestTimeoutMs: 4_000 } });
    replicas = await startFakeReplicas({ cluster: tc.cluster, keys: tc.keys });
    procs.push(spawnFirewall(tc.dir, 'fw-0-1', ['--bind', '0.0.0.0']));
    procs.push(spawnFirewall(tc.dir, 'fw-0-0', ['--drain-ms', '3000']));
    bottomUrl = tc.cluster.chains[0]![0]!.url;
    await waitReady(tc.cluster.chains[0]![1]!.adminUrl);
    await waitReady(tc.cluster.chains[0]![0]!.adminUrl);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => kill(p)));
    await replicas?.close();
  });

  it('curl -si gets the signed answer and cbft verify accepts it (file and stdin)', async () => {
    const dump = await curl(['-H', 'content-type: application/json', '--data-binary', '{"to":"bob"}', bottomUrl + '/transfer?x=1']);
    const text = dump.toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toMatch(/\r\ncbft-signature: [A-Za-z0-9+/=]{64}\r\n/);
    expect(text).toMatch(/\r\ncbft-request-digest: [0-9a-f]{64}\r\n/);
    expect(text).not.toMatch(/\r\ndate:/i);
    const file = join(tc.dir, 'reply.txt');
    await writeFile(file, dump);
    const ok = runCli(['verify', '--cluster', tc.dir, file]);
    expect(ok.stdout).toMatch(/^VALID: status 200/);
    expect(ok.code).toBe(0);
    const viaStdin = spawnSync(process.execPath, [CLI, 'verify', '--cluster', tc.dir, '-'], { input: dump });
    expect(viaStdin.status).toBe(0);
  });

  it('cbft verify rejects tampered dumps (exit 1) and unusable input (exit 2)', async () => {
    const dump = (await curl([bottomUrl + '/balance'])).toString('latin1');
    const dir = tc.dir;
    const check = async (name: string, content: string | Buffer) => {
      const f = join(dir, name);
      await writeFile(f, content);
      return runCli(['verify', '--cluster', dir, f]);
    };
    expect((await check('good.txt', dump)).code).toBe(0);
    // LF line ends (e.g. a dump pasted through an editor) still verify.
    const [head, body] = [dump.slice(0, dump.indexOf('\r\n\r\n')), dump.slice(dump.indexOf('\r\n\r\n') + 4)];
    expect((await check('lf.txt', head.replaceAll('\r\n', '\n') + '\n\n' + body)).code).toBe(0);
    const body2 = body.replace('"GET"', '"PUT"');
    const tamperedBody = await check('body.txt', head + '\r\n\r\n' + body2);
    expect(tamperedBody.code).toBe(1);
    expect(tamperedBody.stdout).toMatch(/^INVALID: .*signature does not match/);
    const tamperedStatus = await check('status.txt', dump.replace('HTTP/1.1 200 OK', 'HTTP/1.1 201 Created'));
    expect(tamperedStatus.code).toBe(1);
    const tamperedHeader = await check('header.txt', dump.replace('content-type: application/json', 'content-type: text/html'));
    expect(tamperedHeader.code).toBe(1);
    const addedHeader = await check('added.txt', dump.replace('\r\ncbft-nonce', '\r\nlocation: https://evil.example/\r\ncbft-nonce'));
    expect(addedHeader.code).toBe(1);
    const sig = /cbft-signature: (\S+)/.exec(dump)![1]!;
    const otherSig = /cbft-signature: (\S+)/.exec((await curl([bottomUrl + '/other'])).toString('latin1'))![1]!;
    const swapped = await check('sig.txt', dump.replace(sig, otherSig));
    expect(swapped.code).toBe(1);
    const truncated = await check('trunc.txt', dump.slice(0, -3));
    expect(truncated.code).toBe(1);
    expect(truncated.stdout).toMatch(/content-length/);
    const unsigned = await check('unsigned.txt', (await curl(['-H', 'cbft-nonce: nope', bottomUrl + '/'])).toString('latin1'));
    expect(unsigned.code).toBe(1);
    expect(unsigned.stdout).toMatch(/no cbft-signature/);
    const garbage = await check('garbage.txt', 'hello world\n');
    expect(garbage.code).toBe(2);
    expect(garbage.stderr).toMatch(/unusable input/);
    expect(runCli(['verify', '--cluster', dir, join(dir, 'missing.txt')]).code).toBe(2);
    expect(runCli(['verify', '--cluster', join(dir, 'nope'), join(dir, 'good.txt')]).code).toBe(2);
  });

  it('cbft verify accepts a dump with a 100 Continue block (curl with Expect)', async () => {
    const dump = await curl(['-H', 'Expect: 100-continue', '-H', 'content-type: text/plain', '--data-binary', 'x'.repeat(2000), bottomUrl + '/upload']);
    expect(dump.toString('latin1')).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
    const f = join(tc.dir, 'continue.txt');
    await writeFile(f, dump);
    const r = runCli(['verify', '--cluster', tc.dir, f]);
    expect(r.stdout).toMatch(/^VALID/);
    expect(r.code).toBe(0);
  });

  it('writes one JSON access-log line per request with method, path, status, nonce, digest and duration', async () => {
    const nonce = 'ab'.repeat(16);
    const res = await request(bottomUrl + '/logged?q=1', { headers: { 'cbft-nonce': nonce } });
    await res.body.dump();
    const digest = res.headers['cbft-request-digest'];
    const bottom = procs[1]!;
    await waitFor(() => bottom.stdout().includes(nonce), 5_000, 'access log line');
    const line = bottom
      .stdout()
      .split('\n')
      .filter((l) => l.includes(nonce))
      .map((l) => JSON.parse(l) as Record<string, unknown>)[0]!;
    expect(line).toMatchObject({ node: 'fw-0-0', method: 'GET', path: '/logged?q=1', status: 200, outcome: 'reply', nonce, digest, msg: 'request' });
    expect(typeof line.ms).toBe('number');
    await waitFor(() => procs[0]!.stdout().includes(nonce), 5_000, 'top access log line');
    const topLine = procs[0]!
      .stdout()
      .split('\n')
      .find((l) => l.includes(nonce))!;
    expect(JSON.parse(topLine)).toMatchObject({ node: 'fw-0-1', path: '/logged?q=1', status: 200, outcome: 'reply', nonce, digest, msg: 'request' });
  });

  it('refuses bad invocations with exit status 2', () => {
    expect(runCli(['firewall', '--cluster', tc.dir]).stderr).toMatch(/--id is required/);
    const r = runCli(['firewall', '--cluster', tc.dir, '--id', 'fw-9-0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no node "fw-9-0"/);
    expect(runCli(['firewall', '--cluster', tc.dir, '--id', 'replica-0']).code).toBe(2);
  });

  it('SIGTERM: stops accepting, answers the requests in flight, exits 0', async () => {
    replicas.update({ delays: { 0: 400, 1: 400, 2: 400, 3: 400 } });
    const inflight = request(bottomUrl + '/slow').then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
    await new Promise((r) => setTimeout(r, 100));
    const bottom = procs[1]!;
    bottom.child.kill('SIGTERM');
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ target: '/slow' });
    expect(await bottom.exited).toBe(0);
    await expect(request(bottomUrl + '/after')).rejects.toThrow();
    const top = procs[0]!;
    top.child.kill('SIGTERM');
    expect(await top.exited).toBe(0);
    expect(top.stdout()).toMatch(/"msg":"stopped"/);
    replicas.update({ delays: {} });
  });
});

describe('cbft help', () => {
  it('lists the firewall and verify commands', () => {
    const r = runCli(['--help']);
    expect(r.stdout).toMatch(/firewall/);
    expect(r.stdout).toMatch(/verify/);
    expect(runCli(['verify', '--help']).stdout).toMatch(/Exit status: 0 valid, 1 invalid/);
  });
});
