// Shared helpers for the example/adapter tests: real child processes on 127.0.0.1 with
// ephemeral ports, bounded waits, and a raw HTTP client that keeps header order and bytes.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ADAPTER = path.join(ROOT, 'adapters', 'node-deterministic.cjs');
export const BANK = path.join(ROOT, 'examples', 'bank', 'server.mjs');
export const PROBE = path.join(ROOT, 'test', 'examples', 'fixtures', 'probe-server.mjs');

export interface Running {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Preload the adapter through NODE_OPTIONS, as an operator would. */
  adapter?: boolean;
  env?: Record<string, string>;
  timeoutMs?: number;
}

const running = new Set<Running>();

/** Starts `node script` with PORT=0 and waits (bounded) for its "listening on URL" line. */
export function startNode(script: string, opts: StartOptions = {}): Promise<Running> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && k !== 'NODE_OPTIONS' && !k.startsWith('CBFT_') && !k.startsWith('BANK_')) {
      env[k] = v;
    }
  }
  env.PORT = '0';
  env.HOST = '127.0.0.1';
  if (opts.adapter === true) env.NODE_OPTIONS = `--require ${JSON.stringify(ADAPTER)}`;
  Object.assign(env, opts.env ?? {});
  const timeoutMs = opts.timeoutMs ?? 10_000;

  const child = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  return new Promise<Running>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(script)} did not listen within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString('utf8');
      const m = /listening on (https?:\/\/[^\s]+)/.exec(out);
      if (m !== null && m[1] !== undefined) {
        clearTimeout(timer);
        const url = m[1];
        const proc: Running = {
          url,
          child,
          output: () => out,
          async stop() {
            running.delete(proc);
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill('SIGTERM');
            const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
            await exited;
            clearTimeout(killer);
          },
        };
        running.add(proc);
        resolve(proc);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${path.basename(script)} exited (${code ?? signal}) before listening:\n${out}`));
    });
  });
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()));
}

export interface RawResponse {
  status: number;
  /** [name (lower-case), value] pairs in the order they were received. */
  headers: [string, string][];
  body: Buffer;
  /** Whether the request went over a kept-alive connection used before. */
  reusedSocket: boolean;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  agent?: http.Agent | false;
  /** Send the body with chunked encoding (no content-length). */
  chunked?: boolean;
  timeoutMs?: number;
  ca?: string;
}

export function request(base: string, target: string, opts: RequestOptions = {}): Promise<RawResponse> {
  const url = new URL(target, base);
  const isHttps = url.protocol === 'https:';
  const headers: Record<string, string | number> = { ...(opts.headers ?? {}) };
  if (opts.body !== undefined && opts.chunked !== true) {
    headers['content-length'] = Buffer.byteLength(opts.body);
  }
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise<RawResponse>((resolve, reject) => {
    const options: https.RequestOptions = {
      method: opts.method ?? 'GET',
      host: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      headers,
      agent: opts.agent ?? false,
    };
    if (opts.ca !== undefined) options.ca = opts.ca;
    const req = (isHttps ? https : http).request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const pairs: [string, string][] = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          pairs.push([String(res.rawHeaders[i]).toLowerCase(), String(res.rawHeaders[i + 1])]);
        }
        resolve({
          status: res.statusCode ?? 0,
          headers: pairs,
          body: Buffer.concat(chunks),
          reusedSocket: req.reusedSocket,
        });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${target}: no response within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

export function header(res: RawResponse, name: string): string | undefined {
  return res.headers.find(([k]) => k === name)?.[1];
}

export function json<T = unknown>(res: RawResponse): T {
  return JSON.parse(res.body.toString('utf8')) as T;
}

/** The response as a comparable value, without the headers that legitimately differ. */
export function comparable(res: RawResponse): { status: number; headers: [string, string][]; body: string } {
  const ignored = new Set(['date', 'connection', 'keep-alive']);
  return {
    status: res.status,
    headers: res.headers.filter(([k]) => !ignored.has(k)),
    body: res.body.toString('base64'),
  };
}

/** The cbft headers a sidecar would add for sequence number `seq`. */
export function cbftHeaders(seq: number, timestamp: number, seedLabel = 'seed'): Record<string, string> {
  return {
    'cbft-sequence': String(seq),
    'cbft-timestamp': String(timestamp),
    'cbft-seed': createHash('sha256').update(`${seedLabel}-${seq}`).digest('hex'),
  };
}

export function seedHex(label: string): string {
  return createHash('sha256').update(label).digest('hex');
}
