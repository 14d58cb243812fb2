/**
 * `npm run bench [-- <suite>]`. Suites are loaded on demand so one suite's dependencies never
 * slow another down.
 */
const suites: Record<string, () => Promise<{ main(args: string[]): Promise<void> }>> = {
  full: () => import('./full.js'),
  curves: () => import('./curves.js'),
  soak: () => import('./soak.js'),
  profile: () => import('./profile.js'),
  firewall: () => import('./firewall-chain.js'),
  sidecar: () => import('./sidecar.js'),
  crypto: () => import('./crypto.js'),
  'crypto-backends': () => import('./crypto-backends.js'),
  baseline: () => import('./baseline.js'),
};

// `npm run bench -- --duration 2` runs the default suite with options.
const argv = process.argv.slice(2);
const [suite, ...rest] = argv[0] === undefined || argv[0].startsWith('--') ? ['full', ...argv] : (argv as [string, ...string[]]);
const load = suites[suite];
if (!load) {
  process.stderr.write(`unknown bench suite ${JSON.stringify(suite)}; available: ${Object.keys(suites).join(', ')}\n`);
  process.exitCode = 2;
} else {
  await (await load()).main(rest);
}
