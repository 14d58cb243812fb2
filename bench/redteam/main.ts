#!/usr/bin/env node
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../../src/up/local-cluster.js';
import { replaceReadmeSection } from '../lib/readme.js';
import { toMarkdown, toReadmeSection, verdict } from './report.js';
import { FULL, QUICK, runRedteam, type PolicyRun, type RedteamOptions } from './run.js';

const USAGE = `npm run redteam [-- --quick] [--samples N] [--content-steps N] [--leak-delay MS]
                 [--byzantine-delays MS,MS] [--quantum MS] [--coarse-quantum MS]
                 [--out FILE] [--json FILE] [--keep-logs DIR] [--readme]

Starts 3 honest copies of examples/bank and 1 examples/leaky-replica behind cbft (4 replicas,
2 chains of 2 firewall nodes, the top of chain 1 Byzantine), once with immediate and once with
quantized release (and, unless --quick, once more with a coarse quantum for the critical-path
rows), runs a bounded workload and prints what leaked: secret bytes per content channel and the
timing channel's capacity in bits per request.

  --quick               CI size (the test uses it): fewer samples, no paused-sidecar row
  --samples N           requests per timing row (default ${FULL.samples}, quick ${QUICK.samples})
  --content-steps N     requests per content channel (default ${FULL.contentSteps}, quick ${QUICK.contentSteps})
  --leak-delay MS       the leaky replica's delay on a 1 bit (default ${FULL.leakDelayMs})
  --byzantine-delays L  the Byzantine top's delays on a 1 bit (default ${FULL.byzantineDelaysMs.join(',')})
  --quantum MS          tick of the quantized release (default 10)
  --coarse-quantum MS   tick of the third, critical-path-only run (default 100; 0 skips it)
  --keep-logs DIR       keep every process's log (and data) under DIR
  --out FILE            write the markdown report there (default: bench/redteam/RESULTS.md unless --quick)
  --readme              also write the short table into README.md (between the redteam markers)
  --json FILE           the raw results with every sample as JSON (default: bench/redteam/results.json
                        unless --quick or --out)
Exit code 1 when a content channel leaked, a reply was unsigned or wrong, or an invariant broke.`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      samples: { type: 'string' },
      'content-steps': { type: 'string' },
      'leak-delay': { type: 'string' },
      'byzantine-delays': { type: 'string' },
      quantum: { type: 'string' },
      'coarse-quantum': { type: 'string' },
      'keep-logs': { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      readme: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const int = (v: string | undefined, name: string, dflt: number, min = 1) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const base = values.quick ? QUICK : FULL;
  const quantum = int(values.quantum, '--quantum', 10);
  const coarse = int(values['coarse-quantum'], '--coarse-quantum', 100, 0);
  const runs: PolicyRun[] = base.runs
    .map((r, i) => (i === 1 && r.policy.name === 'quantized' ? { ...r, policy: { ...r.policy, quantumMs: quantum } } : r))
    .map((r, i) => (i === 2 && r.policy.name === 'quantized' ? { ...r, policy: { ...r.policy, quantumMs: coarse } } : r))
    .filter((r) => r.policy.name !== 'quantized' || r.policy.quantumMs > 0);
  const o: RedteamOptions = {
    ...base,
    samples: int(values.samples, '--samples', base.samples, 8),
    contentSteps: int(values['content-steps'], '--content-steps', base.contentSteps),
    leakDelayMs: int(values['leak-delay'], '--leak-delay', base.leakDelayMs),
    byzantineDelaysMs: values['byzantine-delays'] ? values['byzantine-delays'].split(',').map((x) => int(x, '--byzantine-delays', 0, 0)) : base.byzantineDelaysMs,
    runs,
    ...(values['keep-logs'] ? { keepLogs: resolve(values['keep-logs']) } : {}),
    log: (line) => process.stdout.write(line + '\n'),
  };
  o.preamble = Math.min(o.preamble, Math.floor(o.samples / 3));
  const command = `npm run redteam${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
  const result = await runRedteam(o);
  const md = toMarkdown(result, command);
  process.stdout.write('\n' + md + '\n');
  const out = values.out ?? (values.quick ? undefined : join(PACKAGE_ROOT, 'bench', 'redteam', 'RESULTS.md'));
  if (out) {
    await mkdir(dirname(resolve(out)), { recursive: true });
    await writeFile(out, md);
    process.stdout.write(`report written to ${out}\n`);
  }
  const json = values.json ?? (values.quick || values.out ? undefined : join(PACKAGE_ROOT, 'bench', 'redteam', 'results.json'));
  if (json) {
    await writeFile(json, JSON.stringify(result, null, 1));
    process.stdout.write(`raw results (every sample) written to ${json}\n`);
  }
  if (values.readme) process.stdout.write(`updated ${await replaceReadmeSection('redteam', toReadmeSection(result, command))}\n`);
  const bad = verdict(result);
  if (bad.length) {
    process.stdout.write(`\nRED TEAM FAILED:\n${bad.map((b) => `  - ${b}`).join('\n')}\n`);
    return 1;
  }
  process.stdout.write('\nred team passed: nothing leaked through content channels, every reply verified and correct, invariants held.\n');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`redteam: ${err.message}\n`);
    process.exit(2);
  },
);
