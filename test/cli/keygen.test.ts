import { describe, expect, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { loadCluster } from '../../src/cluster/keys.js';

describe('cbft CLI', () => {
  it('prints help and refuses unknown commands', () => {
    const help = runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/keygen/);
    const bad = runCli(['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('keygen writes a loadable cluster and refuses to overwrite it', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'cbft-keygen-')), 'c');
    const r = runCli(['keygen', '--out', dir, '--replicas', '7', '--chains', '1', '--chain-length', '3', '--base-port', '12000']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/s=2, f=2, 7 replicas, 1 chain\(s\) of 3/);
    const cluster = await loadCluster(dir);
    expect(cluster.replicas).toHaveLength(7);
    expect(existsSync(join(dir, 'keys', 'fw-0-2.json'))).toBe(true);
    const again = runCli(['keygen', '--out', dir, '--replicas', '4', '--chains', '1', '--chain-length', '2']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists; pass --force/);
  });

  it('keygen explains bad sizes and flags', () => {
    const r = runCli(['keygen', '--out', '/tmp/never', '--replicas', '6', '--chains', '1', '--chain-length', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--replicas must be 3s\+1/);
    expect(runCli(['keygen', '--out', '/tmp/never', '--replicas', 'four', '--chains', '1', '--chain-length', '2']).stderr).toMatch(/non-negative integer/);
    expect(runCli(['keygen', '--bogus']).stderr).toMatch(/bogus/);
    expect(runCli(['keygen', '--replicas', '4']).stderr).toMatch(/--out is required/);
  });

  it('keygen: out-of-range --base-port and sizes are one-line usage errors naming the flag (exit 2)', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'cbft-keygen-')), 'c');
    const sizes = ['--replicas', '4', '--chains', '1', '--chain-length', '2'];
    const cases: Array<[string[], RegExp]> = [
      [[...sizes, '--base-port', '65530'], /^cbft keygen: --base-port must be an integer in 1\.\.65523 \(13 consecutive ports from it must stay below 65536\), got 65530$/],
      [[...sizes, '--base-port', '0'], /^cbft keygen: --base-port must be an integer in 1\.\.65523 .*got 0$/],
      [['--replicas', '4000', '--chains', '1', '--chain-length', '2'], /^cbft keygen: --replicas must be 3s\+1 in 4\.\.1024, got 4000$/],
      [['--replicas', '4', '--chains', '100000', '--chain-length', '2'], /^cbft keygen: --replicas 4, --chains 100000 and --chain-length 2 need 500008 ports, more than the 65535 that exist; lower them$/],
    ];
    for (const [args, re] of cases) {
      const r = runCli(['keygen', '--out', dir, ...args]);
      const what = args.join(' ');
      expect({ what, code: r.code, stdout: r.stdout }).toEqual({ what, code: 2, stdout: '' });
      const lines = r.stderr.trimEnd().split('\n');
      expect({ what, lines }).toEqual({ what, lines: [expect.stringMatching(re)] });
    }
    expect(existsSync(dir)).toBe(false);
    // The last base port that fits is accepted.
    const ok = runCli(['keygen', '--out', dir, ...sizes, '--base-port', '65523']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const cluster = await loadCluster(dir);
    expect(cluster.chains[0]![1]!.adminUrl).toBe('http://127.0.0.1:65535');
  });
});
