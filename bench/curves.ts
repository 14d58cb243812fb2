import { connectionsOption, listOption, loadAverage, machineDescription, MATRIX_OPTIONS, parseOptions, runOptions } from './lib/timing.js';
import { startCbftTarget } from './harness/cbft.js';
import { runMatrix } from './harness/matrix.js';
import { startReferences } from './harness/reference.js';
import { rssTable, summarize, writeResults, type RunRecord, type SummaryRow } from './harness/results.js';
import { sizedWorkload, WORKLOADS, type Workload } from './harness/workloads.js';

/**
 * `npm run bench -- curves [--duration 3] [--warmup 1] [--repeat 1] [--connections 1,32]
 *   [--sizes 1k,4k,16k,64k,256k,1m] [--s 1,2] [--chain-lengths 2,3,4] [--only size,s,chain]`
 *
 * The cost curves of issue 8 item 2, one factor at a time around the base configuration
 * (s = 1, one chain of 2, GET 1 KiB):
 *   s             1, 2 (4 and 7 replicas), GET 1 KiB
 *   chain length  2, 3, 4 (s = 1), GET 1 KiB
 *   reply size    1 KiB … 1 MiB (s = 1, chain of 2), GET /bytes/N, with the proxy beside it
 * One cluster runs at a time; each is measured back to back with the proxy, and every line is a
 * line of the same table as `npm run bench`. Writes bench/results/curves.{json,md}.
 */

function parseSize(s: string): number {
  const m = /^(\d+)([kKmM]?)$/.exec(s);
  if (!m) throw new Error(`bad size ${s} (use e.g. 512, 4k, 1m)`);
  return Number(m[1]) * (m[2]?.toLowerCase() === 'k' ? 1024 : m[2]?.toLowerCase() === 'm' ? 1024 * 1024 : 1);
}

interface Config {
  name: string;
  s: number;
  chainLength: number;
  workloads: Workload[];
  keepProxyRows: boolean;
}


/** Replies of this size and more are measured for at least these durations (seconds). */
const BIG_REPLY_BYTES = 256 * 1024;
const BIG_REPLY_MIN_DURATION_SEC = 10;
const BIG_REPLY_MIN_WARMUP_SEC = 2;

export async function main(args: string[]): Promise<void> {
  const opts = parseOptions(args, { ...MATRIX_OPTIONS, sizes: 'string', s: 'string', 'chain-lengths': 'string', only: 'string' });
  const { durationSec, warmupSec, repeat } = runOptions(opts, { duration: 3, repeat: 1 });
  const connections = connectionsOption(opts, ['1', '32']);
  const sizes = listOption(opts, 'sizes', ['1k', '4k', '16k', '64k', '256k', '1m']).map(parseSize);
  const ss = listOption(opts, 's', ['1', '2']).map(Number);
  const lengths = listOption(opts, 'chain-lengths', ['2', '3', '4']).map(Number);
  const only = new Set(listOption(opts, 'only', ['size', 's', 'chain']));
  const get1k = WORKLOADS['get-1k']!;

  const configs: Config[] = [];
  // The base configuration carries the reply-size curve and is the first point of the others.
  configs.push({ name: 'cbft s=1 L=2', s: 1, chainLength: 2, workloads: [get1k, ...(only.has('size') ? sizes.map(sizedWorkload) : [])], keepProxyRows: true });
  if (only.has('s')) for (const s of ss) if (s !== 1) configs.push({ name: `cbft s=${s} L=2`, s, chainLength: 2, workloads: [get1k], keepProxyRows: false });
  if (only.has('chain')) for (const l of lengths) if (l !== 2) configs.push({ name: `cbft s=1 L=${l}`, s: 1, chainLength: l, workloads: [get1k], keepProxyRows: false });

  const cells = configs.reduce((n, c) => n + c.workloads.length * connections.length * 2 * repeat, 0);
  process.stderr.write(`curves: ${configs.length} clusters, ${cells} runs of ${durationSec} s (+${warmupSec} s) ≈ ${Math.ceil((cells * (durationSec + warmupSec)) / 60) + configs.length} min\n`);
  const machine = machineDescription();
  const loadBefore = loadAverage();
  const refs = await startReferences();
  const rows: SummaryRow[] = [];
  const runs: RunRecord[] = [];
  try {
    for (const cfg of configs) {
      const c = await startCbftTarget({ name: cfg.name, replicas: 3 * cfg.s + 1, chains: 1, chainLength: cfg.chainLength });
      try {
        process.stderr.write(`${cfg.name}: ${3 * cfg.s + 1} replicas, one chain of ${cfg.chainLength}\n`);
        // Big replies take seconds per request at 32 connections: their cells run longer, or a
        // short cell would end before a single reply came back.
        const small = cfg.workloads.filter((w) => w.replyBytes < BIG_REPLY_BYTES);
        const big = cfg.workloads.filter((w) => w.replyBytes >= BIG_REPLY_BYTES);
        for (const [workloads, d, w] of [
          [small, durationSec, warmupSec],
          [big, Math.max(durationSec, BIG_REPLY_MIN_DURATION_SEC), Math.max(warmupSec, BIG_REPLY_MIN_WARMUP_SEC)],
        ] as const) {
          if (workloads.length === 0) continue;
          const r = await runMatrix({ targets: [refs.proxy, c.target], workloads: [...workloads], connections, durationSec: d, warmupSec: w, repeat });
          runs.push(...r);
          for (const row of summarize(r, 'proxy')) if (row.target !== 'proxy' || cfg.keepProxyRows) rows.push(row);
        }
      } finally {
        await c.stop();
      }
    }
  } finally {
    await refs.stop();
  }
  const { markdown } = await writeResults(
    {
      suite: 'curves',
      date: new Date().toISOString(),
      machine,
      loadAverage: { before: loadBefore, after: loadAverage() },
      config: { 'duration s': durationSec, 'warm-up s': warmupSec, repeats: repeat, connections, sizes, s: ss, 'chain lengths': lengths },
      notes: [
        'One factor at a time around s = 1, one chain of 2, GET 1 KiB. get-1k = 1 KiB JSON (/json); get-<size> = /bytes/<size>.',
        'Each cluster is measured back to back with the proxy; ratios use the proxy run of the same cell. One cluster runs at a time.',
        'front CPU = all cbft processes together ÷ requests; service CPU = the upstream copies (3s+1 of them) together.',
      ],
      summary: rows,
      runs,
      extraMarkdown: rssTable(rows),
    },
    { name: 'curves' },
  );
  process.stdout.write(`\n${markdown}\nwrote bench/results/curves.{json,md}\n`);
}
