import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * Podman on this machine (see ../shared/notes/containers.md): no Docker engine and no image
 * registry, so the image is built FROM a base assembled from the machine's own Node.js, builds
 * and containers use the host network, and runc replaces crun (which fails on this kernel).
 */

export const BASE_IMAGE = 'localhost/cbft-base:test';
export const IMAGE = 'localhost/cbft:test';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const result = (r: SpawnSyncReturns<string>): Run => ({ code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') });

export function podman(args: string[], timeoutMs = 120_000, input?: string): Run {
  return result(spawnSync('podman', ['--runtime', 'runc', ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, input }));
}

/** podman, failing with its output when the command does. */
export function podmanOk(args: string[], timeoutMs?: number): string {
  const r = podman(args, timeoutMs);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

/** Installs podman and runc with apt-get when missing, and the containers.conf this kernel needs. */
export function ensurePodman(): string {
  const has = () => spawnSync('podman', ['--version'], { encoding: 'utf8' }).status === 0 && spawnSync('runc', ['--version']).status === 0;
  if (!has()) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env, timeout: 300_000 });
    execFileSync('apt-get', ['install', '-y', '-qq', 'podman', 'runc'], { stdio: 'inherit', env, timeout: 600_000 });
  }
  const conf = '/etc/containers/containers.conf';
  if (!existsSync(conf)) {
    mkdirSync(dirname(conf), { recursive: true });
    writeFileSync(conf, '[containers]\ndefault_ulimits = []\npids_limit = 0\n');
  }
  return spawnSync('podman', ['--version'], { encoding: 'utf8' }).stdout.trim();
}

/** Shared libraries a binary loads, as ldd lists them. */
function libraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  return [...out.matchAll(/(\/[^\s]+)\s+\(0x/g)].map((m) => m[1]!);
}

/**
 * A base image made of this machine's node, npm, /bin/sh and the few tools the Dockerfile runs,
 * with npm set up as on this machine (registry, CA file). Stands in for node:22-bookworm-slim.
 */
export function buildLocalBase(): void {
  const root = mkdtempSync(join(tmpdir(), 'cbft-base-'));
  try {
    const fs = join(root, 'fs');
    for (const d of ['usr/bin', 'usr/lib', 'usr/lib64', 'usr/local/bin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev']) mkdirSync(join(fs, d), { recursive: true });
    for (const [link, target] of [['bin', 'usr/bin'], ['lib', 'usr/lib'], ['lib64', 'usr/lib64'], ['sbin', 'usr/bin']] as const) symlinkSync(target, join(fs, link));
    chmodSync(join(fs, 'tmp'), 0o1777);
    const node = realpathSync(process.execPath);
    const tools = [node, '/bin/dash', '/usr/bin/env', '/bin/ln', '/bin/chmod', '/bin/mkdir', '/bin/cp', '/bin/rm', '/bin/cat', '/bin/ls', '/usr/bin/id'];
    const files = new Set<string>();
    for (const t of tools) {
      files.add(t);
      for (const lib of libraries(t)) files.add(lib);
    }
    for (const f of files) {
      const to = join(fs, f === node ? '/usr/bin/node' : f);
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(f, to);
      chmodSync(to, 0o755);
    }
    symlinkSync('dash', join(fs, 'usr/bin/sh'));
    const npm = '/usr/lib/node_modules/npm';
    cpSync(npm, join(fs, npm), { recursive: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(fs, 'usr/bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(fs, 'usr/bin/npx'));
    writeFileSync(join(fs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n');
    writeFileSync(join(fs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
    // npm as set up on this machine: its user config and the CA file it names.
    const npmrc = join(homedir(), '.npmrc');
    if (existsSync(npmrc)) {
      const text = readFileSync(npmrc, 'utf8');
      writeFileSync(join(fs, 'root/.npmrc'), text);
      const cafile = /^cafile\s*=\s*(.+)$/m.exec(text)?.[1]?.trim();
      if (cafile && existsSync(cafile)) {
        mkdirSync(dirname(join(fs, cafile)), { recursive: true });
        copyFileSync(cafile, join(fs, cafile));
      }
    }
    // Extra CA certificates Node.js trusts here (the registry is reached through them).
    const changes = ['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
    const extraCa = process.env.NODE_EXTRA_CA_CERTS;
    if (extraCa && existsSync(extraCa)) {
      mkdirSync(dirname(join(fs, extraCa)), { recursive: true });
      copyFileSync(extraCa, join(fs, extraCa));
      changes.push(`ENV NODE_EXTRA_CA_CERTS=${extraCa}`);
    }
    execFileSync('tar', ['-C', fs, '-cf', join(root, 'base.tar'), '.']);
    podmanOk(['rmi', '-f', BASE_IMAGE]);
    podmanOk(['import', ...changes.flatMap((c) => ['--change', c]), join(root, 'base.tar'), BASE_IMAGE]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * `--format docker` keeps HEALTHCHECK (OCI images have no such field); `--layers=false` leaves no
 * intermediate images behind; npm's cache from this machine is lent to the RUN steps when present.
 */
export function buildImage(context: string): string {
  const npmCache = join(homedir(), '.npm');
  const cache = existsSync(npmCache) ? ['-v', `${npmCache}:/root/.npm`] : [];
  return podmanOk(
    ['build', '--network', 'host', '--format', 'docker', '--pull=never', '--layers=false', ...cache, '--build-arg', `BASE_IMAGE=${BASE_IMAGE}`, '-t', IMAGE, context],
    900_000,
  );
}

export function imageSize(image: string): number {
  return Number(podmanOk(['image', 'inspect', '--format', '{{.Size}}', image]).trim());
}
