/**
 * NetworkPolicy semantics (networking.k8s.io/v1), enough to compute who can open a connection to
 * whom from a set of policies: a pod selected by a policy of a type (Ingress or Egress) is isolated
 * in that direction and accepts only what some rule of such a policy allows; a connection needs
 * both the source's egress and the destination's ingress to allow it. Endpoints outside every
 * namespace (an address outside the cluster) match only rules without peers. ipBlock peers are
 * refused rather than half-modelled: the manifests do not use them.
 */

type Labels = Record<string, string>;

export interface Port {
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  name?: string;
}

export interface Endpoint {
  name: string;
  /** Undefined for an address outside the cluster. */
  namespace?: string;
  namespaceLabels?: Labels;
  labels?: Labels;
  /** What it listens on. */
  ports: Port[];
}

interface Selector {
  matchLabels?: Labels;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

interface PolicyPort {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}

interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: unknown;
}

interface Rule {
  ports?: PolicyPort[];
  from?: Peer[];
  to?: Peer[];
}

export interface NetworkPolicy {
  kind: 'NetworkPolicy';
  metadata: { name: string; namespace?: string };
  spec: { podSelector: Selector; policyTypes?: string[]; ingress?: Rule[]; egress?: Rule[] };
}

export function matches(selector: Selector, labels: Labels): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(value!)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(value!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        throw new Error(`unknown selector operator ${e.operator}`);
    }
  }
  return true;
}

function policyTypes(p: NetworkPolicy): string[] {
  return p.spec.policyTypes ?? ['Ingress', ...(p.spec.egress ? ['Egress'] : [])];
}

function namespaceOf(p: NetworkPolicy): string {
  if (!p.metadata.namespace) throw new Error(`NetworkPolicy ${p.metadata.name} has no namespace`);
  return p.metadata.namespace;
}

/** The policies that select `e` for a direction (an endpoint outside the policies' namespace: none). */
export function selecting(policies: NetworkPolicy[], e: Endpoint, type: 'Ingress' | 'Egress'): NetworkPolicy[] {
  return policies.filter((p) => e.namespace === namespaceOf(p) && e.labels !== undefined && policyTypes(p).includes(type) && matches(p.spec.podSelector, e.labels));
}

function peerMatches(peer: Peer, policyNamespace: string, e: Endpoint): boolean {
  if (peer.ipBlock !== undefined) throw new Error('ipBlock peers are not modelled');
  if (!peer.podSelector && !peer.namespaceSelector) throw new Error('a peer needs podSelector, namespaceSelector or ipBlock');
  if (e.namespace === undefined || e.labels === undefined) return false;
  if (peer.namespaceSelector) {
    if (!matches(peer.namespaceSelector, e.namespaceLabels ?? {})) return false;
  } else if (e.namespace !== policyNamespace) return false;
  return peer.podSelector ? matches(peer.podSelector, e.labels) : true;
}

function portMatches(rulePorts: PolicyPort[] | undefined, dst: Endpoint, port: Port): boolean {
  if (!rulePorts || rulePorts.length === 0) return true;
  return rulePorts.some((p) => {
    if ((p.protocol ?? 'TCP') !== port.protocol) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'string') {
      const named = dst.ports.find((q) => q.name === p.port && q.protocol === port.protocol);
      return named !== undefined && named.port === port.port;
    }
    return p.endPort === undefined ? p.port === port.port : port.port >= p.port && port.port <= p.endPort;
  });
}

function allows(policies: NetworkPolicy[], self: Endpoint, other: Endpoint, dst: Endpoint, port: Port, type: 'Ingress' | 'Egress'): boolean {
  const selected = selecting(policies, self, type);
  if (selected.length === 0) return true; // not isolated in this direction
  return selected.some((p) =>
    ((type === 'Ingress' ? p.spec.ingress : p.spec.egress) ?? []).some((rule) => {
      const peers = type === 'Ingress' ? rule.from : rule.to;
      const peerOk = !peers || peers.length === 0 || peers.some((peer) => peerMatches(peer, namespaceOf(p), other));
      return peerOk && portMatches(rule.ports, dst, port);
    }),
  );
}

export function connectionAllowed(policies: NetworkPolicy[], src: Endpoint, dst: Endpoint, port: Port): boolean {
  return allows(policies, src, dst, dst, port, 'Egress') && allows(policies, dst, src, dst, port, 'Ingress');
}

export const edge = (src: string, dst: string, port: Port) => `${src} -> ${dst}:${port.port}/${port.protocol}`;

/** Every allowed connection between different endpoints, to every port the destination listens on. */
export function reachability(policies: NetworkPolicy[], endpoints: Endpoint[]): Set<string> {
  const out = new Set<string>();
  for (const src of endpoints) {
    for (const dst of endpoints) {
      if (src === dst) continue;
      for (const port of dst.ports) if (connectionAllowed(policies, src, dst, port)) out.add(edge(src.name, dst.name, port));
    }
  }
  return out;
}
