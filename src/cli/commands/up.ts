import { CbftError, ErrorCodes } from '../../errors.js';
import { DEFAULT_BASE_PORT, checkBasePort, checkClusterSizes, portCount } from '../../cluster/keygen.js';
import { DEFAULT_UPSTREAM, startLocalCluster, type LocalCluster } from '../../up/local-cluster.js';
import { intOption, parseCommand } from '../args.js';

export const usage = `cbft up [--replicas N] [--chains C] [--chain-length L] [--upstream-command CMD] [--base-port P] [--cluster DIR]

Starts a whole local cluster: N copies of the upstream service (each with PORT in its
environment), N sidecars, C chains of L firewall nodes; waits until every node is ready and
prints the client URLs and a curl line. Ctrl-C stops everything it started.
  --replicas N             3s+1 replicas (default 4)
  --chains C               firewall chains (default 2)
  --chain-length L         nodes per chain, f+1 (default 2)
  --upstream-command CMD   the service to run N copies of (default: examples/bank with the
                           Node.js deterministic adapter); run with sh -c, PORT set
  --base-port P            first port of the cluster (default ${DEFAULT_BASE_PORT}); upstreams follow
  --cluster DIR            use the keys and ports in DIR (from cbft keygen) instead of new ones`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(argv, {
    replicas: { type: 'string' },
    chains: { type: 'string' },
    'chain-length': { type: 'string' },
    'upstream-command': { type: 'string' },
    'base-port': { type: 'string' },
    cluster: { type: 'string' },
  });
  const customUpstream = values['upstream-command'];
  if (customUpstream !== undefined && customUpstream.trim() === '') {
    throw new CbftError(ErrorCodes.USAGE, '--upstream-command must not be empty (leave it out to run the example service)');
  }
  const replicas = intOption(values.replicas, '--replicas', 4);
  const chains = intOption(values.chains, '--chains', 2);
  const chainLength = intOption(values['chain-length'], '--chain-length', 2);
  const basePort = intOption(values['base-port'], '--base-port', DEFAULT_BASE_PORT);
  if (values.cluster === undefined) {
    // Checked here too so that a bad size is the only line printed; the upstreams take one port
    // per replica right after the cluster's.
    checkClusterSizes({ replicas, chains, chainLength }, replicas);
    checkBasePort(basePort, portCount({ replicas, chains, chainLength }) + replicas);
  }
  const out = process.stdout;
  out.write('cbft up: starting upstreams, sidecars and firewall nodes...\n');

  let local: LocalCluster | undefined;
  let stopping: Promise<void> | undefined;
  // One stop, however many signals: a second Ctrl-C (or a SIGINT from both a wrapper and the
  // shell) must not kill this process while it still stops its children, or they are orphaned.
  const stop = (why: string): Promise<void> =>
    (stopping ??= (async () => {
      out.write(`\ncbft up: ${why}; stopping everything it started...\n`);
      await local?.stop();
      out.write('cbft up: stopped.\n');
    })());
  const stopped = new Promise<void>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void stop(`${sig} received`).then(resolve));
  });

  local = await startLocalCluster({
    replicas,
    chains,
    chainLength,
    basePort,
    clusterDir: values.cluster,
    upstream: customUpstream !== undefined ? { command: customUpstream } : DEFAULT_UPSTREAM,
    workDir: undefined,
    onChildExit: (child) => {
      process.stderr.write(`\ncbft up: ${child.id} ${child.describeExit()}; its last lines:\n${child.tail(10).map((l) => `  | ${l}`).join('\n')}\n`);
    },
  });
  if (stopping) {
    // Ctrl-C arrived while starting: stop what just came up.
    await local.stop();
    return 0;
  }

  const { cluster, clusterDir } = local;
  const bottoms = cluster.chains.map((c) => c[0]!.url);
  const example = customUpstream !== undefined
    ? `curl -si ${bottoms[0]}/`
    : `curl -si -H 'authorization: Bearer token-acc-1' ${bottoms[0]}/accounts/acc-1`;
  out.write(
    [
      '',
      `cbft is up: ${cluster.replicas.length} replicas (s=${cluster.s}), ${cluster.chains.length} chain(s) of ${cluster.f + 1} firewall nodes (f=${cluster.f}).`,
      '',
      'Clients talk to the bottom firewall nodes:',
      ...bottoms.map((u, i) => `  chain ${i}: ${u}`),
      '',
      'Try:',
      `  ${example}`,
      '',
      'and check the signed reply yourself:',
      `  ${example} | npx cbft verify --cluster ${clusterDir} -`,
      '',
      `Admin endpoints (/healthz, /readyz, /metrics): ${[...cluster.replicas, ...cluster.chains.flat()].map((n) => `${n.id} ${n.adminUrl}`).join(', ')}`,
      `Logs: ${local.workDir}/logs`,
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  await stopped;
  return 0;
}
