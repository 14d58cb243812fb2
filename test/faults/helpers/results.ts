// The results table of the fault suite: one row per fault or bad input, printed at the end of
// each test file and kept in test/faults/RESULTS.md (with the date) by `npm run test:faults`.
// Each file merges its own rows into the table (rows are keyed by name; the machine-readable copy
// lives in a comment at the end of RESULTS.md), and records its wall time (keyed by file name) so
// the table shows how long the suite takes.

import { existsSync, readFileSync, readdirSync, writeFileSync, renameSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, dirname, join } from 'node:path';
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

/** Wall time of one test file of the suite, from loading it to its last afterAll. */
export interface FileTiming {
  file: string;
  wallMs: number;
  date: string;
}

/** Started when a test file is loaded (call at its top level); handed to publishRows at the end. */
export interface FileClock {
  file: string;
  startedAt: number;
}

export function fileClock(moduleUrl: string): FileClock {
  return { file: basename(fileURLToPath(moduleUrl)), startedAt: Date.now() };
}

const BEGIN = '<!-- results-json';
const END = 'results-json -->';
const TIMINGS_BEGIN = '<!-- timings-json';
const TIMINGS_END = 'timings-json -->';

function readJson<T>(begin: string, end: string): T[] {
  if (!existsSync(RESULTS_FILE)) return [];
  const text = readFileSync(RESULTS_FILE, 'utf8');
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) return [];
  try {
    return JSON.parse(text.slice(a + begin.length, b)) as T[];
  } catch {
    return [];
  }
}

const readRows = () => readJson<Row>(BEGIN, END);
/** Timings kept from earlier runs, of files that still exist. */
const readTimings = () => readJson<FileTiming>(TIMINGS_BEGIN, TIMINGS_END).filter((t) => existsSync(join(dirname(RESULTS_FILE), t.file)));

export function minutes(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

export function formatTimings(timings: readonly FileTiming[]): string {
  const lines = ['| Test file | Wall time | Date |', '|---|---:|---|'];
  for (const t of timings) lines.push(`| \`test/faults/${t.file}\` | ${minutes(t.wallMs)} | ${t.date} |`);
  const dir = dirname(RESULTS_FILE);
  const missing = readdirSync(dir).filter((f) => f.endsWith('.test.ts') && !timings.some((t) => t.file === f));
  for (const f of missing) lines.push(`| \`test/faults/${f}\` | not timed yet | |`);
  const total = timings.reduce((a, t) => a + t.wallMs, 0);
  const dates = new Set(timings.map((t) => t.date));
  const partial = missing.length > 0 ? ', without the files not timed yet' : dates.size > 1 ? ', from runs on different days' : '';
  lines.push(`| **total** (files run one after another${partial}) | **${minutes(total)}** | |`);
  return lines.join('\n');
}

export function formatTable(rows: readonly Row[]): string {
  const head = ['Fault or bad input', 'Load held (req/s)', 'Time to recover', 'Longest gap', 'Lost', 'Wrong', 'Notes'];
  const esc = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i >= 4 && i <= 5 ? '---:' : '---')).join('|')}|`];
  for (const r of rows) lines.push(`| ${[r.name, r.load, r.recover, r.gap, String(r.lost), String(r.wrong), r.notes].map(esc).join(' | ')} |`);
  return lines.join('\n');
}

function render(rows: Row[], timings: FileTiming[]): string {
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

The tests assert lost = 0, wrong = 0 and recovery within a generous bound (and, where the rest
of the cluster must carry on through a fault, e.g. the other chain while a whole chain is down,
that it kept answering within generous bounds: see the notes); they do not otherwise assert
speed. The figures depend on the machine and on what else runs on it.

${formatTable(rows)}

## How long it takes

Wall time of each test file in its latest run, from loading the file to the end of its last
cleanup (clusters started and stopped included; the files run one after another,
vitest.heavy.config.ts). \`npm run test:faults\` also builds first and then runs the decoder
fuzzing (test/fuzz), bounded by CBFT_FUZZ_MS (12 s by default).

${formatTimings(timings)}

${BEGIN}
${JSON.stringify(rows, null, 1)}
${END}

${TIMINGS_BEGIN}
${JSON.stringify(timings, null, 1)}
${TIMINGS_END}
`;
}

/**
 * Merges these rows into the table (replacing rows of the same name) and, given the file's clock,
 * its wall time into the timings (replacing the same file's), and returns all rows. The file is
 * rewritten only by `npm run test:faults` (CBFT_FAULTS_RESULTS=1), so `npm test` leaves the tree
 * clean; the files run one after another (vitest.heavy.config.ts), so no lock is needed.
 */
export function publishRows(rows: readonly Row[], clock?: FileClock): Row[] {
  const names = new Set(rows.map((r) => r.name));
  const all = [...readRows().filter((r) => !names.has(r.name)), ...rows].sort((a, b) => a.group - b.group || a.order - b.order);
  let timings = readTimings();
  if (clock) {
    const mine: FileTiming = { file: clock.file, wallMs: Date.now() - clock.startedAt, date: today() };
    timings = [...timings.filter((t) => t.file !== clock.file), mine].sort((a, b) => a.file.localeCompare(b.file));
    console.log(`[faults] ${clock.file}: wall time ${minutes(mine.wallMs)}`);
  }
  if ((rows.length > 0 || clock) && process.env.CBFT_FAULTS_RESULTS === '1') {
    const tmp = `${RESULTS_FILE}.${process.pid}.tmp`;
    writeFileSync(tmp, render(all, timings));
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
