import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseYamlDocuments } from './yaml.js';
import { BASE_IMAGE, IMAGE, buildImage, buildLocalBase, ensurePodman, imageSize, podman, podmanOk } from './podman.js';
import { IMAGE_UID } from '../../src/cluster/kubernetes.js';
import { portCount } from '../../src/cluster/keygen.js';
import type { ClusterConfig } from '../../src/cluster/config.js';

/**
 * The image, built and run here with podman (opt-in: `npm run test:container`, not part of `npm
 * test`). Builds the local stand-in for the base image and the image from the Dockerfile, then
 * runs `cbft --help`, `cbft keygen`, the example service, one sidecar and one firewall node
 * (host network, ports that were free), checks their /healthz directly and through the image's
 * HEALTHCHECK and stops them with SIGTERM; runs the Kubernetes pods' install-keys step on a
 * Secret-like volume; runs a whole cluster (4 service + sidecar pairs, a chain of 2) whose signed
 * reply `cbft verify` accepts; and removes everything it started.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const RUN = `cbft-test-${process.pid}`;
const started: string[] = [];
const dirs: string[] = [];
const timings: Record<string, number> = {};

async function timed<T>(name: string, f: () => T | Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timings[name] = Math.round(performance.now() - t0) / 1000;
  }
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port with `count` free ports from it on 127.0.0.1. */
async function freeRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error(`no ${count} free consecutive ports found`);
}

/** A directory the image's user owns (the test runs as root; the container as uid 10001). */
function imageOwnedDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chownSync(dir, IMAGE_UID, IMAGE_UID);
  dirs.push(dir);
  return dir;
}

// Host network; the HEALTHCHECK's timer needs systemd, absent here (`podman healthcheck run` works).
const RUN_FLAGS = ['--network', 'host', '--health-interval', 'disable'];

/** A one-off container. */
function run(args: string[], timeoutMs?: number): string {
  return podmanOk(['run', '--rm', ...RUN_FLAGS, ...args], timeoutMs);
}

function runDetached(role: string, args: string[]): string {
  const name = `${RUN}-${role}`;
  started.push(name);
  podmanOk(['run', '-d', '--name', name, ...RUN_FLAGS, ...args]);
  return name;
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: res.status, body: await res.json() };
}

/** Polls `url` until it answers 200; fails with the container's log when it never does. */
async function waitHealthy(url: string, container: string, timeoutMs = 30_000): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await getJson(url);
      if (r.status === 200) return r.body;
      last = `status ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    const state = podman(['inspect', '--format', '{{.State.Status}}', container]).stdout.trim();
    if (state === 'exited') break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const logs = podman(['logs', container]);
  throw new Error(`${url} never answered 200 (${last}); ${container} logs:\n${logs.stdout.slice(-3000)}${logs.stderr.slice(-3000)}`);
}

describe('container image (podman)', () => {
  let cluster: ClusterConfig;
  let clusterDir: string;
  /** Free too: the port after the ones keygen handed out (and the 4 after it, for the whole-cluster test). */
  let upstreamPort: number;

  beforeAll(async () => {
    const version = await timed('podman check/install', () => ensurePodman());
    console.log(`container test: ${version}`);
    await timed('local base image', () => buildLocalBase());
    await timed('image build', () => buildImage(REPO));
  }, 1_200_000);

  afterAll(() => {
    for (const name of started) podman(['rm', '-f', '-t', '0', name]);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    if (process.env.CBFT_KEEP_IMAGES !== '1') podman(['rmi', '-f', IMAGE, BASE_IMAGE]);
    console.log(`container test timings (s): ${JSON.stringify(timings)}`);
  });

  it('is small, runs as uid 10001 and holds no stray files', () => {
    const size = imageSize(IMAGE);
    const base = imageSize(BASE_IMAGE);
    console.log(`image ${IMAGE}: ${(size / 1e6).toFixed(1)} MB, of which cbft layers ${((size - base) / 1e6).toFixed(1)} MB (base ${(base / 1e6).toFixed(1)} MB)`);
    expect(size - base).toBeLessThan(40e6);
    const config = JSON.parse(podmanOk(['image', 'inspect', '--format', '{{json .Config}}', IMAGE])) as { User: string; Entrypoint: string[] };
    expect(config.User).toBe(`${IMAGE_UID}:${IMAGE_UID}`);
    expect(config.Entrypoint).toEqual(['cbft']);
    const healthcheck = JSON.parse(podmanOk(['image', 'inspect', '--format', '{{json .HealthCheck}}', IMAGE])) as { Test: string[] };
    expect(healthcheck.Test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
    expect(run(['--entrypoint', 'id', IMAGE, '-u']).trim()).toBe(String(IMAGE_UID));
    const listing = run(['--entrypoint', 'node', IMAGE, '-e', "console.log(JSON.stringify([require('fs').readdirSync('/app'), require('fs').readdirSync('/app/examples')]))"]);
    expect(JSON.parse(listing)).toEqual([['adapters', 'dist', 'examples', 'node_modules', 'package.json'], ['bank']]);
  });

  it('runs cbft --help and --version', async () => {
    const help = await timed('cbft --help', () => run([IMAGE, '--help']));
    for (const command of ['keygen', 'sidecar', 'firewall', 'up']) expect(help).toMatch(new RegExp(`^  ${command} `, 'm'));
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    expect(run([IMAGE, '--version']).trim()).toBe(pkg.version);
  });

  it('runs keygen into a mounted directory', async () => {
    const sizes = { replicas: 4, chains: 1, chainLength: 2 };
    const base = await freeRange(portCount(sizes) + 1 + sizes.replicas);
    upstreamPort = base + portCount(sizes);
    clusterDir = imageOwnedDir('cbft-container-cluster-');
    const out = run(['-v', `${clusterDir}:/cluster`, IMAGE, 'keygen', '--out', '/cluster', '--replicas', '4', '--chains', '1', '--chain-length', '2', '--base-port', String(base)]);
    expect(out).toMatch(/s=1, f=1, 4 replicas/);
    cluster = JSON.parse(readFileSync(join(clusterDir, 'cluster.json'), 'utf8')) as ClusterConfig;
    const key = statSync(join(clusterDir, 'keys', 'replica-0.json'));
    expect(key.uid).toBe(IMAGE_UID);
    expect(key.mode & 0o777).toBe(0o600);
  });

  it('runs one sidecar (with the example service) and one firewall node, healthy, stopped by SIGTERM', async () => {
    const replica = cluster.replicas[0]!;
    const bottom = cluster.chains[0]![0]!;
    const upstream = `http://127.0.0.1:${upstreamPort}`;
    expect(await portFree(upstreamPort)).toBe(true);
    const dataDir = imageOwnedDir('cbft-container-data-');
    const mountCluster = ['-v', `${clusterDir}:/cluster:ro`];

    await timed('containers start', () => {
      runDetached('bank', ['-e', `PORT=${upstreamPort}`, '-e', 'HOST=127.0.0.1', '--entrypoint', 'node', IMAGE, '/app/examples/bank/server.mjs']);
      runDetached('sidecar', [...mountCluster, '-v', `${dataDir}:/data`, IMAGE, 'sidecar', '--cluster', '/cluster', '--id', replica.id, '--upstream', upstream, '--data', '/data']);
      runDetached('firewall', [...mountCluster, IMAGE, 'firewall', '--cluster', '/cluster', '--id', bottom.id]);
    });

    const sidecarHealth = await timed('sidecar healthy', () => waitHealthy(`${replica.adminUrl}/healthz`, `${RUN}-sidecar`));
    expect(sidecarHealth).toMatchObject({ status: 'ok', id: replica.id });
    const firewallHealth = await timed('firewall healthy', () => waitHealthy(`${bottom.adminUrl}/healthz`, `${RUN}-firewall`));
    expect(firewallHealth).toMatchObject({ status: 'ok', id: bottom.id });
    const bank = await fetch(`${upstream}/accounts/acc-1`, { headers: { authorization: 'Bearer token-acc-1' } });
    expect(bank.status).toBeLessThan(500);

    // The image's HEALTHCHECK finds the admin port from --cluster and --id by itself.
    for (const role of ['sidecar', 'firewall']) {
      const r = podman(['healthcheck', 'run', `${RUN}-${role}`]);
      expect({ role, code: r.code, out: r.stdout + r.stderr }).toMatchObject({ role, code: 0 });
    }

    // /readyz answers (not ready is expected: the peers and the upper neighbour are not running).
    for (const url of [replica.adminUrl, bottom.adminUrl]) {
      const r = await getJson(`${url}/readyz`);
      expect([200, 503]).toContain(r.status);
    }

    // SIGTERM reaches node as PID 1: both drain and exit 0.
    await timed('containers stop', () => {
      for (const role of ['sidecar', 'firewall']) {
        podmanOk(['stop', '-t', '20', `${RUN}-${role}`], 60_000);
        const code = podmanOk(['inspect', '--format', '{{.State.ExitCode}}', `${RUN}-${role}`]).trim();
        expect({ role, code }).toEqual({ role, code: '0' });
      }
    });
  });
  it("the pods' install-keys step turns a Secret volume into a key file the sidecar accepts", async () => {
    // A Secret volume as kubelet lays it out with fsGroup: timestamped dir, ..data link, 0440 root:10001.
    const replica = cluster.replicas[1]!;
    const keyFile = `${replica.id}.json`;
    const secret = mkdtempSync(join(tmpdir(), 'cbft-container-secret-'));
    dirs.push(secret);
    const stamp = '..2026_01_01_00_00_00.000000001';
    mkdirSync(join(secret, stamp));
    chmodSync(secret, 0o755);
    chmodSync(join(secret, stamp), 0o755);
    copyFileSync(join(clusterDir, 'keys', keyFile), join(secret, stamp, keyFile));
    chownSync(join(secret, stamp, keyFile), 0, IMAGE_UID);
    chmodSync(join(secret, stamp, keyFile), 0o440);
    symlinkSync(stamp, join(secret, '..data'));
    symlinkSync(join('..data', keyFile), join(secret, keyFile));
    const config = mkdtempSync(join(tmpdir(), 'cbft-container-config-'));
    dirs.push(config);
    copyFileSync(join(clusterDir, 'cluster.json'), join(config, 'cluster.json'));
    chmodSync(config, 0o755);
    const emptyDir = imageOwnedDir('cbft-container-emptydir-');

    // The raw Secret file is group-readable: cbft refuses it, which is why the step exists.
    const raw = mkdtempSync(join(tmpdir(), 'cbft-container-raw-'));
    dirs.push(raw);
    mkdirSync(join(raw, 'keys'));
    copyFileSync(join(config, 'cluster.json'), join(raw, 'cluster.json'));
    symlinkSync(join('/secret', keyFile), join(raw, 'keys', keyFile));
    chmodSync(raw, 0o755);
    chmodSync(join(raw, 'keys'), 0o755);
    const refused = podman(['run', '--rm', ...RUN_FLAGS, '-v', `${raw}:/cluster:ro`, '-v', `${secret}:/secret:ro`, IMAGE, 'sidecar', '--cluster', '/cluster', '--id', replica.id, '--upstream', 'http://127.0.0.1:1']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/accessible by group or others/);

    // The init container of the manifests, verbatim.
    const statefulSets = parseYamlDocuments(readFileSync(join(REPO, 'examples/kubernetes/40-replicas.yaml'), 'utf8')) as any[];
    const init = statefulSets[0].spec.template.spec.initContainers[0];
    expect(init.name).toBe('install-keys');
    const installed = run(['-v', `${config}:/config:ro`, '-v', `${secret}:/secret:ro`, '-v', `${emptyDir}:/etc/cbft`, '--entrypoint', init.command[0], IMAGE, ...init.command.slice(1)]);
    expect(installed).toContain(`installed key ${keyFile}`);
    const st = statSync(join(emptyDir, 'keys', keyFile));
    expect([st.uid, st.mode & 0o777]).toEqual([IMAGE_UID, 0o600]);

    const data = imageOwnedDir('cbft-container-data-');
    runDetached('sidecar-from-secret', ['-v', `${emptyDir}:/etc/cbft:ro`, '-v', `${data}:/data`, IMAGE, 'sidecar', '--cluster', '/etc/cbft', '--id', replica.id, '--upstream', `http://127.0.0.1:${upstreamPort}`, '--data', '/data']);
    expect(await waitHealthy(`${replica.adminUrl}/healthz`, `${RUN}-sidecar-from-secret`)).toMatchObject({ status: 'ok', id: replica.id });
    podmanOk(['stop', '-t', '20', `${RUN}-sidecar-from-secret`], 60_000);
  });

  it('runs a whole cluster in containers: a client gets a signed reply that cbft verify accepts', async () => {
    // The cluster of the keygen test: 4 replicas (bank + sidecar each) and one chain of 2.
    const upstreams = cluster.replicas.map((_, i) => upstreamPort + 1 + i);
    for (const p of upstreams) expect(await portFree(p), `port ${p}`).toBe(true);
    const mountCluster = ['-v', `${clusterDir}:/cluster:ro`];
    await timed('cluster start', () => {
      cluster.replicas.forEach((r, i) => {
        runDetached(`bank-${i}`, [
          ...['-e', `PORT=${upstreams[i]}`, '-e', 'HOST=127.0.0.1', '-e', 'NODE_OPTIONS=--require /app/adapters/node-deterministic.cjs'],
          ...['--entrypoint', 'node', IMAGE, '/app/examples/bank/server.mjs'],
        ]);
        const data = imageOwnedDir(`cbft-container-data-${i}-`);
        runDetached(`sidecar-${i}`, [...mountCluster, '-v', `${data}:/data`, IMAGE, 'sidecar', '--cluster', '/cluster', '--id', r.id, '--upstream', `http://127.0.0.1:${upstreams[i]}`, '--data', '/data']);
      });
      for (const n of cluster.chains[0]!) runDetached(`${n.id}-e2e`, [...mountCluster, IMAGE, 'firewall', '--cluster', '/cluster', '--id', n.id]);
    });
    const bottom = cluster.chains[0]![0]!;
    const response = await timed('first signed reply', async () => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          const res = await fetch(`${bottom.url}/accounts/acc-1`, { headers: { authorization: 'Bearer token-acc-1' }, signal: AbortSignal.timeout(15_000) });
          if (res.status === 200) return res;
          if (Date.now() > deadline) throw new Error(`bottom node answered ${res.status}: ${await res.text()}`);
        } catch (err) {
          if (Date.now() > deadline) throw err;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    });
    const body = await response.text();
    expect(JSON.parse(body)).toMatchObject({ id: 'acc-1', owner: 'Ada Okafor' });
    for (const h of ['cbft-signature', 'cbft-nonce', 'cbft-request-digest', 'cbft-proof']) expect(response.headers.get(h), h).toBeTruthy();
    // What `curl -si` would have saved, checked by cbft verify in a container.
    const dump =
      `HTTP/1.1 ${response.status} ${response.statusText}\r\n` +
      [...response.headers].map(([k, v]) => `${k}: ${v}\r\n`).join('') +
      '\r\n' +
      body;
    const verify = podman(['run', '--rm', '-i', ...RUN_FLAGS, ...mountCluster, IMAGE, 'verify', '--cluster', '/cluster', '-'], 60_000, dump);
    expect(verify.stdout + verify.stderr).toMatch(/^VALID/m);
    expect(verify.code).toBe(0);
    const tampered = podman(['run', '--rm', '-i', ...RUN_FLAGS, ...mountCluster, IMAGE, 'verify', '--cluster', '/cluster', '-'], 60_000, dump.replace('Ada Okafor', 'Ada Okafoe'));
    expect(tampered.code).toBe(1);
  });
});
