import { parseCommand } from '../args.js';

export const usage = `cbft up [--replicas N] [--chains C] [--chain-length L] [--upstream-command CMD] [--base-port P] [--cluster DIR]

Starts a whole local cluster: N copies of the upstream service, N sidecars, C chains of L
firewall nodes (defaults: 4 replicas of examples/bank, 2 chains of 2).`;

/**
 * Until the sidecar and firewall land, `up` describes the cluster it will start instead of
 * starting it (issue 2 allows this; issue 6 replaces it).
 */
export async function run(argv: string[]): Promise<number> {
  parseCommand(argv, {
    replicas: { type: 'string' },
    chains: { type: 'string' },
    'chain-length': { type: 'string' },
    'upstream-command': { type: 'string' },
    'base-port': { type: 'string' },
    cluster: { type: 'string' },
  });
  process.stdout.write(
    'cbft up will start: 4 copies of examples/bank, 4 sidecars (PBFT, s=1) and 2 chains of 2 firewall nodes,\n' +
      'then print the curl line to try. The sidecar and firewall are not built yet; today you can run\n' +
      '  npx cbft keygen --out ./cluster --replicas 4 --chains 2 --chain-length 2\n',
  );
  return 0;
}
