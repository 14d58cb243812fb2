import { randomBytes } from 'node:crypto';
import { Pool } from 'undici';
import { toHex, utf8 } from '../codec/binary.js';
import { digestOf, encodeRequest } from '../codec/canonical.js';
import { allowlist, canonicalHeaders, DEFAULT_FORWARD_HEADERS, type HeaderField } from '../codec/headers.js';
import type { ClusterConfig } from '../cluster/config.js';
import { loadCluster } from '../cluster/keys.js';
import { CbftError } from '../errors.js';
import { ResponseVerifier } from './verify-response.js';

/**
 * The client side of the protocol (Figure 3 of the paper): send the request, with one nonce, to
 * the bottom node of every chain, and accept the first answer that carries a valid threshold
 * signature of the service for the digest of the request this client itself built. If no chain
 * gives one, retry with the same nonce (the replicas answer a retry from their reply cache, so
 * nothing executes twice), with bounded attempts and per-attempt timeouts.
 */
export interface ClientOptions {
  /** The cluster description, or the directory holding cluster.json. */
  cluster: ClusterConfig | string;
  /** Attempts per request (each one to every chain), default 3. */
  attempts?: number;
  /** Per-attempt timeout, default the cluster's request timeout + 1 s. */
  timeoutMs?: number;
  /** Delay before the second attempt, doubled for each further one; default 100 ms. */
  backoffMs?: number;
  /** Keep-alive connections per bottom node, default 8. */
  connections?: number;
  /** Which chains to use (default all). */
  chains?: number[];
}

export interface ClientRequest {
  method?: string;
  /** Origin-form target: path and query, e.g. `/accounts/1?x=y`. */
  path: string;
  headers?: Record<string, string | string[]> | ReadonlyArray<readonly [string, string]>;
  body?: string | Uint8Array;
  /** 32 hex characters; a fresh random nonce by default. Reuse it only to retry the same request. */
  nonce?: string;
}

export interface VerifiedResponse {
  status: number;
  /** The signed headers (lower-case names, canonical order). */
  headers: HeaderField[];
  body: Uint8Array;
  nonce: string;
  requestDigest: string;
  /** The chain whose bottom node delivered the accepted answer. */
  chain: number;
  attempts: number;
  header(name: string): string | undefined;
  text(): string;
  json(): unknown;
}

export interface CbftClient {
  request(r: ClientRequest): Promise<VerifiedResponse>;
  close(): Promise<void>;
}

export const CLIENT_ERROR = 'CBFT_ERR_NO_VERIFIED_REPLY';
export const CLIENT_REFUSED = 'CBFT_ERR_REQUEST_REFUSED';

/** Error codes of the firewall that retrying the same request cannot fix. */
const PERMANENT = new Set(['malformed_request', 'body_too_large', 'headers_too_large']);
const NONCE_RE = /^[0-9a-f]{32}$/;

interface Loaded {
  cluster: ClusterConfig;
  verifier: ResponseVerifier;
  forwardAllow: Set<string>;
  chains: Array<{ index: number; url: URL; pool: Pool }>;
}

type ChainResult = { ok: true; response: VerifiedResponse } | { ok: false; reason: string; permanent?: string };

export function createClient(options: ClientOptions): CbftClient {
  let loaded: Promise<Loaded> | undefined;
  let closed = false;
  const load = (): Promise<Loaded> =>
    (loaded ??= (async () => {
      const cluster = typeof options.cluster === 'string' ? await loadCluster(options.cluster) : options.cluster;
      const indices = options.chains ?? cluster.chains.map((_, i) => i);
      return {
        cluster,
        verifier: new ResponseVerifier(cluster),
        forwardAllow: allowlist(DEFAULT_FORWARD_HEADERS, cluster.service.forwardHeaders),
        chains: indices.map((index) => {
          const bottom = cluster.chains[index]?.[0];
          if (!bottom) throw new CbftError('CBFT_ERR_USAGE', `no chain ${index} in the cluster`);
          return { index, url: new URL(bottom.url), pool: new Pool(bottom.url, { connections: options.connections ?? 8, keepAliveTimeout: 4_000 }) };
        }),
      };
    })());

  const attempts = Math.max(1, options.attempts ?? 3);
  const backoffMs = options.backoffMs ?? 100;

  async function once(l: Loaded, chain: Loaded['chains'][number], method: string, path: string, headers: string[], body: Uint8Array, nonce: string, digest: string, timeoutMs: number, attempt: number): Promise<ChainResult> {
    try {
      const res = await chain.pool.request({
        method,
        path,
        headers,
        body: body.length > 0 || !['GET', 'HEAD'].includes(method) ? Buffer.from(body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const raw = new Uint8Array(await res.body.arrayBuffer());
      const pairs: Array<[string, string]> = [];
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) pairs.push([name, v]);
      }
      const check = l.verifier.check({ status: res.statusCode, headers: pairs, body: raw }, digest);
      if (check.ok) {
        return {
          ok: true,
          response: {
            status: check.status,
            headers: check.headers,
            body: check.body,
            nonce,
            requestDigest: digest,
            chain: chain.index,
            attempts: attempt,
            header: (name: string) => check.headers.find(([n]) => n === name.toLowerCase())?.[1],
            text: () => Buffer.from(check.body).toString('utf8'),
            json: () => JSON.parse(Buffer.from(check.body).toString('utf8')) as unknown,
          },
        };
      }
      if (check.unsigned) {
        let code: string | undefined;
        try {
          code = (JSON.parse(Buffer.from(raw).toString('utf8')) as { error?: string }).error;
        } catch {
          code = undefined;
        }
        const reason = `chain ${chain.index}: ${res.statusCode}${code ? ` ${code}` : ''} (unsigned)`;
        return { ok: false, reason, permanent: code && PERMANENT.has(code) ? code : undefined };
      }
      if (method === 'HEAD' && raw.length === 0 && Number(res.headers['content-length'] ?? 0) > 0) {
        return { ok: false, reason: `chain ${chain.index}: a HEAD answer whose signed body is not empty cannot be verified without the body` };
      }
      return { ok: false, reason: `chain ${chain.index}: ${check.reason}` };
    } catch (err) {
      return { ok: false, reason: `chain ${chain.index}: ${(err as Error).message}` };
    }
  }

  return {
    async request(r: ClientRequest): Promise<VerifiedResponse> {
      if (closed) throw new CbftError('CBFT_ERR_USAGE', 'client is closed');
      const l = await load();
      const nonce = r.nonce ?? toHex(randomBytes(16));
      if (!NONCE_RE.test(nonce)) throw new CbftError('CBFT_ERR_USAGE', 'nonce must be 32 lower-case hex characters');
      const method = r.method ?? 'GET';
      const body = r.body === undefined ? new Uint8Array(0) : typeof r.body === 'string' ? utf8(r.body) : r.body;
      const fields: Array<[string, string]> = [];
      const given = r.headers ?? [];
      const entries: Array<readonly [string, string | string[]]> = Array.isArray(given) ? (given as Array<readonly [string, string]>) : Object.entries(given);
      for (const [name, value] of entries) {
        if (name.toLowerCase().startsWith('cbft-')) continue;
        for (const v of Array.isArray(value) ? value : [value]) fields.push([name, v.trim()]);
      }
      const flat: string[] = [];
      for (const [n, v] of fields) flat.push(n, v);
      flat.push('cbft-nonce', nonce);
      // The digest each bottom node will compute: the same canonical request this client sends
      // (a `host` header only matters if the service allowlists it; then it names each bottom).
      const digestFor = (chain: Loaded['chains'][number]) => {
        const withHost = l.forwardAllow.has('host') && !fields.some(([n]) => n.toLowerCase() === 'host') ? [...fields, ['host', chain.url.host] as [string, string]] : fields;
        return toHex(digestOf(encodeRequest({ nonce: Buffer.from(nonce, 'hex'), method, target: r.path, headers: canonicalHeaders(withHost, l.forwardAllow), body })));
      };
      let digests: string[];
      try {
        digests = l.chains.map(digestFor);
      } catch (err) {
        throw new CbftError(CLIENT_REFUSED, `the request cannot be sent: ${(err as Error).message}`, { cause: err });
      }
      const timeoutMs = options.timeoutMs ?? l.cluster.firewall.requestTimeoutMs + 1_000;
      const reasons: string[] = [];
      for (let attempt = 1; attempt <= attempts; attempt++) {
        const result = await new Promise<ChainResult[] | VerifiedResponse>((resolve) => {
          const results: ChainResult[] = [];
          let done = false;
          l.chains.forEach((chain, i) => {
            void once(l, chain, method, r.path, flat, body, nonce, digests[i]!, timeoutMs, attempt).then((res) => {
              if (done) return;
              if (res.ok) {
                done = true;
                resolve(res.response);
                return;
              }
              results.push(res);
              if (results.length === l.chains.length) {
                done = true;
                resolve(results);
              }
            });
          });
        });
        if (!Array.isArray(result)) return result;
        for (const res of result) if (!res.ok) reasons.push(`attempt ${attempt}: ${res.reason}`);
        const permanent = result.find((res): res is Extract<ChainResult, { ok: false }> => !res.ok && res.permanent !== undefined);
        if (permanent && result.every((res) => !res.ok && res.permanent !== undefined)) {
          throw new CbftError(CLIENT_REFUSED, `the firewall refused the request (${permanent.permanent}): ${reasons.join('; ')}`);
        }
        if (attempt < attempts) await new Promise((resolve) => setTimeout(resolve, backoffMs * 2 ** (attempt - 1)));
      }
      throw new CbftError(CLIENT_ERROR, `no verified reply after ${attempts} attempt(s): ${reasons.join('; ')}`);
    },
    async close() {
      closed = true;
      if (!loaded) return;
      const l = await loaded.catch(() => undefined);
      if (l) await Promise.all(l.chains.map((c) => c.pool.close().catch(() => undefined)));
    },
  };
}
