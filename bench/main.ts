/**
 * `npm run bench [-- <suite>]`. Suites are loaded on demand so one suite's dependencies never
 * slow another down.
 */
const suites: Record<string, () => Promise<{ main(args: string[]): Promise<void> }>> = {
  crypto: () => import('./crypto.js'),
  'crypto-backends': () => import('./crypto-backends.js'),
  baseline: () => import('./baseline.js'),
};

const [suite = 'crypto', ...rest] = process.argv.slice(2);
const load = suites[suite];
if (!load) {
  process.stderr.write(`unknown bench suite ${JSON.stringify(suite)}; available: ${Object.keys(suites).join(', ')}\n`);
  process.exitCode = 2;
} else {
  await (await load()).main(rest);
}
