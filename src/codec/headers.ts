import { CbftError, ErrorCodes } from '../errors.js';

/** A header as it travels in canonical structures: lower-case name, value as received. */
export type HeaderField = readonly [name: string, value: string];

/** RFC 9110 §7.6.1 connection-specific fields, plus the de-facto ones proxies also drop. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export const DEFAULT_FORWARD_HEADERS = ['accept', 'authorization', 'content-type'] as const;
export const DEFAULT_REPLY_HEADERS = ['cache-control', 'content-type', 'location'] as const;

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
// Field values: visible ASCII, space, tab and obs-text; no CR/LF/NUL (no header injection).
const VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function isHeaderName(name: string): boolean {
  return TOKEN_RE.test(name);
}

export function isHeaderValue(value: string): boolean {
  return VALUE_RE.test(value);
}

/**
 * Builds the canonical header list: keeps only allowlisted, non-hop-by-hop names, lower-cases
 * them and sorts by name; values of one name keep their received order (their order is
 * meaningful). Also drops any field named by the `connection` header, as RFC 9110 requires.
 */
export function canonicalHeaders(raw: Iterable<readonly [string, string]>, allow: ReadonlySet<string>): HeaderField[] {
  const fields: HeaderField[] = [];
  const connectionNamed = new Set<string>();
  const all = [...raw];
  for (const [name, value] of all) {
    if (name.toLowerCase() === 'connection') {
      for (const token of value.split(',')) connectionNamed.add(token.trim().toLowerCase());
    }
  }
  for (const [name, value] of all) {
    const lower = name.toLowerCase();
    if (!allow.has(lower) || HOP_BY_HOP.has(lower) || connectionNamed.has(lower)) continue;
    fields.push([lower, value]);
  }
  return sortHeaders(fields);
}

/** Stable sort by name (code-unit order equals byte order for the ASCII token alphabet). */
export function sortHeaders(fields: HeaderField[]): HeaderField[] {
  return fields
    .map((f, i) => [f, i] as const)
    .sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1]))
    .map(([f]) => f);
}

/** Node's rawHeaders is a flat [name, value, name, value, …] list; pair it up. */
export function pairRawHeaders(rawHeaders: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) out.push([rawHeaders[i]!, rawHeaders[i + 1]!]);
  return out;
}

/** Validates a configured allowlist and returns it as a lower-case set. */
export function allowlist(defaults: readonly string[], extra: readonly string[] = []): Set<string> {
  const out = new Set<string>();
  for (const name of [...defaults, ...extra]) {
    const lower = name.toLowerCase();
    if (!isHeaderName(lower)) throw new CbftError(ErrorCodes.CLUSTER, `not a valid header name: ${JSON.stringify(name)}`);
    if (HOP_BY_HOP.has(lower)) throw new CbftError(ErrorCodes.CLUSTER, `hop-by-hop header cannot be allowlisted: ${lower}`);
    // host names the bottom node a client used, so the same request through two chains would
    // hash differently and execute twice; cbft-* headers are cbft's own.
    if (lower === 'host') throw new CbftError(ErrorCodes.CLUSTER, 'host cannot be allowlisted: it differs per chain, so retries through another chain would execute again');
    if (lower.startsWith('cbft-')) throw new CbftError(ErrorCodes.CLUSTER, `cbft-* headers are cbft's own and cannot be allowlisted: ${lower}`);
    out.add(lower);
  }
  return out;
}
