import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { execFileSync } from 'node:child_process';
import { CLI } from '../helpers/cli.js';
import { findFreeRange, portFree } from '../../src/up/ports.js';
import { portCount } from '../../src/cluster/keygen.js';

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
  it('starts the cluster, prints a curl line that returns a signed answer cbft verify accepts, and stops everything on SIGTERM', async () => {
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

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.output()).toMatch(/stopped\./);
    expect(await allFree(base, N)).toBe(true);
  }, 120_000);

  it('refuses impossible sizes with a message that says what to change', async () => {
    const run = up(['--replicas', '5']);
    expect(await run.exited).toBe(2);
    expect(run.output()).toMatch(/--replicas must be 3s\+1 with s >= 1/);
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
