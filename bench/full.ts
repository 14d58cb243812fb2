import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { replaceReadmeSection } from './lib/readme.js';
import { connectionsOption, listOption, loadAverage, machineDescription, MATRIX_OPTIONS, parseOptions, runOptions } from './lib/timing.js';
import { startCbftTarget, type CbftTarget } from './harness/cbft.js';
import { runMatrix, type Target } from './harness/matrix.js';
import { startReferences, type References } from './harness/reference.js';
import { median, resultsDir, rssTable, summarize, writeResults, type RunRecord, type SummaryRow } from './harness/results.js';
import { pickWorkloads, WORKLOADS } from './harness/workloads.js';

/**
 * `npm run bench` (the default suite, `full`): in ONE run, the same workloads against
 *   direct        the bench upstream on its own
 *   proxy         one plain @fastify/http-proxy in front of one copy
 *   cbft          4 replicas (s = 1): 4 upstream copies, 4 `cbft sidecar`, one chain of 2 firewall nodes
 *   cbft-2chains  the same with 2 chains, the load spread over both bottom nodes
 * Workloads GET 1 KiB JSON, POST 1 KiB, GET 64 KiB at concurrency 1 and 32. Prints and writes
 * bench/results/latest.{json,md}: req/s, p50/p90/p99, CPU per request of all cbft processes
 * together (`front`) and of the upstream copies (`service`), peak RSS per process, ratios to the
 * proxy, and the issue-8 targets. Bounded: ≈ 24 cells × repeats × (duration + warm-up).
 *
 * Options: --duration 4 --warmup 1 --repeat 2 --connections 1,32 --workloads get-1k,post-1k,get-64k
 *   --targets direct,proxy,cbft,cbft-2chains --profile DIR (V8 CPU profiles of every cbft process)
 *   --name latest (results file name) --readme (write the table into README.md's Performance section)
 */

export const CBFT_TARGETS: Record<string, { replicas: number; chains: number; chainLength: number; spread: boolean; description: string }> = {
  cbft: { replicas: 4, chains: 1, chainLength: 2, spread: false, description: '4 replicas (s = 1), one chain of 2 firewall nodes' },
  'cbft-2chains': { replicas: 4, chains: 2, chainLength: 2, spread: true, description: '4 replicas (s = 1), two chains of 2, load spread over both bottoms' },
};

export interface TargetVerdict {
  name: string;
  goal: string;
  value: number;
  met: boolean;
  detail: string;
}

/** The targets of issue 8 item 4 (GET 1 KiB, 4 replicas, one chain of 2), from a summary. */
export function verdicts(rows: SummaryRow[], target = 'cbft'): TargetVerdict[] {
  const out: TargetVerdict[] = [];
  const row = (c: number) => rows.find((r) => r.target === target && r.workload === 'get-1k' && r.connections === c);
  const r32 = row(32);
  if (r32?.vsReference) {
    const v = r32.vsReference.reqPerSec;
    out.push({ name: 'throughput c=32', goal: '≥ 0.25 × proxy', value: v, met: v >= 0.25, detail: `${r32.reqPerSec.toFixed(0)} req/s, ${v.toFixed(3)} × proxy` });
  }
  const r1 = row(1);
  if (r1?.vsReference) {
    const v = r1.vsReference.p50;
    out.push({ name: 'p50 latency c=1', goal: '≤ 20 × proxy', value: v, met: v <= 20, detail: `${r1.p50Ms.toFixed(2)} ms, ${v.toFixed(1)} × proxy` });
  }
  const mine = rows.filter((r) => r.target === target);
  if (mine.length) {
    const roles: Record<string, number> = {};
    for (const r of mine) for (const [role, mib] of Object.entries(r.peakRssByRoleMiB)) if (!role.startsWith('upstream')) roles[role] = Math.max(roles[role] ?? 0, mib);
    const [worst, mib] = Object.entries(roles).sort((a, b) => b[1] - a[1])[0] ?? ['–', NaN];
    out.push({ name: 'peak RSS per cbft process', goal: '≤ 150 MiB', value: mib, met: mib <= 150, detail: `largest ${worst} ${mib.toFixed(0)} MiB (soak: \`npm run bench -- soak\`)` });
  }
  return out;
}

export function verdictTable(vs: TargetVerdict[]): string {
  return ['| target (GET 1 KiB, 4 replicas, one chain of 2) | goal | measured | met |', '| --- | --- | --- | --- |', ...vs.map((v) => `| ${v.name} | ${v.goal} | ${v.detail} | ${v.met ? 'yes' : '**no**'} |`)].join('\n');
}

/** CPU ms per request of each process of the cbft targets, at the highest concurrency. */
export function cpuByRoleTable(runs: RunRecord[]): string {
  const cbft = runs.filter((r) => r.target.startsWith('cbft'));
  if (cbft.length === 0) return '';
  const top = Math.max(...cbft.map((r) => r.connections));
  const cells = new Map<string, RunRecord[]>();
  for (const r of cbft.filter((x) => x.connections === top)) {
    const k = `${r.target}\u0000${r.workload}`;
    cells.set(k, [...(cells.get(k) ?? []), r]);
  }
  const lines = [`| target | workload | requests per batch | CPU ms/request by process at c=${top} (median over repeats) |`, '| --- | --- | ---: | --- |'];
  for (const [k, rs] of cells) {
    const [target, workload] = k.split('\u0000') as [string, string];
    const roles = new Map<string, number[]>();
    for (const r of rs) for (const p of r.usage.processes) if (p.measured && r.load.requests > 0) roles.set(p.role, [...(roles.get(p.role) ?? []), (p.cpuSeconds * 1000) / r.load.requests]);
    const parts = [...roles.entries()].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })).map(([role, xs]) => `${role} ${median(xs).toFixed(2)}`);
    const perBatch = median(rs.map((r) => (r.counters?.['batches'] ? (r.counters['executions'] ?? 0) / r.counters['batches'] : NaN)));
    lines.push(`| ${target} | ${workload} | ${Number.isFinite(perBatch) ? perBatch.toFixed(1) : '–'} | ${parts.join(', ')} |`);
  }
  return lines.join('\n');
}


export async function main(args: string[]): Promise<void> {
  const opts = parseOptions(args, {
    ...MATRIX_OPTIONS,
    targets: 'string',
    profile: 'string',
    name: 'string',
    readme: 'boolean',
  });
  const { durationSec, warmupSec, repeat } = runOptions(opts, { duration: 4, repeat: 2 });
  const connections = connectionsOption(opts, ['1', '32']);
  const workloads = pickWorkloads(listOption(opts, 'workloads', Object.keys(WORKLOADS)));
  const targetNames = listOption(opts, 'targets', ['direct', 'proxy', ...Object.keys(CBFT_TARGETS)]);
  for (const t of targetNames) if (t !== 'direct' && t !== 'proxy' && !CBFT_TARGETS[t]) throw new Error(`unknown target ${t}; known: direct, proxy, ${Object.keys(CBFT_TARGETS).join(', ')}`);
  const profileDir = typeof opts.profile === 'string' ? opts.profile : undefined;

  const machine = machineDescription();
  const loadBefore = loadAverage();
  let refs: References | undefined;
  const clusters: CbftTarget[] = [];
  try {
    refs = await startReferences();
    const all: Record<string, Target> = { direct: refs.direct, proxy: refs.proxy };
    for (const name of targetNames) {
      const spec = CBFT_TARGETS[name];
      if (!spec) continue;
      const t0 = performance.now();
      const c = await startCbftTarget({ name, ...spec, ...(profileDir ? { cpuProfDir: join(profileDir, name) } : {}) });
      clusters.push(c);
      all[name] = c.target;
      process.stderr.write(`${name}: ${spec.description}; ${c.processes.length} processes ready in ${((performance.now() - t0) / 1000).toFixed(1)} s; bottom ${c.target.url}${c.target.moreUrls ? ' + ' + c.target.moreUrls.join(' + ') : ''}\n`);
    }
    const targets = targetNames.map((n) => all[n]!);
    const cells = workloads.length * connections.length * targets.length * repeat;
    process.stderr.write(`full: ${cells} runs of ${durationSec} s (+${warmupSec} s warm-up) ≈ ${Math.ceil((cells * (durationSec + warmupSec)) / 60)} min\n`);
    const runs = await runMatrix({ targets, workloads, connections, durationSec, warmupSec, repeat });
    const summary = summarize(runs, 'proxy');
    const vs = verdicts(summary);
    const extra = [vs.length ? verdictTable(vs) : '', rssTable(summary), cpuByRoleTable(runs)].filter(Boolean).join('\n\n');
    const { markdown, paths } = await writeResults(
      {
        suite: 'full',
        date: new Date().toISOString(),
        machine,
        loadAverage: { before: loadBefore, after: loadAverage() },
        config: { 'duration s': durationSec, 'warm-up s': warmupSec, repeats: repeat, connections, workloads: workloads.map((w) => w.name), targets: targetNames },
        notes: [
          'autocannon (in the bench process, sharing the 2 cores) → target. direct = the bench upstream (fastify); proxy = @fastify/http-proxy in front of one copy; ' +
            Object.entries(CBFT_TARGETS)
              .filter(([n]) => targetNames.includes(n))
              .map(([n, s]) => `${n} = ${s.description}`)
              .join('; ') +
            '. Each cbft replica has its own upstream copy; cbft settings are the defaults of `cbft keygen`; write-ahead logs on the local disk (ext4).',
          'front CPU = utime+stime from /proc of all cbft processes together (or the proxy) ÷ requests; service CPU = the upstream copies together. Peak RSS = the largest single front process.',
          'Ratios are computed per repeat (targets measured back to back, order alternating) and summarised by the median.',
        ],
        summary,
        runs,
        extraMarkdown: extra,
      },
      typeof opts.name === 'string' ? { name: opts.name } : {},
    );
    process.stdout.write(`\n${markdown}\nwrote ${paths.map((p) => p.slice(p.indexOf('bench/results'))).join(' and ')}\n`);
    if (opts.readme) {
      const date = new Date().toISOString().slice(0, 10);
      // The main table and the targets; the per-process tables stay in latest.md.
      const rest = markdown.slice(markdown.indexOf('| workload'));
      const cut = rest.indexOf('| target | peak RSS');
      const table = (cut > 0 ? rest.slice(0, cut) : rest).trim();
      let soak = '';
      try {
        const j = JSON.parse(await readFile(join(resultsDir(), 'soak.json'), 'utf8')) as { date: string; verdict: string; durationSec: number; requests: number; connections: number; workload: string };
        soak = `\n\nSoak (\`npm run bench -- soak\`, ${j.date.slice(0, 10)}): ${Math.round(j.durationSec)} s of ${j.workload} at ${j.connections} connections, ${j.requests} requests: **${j.verdict}**. Details: \`bench/results/soak.md\`.`;
      } catch {
        // no soak run yet
      }
      const section =
        `\`npm run bench\` on ${date}, ${machine}, shared with other work (load average ${loadBefore} → ${loadAverage()}): ` +
        `${durationSec} s per run after ${warmupSec} s warm-up, ${repeat} repeats, medians; ratios per repeat, targets measured back to back. ` +
        `front CPU = all cbft processes together (or the proxy), service CPU = the upstream copies. Full results: \`bench/results/latest.md\`; ` +
        `cost curves: \`npm run bench -- curves\` (\`bench/results/curves.md\`); where the time goes: [\`bench/PROFILE.md\`](bench/PROFILE.md).\n\n` +
        table +
        soak;
      process.stdout.write(`updated ${await replaceReadmeSection('bench', section)}\n`);
    }
    if (profileDir) process.stdout.write(`CPU profiles are written to ${profileDir}/<target>/ as the cbft processes exit\n`);
  } finally {
    await Promise.all(clusters.map((c) => c.stop()));
    await refs?.stop();
  }
}
