import { connectionsOption, listOption, loadAverage, machineDescription, MATRIX_OPTIONS, parseOptions, runOptions } from './lib/timing.js';
import { runMatrix, type Target } from './harness/matrix.js';
import { summarize, writeResults } from './harness/results.js';
import { startService, type RunningService } from './harness/service.js';
import { pickWorkloads, WORKLOADS } from './harness/workloads.js';

/**
 * `npm run bench -- baseline [--duration S] [--warmup S] [--repeat N] [--connections 1,32]
 *   [--workloads get-1k,post-1k,get-64k] [--targets direct,proxy]`
 *
 * The bench upstream measured directly and through one plain @fastify/http-proxy, for each
 * workload and concurrency: the reference the cbft configurations will be compared with. Each
 * service is its own process; CPU and peak RSS are read from /proc per process. Writes
 * bench/results/latest.json and latest.md, and prints the table.
 */

export async function main(args: string[]): Promise<void> {
  const opts = parseOptions(args, {
    ...MATRIX_OPTIONS,
    targets: 'string',
  });
  const { durationSec, warmupSec, repeat } = runOptions(opts, { duration: 5, repeat: 2 });
  const connections = connectionsOption(opts, ['1', '32']);
  const workloads = pickWorkloads(listOption(opts, 'workloads', Object.keys(WORKLOADS)));
  const targetNames = listOption(opts, 'targets', ['direct', 'proxy']);
  for (const t of targetNames) if (t !== 'direct' && t !== 'proxy') throw new Error(`unknown target ${t}; baseline knows direct, proxy`);

  const machine = machineDescription();
  const loadBefore = loadAverage();
  const services: RunningService[] = [];
  try {
    const upstream = await startService('upstream', new URL('./harness/upstream.js', import.meta.url));
    services.push(upstream);
    const proxy = await startService('proxy', new URL('./harness/proxy.js', import.meta.url), ['--upstream', upstream.url]);
    services.push(proxy);
    const all: Record<string, Target> = {
      direct: { name: 'direct', url: upstream.url, processes: [{ role: 'upstream', pid: upstream.pid, group: 'service' }] },
      proxy: {
        name: 'proxy',
        url: proxy.url,
        processes: [
          { role: 'proxy', pid: proxy.pid },
          { role: 'upstream', pid: upstream.pid, group: 'service' },
        ],
      },
    };
    const targets = targetNames.map((n) => all[n]!);
    const cells = workloads.length * connections.length * targets.length * repeat;
    process.stderr.write(
      `baseline: ${cells} runs of ${durationSec} s (+${warmupSec} s warm-up) ≈ ${Math.ceil((cells * (durationSec + warmupSec)) / 60)} min; ` +
        `upstream ${upstream.url} (pid ${upstream.pid}), proxy ${proxy.url} (pid ${proxy.pid})\n`,
    );
    const runs = await runMatrix({ targets, workloads, connections, durationSec, warmupSec, repeat });
    const summary = summarize(runs, 'proxy');
    const { markdown, paths } = await writeResults({
      suite: 'baseline',
      date: new Date().toISOString(),
      machine,
      loadAverage: { before: loadBefore, after: loadAverage() },
      config: { 'duration s': durationSec, 'warm-up s': warmupSec, repeats: repeat, connections, workloads: workloads.map((w) => w.name) },
      notes: [
        'autocannon (in the bench process) → target; direct = the bench upstream (fastify), proxy = @fastify/http-proxy (default options) in front of it.',
        'CPU ms/req: utime+stime from /proc of all the target’s processes (proxy and upstream for the proxy) ÷ requests; the load generator is not counted.',
        'Ratios are computed per repeat (targets measured back to back) and summarised by the median; the load generator shares the 2 cores.',
      ],
      summary,
      runs,
    });
    process.stdout.write(`\n${markdown}\nwrote ${paths.map((p) => p.slice(p.indexOf('bench/results'))).join(' and ')}\n`);
  } finally {
    await Promise.all(services.map((s) => s.stop()));
  }
}
