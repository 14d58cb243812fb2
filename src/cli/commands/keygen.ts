import { existsSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CbftError, ErrorCodes } from '../../errors.js';
import { DEFAULT_BASE_PORT, DEFAULT_HOST, generateCluster, writeCluster } from '../../cluster/keygen.js';
import {
  CLUSTER_CONFIGMAP,
  DEFAULT_CLUSTER_IP_OFFSET,
  DEFAULT_NAMESPACE,
  DEFAULT_SERVICE_CIDR,
  checkNamespace,
  clusterResources,
  keySecretName,
  kubernetesCluster,
  planClusterIps,
  toYaml,
} from '../../cluster/kubernetes.js';
import { intOption, parseCommand, requireOption } from '../args.js';

export const usage = `cbft keygen --out DIR --replicas N --chains C --chain-length L [--host H] [--base-port P] [--force]
            [--kubernetes [--namespace NS] [--service-cidr CIDR] [--cluster-ip-base IP]]

Writes DIR/cluster.json (public) and DIR/keys/<id>.json (secret, mode 0600).
  --replicas N      3s+1 replicas, N >= 4 (tolerates s Byzantine replicas)
  --chains C        firewall chains, C >= 1 (more chains: more availability)
  --chain-length L  nodes per chain, L = f+1 >= 2 (tolerates f Byzantine firewall nodes)
  --host H          host in every URL (default ${DEFAULT_HOST})
  --base-port P     first port; ports are assigned in order (default ${DEFAULT_BASE_PORT})
  --force           overwrite an existing cluster in DIR
  --kubernetes      URLs are the nodes' Services by fixed cluster IP, http://<cluster IP>:<port>, so
                    no pod needs DNS (see examples/kubernetes/), and DIR/kubernetes.yaml (secret,
                    mode 0600) holds the ConfigMap ${CLUSTER_CONFIGMAP} (cluster.json) and one Secret
                    ${keySecretName('<id>')} per node
  --namespace NS    the Kubernetes namespace (default ${DEFAULT_NAMESPACE}; with --kubernetes only)
  --service-cidr CIDR
                    the cluster's IPv4 Service CIDR (kube-apiserver --service-cluster-ip-range;
                    default ${DEFAULT_SERVICE_CIDR}: kubeadm, kind, minikube; k3s: 10.43.0.0/16)
  --cluster-ip-base IP
                    the first node's cluster IP, the others follow in order (default: the CIDR's
                    address + ${DEFAULT_CLUSTER_IP_OFFSET}, e.g. 10.96.0.64); generate the manifests with the same
                    sizes, --namespace, --service-cidr and --cluster-ip-base`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(argv, {
    out: { type: 'string' },
    replicas: { type: 'string' },
    chains: { type: 'string' },
    'chain-length': { type: 'string' },
    host: { type: 'string' },
    'base-port': { type: 'string' },
    force: { type: 'boolean' },
    kubernetes: { type: 'boolean' },
    namespace: { type: 'string' },
    'service-cidr': { type: 'string' },
    'cluster-ip-base': { type: 'string' },
  });
  const out = requireOption(values.out, '--out');
  const kubernetes = values.kubernetes === true;
  if (kubernetes && (values.host !== undefined || values['base-port'] !== undefined)) {
    throw new CbftError(ErrorCodes.USAGE, "--host and --base-port do not apply with --kubernetes (every node gets its Service's cluster IP and fixed ports)");
  }
  for (const flag of ['namespace', 'service-cidr', 'cluster-ip-base'] as const) {
    if (!kubernetes && values[flag] !== undefined) throw new CbftError(ErrorCodes.USAGE, `--${flag} needs --kubernetes`);
  }
  const namespace = checkNamespace(values.namespace ?? DEFAULT_NAMESPACE);
  const ipOptions = { serviceCidr: values['service-cidr'], clusterIpBase: values['cluster-ip-base'] };
  if (existsSync(join(out, 'cluster.json')) && !values.force) {
    throw new CbftError(ErrorCodes.USAGE, `${join(out, 'cluster.json')} exists; pass --force to overwrite it`);
  }
  const generated = generateCluster({
    replicas: intOption(requireOption(values.replicas, '--replicas'), '--replicas', 0),
    chains: intOption(requireOption(values.chains, '--chains'), '--chains', 0),
    chainLength: intOption(requireOption(values['chain-length'], '--chain-length'), '--chain-length', 0),
    host: values.host ?? DEFAULT_HOST,
    basePort: intOption(values['base-port'], '--base-port', DEFAULT_BASE_PORT),
  });
  const keys = generated.keys;
  // Checked before anything is written: a bad --service-cidr or --cluster-ip-base leaves DIR alone.
  const cluster = kubernetes ? kubernetesCluster(generated.cluster, ipOptions) : generated.cluster;
  await writeCluster(out, cluster, keys);
  let note = '';
  let entry = (_i: number) => '';
  if (kubernetes) {
    const plan = planClusterIps({ replicas: cluster.replicas.length, chains: cluster.chains.length, chainLength: cluster.f + 1 }, ipOptions);
    entry = (i) => ` (Service ${cluster.chains[i]![0]!.id}; or http://cbft-entry.${namespace}.svc)`;
    note =
      `Services at fixed cluster IPs ${plan.first}–${plan.last} in ${plan.serviceCidr}: generate the manifests with the same ` +
      `--service-cidr and --cluster-ip-base (examples/kubernetes/generate.mjs)\n` +
      (plan.inStaticBand
        ? ''
        : `note: ${plan.first}–${plan.last} lies beyond the static band at the start of ${plan.serviceCidr}; a Service created without a fixed IP may already hold one of them (kubectl apply then fails: pick another --cluster-ip-base)\n`);
    const file = join(out, 'kubernetes.yaml');
    const header = `cbft keys for namespace ${namespace}: SECRET, apply with kubectl apply -f and do not commit.`;
    await writeFile(file, toYaml(clusterResources(cluster, keys, namespace), header), { mode: 0o600 });
    await chmod(file, 0o600);
    note += `wrote ${file} (ConfigMap ${CLUSTER_CONFIGMAP} and ${keys.length} Secrets for namespace ${namespace}): kubectl apply -f ${file}\n`;
  }
  process.stdout.write(
    `wrote ${join(out, 'cluster.json')} (s=${cluster.s}, f=${cluster.f}, ${cluster.replicas.length} replicas, ` +
      `${cluster.chains.length} chain(s) of ${cluster.f + 1}) and ${keys.length} key files in ${join(out, 'keys')}\n` +
      cluster.chains.map((ch, i) => `chain ${i}: clients connect to ${ch[0]!.url}${entry(i)}\n`).join('') +
      note,
  );
  return 0;
}
