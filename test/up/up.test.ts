import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, runCli } from '../helpers/cli.js';
import { findFreeRange, portFree } from '../../src/up/ports.js';
import { portCount } from '../../src/cluster/keygen.js';
import { startLocalCluster } from '../../src/up/local-cluster.js';

/**
 * `cbft up` as a user runs it: a real process tree on loopback. Each test checks that nothing it
 * started is left behind.
 */
const started: ChildProcess[] = [];
afterEach(() => {
  for (const c of started.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

function up(args: string[]) {
  const child = spawn(process.execPath, [CLI, 'up', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitFor = async (re: RegExp, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!re.test(out)) {
      if (child.exitCode !== null) throw new Error(`cbft up exited (${child.exitCode}) before printing ${re}:\n${out}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return out;
  };
  return { child, exited, waitFor, output: () => out };
}

/** Ports of the cluster plus its upstreams: all must be free again after a stop. */
async function allFree(base: number, count: number): Promise<boolean> {
  for (let p = base; p < base + count; p++) if (!(await portFree(p))) return false;
  return true;
}

const N = portCount({ replicas: 4, chains: 1, chainLength: 2 }) + 4;

describe('cbft up', () => {
  it('starts the cluster, prints a curl line that returns a signed answer cbft verify accepts, and stops everything on Ctrl-C, even pressed twice', async () => {
    const base = await findFreeRange(N);
    const run = up(['--chains', '1', '--base-port', String(base)]);
    const out = await run.waitFor(/Press Ctrl-C to stop/);
    const curlLine = /^ {2}(curl -si .*)$/m.exec(out)![1]!;
    const verifyLine = /^ {2}(curl -si .* \| npx cbft verify --cluster .* -)$/m.exec(out)![1]!;
    expect(curlLine).toContain(`http://127.0.0.1:${base + 8}/accounts/acc-1`);
    const dump = execFileSync('/bin/sh', ['-c', curlLine], { encoding: 'utf8' });
    expect(dump).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(dump).toMatch(/cbft-signature: /);
    expect(dump).toContain('"owner":"Ada Okafor"');
    const verdict = execFileSync('/bin/sh', ['-c', verifyLine.replace('npx cbft', `${process.execPath} ${CLI}`)], { encoding: 'utf8' });
    expect(verdict).toMatch(/^VALID/);

    // A child that dies is reported with its id and last log lines; the rest keeps serving.
    const clusterDir = /--cluster (\S+) -/.exec(verifyLine)![1]!;
    const pid = execFileSync('pgrep', ['-f', `sidecar --cluster ${clusterDir} --id replica-2`], { encoding: 'utf8' }).trim();
    process.kill(Number(pid), 'SIGKILL');
    await run.waitFor(/replica-2 killed by SIGKILL; its last lines:\n {2}\| /);
    expect(execFileSync('/bin/sh', ['-c', curlLine], { encoding: 'utf8' })).toMatch(/^HTTP\/1\.1 200 OK/);

    // Ctrl-C twice (or a wrapper forwarding the SIGINT the shell also sent): one stop, and cbft
    // up outlives it, so no child is orphaned.
    run.child.kill('SIGINT');
    await run.waitFor(/stopping everything it started/);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(run.output()).toMatch(/stopped\./);
    expect(run.output().match(/stopping everything it started/g)).toHaveLength(1);
    expect(await allFree(base, N)).toBe(true);
    expect(() => execFileSync('pgrep', ['-f', `--cluster ${clusterDir}`], { encoding: 'utf8' })).toThrow(); // pgrep exits 1: none left
  }, 120_000);

  it('refuses impossible sizes with a message that says what to change', async () => {
    const run = up(['--replicas', '5']);
    expect(await run.exited).toBe(2);
    expect(run.output()).toMatch(/--replicas must be 3s\+1 with s >= 1/);
  });

  it('bad flag values: one line naming the flag and what is allowed, exit 2, no stack trace, nothing started', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--base-port', '65530'], /^cbft up: --base-port must be an integer in 1\.\.65514 \(22 consecutive ports .*\), got 65530$/],
      [['--base-port', '0'], /^cbft up: --base-port must be an integer in 1\.\.65514 .*got 0$/],
      [['--base-port', '99999999999'], /^cbft up: --base-port must be an integer in 1\.\.65514 .*got 99999999999$/],
      [['--replicas', '4000'], /^cbft up: --replicas must be 3s\+1 in 4\.\.1024, got 4000$/],
      [['--chains', '20000'], /^cbft up: --replicas 4, --chains 20000 and --chain-length 2 need \d+ ports, more than the 65535 that exist/],
      [['--chain-length', '1'], /^cbft up: --chain-length must be an integer >= 2/],
      [['--upstream-command', ''], /^cbft up: --upstream-command must not be empty/],
      [['--upstream-command', '   '], /^cbft up: --upstream-command must not be empty/],
    ];
    for (const [args, re] of cases) {
      const r = runCli(['up', ...args]);
      const what = args.join(' ');
      expect({ what, code: r.code }).toEqual({ what, code: 2 });
      expect(r.stdout).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect({ what, lines }).toEqual({ what, lines: [expect.stringMatching(re)] });
    }
  });

  it('a generated cluster at the top of the port range leaves no room for the upstreams: a usage error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cbft-up-top-'));
    try {
      const gen = runCli(['keygen', '--out', join(dir, 'c'), '--replicas', '4', '--chains', '1', '--chain-length', '2', '--base-port', '65523']);
      expect(gen.code).toBe(0);
      const r = runCli(['up', '--cluster', join(dir, 'c')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^cbft up: the 4 upstreams take the ports after the cluster's \(up to 65535\), past 65535: generate the cluster with a lower --base-port\n$/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('startLocalCluster refuses an empty upstream command before starting anything', async () => {
    const base = await findFreeRange(N);
    await expect(startLocalCluster({ chains: 1, basePort: base, upstream: { command: '' } })).rejects.toThrow(
      expect.objectContaining({ code: 'CBFT_ERR_USAGE', message: '--upstream-command must not be empty' }),
    );
    expect(await allFree(base, N)).toBe(true);
  });

  it('reports a taken port and starts nothing', async () => {
    const base = await findFreeRange(N);
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(base + 3, '127.0.0.1', r));
    try {
      const run = up(['--chains', '1', '--base-port', String(base)]);
      expect(await run.exited).toBe(2);
      expect(run.output()).toMatch(new RegExp(`port ${base + 3} already in use; pick another --base-port`));
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    expect(await allFree(base, N)).toBe(true);
  });

  it('reports an upstream command that exits, with its last lines, and leaves nothing running', async () => {
    const base = await findFreeRange(N);
    const run = up(['--chains', '1', '--base-port', String(base), '--upstream-command', "sh -c 'echo upstream broke on purpose; exit 3'"]);
    expect(await run.exited).toBe(2);
    expect(run.output()).toMatch(/upstream 0 .* did not start listening/);
    expect(run.output()).toMatch(/upstream broke on purpose/);
    expect(await allFree(base, N)).toBe(true);
  });
});
