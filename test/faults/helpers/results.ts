// The results table of the fault suite: one row per fault or bad input, printed at the end of
// each test file and kept in test/faults/RESULTS.md (with the date) by `npm run test:faults`.
// Each file merges its own rows into the table (rows are keyed by name; the machine-readable copy
// lives in a comment at the end of RESULTS.md).

import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', 'RESULTS.md');

export interface Row {
  /** Sort key: group, then order within the group. */
  group: number;
  order: number;
  name: string;
  /** Load held during the fault: acknowledged requests per second (bad input: what was thrown). */
  load: string;
  /** Time to recover after the fault was healed (or "no outage"). */
  recover: string;
  /** Longest stretch without any acknowledged request while the fault lasted. */
  gap: string;
  lost: number;
  wrong: number;
  notes: string;
  date: string;
}

const BEGIN = '<!-- results-json';
const END = 'results-json -->';

function readRows(): Row[] {
  if (!existsSync(RESULTS_FILE)) return [];
  const text = readFileSync(RESULTS_FILE, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) return [];
  try {
    return JSON.parse(text.slice(a + BEGIN.length, b)) as Row[];
  } catch {
    return [];
  }
}

export function formatTable(rows: readonly Row[]): string {
  const head = ['Fault or bad input', 'Load held (req/s)', 'Time to recover', 'Longest gap', 'Lost', 'Wrong', 'Notes'];
  const esc = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i >= 4 && i <= 5 ? '---:' : '---')).join('|')}|`];
  for (const r of rows) lines.push(`| ${[r.name, r.load, r.recover, r.gap, String(r.lost), String(r.wrong), r.notes].map(esc).join(' | ')} |`);
  return lines.join('\n');
}

function render(rows: Row[]): string {
  const dates = [...new Set(rows.map((r) => r.date))].sort();
  const when = dates.length === 1 ? dates[0] : `${dates[0]} … ${dates[dates.length - 1]}`;
  return `# Faults, attacks and bad input: results

Produced by \`npm run test:faults\` (also part of \`npm test\`): real cbft processes on 127.0.0.1
(4 sidecars, s = 1, in front of 4 copies of the example bank, or of the counting service for the
legacy-service fault; 2 chains of 2 firewall nodes, of 3 for the firewall faults), a steady
bounded load from clients that send every request to every chain and retry with the same nonce,
and the faults below injected with real signals (SIGKILL, SIGSTOP/SIGCONT), damaged log files,
a shifted clock (a preload that moves Date.now() of one sidecar) and hostile bytes on the
client and peer ports. Decoder fuzzing (test/fuzz) runs in the same suite. Last run: ${when}
on a ${cpus().length}-core machine (load average ${loadavg()[0]!.toFixed(1)} when written; other jobs ran meanwhile).

- **Load held**: requests acknowledged (verified reply) per second while the fault lasted.
- **Time to recover**: from healing the fault (restart, SIGCONT, clock fixed) until the cluster
  served again *and* the healed node was back in step (same executed sequence number, or its
  chain answering); for bad input, how long the offending connections lived.
- **Longest gap**: the longest stretch without any acknowledged request while the fault lasted.
- **Lost**: acknowledged requests missing on a correct replica, plus requests never acknowledged
  although retried with the same nonce until the deadline. Must be 0.
- **Wrong**: replies that did not verify, verified replies with the wrong content, unsigned
  replies other than the firewall's documented errors, requests applied twice, diverging
  ledgers. Must be 0.

The tests assert lost = 0, wrong = 0 and recovery within a generous bound; they do not assert
speed. The figures depend on the machine and on what else runs on it.

${formatTable(rows)}

${BEGIN}
${JSON.stringify(rows, null, 1)}
${END}
`;
}

/**
 * Merges these rows into the table (replacing rows of the same name) and returns all rows. The
 * file is rewritten only by `npm run test:faults` (CBFT_FAULTS_RESULTS=1), so `npm test` leaves
 * the tree clean; the files run one after another (vitest.heavy.config.ts), so no lock is needed.
 */
export function publishRows(rows: readonly Row[]): Row[] {
  const names = new Set(rows.map((r) => r.name));
  const all = [...readRows().filter((r) => !names.has(r.name)), ...rows].sort((a, b) => a.group - b.group || a.order - b.order);
  if (rows.length > 0 && process.env.CBFT_FAULTS_RESULTS === '1') {
    const tmp = `${RESULTS_FILE}.${process.pid}.tmp`;
    writeFileSync(tmp, render(all));
    renameSync(tmp, RESULTS_FILE);
  }
  return all;
}

export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

export function secs(ms: number | undefined): string {
  return ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(1)} s`;
}
