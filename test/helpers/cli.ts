import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Path of the built CLI (npm test builds first, see the `pretest` script). */
export const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

export function runCli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
