import { CbftError, ErrorCodes } from '../errors.js';
import { firewallId, replicaId, validateCluster, type ClusterConfig } from './config.js';
import type { NodeKeys } from './keys.js';

/**
 * Kubernetes: the objects that run a cluster there (examples/kubernetes/ holds them for the
 * example topology), and the ConfigMap and Secrets `cbft keygen --kubernetes` writes.
 *
 * Every node gets its own Service, named after its id, at a fixed cluster IP (`spec.clusterIP`,
 * assigned in order from --cluster-ip-base inside the cluster's Service CIDR), and cluster.json
 * advertises `http://<cluster IP>:<port>`: no pod resolves a name, so no pod needs DNS, and the
 * NetworkPolicies allow no egress but cbft neighbours (DNS is a way out: CoreDNS forwards query
 * names upstream). Every pod listens on the same fixed ports (the containers bind 0.0.0.0 with
 * `--bind`). Each node has its own key, so each is its own workload with exactly one pod; a replica
 * pod holds the unmodified service container (bound to 127.0.0.1) and the cbft sidecar.
 * NetworkPolicies deny everything, then allow exactly the topology of DESIGN.md: bottom ↔ clients,
 * fw-c-k ↔ fw-c-(k±1), top ↔ sidecars, sidecar ↔ sidecar.
 */

export const DEFAULT_NAMESPACE = 'cbft';

/** Fixed ports inside every pod (each pod has its own IP, so they never clash). */
export const KUBERNETES_PORTS = {
  /** The sidecar's peer port (replicas' `url`). */
  replica: 7000,
  /** A firewall node's `url`: clients for a bottom node, the lower neighbour otherwise (= peerUrl above the bottom). */
  firewall: 8080,
  /** A bottom node's `peerUrl`, where its upper neighbour delivers replies. */
  bottomPeer: 8081,
  /** Every node's admin listener: /healthz, /readyz, /metrics. */
  admin: 9090,
  /** Where the example service listens, on 127.0.0.1 inside the replica pod. */
  upstream: 3000,
} as const;

/** The uid and gid the image runs as (Dockerfile `USER`). */
export const IMAGE_UID = 10001;

export const LABEL = {
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  partOf: 'app.kubernetes.io/part-of',
  role: 'cbft/role',
  node: 'cbft/node',
  chain: 'cbft/chain',
  position: 'cbft/position',
  tier: 'cbft/tier',
} as const;

export const CLUSTER_CONFIGMAP = 'cbft-cluster';
export const keySecretName = (id: string) => `cbft-key-${id}`;
/** The Service clients use: every chain's bottom node behind one readiness-gated name. */
export const ENTRY_SERVICE = 'cbft-entry';

const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function checkNamespace(namespace: string): string {
  if (namespace.length > 63 || !DNS_LABEL_RE.test(namespace)) {
    throw new CbftError(ErrorCodes.USAGE, `--namespace must be a DNS label (lower-case letters, digits and '-', at most 63), got ${JSON.stringify(namespace)}`);
  }
  return namespace;
}

export function serviceHost(id: string, namespace: string): string {
  return `${id}.${namespace}.svc`;
}

// ---------------------------------------------------------------------------------------------
// Fixed cluster IPs

/** kube-apiserver's default --service-cluster-ip-range with kubeadm and minikube; kind's 10.96.0.0/16 lies inside it. */
export const DEFAULT_SERVICE_CIDR = '10.96.0.0/12';
/**
 * The first node's Service gets the CIDR's address + 64 by default: inside the band Kubernetes
 * keeps for static cluster IPs (the first min(max(16, size/16), 256) addresses: dynamic allocation
 * takes them only when the rest of the range is full), and clear of .1 (the `kubernetes` Service)
 * and .10 (cluster DNS by convention). 10.96.0.64 with the default CIDR.
 */
export const DEFAULT_CLUSTER_IP_OFFSET = 64;

export interface ClusterIpOptions {
  /** The cluster's Service CIDR (IPv4), default DEFAULT_SERVICE_CIDR. */
  serviceCidr?: string;
  /** The first node's cluster IP; default: the CIDR's address + DEFAULT_CLUSTER_IP_OFFSET. */
  clusterIpBase?: string;
}

export interface ClusterIpPlan {
  serviceCidr: string;
  /** Node id → its Service's cluster IP: replicas in order, then each chain bottom first. */
  ips: Map<string, string>;
  first: string;
  last: string;
  /** Whether every IP lies in the static band, where no Service created without a fixed IP takes it first. */
  inStaticBand: boolean;
}

type Sizes = Pick<ManifestOptions, 'replicas' | 'chains' | 'chainLength'>;

const usageError = (message: string) => new CbftError(ErrorCodes.USAGE, message);

function parseIpv4(text: string, what: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  const octets = m ? m.slice(1) : [];
  // No leading zeros: some parsers read 010 as octal.
  if (!m || octets.some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0')))) {
    const v6 = text.includes(':') ? ' (IPv6 is not supported: give the IPv4 Service CIDR of a single-stack or dual-stack cluster)' : '';
    throw usageError(`${what} must be an IPv4 address like 10.96.0.64, got ${JSON.stringify(text)}${v6}`);
  }
  return octets.reduce((n, o) => n * 256 + Number(o), 0);
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function parseCidr(text: string): { network: number; size: number } {
  const m = /^([^/]*)\/(\d{1,2})$/.exec(text);
  if (!m) {
    const v6 = text.includes(':') ? ' (IPv6 is not supported: give the IPv4 Service CIDR of a single-stack or dual-stack cluster)' : '';
    throw usageError(`--service-cidr must be an IPv4 CIDR like ${DEFAULT_SERVICE_CIDR}, got ${JSON.stringify(text)}${v6}`);
  }
  const network = parseIpv4(m[1]!, '--service-cidr');
  const prefix = Number(m[2]);
  if (prefix < 1 || prefix > 30) throw usageError(`--service-cidr prefix must be /1 to /30, got /${prefix}`);
  const size = 2 ** (32 - prefix);
  if (network % size !== 0) {
    throw usageError(`--service-cidr ${text} has host bits set; the range is ${formatIpv4(network - (network % size))}/${prefix}`);
  }
  return { network, size };
}

/** Node ids in the order their cluster IPs are assigned (keygen's port order). */
function nodeOrder(o: Sizes): string[] {
  const { replicas, firewalls } = nodesOf(o);
  return [...replicas, ...firewalls.flat()].map((n) => n.id);
}

/**
 * One cluster IP per node, consecutive from the base, all inside the Service CIDR, none of them
 * the network or broadcast address, the `kubernetes` Service's (.1) or cluster DNS's (.10).
 * Throws a usage error naming the flag to change.
 */
export function planClusterIps(sizes: Sizes, options: ClusterIpOptions = {}): ClusterIpPlan {
  const serviceCidr = options.serviceCidr ?? DEFAULT_SERVICE_CIDR;
  const { network, size } = parseCidr(serviceCidr);
  const base = options.clusterIpBase === undefined ? network + DEFAULT_CLUSTER_IP_OFFSET : parseIpv4(options.clusterIpBase, '--cluster-ip-base');
  const ids = nodeOrder(sizes);
  const firstOffset = base - network;
  const lastOffset = firstOffset + ids.length - 1;
  const range = `${formatIpv4(base)}–${formatIpv4(base + ids.length - 1)}`;
  if (firstOffset < 0 || firstOffset >= size) {
    throw usageError(`--cluster-ip-base ${formatIpv4(base)} is outside --service-cidr ${serviceCidr}`);
  }
  if (firstOffset === 0) throw usageError(`--cluster-ip-base ${formatIpv4(base)} is the network address of ${serviceCidr}; no Service can have it`);
  if (lastOffset >= size - 1) {
    throw usageError(
      `the ${ids.length} Services need ${range}, past the last usable address of --service-cidr ${serviceCidr} (${formatIpv4(network + size - 2)}): pick a lower --cluster-ip-base`,
    );
  }
  for (const [offset, owner] of [
    [1, 'the `kubernetes` API Service, in every cluster'],
    [10, 'cluster DNS, by convention (kubeadm, kind, minikube, k3s)'],
  ] as const) {
    if (firstOffset <= offset && offset <= lastOffset) {
      throw usageError(`the ${ids.length} Services need ${range}, which includes ${formatIpv4(network + offset)}, the address of ${owner}: pick another --cluster-ip-base`);
    }
  }
  const ips = new Map(ids.map((id, i) => [id, formatIpv4(base + i)]));
  const staticBand = Math.min(Math.max(16, size / 16), 256);
  return { serviceCidr, ips, first: formatIpv4(base), last: formatIpv4(base + ids.length - 1), inStaticBand: lastOffset <= staticBand };
}

/**
 * The cluster with every URL pointing at the node's Service by its fixed cluster IP:
 * `http://<cluster IP>:<fixed port>` (planClusterIps). Keys and settings are unchanged; the result
 * is validated like any cluster.json.
 */
export function kubernetesCluster(cluster: ClusterConfig, options: ClusterIpOptions = {}): ClusterConfig {
  const plan = planClusterIps({ replicas: cluster.replicas.length, chains: cluster.chains.length, chainLength: cluster.f + 1 }, options);
  const url = (id: string, port: number) => `http://${plan.ips.get(id)!}:${port}`;
  const P = KUBERNETES_PORTS;
  return validateCluster({
    ...cluster,
    replicas: cluster.replicas.map((r) => ({ ...r, url: url(r.id, P.replica), adminUrl: url(r.id, P.admin) })),
    chains: cluster.chains.map((chain) =>
      chain.map((n) => ({
        ...n,
        url: url(n.id, P.firewall),
        peerUrl: url(n.id, n.position === 0 ? P.bottomPeer : P.firewall),
        adminUrl: url(n.id, P.admin),
      })),
    ),
  });
}

// ---------------------------------------------------------------------------------------------
// Objects

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; [key: string]: Json }; [key: string]: Json };

/** One YAML document: the object and the comment written above it. */
export interface Doc {
  comment?: string;
  object: K8sObject;
}

export interface ManifestFile {
  name: string;
  /** Comment at the top of the file. */
  header: string;
  docs: Doc[];
}

const commonLabels = (component: string): Record<string, string> => ({
  [LABEL.name]: 'cbft',
  [LABEL.partOf]: 'cbft',
  [LABEL.component]: component,
});

/** The ConfigMap with cluster.json and one Secret per node with its key file (`cbft keygen --kubernetes`). */
export function clusterResources(cluster: ClusterConfig, keys: NodeKeys[], namespace = DEFAULT_NAMESPACE): Doc[] {
  checkNamespace(namespace);
  const docs: Doc[] = [
    {
      comment: 'Public: every node reads it (mounted at /etc/cbft/cluster.json by the pods).',
      object: {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: CLUSTER_CONFIGMAP, namespace, labels: commonLabels('cluster') },
        data: { 'cluster.json': JSON.stringify(cluster, null, 2) + '\n' },
      },
    },
  ];
  for (const k of keys) {
    docs.push({
      comment: `Secret: ${k.id}'s keys; only ${k.id}'s pod mounts it.`,
      object: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: keySecretName(k.id), namespace, labels: { ...commonLabels('key'), [LABEL.node]: k.id } },
        type: 'Opaque',
        data: { [`${k.id}.json`]: Buffer.from(JSON.stringify(k, null, 2) + '\n', 'utf8').toString('base64') },
      },
    });
  }
  return docs;
}

export interface ServiceContainer {
  /** Container name in the replica pod. */
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value: string }[];
  /** Where it listens on 127.0.0.1 (the sidecar's --upstream). */
  port: number;
}

export interface ManifestOptions extends ClusterIpOptions {
  replicas: number;
  chains: number;
  chainLength: number;
  namespace?: string;
  /** The cbft image. */
  image: string;
  /** The legacy service; default: the example bank service from the cbft image. */
  service?: ServiceContainer;
  /** Size of each replica's volume for the sidecar's write-ahead log. */
  storage?: string;
}

/** ManifestOptions with the defaults filled in; the cluster IPs are planned apart (planClusterIps). */
type Resolved = Required<Omit<ManifestOptions, keyof ClusterIpOptions>>;

export function exampleService(image: string): ServiceContainer {
  return {
    name: 'bank',
    image,
    command: ['node', '/app/examples/bank/server.mjs'],
    env: [
      { name: 'HOST', value: '127.0.0.1' },
      { name: 'PORT', value: String(KUBERNETES_PORTS.upstream) },
      // Serves Date, Math.random and crypto.randomUUID from the sidecar's cbft-* headers.
      { name: 'NODE_OPTIONS', value: '--require /app/adapters/node-deterministic.cjs' },
    ],
    port: KUBERNETES_PORTS.upstream,
  };
}

type Tier = 'bottom' | 'middle' | 'top';
const tierOf = (position: number, chainLength: number): Tier => (position === 0 ? 'bottom' : position === chainLength - 1 ? 'top' : 'middle');

interface NodeInfo {
  id: string;
  role: 'replica' | 'firewall';
  chain?: number;
  position?: number;
  tier?: Tier;
}

function podLabels(n: NodeInfo): Record<string, string> {
  const labels: Record<string, string> = { ...commonLabels(n.role === 'replica' ? 'replica' : 'firewall'), [LABEL.role]: n.role, [LABEL.node]: n.id };
  if (n.role === 'firewall') {
    labels[LABEL.chain] = String(n.chain);
    labels[LABEL.position] = String(n.position);
    labels[LABEL.tier] = n.tier!;
  }
  return labels;
}

const CLUSTER_DIR = '/etc/cbft';
const DATA_DIR = '/var/lib/cbft';

/**
 * Kubernetes mounts Secret files owned by root (group fsGroup, mode at least 0440 with fsGroup),
 * and cbft refuses a key file that group or others can read. This init step copies cluster.json
 * and the node's key into an in-memory emptyDir as the image's user, with mode 0600.
 */
const COPY_SCRIPT = [
  "const fs = require('fs');",
  "fs.mkdirSync('/etc/cbft/keys', { recursive: true, mode: 0o700 });",
  "fs.copyFileSync('/config/cluster.json', '/etc/cbft/cluster.json');",
  "for (const f of fs.readdirSync('/secret')) if (!f.startsWith('.') && f.endsWith('.json')) {",
  "  fs.copyFileSync('/secret/' + f, '/etc/cbft/keys/' + f);",
  "  fs.chmodSync('/etc/cbft/keys/' + f, 0o600);",
  "  console.log('installed key ' + f);",
  '}',
].join('\n');

const restrictedContainer = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } };

function podSpecBase(n: NodeInfo, image: string): { volumes: Json[]; initContainers: Json[]; securityContext: Json; rest: Record<string, Json> } {
  return {
    securityContext: {
      runAsNonRoot: true,
      runAsUser: IMAGE_UID,
      runAsGroup: IMAGE_UID,
      // Makes the Secret and the data volume readable/writable by the image's group.
      fsGroup: IMAGE_UID,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    rest: {
      // Pods need no Kubernetes API access; the legacy service gets no Service env variables.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 30,
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: 'kubernetes.io/hostname',
          // Spread when the cluster has the nodes; still schedule on a one-node cluster.
          whenUnsatisfiable: 'ScheduleAnyway',
          labelSelector: { matchLabels: { [LABEL.role]: n.role } },
        },
      ],
    },
    volumes: [
      { name: 'cluster-config', configMap: { name: CLUSTER_CONFIGMAP, items: [{ key: 'cluster.json', path: 'cluster.json' }] } },
      { name: 'node-key', secret: { secretName: keySecretName(n.id), defaultMode: 0o400 } },
      { name: 'cluster-dir', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
    ],
    initContainers: [
      {
        name: 'install-keys',
        image,
        imagePullPolicy: 'IfNotPresent',
        command: ['node', '-e', COPY_SCRIPT],
        securityContext: restrictedContainer,
        resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '64Mi' } },
        volumeMounts: [
          { name: 'cluster-config', mountPath: '/config', readOnly: true },
          { name: 'node-key', mountPath: '/secret', readOnly: true },
          { name: 'cluster-dir', mountPath: CLUSTER_DIR },
        ],
      },
    ],
  };
}

function probes(): Record<string, Json> {
  const get = (path: string) => ({ httpGet: { path, port: KUBERNETES_PORTS.admin } });
  return {
    startupProbe: { ...get('/healthz'), periodSeconds: 2, failureThreshold: 30, timeoutSeconds: 2 },
    livenessProbe: { ...get('/healthz'), periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 2 },
    readinessProbe: { ...get('/readyz'), periodSeconds: 5, failureThreshold: 2, timeoutSeconds: 2 },
  };
}

function replicaWorkload(n: NodeInfo, o: Resolved): Doc {
  const base = podSpecBase(n, o.image);
  const P = KUBERNETES_PORTS;
  const labels = podLabels(n);
  const svc = o.service;
  const sidecar: Json = {
    name: 'cbft-sidecar',
    image: o.image,
    imagePullPolicy: 'IfNotPresent',
    // A native sidecar: started before the service container, stopped after it.
    restartPolicy: 'Always',
    args: ['sidecar', '--cluster', CLUSTER_DIR, '--id', n.id, '--upstream', `http://127.0.0.1:${svc.port}`, '--data', DATA_DIR, '--bind', '0.0.0.0'],
    ports: [
      { name: 'cbft', containerPort: P.replica, protocol: 'TCP' },
      { name: 'admin', containerPort: P.admin, protocol: 'TCP' },
    ],
    ...probes(),
    securityContext: restrictedContainer,
    resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } },
    volumeMounts: [
      { name: 'cluster-dir', mountPath: CLUSTER_DIR, readOnly: true },
      { name: 'data', mountPath: DATA_DIR },
    ],
  };
  const service: Record<string, Json> = { name: svc.name, image: svc.image, imagePullPolicy: 'IfNotPresent' };
  if (svc.command) service.command = svc.command;
  if (svc.args) service.args = svc.args;
  if (svc.env) service.env = svc.env;
  // No ports: it listens on 127.0.0.1 only, so nothing outside the pod can reach it.
  service.securityContext = restrictedContainer;
  service.resources = { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } };
  return {
    comment:
      `${n.id}: the unmodified service (127.0.0.1:${svc.port}) and the cbft sidecar in one pod. A StatefulSet of one:\n` +
      `its own key, a volume for the write-ahead log, and never two pods with the same identity.`,
    object: {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: n.id, namespace: o.namespace, labels },
      spec: {
        replicas: 1,
        serviceName: n.id,
        selector: { matchLabels: { [LABEL.node]: n.id } },
        template: {
          metadata: { labels },
          spec: {
            ...base.rest,
            securityContext: base.securityContext,
            initContainers: [...base.initContainers, sidecar],
            containers: [service as Json],
            volumes: base.volumes,
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data', labels: { [LABEL.node]: n.id } },
            spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: o.storage } } },
          },
        ],
      },
    },
  };
}

function firewallWorkload(n: NodeInfo, o: Resolved): Doc {
  const base = podSpecBase(n, o.image);
  const P = KUBERNETES_PORTS;
  const labels = podLabels(n);
  const ports: Json[] = [{ name: n.tier === 'bottom' ? 'http' : 'cbft', containerPort: P.firewall, protocol: 'TCP' }];
  if (n.tier === 'bottom') ports.push({ name: 'peer', containerPort: P.bottomPeer, protocol: 'TCP' });
  ports.push({ name: 'admin', containerPort: P.admin, protocol: 'TCP' });
  return {
    comment: `${n.id}: ${n.tier} node of chain ${n.chain}. One pod; Recreate so two pods never share its key.`,
    object: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: n.id, namespace: o.namespace, labels },
      spec: {
        replicas: 1,
        strategy: { type: 'Recreate' },
        selector: { matchLabels: { [LABEL.node]: n.id } },
        template: {
          metadata: { labels },
          spec: {
            ...base.rest,
            securityContext: base.securityContext,
            initContainers: base.initContainers,
            containers: [
              {
                name: 'cbft-firewall',
                image: o.image,
                imagePullPolicy: 'IfNotPresent',
                args: ['firewall', '--cluster', CLUSTER_DIR, '--id', n.id, '--bind', '0.0.0.0'],
                ports,
                ...probes(),
                securityContext: restrictedContainer,
                resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } },
                volumeMounts: [{ name: 'cluster-dir', mountPath: CLUSTER_DIR, readOnly: true }],
              },
            ],
            volumes: base.volumes,
          },
        },
      },
    },
  };
}

function nodeService(n: NodeInfo, namespace: string, clusterIP: string): Doc {
  const P = KUBERNETES_PORTS;
  const port = (name: string, p: number) => ({ name, port: p, targetPort: p, protocol: 'TCP' });
  const ports =
    n.role === 'replica' ? [port('cbft', P.replica)] : n.tier === 'bottom' ? [port('http', P.firewall), port('peer', P.bottomPeer)] : [port('cbft', P.firewall)];
  return {
    object: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: n.id, namespace, labels: podLabels(n) },
      spec: {
        type: 'ClusterIP',
        // Fixed: cluster.json names the node by this address (cbft keygen --kubernetes), so no pod needs DNS.
        clusterIP,
        selector: { [LABEL.node]: n.id },
        ports,
        // Neighbours must reach a node that is starting or catching up; readiness only gates clients.
        publishNotReadyAddresses: true,
      },
    },
  };
}

function nodesOf(o: Pick<ManifestOptions, 'replicas' | 'chains' | 'chainLength'>): { replicas: NodeInfo[]; firewalls: NodeInfo[][] } {
  const replicas = Array.from({ length: o.replicas }, (_, i): NodeInfo => ({ id: replicaId(i), role: 'replica' }));
  const firewalls = Array.from({ length: o.chains }, (_, c) =>
    Array.from({ length: o.chainLength }, (_, k): NodeInfo => ({ id: firewallId(c, k), role: 'firewall', chain: c, position: k, tier: tierOf(k, o.chainLength) })),
  );
  return { replicas, firewalls };
}

function networkPolicies(o: Resolved): Doc[] {
  const P = KUBERNETES_PORTS;
  const ns = o.namespace;
  const tcp = (port: number) => ({ protocol: 'TCP', port });
  const node = (id: string) => ({ podSelector: { matchLabels: { [LABEL.node]: id } } });
  const policy = (name: string, podSelector: Json, ingress: Json[] | undefined, egress: Json[] | undefined): K8sObject => {
    const policyTypes = [...(ingress ? ['Ingress'] : []), ...(egress ? ['Egress'] : [])];
    const spec: Record<string, Json> = { podSelector, policyTypes };
    if (ingress) spec.ingress = ingress;
    if (egress) spec.egress = egress;
    return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: ns, labels: commonLabels('network-policy') }, spec };
  };
  const { firewalls } = nodesOf(o);
  const replicaPeers = { podSelector: { matchLabels: { [LABEL.role]: 'replica' } } };
  const tops = { podSelector: { matchLabels: { [LABEL.role]: 'firewall', [LABEL.tier]: 'top' } } };
  /** The port a firewall node's neighbours deliver frames to (its peerUrl). */
  const peerPort = (n: NodeInfo) => (n.tier === 'bottom' ? P.bottomPeer : P.firewall);

  const docs: Doc[] = [
    {
      comment:
        'Every pod in the namespace: no traffic in or out unless a policy below allows it. No DNS either:\n' +
        "cluster.json names every node by its Service's fixed cluster IP, so no pod resolves names, and\n" +
        'a query name forwarded upstream by the cluster DNS would be a way out.',
      object: policy('default-deny', {}, [], []),
    },
    {
      comment:
        'Replica pods (sidecar and service share the pod network): in and out only to peer sidecars and top\n' +
        'firewall nodes. Nothing else, so a compromised service has nowhere to send data but through cbft.',
      object: policy(
        'replicas',
        { matchLabels: { [LABEL.role]: 'replica' } },
        [{ from: [replicaPeers, tops], ports: [tcp(P.replica)] }],
        [
          { to: [replicaPeers], ports: [tcp(P.replica)] },
          { to: [tops], ports: [tcp(P.firewall)] },
        ],
      ),
    },
  ];
  for (const chain of firewalls) {
    for (const n of chain) {
      const below = n.position! > 0 ? chain[n.position! - 1]! : undefined;
      const above = n.position! < chain.length - 1 ? chain[n.position! + 1]! : undefined;
      const ingress: Json[] = [];
      const egress: Json[] = [];
      if (!below) ingress.push({ ports: [tcp(P.firewall)] }); // clients: from anywhere
      else {
        ingress.push({ from: [node(below.id)], ports: [tcp(P.firewall)] });
        egress.push({ to: [node(below.id)], ports: [tcp(peerPort(below))] });
      }
      if (above) {
        ingress.push({ from: [node(above.id)], ports: [tcp(peerPort(n))] });
        egress.push({ to: [node(above.id)], ports: [tcp(P.firewall)] });
      } else {
        ingress.push({ from: [replicaPeers], ports: [tcp(P.firewall)] });
        egress.push({ to: [replicaPeers], ports: [tcp(P.replica)] });
      }
      const who = below ? `${below.id} below` : 'clients below';
      const up = above ? `${above.id} above` : 'the replicas above';
      docs.push({ comment: `${n.id} (${n.tier}): only ${who} and ${up}.`, object: policy(n.id, { matchLabels: { [LABEL.node]: n.id } }, ingress, egress) });
    }
  }
  return docs;
}

/**
 * Voluntary disruptions (node drains, upgrades) take down at most s replicas, which PBFT tolerates,
 * and leave at least one chain whole when there are several.
 */
function disruptionBudget(role: 'replica' | 'firewall', maxUnavailable: number, namespace: string, why: string): Doc {
  return {
    comment: why,
    object: {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: `${role}s`, namespace, labels: commonLabels(role) },
      spec: { maxUnavailable, selector: { matchLabels: { [LABEL.role]: role } } },
    },
  };
}

/** The files of examples/kubernetes/ for one topology, in apply order (keys come from keygen). */
export function deploymentManifests(options: ManifestOptions): ManifestFile[] {
  const { serviceCidr, clusterIpBase, ...rest } = options;
  const o: Resolved = {
    namespace: DEFAULT_NAMESPACE,
    storage: '1Gi',
    service: exampleService(options.image),
    ...rest,
  };
  checkNamespace(o.namespace);
  const plan = planClusterIps(o, { serviceCidr, clusterIpBase });
  const ip = (n: NodeInfo) => plan.ips.get(n.id)!;
  const { replicas, firewalls } = nodesOf(o);
  const size = `${o.replicas} replicas, ${o.chains} chain(s) of ${o.chainLength}`;
  return [
    {
      name: '00-namespace.yaml',
      header: 'The namespace. Pods must meet the "restricted" Pod Security Standard.',
      docs: [
        {
          object: {
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: {
              name: o.namespace,
              labels: {
                ...commonLabels('namespace'),
                'pod-security.kubernetes.io/enforce': 'restricted',
                'pod-security.kubernetes.io/warn': 'restricted',
              },
            },
          },
        },
      ],
    },
    {
      name: '20-network-policies.yaml',
      header: `NetworkPolicies (${size}): default deny, then exactly the cbft topology; no DNS, nothing outside the cluster.`,
      docs: networkPolicies(o),
    },
    {
      name: '30-services.yaml',
      header:
        `One Service per node at a fixed cluster IP, ${plan.first}–${plan.last} in ${plan.serviceCidr} (the addresses cluster.json\n` +
        `advertises: cbft keygen --kubernetes with the same --service-cidr and --cluster-ip-base), and ${ENTRY_SERVICE} for clients.`,
      docs: [
        ...replicas.map((n) => nodeService(n, o.namespace, ip(n))),
        ...firewalls.flat().map((n) => nodeService(n, o.namespace, ip(n))),
        {
          comment: `What clients use as if it were the service: every chain's bottom node, ready ones only.\nMake it a LoadBalancer (or put an Ingress in front) to serve clients outside the cluster.`,
          object: {
            apiVersion: 'v1',
            kind: 'Service',
            metadata: { name: ENTRY_SERVICE, namespace: o.namespace, labels: commonLabels('entry') },
            spec: {
              type: 'ClusterIP',
              selector: { [LABEL.role]: 'firewall', [LABEL.tier]: 'bottom' },
              ports: [{ name: 'http', port: 80, targetPort: KUBERNETES_PORTS.firewall, protocol: 'TCP' }],
            },
          },
        },
      ],
    },
    {
      name: '40-replicas.yaml',
      header: `Replicas: ${o.replicas} pods, each the unmodified service plus the cbft sidecar.`,
      docs: [
        ...replicas.map((n) => replicaWorkload(n, o)),
        disruptionBudget('replica', (o.replicas - 1) / 3, o.namespace, `Drains and upgrades take down at most s = ${(o.replicas - 1) / 3} replica(s) at a time: what PBFT tolerates.`),
      ],
    },
    {
      name: '50-firewalls.yaml',
      header: `Firewall chains: ${o.chains} chain(s) of ${o.chainLength} nodes, one pod each (k = 0 faces clients).`,
      docs: [
        ...firewalls.flat().map((n) => firewallWorkload(n, o)),
        disruptionBudget(
          'firewall',
          Math.max(1, o.chains - 1),
          o.namespace,
          o.chains > 1 ? 'Drains and upgrades leave at least one chain whole.' : 'One chain: a drain takes it down while its node moves (add chains for availability).',
        ),
      ],
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// YAML output: block style, strings quoted whenever a YAML 1.1 or 1.2 reader could take them for
// anything else, multi-line strings as literal blocks. Only what the objects above need.

const PLAIN_RE = /^(?:[A-Za-z_/]|-{1,2}[A-Za-z])[A-Za-z0-9_./-]*$/;
const AMBIGUOUS_RE = /^(?:y|n|yes|no|on|off|true|false|null|~)$/i;
const PLAIN_KEY_RE = /^[A-Za-z_][A-Za-z0-9_./-]*$/;

/** JSON's string syntax is YAML's double-quoted style, once YAML's extra line breaks and C1 controls are escaped too. */
function quote(s: string): string {
  return JSON.stringify(s).replace(/[\x7f-\x9f\u2028\u2029\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function scalar(v: null | boolean | number | string): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`cannot write ${v} as YAML`);
    return String(v);
  }
  return PLAIN_RE.test(v) && !AMBIGUOUS_RE.test(v) ? v : quote(v);
}

function key(k: string): string {
  return PLAIN_KEY_RE.test(k) && !AMBIGUOUS_RE.test(k) ? k : quote(k);
}

/**
 * Multi-line strings read back exactly from a literal block (`|` keeps one final newline, `|-`
 * none) when they have no other trailing newlines, do not start with a blank (that would need an
 * indentation indicator), have no lines of blanks only, and hold printable characters only (no CR,
 * NEL, LS or PS line breaks).
 */
function literalBody(v: Json): string | undefined {
  if (typeof v !== 'string' || !v.includes('\n')) return undefined;
  const body = v.endsWith('\n') ? v.slice(0, -1) : v;
  if (body === '' || body.endsWith('\n') || /^[ \t\n]/.test(body) || /(^|\n)[ \t]+(\n|$)/.test(body)) return undefined;
  if (/[^\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd]/.test(body)) return undefined;
  return body;
}

/** A value written on its key's or dash's line: scalars and empty collections. */
function inline(v: Json): string | undefined {
  if (v === null || typeof v !== 'object') return scalar(v);
  if (Array.isArray(v)) return v.length === 0 ? '[]' : undefined;
  return Object.keys(v).length === 0 ? '{}' : undefined;
}

function emitLiteral(head: string, v: string, body: string, indent: number, out: string[]): void {
  out.push(`${head} ${v.endsWith('\n') ? '|' : '|-'}`);
  for (const line of body.split('\n')) out.push(line === '' ? '' : `${' '.repeat(indent + 2)}${line}`);
}

function emitMapping(obj: { [key: string]: Json }, indent: number, out: string[]): void {
  const pad = ' '.repeat(indent);
  for (const [k, v] of Object.entries(obj)) {
    const head = `${pad}${key(k)}:`;
    const body = literalBody(v);
    const text = inline(v);
    if (body !== undefined) emitLiteral(head, v as string, body, indent, out);
    else if (text !== undefined) out.push(`${head} ${text}`);
    else {
      out.push(head);
      emitBlock(v, indent + 2, out);
    }
  }
}

function emitSequence(items: Json[], indent: number, out: string[]): void {
  const pad = ' '.repeat(indent);
  for (const v of items) {
    const body = literalBody(v);
    const text = inline(v);
    if (body !== undefined) emitLiteral(`${pad}-`, v as string, body, indent, out);
    else if (text !== undefined) out.push(`${pad}- ${text}`);
    else if (Array.isArray(v)) {
      out.push(`${pad}-`);
      emitSequence(v, indent + 2, out);
    } else {
      // A mapping in a sequence: its first member on the dash's line, the others aligned with it.
      const lines: string[] = [];
      emitMapping(v as { [key: string]: Json }, indent + 2, lines);
      lines[0] = `${pad}- ${lines[0]!.slice(indent + 2)}`;
      out.push(...lines);
    }
  }
}

function emitBlock(v: Json, indent: number, out: string[]): void {
  if (Array.isArray(v)) emitSequence(v, indent, out);
  else emitMapping(v as { [key: string]: Json }, indent, out);
}

function comment(text: string): string[] {
  return text.split('\n').map((l) => (l === '' ? '#' : `# ${l}`));
}

/** YAML for a stream of documents, each with its comment, after an optional file header. */
export function toYaml(docs: Doc[], header?: string): string {
  const out: string[] = [];
  if (header) out.push(...comment(header));
  docs.forEach((d, i) => {
    if (i > 0 || header) out.push('---');
    if (d.comment) out.push(...comment(d.comment));
    emitMapping(d.object as { [key: string]: Json }, 0, out);
  });
  return out.join('\n') + '\n';
}

export const GENERATED_NOTE = 'Generated by examples/kubernetes/generate.mjs from src/cluster/kubernetes.ts; edit those, not this file.';

export function manifestText(file: ManifestFile): string {
  return toYaml(file.docs, `${file.header}\n${GENERATED_NOTE}`);
}
