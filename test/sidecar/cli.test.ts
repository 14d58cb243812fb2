import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

describe('cbft sidecar: command line', () => {
  it('prints its usage', () => {
    const r = runCli(['sidecar', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('cbft sidecar --cluster DIR --id replica-<i> --upstream URL');
    expect(runCli(['--help']).stdout).toMatch(/sidecar\s+run a replica sidecar/);
  });

  it('refuses bad usage with exit code 2 and a message naming the problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cbft-cli-'));
    try {
      expect(runCli(['sidecar', '--cluster', dir, '--id', 'replica-0'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--upstream is required') });
      expect(runCli(['sidecar', '--cluster', dir, '--id', 'fw-0-1', '--upstream', 'http://127.0.0.1:1'])).toMatchObject({
        code: 2,
        stderr: expect.stringContaining('--id must be replica-<i>'),
      });
      expect(runCli(['sidecar', '--cluster', dir, '--id', 'replica-0', '--upstream', 'ftp://x'])).toMatchObject({
        code: 2,
        stderr: expect.stringContaining('--upstream must be an http:// URL'),
      });
      expect(runCli(['sidecar', '--cluster', dir, '--id', 'replica-0', '--upstream', 'http://127.0.0.1:1'])).toMatchObject({
        code: 2,
        stderr: expect.stringContaining('cluster.json'),
      });
      expect(runCli(['sidecar', '--bogus'])).toMatchObject({ code: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
