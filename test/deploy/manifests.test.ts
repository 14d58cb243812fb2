import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { NetworkPolicy as NetworkPolicyModel } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { parseYamlDocuments } from './yaml.js';
import { FieldChecker } from './k8s-fields.js';
import { edge, matches, reachability, selecting, type Endpoint, type NetworkPolicy, type Port } from './netpol.js';
import {
  DEFAULT_NAMESPACE,
  DEFAULT_SERVICE_CIDR,
  ENTRY_SERVICE,
  IMAGE_UID,
  KUBERNETES_PORTS as P,
  LABEL,
  clusterResources,
  deploymentManifests,
  keySecretName,
  kubernetesCluster,
  manifestText,
  planClusterIps,
  toYaml,
} from '../../src/cluster/kubernetes.js';
import { generateCluster } from '../../src/cluster/keygen.js';
import { firewallId, replicaId, validateCluster } from '../../src/cluster/config.js';
import { runCli } from '../helpers/cli.js';

/**
 * The Kubernetes manifests of examples/kubernetes/: every file parses, every object validates
 * against the Kubernetes schemas (kubernetes-models) and uses only known field names, the files
 * are what the generator writes, and the NetworkPolicies allow exactly the cbft topology (computed
 * from the policies, for the example and for other sizes, middle nodes included): no DNS and
 * nothing outside the cluster for any cbft pod, since cluster.json names every node by its
 * Service's fixed cluster IP.
 */

const DIR = fileURLToPath(new URL('../../examples/kubernetes/', import.meta.url));
const EXAMPLE = { replicas: 4, chains: 2, chainLength: 2 };
const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string };

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  Namespace,
  ConfigMap,
  Secret,
  Service,
  StatefulSet,
  Deployment,
  NetworkPolicy: NetworkPolicyModel,
  PodDisruptionBudget,
};

function yamlFiles(): string[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort();
}

function parseFile(name: string): Obj[] {
  return parseYamlDocuments(readFileSync(join(DIR, name), 'utf8')) as Obj[];
}

/** Objects as the API server would get them: written as YAML and read back. */
function roundTrip(files: { docs: { object: unknown }[] }[]): Obj[] {
  return files.flatMap((f) => parseYamlDocuments(toYaml(f.docs as never)) as Obj[]);
}

function validateAll(objects: Obj[], fields: FieldChecker): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    const Model = MODELS[o.kind];
    const where = `${o.kind}/${o.metadata?.name}`;
    if (!Model) {
      problems.push(`${where}: kind not expected`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
    }
    for (const f of fields.unknownFields(o)) problems.push(`${where}: unknown field ${f}`);
  }
  return problems;
}

interface PodInfo {
  workload: Obj;
  labels: Record<string, string>;
  spec: any;
  endpoint: Endpoint;
}

function pods(objects: Obj[]): PodInfo[] {
  return objects
    .filter((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment')
    .map((w) => {
      const spec = w.spec.template.spec;
      const ports: Port[] = [...(spec.initContainers ?? []), ...spec.containers].flatMap((c: any) =>
        (c.ports ?? []).map((p: any) => ({ port: p.containerPort, protocol: p.protocol ?? 'TCP', name: p.name })),
      );
      const labels = w.spec.template.metadata.labels as Record<string, string>;
      return {
        workload: w,
        labels,
        spec,
        endpoint: { name: labels[LABEL.node]!, namespace: w.metadata.namespace, namespaceLabels: { 'kubernetes.io/metadata.name': w.metadata.namespace! }, labels, ports },
      };
    });
}

/** The endpoints besides the cbft pods that the policies must keep out or let in. */
function otherEndpoints(namespace: string): Endpoint[] {
  return [
    { name: 'outside', ports: [{ port: 443, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] },
    { name: 'kube-dns', namespace: 'kube-system', namespaceLabels: { 'kubernetes.io/metadata.name': 'kube-system' }, labels: { 'k8s-app': 'kube-dns' }, ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] },
    { name: 'pod-in-default', namespace: 'default', namespaceLabels: { 'kubernetes.io/metadata.name': 'default' }, labels: { app: 'web' }, ports: [{ port: 80, protocol: 'TCP' }] },
    { name: 'stranger-in-namespace', namespace, namespaceLabels: { 'kubernetes.io/metadata.name': namespace }, labels: { app: 'debug' }, ports: [{ port: 8080, protocol: 'TCP' }] },
  ];
}

/**
 * DESIGN.md's topology: bottom ↔ clients, fw-c-k ↔ fw-c-(k±1), top ↔ sidecars, sidecar ↔ sidecar.
 * Nothing else, DNS included: no pod in the namespace reaches kube-dns or anything outside.
 */
function expectedEdges(sizes: typeof EXAMPLE): Set<string> {
  const tcp = (port: number): Port => ({ port, protocol: 'TCP' });
  const out = new Set<string>();
  const replicas = Array.from({ length: sizes.replicas }, (_, i) => replicaId(i));
  for (let c = 0; c < sizes.chains; c++) {
    const top = firewallId(c, sizes.chainLength - 1);
    for (const client of ['outside', 'pod-in-default', 'kube-dns']) out.add(edge(client, firewallId(c, 0), tcp(P.firewall)));
    for (let k = 0; k + 1 < sizes.chainLength; k++) {
      out.add(edge(firewallId(c, k), firewallId(c, k + 1), tcp(P.firewall)));
      out.add(edge(firewallId(c, k + 1), firewallId(c, k), tcp(k === 0 ? P.bottomPeer : P.firewall)));
    }
    for (const r of replicas) {
      out.add(edge(top, r, tcp(P.replica)));
      out.add(edge(r, top, tcp(P.firewall)));
    }
  }
  for (const a of replicas) for (const b of replicas) if (a !== b) out.add(edge(a, b, tcp(P.replica)));
  return out;
}

interface PolicyReport {
  /** Pods in the namespace not isolated in a direction, or cbft pods without a policy of their own. */
  uncovered: string[];
  /** Connections the policies allow that the topology does not have. */
  extra: string[];
  /** Connections of the topology that the policies block. */
  missing: string[];
}

function checkPolicies(objects: Obj[], sizes: typeof EXAMPLE, namespace: string): PolicyReport {
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy') as unknown as NetworkPolicy[];
  const cbftPods = pods(objects);
  const endpoints = [...cbftPods.map((p) => p.endpoint), ...otherEndpoints(namespace)];
  const uncovered: string[] = [];
  // Every pod in the namespace, cbft's or anyone's, is isolated both ways.
  for (const e of endpoints.filter((x) => x.namespace === namespace)) {
    for (const type of ['Ingress', 'Egress'] as const) if (selecting(policies, e, type).length === 0) uncovered.push(`${e.name} (${type})`);
  }
  // Every cbft pod has a policy of its own besides the namespace-wide ones.
  for (const p of cbftPods) {
    const own = policies.filter((pol) => Object.keys(pol.spec.podSelector.matchLabels ?? {}).length > 0 && matches(pol.spec.podSelector, p.labels));
    if (own.length === 0) uncovered.push(`${p.endpoint.name} (no policy of its own)`);
  }
  const namespaceOf = (n: string) => endpoints.find((x) => x.name === n)!.namespace;
  const actual = new Set(
    [...reachability(policies, endpoints)].filter((e) => {
      const [src, dst] = e.split(/ -> |:/);
      return namespaceOf(src!) === namespace || namespaceOf(dst!) === namespace;
    }),
  );
  const expected = expectedEdges(sizes);
  return {
    uncovered,
    extra: [...actual].filter((e) => !expected.has(e)).sort(),
    missing: [...expected].filter((e) => !actual.has(e)).sort(),
  };
}

const EXACT: PolicyReport = { uncovered: [], extra: [], missing: [] };

/**
 * Egress, read off the policies rather than computed for sample endpoints: every rule names its
 * peers, each a pod selector in the policy's own namespace (no namespaceSelector, no ipBlock, so
 * nothing in kube-system and nothing outside the cluster), and names its ports, none of them DNS.
 */
function egressProblems(objects: Obj[]): string[] {
  const problems: string[] = [];
  for (const pol of objects.filter((o) => o.kind === 'NetworkPolicy') as unknown as NetworkPolicy[]) {
    (pol.spec.egress ?? []).forEach((rule: any, i: number) => {
      const where = `${pol.metadata.name}.egress[${i}]`;
      if (!rule.to?.length) problems.push(`${where}: to any destination`);
      for (const peer of rule.to ?? []) {
        if (!peer.podSelector || peer.namespaceSelector || peer.ipBlock) problems.push(`${where}: to ${JSON.stringify(peer)}`);
      }
      if (!rule.ports?.length) problems.push(`${where}: to any port`);
      for (const port of rule.ports ?? []) {
        const p = port.port;
        if (p === undefined || p === 53 || (typeof p === 'string' && /dns|domain/i.test(p)) || (port.endPort !== undefined && p <= 53 && 53 <= port.endPort)) {
          problems.push(`${where}: port ${JSON.stringify(port)}`);
        }
      }
    });
  }
  return problems;
}

const DNS_POLICY = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'allow-dns', namespace: DEFAULT_NAMESPACE },
  spec: {
    podSelector: {},
    policyTypes: ['Egress'],
    egress: [
      {
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
        ports: [
          { protocol: 'UDP', port: 53 },
          { protocol: 'TCP', port: 53 },
        ],
      },
    ],
  },
};

let fields: FieldChecker;
beforeAll(() => {
  fields = new FieldChecker();
});

describe('Kubernetes manifests (examples/kubernetes)', () => {
  let objects: Obj[];
  const files = yamlFiles();

  beforeAll(() => {
    objects = files.flatMap(parseFile);
  });

  it('are the files the generator writes for the example', () => {
    const generated = deploymentManifests({ ...EXAMPLE, image: `cbft:${pkg.version}` });
    expect(files).toEqual(generated.map((f) => f.name).sort());
    for (const f of generated) {
      // If this fails after a change to src/cluster/kubernetes.ts: npm run build && node examples/kubernetes/generate.mjs
      expect(readFileSync(join(DIR, f.name), 'utf8'), f.name).toBe(manifestText(f));
    }
  });

  it('parse, validate against the Kubernetes schemas and use only known fields', () => {
    expect(objects.length).toBeGreaterThan(20);
    expect(validateAll(objects, fields)).toEqual([]);
    for (const o of objects) if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(DEFAULT_NAMESPACE);
  });

  it('the field check catches misspelt fields', () => {
    const bad = structuredClone(objects.find((o) => o.kind === 'StatefulSet')!);
    bad.spec.template.spec.initContainers[1].readinessprobe = bad.spec.template.spec.initContainers[1].readinessProbe;
    bad.spec.template.spec.containers[0].restartpolicy = 'Always';
    bad.spec.selector.matchlabels = {};
    expect(fields.unknownFields(bad).sort()).toEqual([
      'spec.selector.matchlabels',
      'spec.template.spec.containers[0].restartpolicy',
      'spec.template.spec.initContainers[1].readinessprobe',
    ]);
  });

  it('run one single-pod workload per node: replicas with the service and a native sidecar, firewall nodes alone', () => {
    const all = pods(objects);
    const ids = all.map((p) => p.endpoint.name).sort();
    const expected = [
      ...Array.from({ length: EXAMPLE.replicas }, (_, i) => replicaId(i)),
      ...Array.from({ length: EXAMPLE.chains }, (_, c) => Array.from({ length: EXAMPLE.chainLength }, (_, k) => firewallId(c, k))).flat(),
    ].sort();
    expect(ids).toEqual(expected);
    for (const p of all) {
      const id = p.endpoint.name;
      const w = p.workload;
      expect(w.spec.replicas, id).toBe(1);
      expect(matches(w.spec.selector, p.labels)).toBe(true);
      expect(p.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: IMAGE_UID, fsGroup: IMAGE_UID });
      expect(p.spec.automountServiceAccountToken).toBe(false);
      // Only the node's own key, copied to 0600 by the first init container.
      const secrets = p.spec.volumes.filter((v: any) => v.secret).map((v: any) => v.secret.secretName);
      expect(secrets).toEqual([keySecretName(id)]);
      expect(p.spec.initContainers[0].name).toBe('install-keys');
      const cbft = [...p.spec.initContainers, ...p.spec.containers].find((c: any) => c.name.startsWith('cbft-'));
      expect(cbft.args.slice(0, 5)).toEqual([p.labels[LABEL.role] === 'replica' ? 'sidecar' : 'firewall', '--cluster', '/etc/cbft', '--id', id]);
      expect(cbft.args).toContain('--bind');
      // Probes on the admin port, which the container declares.
      expect(cbft.ports).toContainEqual({ name: 'admin', containerPort: P.admin, protocol: 'TCP' });
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) expect(cbft[probe].httpGet.port, `${id} ${probe}`).toBe(P.admin);
      expect(cbft.readinessProbe.httpGet.path).toBe('/readyz');
      expect(cbft.livenessProbe.httpGet.path).toBe('/healthz');
      for (const c of [...p.spec.initContainers, ...p.spec.containers]) {
        expect(c.securityContext, `${id}/${c.name}`).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      }
      if (p.labels[LABEL.role] === 'replica') {
        expect(w.kind).toBe('StatefulSet');
        expect(cbft.restartPolicy).toBe('Always'); // native sidecar
        expect(p.spec.initContainers.indexOf(cbft)).toBe(1);
        expect(p.spec.containers).toHaveLength(1);
        const service = p.spec.containers[0];
        expect(service.ports).toBeUndefined(); // bound to 127.0.0.1, nothing to expose
        expect(service.env).toContainEqual({ name: 'HOST', value: '127.0.0.1' });
        expect(service.volumeMounts).toBeUndefined(); // never sees the keys
        expect(cbft.args[cbft.args.indexOf('--upstream') + 1]).toBe(`http://127.0.0.1:${P.upstream}`);
      } else {
        expect(w.kind).toBe('Deployment');
        expect(w.spec.strategy).toEqual({ type: 'Recreate' });
      }
    }
  });

  it('pass only flags that cbft sidecar and cbft firewall accept', () => {
    const usage = new Map<string, string>();
    for (const p of pods(objects)) {
      const cbft = [...p.spec.initContainers, ...p.spec.containers].find((c: any) => c.name.startsWith('cbft-'));
      const command = cbft.args[0] as string;
      if (!usage.has(command)) {
        const help = runCli([command, '--help']);
        expect(help.code, `cbft ${command} --help`).toBe(0);
        usage.set(command, help.stdout);
      }
      for (const flag of cbft.args.filter((a: string) => a.startsWith('--'))) expect(usage.get(command), `${command} ${flag}`).toMatch(new RegExp(`${flag}\\b`));
    }
    expect([...usage.keys()].sort()).toEqual(['firewall', 'sidecar']);
  });

  it('have a Service per node that reaches its pod, and cluster.json from keygen --kubernetes points at them', () => {
    const services = objects.filter((o) => o.kind === 'Service');
    const all = pods(objects);
    for (const s of services) {
      const selected = all.filter((p) => matches({ matchLabels: s.spec.selector }, p.labels));
      expect(selected.length, s.metadata.name).toBeGreaterThan(0);
      for (const port of s.spec.ports) for (const p of selected) expect(p.endpoint.ports.map((x) => x.port), `${s.metadata.name}:${port.port}`).toContain(port.targetPort);
    }
    const entry = services.find((s) => s.metadata.name === ENTRY_SERVICE)!;
    expect(all.filter((p) => matches({ matchLabels: entry.spec.selector }, p.labels)).map((p) => p.endpoint.name).sort()).toEqual(['fw-0-0', 'fw-1-0']);

    // Every node's Service has a fixed, distinct IPv4 cluster IP in the default Service CIDR; cbft-entry none (clients use its name).
    const nodeServices = services.filter((s) => s.metadata.name !== ENTRY_SERVICE);
    expect(entry.spec.clusterIP).toBeUndefined();
    const ips = nodeServices.map((s) => s.spec.clusterIP as string);
    expect(new Set(ips).size).toBe(nodeServices.length);
    for (const ip of ips) expect(ip).toMatch(/^10\.(9[6-9]|10[0-9]|11[01])\.\d{1,3}\.\d{1,3}$/); // 10.96.0.0/12
    expect(ips.sort()).toEqual([...planClusterIps(EXAMPLE).ips.values()].sort());

    const { cluster } = generateCluster(EXAMPLE);
    const k8s = kubernetesCluster(cluster);
    for (const n of [...k8s.replicas, ...k8s.chains.flat()]) {
      for (const url of [n.url, 'peerUrl' in n ? n.peerUrl : n.url, n.adminUrl]) {
        // An address, never a name: no pod resolves anything.
        expect(new URL(url).hostname, url).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      }
      for (const url of [n.url, 'peerUrl' in n ? n.peerUrl : n.url]) {
        const u = new URL(url);
        const service = services.find((s) => s.spec.clusterIP === u.hostname);
        expect(service, url).toBeDefined();
        expect(service!.metadata.name).toBe(n.id);
        expect(service!.spec.selector).toEqual({ [LABEL.node]: n.id });
        expect(service!.spec.ports.map((p: any) => p.port)).toContain(Number(u.port));
      }
      const pod = all.find((p) => p.endpoint.name === n.id)!;
      expect(pod.endpoint.ports.map((x) => x.port)).toContain(Number(new URL(n.adminUrl).port));
    }
  });

  it('NetworkPolicies cover every pod and allow exactly the neighbour topology', () => {
    expect(checkPolicies(objects, EXAMPLE, DEFAULT_NAMESPACE)).toEqual(EXACT);
  });

  it('no pod may send DNS queries or reach anything outside its neighbours', () => {
    expect(egressProblems(objects)).toEqual([]);
    expect(objects.filter((o) => o.kind === 'NetworkPolicy').map((o) => o.metadata.name)).not.toContain('allow-dns');
    // The policy the manifests used to have is caught both ways.
    const withDns = [...objects, structuredClone(DNS_POLICY) as Obj];
    expect(egressProblems(withDns)).toEqual([
      'allow-dns.egress[0]: to {"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"kube-system"}},"podSelector":{"matchLabels":{"k8s-app":"kube-dns"}}}',
      'allow-dns.egress[0]: port {"protocol":"UDP","port":53}',
      'allow-dns.egress[0]: port {"protocol":"TCP","port":53}',
    ]);
    const dnsEdges = checkPolicies(withDns, EXAMPLE, DEFAULT_NAMESPACE).extra;
    for (const id of ['replica-0', 'fw-0-0', 'fw-1-1', 'stranger-in-namespace']) {
      expect(dnsEdges).toContain(`${id} -> kube-dns:53/UDP`);
      expect(dnsEdges).toContain(`${id} -> kube-dns:53/TCP`);
    }
    // DNS to anywhere (an upstream resolver) as well.
    const anywhere = structuredClone(objects);
    anywhere.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'replicas')!.spec.egress.push({ ports: [{ protocol: 'UDP', port: 53 }] });
    expect(egressProblems(anywhere)).toEqual(['replicas.egress[2]: to any destination', 'replicas.egress[2]: port {"protocol":"UDP","port":53}']);
    expect(checkPolicies(anywhere, EXAMPLE, DEFAULT_NAMESPACE).extra).toContain('replica-0 -> outside:53/UDP');
  });

  it.each([
    { replicas: 4, chains: 1, chainLength: 2 },
    { replicas: 4, chains: 1, chainLength: 3 },
    { replicas: 7, chains: 3, chainLength: 4 },
  ])('other topologies: $replicas replicas, $chains chain(s) of $chainLength — valid, exact reachability', (sizes) => {
    const namespace = 'bank-prod';
    const generated = roundTrip(deploymentManifests({ ...sizes, namespace, image: 'registry.example/cbft:1' }));
    expect(validateAll(generated, fields)).toEqual([]);
    expect(checkPolicies(generated, sizes, namespace)).toEqual(EXACT);
    expect(egressProblems(generated)).toEqual([]);
  });

  it('other Service CIDRs: the Services get the addresses kubernetesCluster puts in cluster.json', () => {
    const sizes = { replicas: 7, chains: 3, chainLength: 4 };
    const ipOptions = { serviceCidr: '10.43.0.0/16', clusterIpBase: '10.43.2.0' }; // k3s
    const generated = roundTrip(deploymentManifests({ ...sizes, ...ipOptions, image: 'registry.example/cbft:1' }));
    expect(validateAll(generated, fields)).toEqual([]);
    const byName = new Map(generated.filter((o) => o.kind === 'Service').map((s) => [s.metadata.name, s.spec.clusterIP]));
    const k8s = kubernetesCluster(generateCluster(sizes).cluster, ipOptions);
    const nodes = [...k8s.replicas, ...k8s.chains.flat()];
    expect(nodes).toHaveLength(7 + 12);
    nodes.forEach((n, i) => {
      expect(new URL(n.url).hostname).toBe(`10.43.2.${i}`);
      expect(byName.get(n.id), n.id).toBe(`10.43.2.${i}`);
    });
  });

  it('the reachability check notices a policy that lets too much through', () => {
    const policy = (list: Obj[], name: string) => list.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === name)!;
    // "Just HTTPS to anywhere" for the replicas: an exfiltration path.
    const https = structuredClone(objects);
    policy(https, 'replicas').spec.egress.push({ ports: [{ protocol: 'TCP', port: 443 }] });
    expect(checkPolicies(https, EXAMPLE, DEFAULT_NAMESPACE)).toEqual({ ...EXACT, extra: ['replica-0 -> outside:443/TCP', 'replica-1 -> outside:443/TCP', 'replica-2 -> outside:443/TCP', 'replica-3 -> outside:443/TCP'] });
    // A middle-less chain whose top also accepts the other chain's bottom.
    const crossChain = structuredClone(objects);
    policy(crossChain, 'fw-0-1').spec.ingress[0].from.push({ podSelector: { matchLabels: { [LABEL.node]: 'fw-1-0' } } });
    policy(crossChain, 'fw-1-0').spec.egress[0].to.push({ podSelector: { matchLabels: { [LABEL.node]: 'fw-0-1' } } });
    expect(checkPolicies(crossChain, EXAMPLE, DEFAULT_NAMESPACE)).toEqual({ ...EXACT, extra: ['fw-1-0 -> fw-0-1:8080/TCP'] });
    // Without the default deny, pods in the namespace that no other policy selects are open.
    const open = checkPolicies(objects.filter((o) => o.metadata.name !== 'default-deny'), EXAMPLE, DEFAULT_NAMESPACE);
    expect(open.uncovered).toEqual(['stranger-in-namespace (Ingress)', 'stranger-in-namespace (Egress)']);
    expect(open.extra).toContain('pod-in-default -> stranger-in-namespace:8080/TCP');
    expect(open.extra).toContain('stranger-in-namespace -> kube-dns:53/UDP');
    expect(open.extra).toContain('stranger-in-namespace -> outside:443/TCP');
    // A top that may not talk to the replicas: the topology is broken, not just loose.
    const cut = structuredClone(objects);
    policy(cut, 'fw-1-1').spec.egress.pop();
    expect(checkPolicies(cut, EXAMPLE, DEFAULT_NAMESPACE).missing).toEqual(['fw-1-1 -> replica-0:7000/TCP', 'fw-1-1 -> replica-1:7000/TCP', 'fw-1-1 -> replica-2:7000/TCP', 'fw-1-1 -> replica-3:7000/TCP']);
  });
});

describe('cbft keygen --kubernetes', () => {
  it('writes the ConfigMap and one Secret per node, valid and matching the workloads', async () => {
    const { mkdtemp, readFile, stat } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = join(await mkdtemp(join(tmpdir(), 'cbft-k8s-')), 'c');
    const r = runCli(['keygen', '--out', dir, '--replicas', '4', '--chains', '2', '--chain-length', '2', '--kubernetes']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/kubernetes\.yaml \(ConfigMap cbft-cluster and 8 Secrets for namespace cbft\)/);
    expect(r.stdout).toMatch(/chain 0: clients connect to http:\/\/10\.96\.0\.68:8080 \(Service fw-0-0; or http:\/\/cbft-entry\.cbft\.svc\)/);
    expect(r.stdout).toMatch(/Services at fixed cluster IPs 10\.96\.0\.64–10\.96\.0\.71 in 10\.96\.0\.0\/12/);
    expect(r.stdout).not.toMatch(/^note:/m);
    const file = join(dir, 'kubernetes.yaml');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const docs = parseYamlDocuments(await readFile(file, 'utf8')) as Obj[];
    expect(validateAll(docs, fields)).toEqual([]);
    const configMap = docs.find((d) => d.kind === 'ConfigMap')!;
    const cluster = validateCluster(JSON.parse(configMap.data['cluster.json']));
    expect(cluster).toEqual(JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')));
    expect(cluster.replicas[2]!.url).toBe(`http://10.96.0.66:${P.replica}`);
    expect(cluster.chains[1]![0]!.peerUrl).toBe(`http://10.96.0.70:${P.bottomPeer}`);
    // The example manifests (same sizes, default flags) give each node's Service the address cluster.json uses.
    const services = files().filter((o) => o.kind === 'Service');
    for (const n of [...cluster.replicas, ...cluster.chains.flat()]) {
      expect(services.find((s) => s.metadata.name === n.id)!.spec.clusterIP, n.id).toBe(new URL(n.url).hostname);
    }
    // Each Secret holds exactly the key file keygen wrote for its node; the workloads mount these names.
    const secrets = docs.filter((d) => d.kind === 'Secret');
    const workloadSecrets = pods(files()).map((p) => p.spec.volumes.find((v: any) => v.secret).secret.secretName);
    expect(secrets.map((s) => s.metadata.name).sort()).toEqual(workloadSecrets.sort());
    for (const s of secrets) {
      const id = s.metadata.labels![LABEL.node]!;
      expect(Object.keys(s.data)).toEqual([`${id}.json`]);
      expect(Buffer.from(s.data[`${id}.json`], 'base64').toString('utf8')).toBe(await readFile(join(dir, 'keys', `${id}.json`), 'utf8'));
    }
  });

  it('takes the Service CIDR and the first cluster IP, and says when they leave the static band', async () => {
    const { mkdtemp, readFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const root = await mkdtemp(join(tmpdir(), 'cbft-k8s-'));
    const sizes = ['--replicas', '4', '--chains', '1', '--chain-length', '2'];
    const urls = async (dir: string) => {
      const c = validateCluster(JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')));
      return [...c.replicas, ...c.chains.flat()].map((n) => new URL(n.url).hostname);
    };
    // k3s: 10.43.0.0/16, base defaults to its address + 64.
    const r1 = runCli(['keygen', '--out', join(root, 'k3s'), ...sizes, '--kubernetes', '--service-cidr', '10.43.0.0/16']);
    expect(r1.stderr).toBe('');
    expect(await urls(join(root, 'k3s'))).toEqual(['10.43.0.64', '10.43.0.65', '10.43.0.66', '10.43.0.67', '10.43.0.68', '10.43.0.69']);
    const r2 = runCli(['keygen', '--out', join(root, 'base'), ...sizes, '--kubernetes', '--cluster-ip-base', '10.100.7.250']);
    expect(r2.stderr).toBe('');
    expect(await urls(join(root, 'base'))).toEqual(['10.100.7.250', '10.100.7.251', '10.100.7.252', '10.100.7.253', '10.100.7.254', '10.100.7.255']);
    expect(r2.stdout).toMatch(/^note: 10\.100\.7\.250–10\.100\.7\.255 lies beyond the static band/m);
  });

  it('refuses --host, --base-port, a bad namespace and bad cluster IPs with --kubernetes, and its flags without it', () => {
    const base = ['keygen', '--out', '/tmp/never', '--replicas', '4', '--chains', '1', '--chain-length', '2'];
    const k8s = (...extra: string[]) => {
      const r = runCli([...base, '--kubernetes', ...extra]);
      expect(r.code, extra.join(' ')).not.toBe(0);
      return r.stderr;
    };
    expect(k8s('--host', '0.0.0.0')).toMatch(/do not apply with --kubernetes/);
    expect(k8s('--base-port', '9000')).toMatch(/do not apply with --kubernetes/);
    expect(k8s('--namespace', 'Bad_NS')).toMatch(/--namespace must be a DNS label/);
    // Through the CLI, before anything is written; every other case of planClusterIps below.
    expect(k8s('--service-cidr', 'fd00:10:96::/112')).toMatch(/IPv6 is not supported/);
    expect(k8s('--cluster-ip-base', '10.96.0.5')).toMatch(/includes 10\.96\.0\.10, the address of cluster DNS/);
    const sizes = { replicas: 4, chains: 1, chainLength: 2 };
    const plan = (serviceCidr?: string, clusterIpBase?: string) => () => planClusterIps(sizes, { serviceCidr, clusterIpBase });
    expect(plan('10.96.0.0')).toThrow(/--service-cidr must be an IPv4 CIDR like 10\.96\.0\.0\/12/);
    expect(plan('10.96.0.1/12')).toThrow(/has host bits set; the range is 10\.96\.0\.0\/12/);
    expect(plan('10.96.0.0/31')).toThrow(/prefix must be \/1 to \/30/);
    expect(plan(undefined, '10.96.0.256')).toThrow(/--cluster-ip-base must be an IPv4 address/);
    expect(plan(undefined, '010.96.0.64')).toThrow(/--cluster-ip-base must be an IPv4 address/);
    expect(plan(undefined, 'fd00::40')).toThrow(/IPv6 is not supported/);
    expect(plan(undefined, '10.43.0.64')).toThrow(/--cluster-ip-base 10\.43\.0\.64 is outside --service-cidr 10\.96\.0\.0\/12/);
    expect(plan('10.96.0.0/24', '10.96.0.252')).toThrow(
      /the 6 Services need 10\.96\.0\.252–10\.96\.1\.1, past the last usable address of --service-cidr 10\.96\.0\.0\/24 \(10\.96\.0\.254\)/,
    );
    expect(plan('10.96.0.0/24', '10.96.0.249')).not.toThrow(); // up to .254, short of the broadcast address
    expect(plan(undefined, '10.96.0.0')).toThrow(/is the network address/);
    expect(plan(undefined, '10.96.0.1')).toThrow(/includes 10\.96\.0\.1, the address of the `kubernetes` API Service/);
    expect(plan(undefined, '10.96.0.11')).not.toThrow();
    for (const flag of ['--namespace', '--service-cidr', '--cluster-ip-base']) {
      expect(runCli([...base, flag, 'x']).stderr).toMatch(new RegExp(`${flag} needs --kubernetes`));
    }
  });

  it('assigns distinct, consecutive IPv4 cluster IPs inside the Service CIDR', () => {
    for (const [sizes, options] of [
      [{ replicas: 4, chains: 2, chainLength: 2 }, {}],
      [{ replicas: 100, chains: 10, chainLength: 5 }, { serviceCidr: '172.20.0.0/16', clusterIpBase: '172.20.0.11' }],
    ] as const) {
      const plan = planClusterIps(sizes, options);
      const ips = [...plan.ips.values()];
      expect(plan.ips.size).toBe(sizes.replicas + sizes.chains * sizes.chainLength);
      expect(new Set(ips).size).toBe(ips.length);
      const [net, prefix] = (options.serviceCidr ?? DEFAULT_SERVICE_CIDR).split('/');
      const num = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
      for (const [i, ip] of ips.entries()) {
        expect(ip).toMatch(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
        expect(num(ip) - num(ips[0]!)).toBe(i);
        expect(Math.floor(num(ip) / 2 ** (32 - Number(prefix)))).toBe(num(net!) / 2 ** (32 - Number(prefix)));
      }
      expect([plan.first, plan.last]).toEqual([ips[0], ips.at(-1)]);
    }
    expect(planClusterIps({ replicas: 4, chains: 2, chainLength: 2 }).inStaticBand).toBe(true);
    expect(planClusterIps({ replicas: 100, chains: 10, chainLength: 5 }, { serviceCidr: '172.20.0.0/16', clusterIpBase: '172.20.0.11' }).inStaticBand).toBe(true);
    expect(planClusterIps({ replicas: 100, chains: 10, chainLength: 20 }, { serviceCidr: '172.20.0.0/16', clusterIpBase: '172.20.0.11' }).inStaticBand).toBe(false);
  });

  it('clusterResources round-trips through YAML', () => {
    const { cluster, keys } = generateCluster({ replicas: 4, chains: 1, chainLength: 2 });
    const docs = clusterResources(kubernetesCluster(cluster), keys, 'x');
    expect(parseYamlDocuments(toYaml(docs))).toEqual(docs.map((d) => d.object));
  });
});

function files(): Obj[] {
  return yamlFiles().flatMap(parseFile);
}
