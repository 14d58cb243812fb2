/**
 * The secret scanner: finds confidential data of other accounts in the bytes a client received
 * (status line, headers and body, exactly as they came off the socket), in every encoding the
 * leaky replica uses: plain text (UTF-8 and latin1), hex, base64, base64url and percent-encoding.
 *
 * Secrets are owner names (full names and surnames) and balances (decimal). A balance is only
 * searched when it has at least MIN_DIGITS digits and is matched only between non-alphanumeric
 * characters, because the cbft headers carry random hex and base64 in which short digit strings
 * occur by chance; the report says how many secret values were too short to search.
 */

export const MIN_DIGITS = 5;
const MIN_RUN = 8;

export interface SecretSet {
  /** Byte patterns searched verbatim (names in UTF-8 and latin1). */
  patterns: Buffer[];
  /** Decimal strings matched between non-alphanumeric boundaries. */
  numbers: string[];
  /** How many secret numbers were too short to search. */
  unsearchable: number;
}

export interface SecretInput {
  /** Owner names of the accounts the viewer must not learn. */
  names: string[];
  /** Every balance those accounts had (cents). */
  balances: Iterable<number>;
  /** Values the viewer is entitled to see (its own balances, amounts of its transfers): never secret. */
  entitled?: Iterable<number>;
}

export function secretSet(input: SecretInput): SecretSet {
  const entitled = new Set([...(input.entitled ?? [])].map(String));
  const patterns = new Map<string, Buffer>();
  for (const name of input.names) {
    const parts = [name, ...name.split(/\s+/).filter((p) => p.length >= 5)];
    for (const p of parts) {
      for (const enc of ['utf8', 'latin1'] as const) {
        const b = Buffer.from(p, enc);
        patterns.set(b.toString('hex'), b);
      }
    }
  }
  const numbers = new Set<string>();
  let unsearchable = 0;
  for (const v of input.balances) {
    const s = String(v);
    if (entitled.has(s)) continue;
    if (s.length < MIN_DIGITS) {
      unsearchable++;
      continue;
    }
    numbers.add(s);
  }
  return { patterns: [...patterns.values()], numbers: [...numbers], unsearchable };
}

export interface ScanHit {
  /** How the secret was encoded where it was found. */
  encoding: 'plain' | 'hex' | 'base64' | 'percent';
  secret: string;
  bytes: number;
}

export interface ScanResult {
  /** Bytes of secret found (the length of each distinct match, summed over all views). */
  bytes: number;
  hits: ScanHit[];
}

const HEX_RUN = /[0-9a-fA-F]{8,}/g;
const B64_RUN = /[A-Za-z0-9+/_-]{8,}={0,2}/g;
const PCT_RUN = /(?:[^%\s]*%[0-9a-fA-F]{2})+[^%\s]*/g;

function decodedViews(text: string): Array<{ encoding: ScanHit['encoding']; bytes: Buffer }> {
  const views: Array<{ encoding: ScanHit['encoding']; bytes: Buffer }> = [];
  for (const m of text.matchAll(HEX_RUN)) {
    const run = m[0];
    for (const off of [0, 1]) {
      const even = run.slice(off, off + ((run.length - off) & ~1));
      if (even.length >= MIN_RUN) views.push({ encoding: 'hex', bytes: Buffer.from(even, 'hex') });
    }
  }
  for (const m of text.matchAll(B64_RUN)) {
    const run = m[0].replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
    for (let off = 0; off < 4; off++) {
      const part = run.slice(off);
      if (part.length >= MIN_RUN) views.push({ encoding: 'base64', bytes: Buffer.from(part.slice(0, part.length - (part.length % 4 === 1 ? 1 : 0)), 'base64') });
    }
  }
  for (const m of text.matchAll(PCT_RUN)) {
    try {
      views.push({ encoding: 'percent', bytes: Buffer.from(decodeURIComponent(m[0]), 'utf8') });
    } catch {
      views.push({ encoding: 'percent', bytes: Buffer.from(m[0].replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1') });
    }
  }
  return views;
}

function scanView(bytes: Buffer, encoding: ScanHit['encoding'], set: SecretSet, numberRe: RegExp | undefined, hits: ScanHit[]): number {
  // Matched byte ranges of this view, merged so overlapping matches (a surname inside a full
  // name, UTF-8 and latin1 forms of the same ASCII name) count once.
  const ranges: Array<[number, number, string]> = [];
  for (const p of set.patterns) {
    let at = bytes.indexOf(p);
    while (at !== -1) {
      ranges.push([at, at + p.length, p.toString('utf8')]);
      at = bytes.indexOf(p, at + 1);
    }
  }
  if (numberRe) {
    const text = bytes.toString('latin1');
    numberRe.lastIndex = 0;
    for (const m of text.matchAll(numberRe)) {
      const at = m.index ?? 0;
      const start = at + (m[1]?.length ?? 0);
      ranges.push([start, start + m[2]!.length, m[2]!]);
    }
  }
  if (ranges.length === 0) return 0;
  ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let total = 0;
  let end = -1;
  for (const [s, e, secret] of ranges) {
    if (s >= end) {
      total += e - s;
      hits.push({ encoding, secret, bytes: e - s });
      end = e;
    } else if (e > end) {
      total += e - end;
      end = e;
    }
  }
  return total;
}

export class Scanner {
  private readonly numberRe: RegExp | undefined;
  constructor(readonly set: SecretSet) {
    const nums = [...set.numbers].sort((a, b) => b.length - a.length);
    this.numberRe = nums.length > 0 ? new RegExp(`(^|[^0-9A-Za-z])(${nums.join('|')})(?![0-9A-Za-z])`, 'g') : undefined;
  }

  scan(raw: Uint8Array): ScanResult {
    const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const hits: ScanHit[] = [];
    let total = scanView(bytes, 'plain', this.set, this.numberRe, hits);
    for (const view of decodedViews(bytes.toString('latin1'))) total += scanView(view.bytes, view.encoding, this.set, this.numberRe, hits);
    return { bytes: total, hits };
  }
}
