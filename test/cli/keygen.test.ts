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
});
