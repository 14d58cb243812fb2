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
  ENTRY_SERVICE,
  IMAGE_UID,
  KUBERNETES_PORTS as P,
  LABEL,
  clusterResources,
  deploymentManifests,
  keySecretName,
  kubernetesCluster,
  manifestText,
  toYaml,
} from '../../src/cluster/kubernetes.js';
import { generateCluster } from '../../src/cluster/keygen.js';
import { firewallId, replicaId, validateCluster } from '../../src/cluster/config.js';
import { runCli } from '../helpers/cli.js';

/**
 * The Kubernetes manifests of examples/kubernetes/: every file parses, every object validates
 * against the Kubernetes schemas (kubernetes-models) and uses only known field names, the files
 * are what the generator writes, and the NetworkPolicies allow exactly the cbft topology (computed
 * from the policies, for the example and for other sizes, middle nodes included).
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
    { name: 'outside', ports: [{ port: 443, protocol: 'TCP' }] },
    { name: 'kube-dns', namespace: 'kube-system', namespaceLabels: { 'kubernetes.io/metadata.name': 'kube-system' }, labels: { 'k8s-app': 'kube-dns' }, ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] },
    { name: 'pod-in-default', namespace: 'default', namespaceLabels: { 'kubernetes.io/metadata.name': 'default' }, labels: { app: 'web' }, ports: [{ port: 80, protocol: 'TCP' }] },
    { name: 'stranger-in-namespace', namespace, namespaceLabels: { 'kubernetes.io/metadata.name': namespace }, labels: { app: 'debug' }, ports: [{ port: 8080, protocol: 'TCP' }] },
  ];
}

/** DESIGN.md's topology: bottom ↔ clients, fw-c-k ↔ fw-c-(k±1), top ↔ sidecars, sidecar ↔ sidecar; DNS for every pod. */
function expectedEdges(sizes: typeof EXAMPLE, namespace: string): Set<string> {
  const tcp = (port: number): Port => ({ port, protocol: 'TCP' });
  const out = new Set<string>();
  const replicas = Array.from({ length: sizes.replicas }, (_, i) => replicaId(i));
  const inNamespace = [...replicas, 'stranger-in-namespace'];
  for (let c = 0; c < sizes.chains; c++) {
    const top = firewallId(c, sizes.chainLength - 1);
    for (const client of ['outside', 'pod-in-default', 'kube-dns']) out.add(edge(client, firewallId(c, 0), tcp(P.firewall)));
    for (let k = 0; k < sizes.chainLength; k++) inNamespace.push(firewallId(c, k));
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
  for (const n of inNamespace) {
    out.add(edge(n, 'kube-dns', { port: 53, protocol: 'UDP' }));
    out.add(edge(n, 'kube-dns', tcp(53)));
  }
  void namespace;
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
  const expected = expectedEdges(sizes, namespace);
  return {
    uncovered,
    extra: [...actual].filter((e) => !expected.has(e)).sort(),
    missing: [...expected].filter((e) => !actual.has(e)).sort(),
  };
}

const EXACT: PolicyReport = { uncovered: [], extra: [], missing: [] };

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

    const { cluster } = generateCluster(EXAMPLE);
    const k8s = kubernetesCluster(cluster, DEFAULT_NAMESPACE);
    for (const n of [...k8s.replicas, ...k8s.chains.flat()]) {
      for (const url of [n.url, 'peerUrl' in n ? n.peerUrl : n.url]) {
        const u = new URL(url);
        const [name, ns, svc] = u.hostname.split('.');
        expect([ns, svc]).toEqual([DEFAULT_NAMESPACE, 'svc']);
        const service = services.find((s) => s.metadata.name === name);
        expect(service, url).toBeDefined();
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

  it.each([
    { replicas: 4, chains: 1, chainLength: 2 },
    { replicas: 4, chains: 1, chainLength: 3 },
    { replicas: 7, chains: 3, chainLength: 4 },
  ])('other topologies: $replicas replicas, $chains chain(s) of $chainLength — valid, exact reachability', (sizes) => {
    const namespace = 'bank-prod';
    const generated = roundTrip(deploymentManifests({ ...sizes, namespace, image: 'registry.example/cbft:1' }));
    expect(validateAll(generated, fields)).toEqual([]);
    expect(checkPolicies(generated, sizes, namespace)).toEqual(EXACT);
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
    expect(open.uncovered).toEqual(['stranger-in-namespace (Ingress)']);
    expect(open.extra).toContain('pod-in-default -> stranger-in-namespace:8080/TCP');
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
    expect(r.stdout).toMatch(/chain 0: clients connect to http:\/\/fw-0-0\.cbft\.svc:8080/);
    const file = join(dir, 'kubernetes.yaml');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const docs = parseYamlDocuments(await readFile(file, 'utf8')) as Obj[];
    expect(validateAll(docs, fields)).toEqual([]);
    const configMap = docs.find((d) => d.kind === 'ConfigMap')!;
    const cluster = validateCluster(JSON.parse(configMap.data['cluster.json']));
    expect(cluster).toEqual(JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')));
    expect(cluster.replicas[2]!.url).toBe(`http://replica-2.cbft.svc:${P.replica}`);
    expect(cluster.chains[1]![0]!.peerUrl).toBe(`http://fw-1-0.cbft.svc:${P.bottomPeer}`);
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

  it('refuses --host, --base-port and a bad namespace with --kubernetes, and --namespace without it', () => {
    const base = ['keygen', '--out', '/tmp/never', '--replicas', '4', '--chains', '1', '--chain-length', '2'];
    expect(runCli([...base, '--kubernetes', '--host', '0.0.0.0']).stderr).toMatch(/do not apply with --kubernetes/);
    expect(runCli([...base, '--kubernetes', '--base-port', '9000']).stderr).toMatch(/do not apply with --kubernetes/);
    expect(runCli([...base, '--kubernetes', '--namespace', 'Bad_NS']).stderr).toMatch(/--namespace must be a DNS label/);
    expect(runCli([...base, '--namespace', 'x']).stderr).toMatch(/--namespace needs --kubernetes/);
  });

  it('clusterResources round-trips through YAML', () => {
    const { cluster, keys } = generateCluster({ replicas: 4, chains: 1, chainLength: 2 });
    const docs = clusterResources(kubernetesCluster(cluster, 'x'), keys, 'x');
    expect(parseYamlDocuments(toYaml(docs))).toEqual(docs.map((d) => d.object));
  });
});

function files(): Obj[] {
  return yamlFiles().flatMap(parseFile);
}
