import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

/**
 * Bench services run as their own processes (so their CPU and memory are measured apart from
 * the load generator). Protocol: the child listens on 127.0.0.1 (port 0 unless `--port`), then
 * prints one JSON line `{"url": ...}` on stdout; SIGTERM closes it.
 */
export async function serveFromCommandLine(moduleUrl: string, make: (args: string[]) => FastifyInstance | Promise<FastifyInstance>): Promise<void> {
  if (process.argv[1] !== fileURLToPath(moduleUrl)) return; // imported, not run
  const args = process.argv.slice(2);
  const p = args.indexOf('--port');
  const port = p >= 0 ? Number(args[p + 1]) : 0;
  const app = await make(args);
  await app.listen({ host: '127.0.0.1', port });
  const addr = app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no TCP address');
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${addr.port}`, pid: process.pid }) + '\n');
  const stop = () => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

export interface RunningService {
  role: string;
  pid: number;
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Start `node <script> ...args` and wait (bounded) for its readiness line. */
export async function startService(role: string, script: string | URL, args: string[] = [], opts: { timeoutMs?: number; nodeArgs?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<RunningService> {
  const path = script instanceof URL ? fileURLToPath(script) : script;
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), path, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: opts.env ?? process.env,
  });
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${role} did not become ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve((JSON.parse(line) as { url: string }).url);
      } catch {
        reject(new Error(`${role} printed ${JSON.stringify(line)} instead of its readiness line`));
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${role} exited before ready (code ${code}, signal ${signal})`));
    });
  });
  child.stdout!.resume(); // keep draining
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${role} has no pid`);
  return {
    role,
    pid,
    url,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
