import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CbftError, ErrorCodes } from '../../errors.js';
import { DEFAULT_BASE_PORT, DEFAULT_HOST, generateCluster, writeCluster } from '../../cluster/keygen.js';
import { intOption, parseCommand, requireOption } from '../args.js';

export const usage = `cbft keygen --out DIR --replicas N --chains C --chain-length L [--host H] [--base-port P] [--force]

Writes DIR/cluster.json (public) and DIR/keys/<id>.json (secret, mode 0600).
  --replicas N      3s+1 replicas, N >= 4 (tolerates s Byzantine replicas)
  --chains C        firewall chains, C >= 1 (more chains: more availability)
  --chain-length L  nodes per chain, L = f+1 >= 2 (tolerates f Byzantine firewall nodes)
  --host H          host in every URL (default ${DEFAULT_HOST})
  --base-port P     first port; ports are assigned in order (default ${DEFAULT_BASE_PORT})
  --force           overwrite an existing cluster in DIR`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(argv, {
    out: { type: 'string' },
    replicas: { type: 'string' },
    chains: { type: 'string' },
    'chain-length': { type: 'string' },
    host: { type: 'string' },
    'base-port': { type: 'string' },
    force: { type: 'boolean' },
  });
  const out = requireOption(values.out, '--out');
  if (existsSync(join(out, 'cluster.json')) && !values.force) {
    throw new CbftError(ErrorCodes.USAGE, `${join(out, 'cluster.json')} exists; pass --force to overwrite it`);
  }
  const { cluster, keys } = generateCluster({
    replicas: intOption(requireOption(values.replicas, '--replicas'), '--replicas', 0),
    chains: intOption(requireOption(values.chains, '--chains'), '--chains', 0),
    chainLength: intOption(requireOption(values['chain-length'], '--chain-length'), '--chain-length', 0),
    host: values.host ?? DEFAULT_HOST,
    basePort: intOption(values['base-port'], '--base-port', DEFAULT_BASE_PORT),
  });
  await writeCluster(out, cluster, keys);
  process.stdout.write(
    `wrote ${join(out, 'cluster.json')} (s=${cluster.s}, f=${cluster.f}, ${cluster.replicas.length} replicas, ` +
      `${cluster.chains.length} chain(s) of ${cluster.f + 1}) and ${keys.length} key files in ${join(out, 'keys')}\n` +
      cluster.chains.map((ch, i) => `chain ${i}: clients connect to ${ch[0]!.url}\n`).join(''),
  );
  return 0;
}
