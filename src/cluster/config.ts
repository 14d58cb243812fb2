import { CbftError, ErrorCodes } from '../errors.js';
import { fromHex } from '../codec/binary.js';
import { DEFAULT_FORWARD_HEADERS, DEFAULT_REPLY_HEADERS, allowlist } from '../codec/headers.js';
import { MAX_DEPTH, MIN_DEPTH } from '../codec/merkle.js';
import { PUBLIC_KEY_BYTES } from '../crypto/threshold.js';
import { IDENTITY_PUBLIC_KEY_BYTES, assertIdentityPublicKey } from '../crypto/identity.js';

/**
 * cluster.json: the public description of a cluster that every node and client loads. It holds
 * no secret. Loading validates everything and names the offending field, so a typo fails at
 * start-up with a useful message instead of as a silent misbehaviour later.
 */
export interface ReplicaEntry {
  id: string;
  /** 0-based replica number (PBFT id); the threshold share index is index + 1. */
  index: number;
  shareIndex: number;
  url: string;
  adminUrl: string;
  identityPublicKey: string;
  sharePublicKey: string;
}

export interface FirewallEntry {
  id: string;
  chain: number;
  position: number;
  /** Where the lower neighbour (clients, for position 0) sends requests. */
  url: string;
  /** Where neighbours deliver authenticated frames (equal to url above position 0). */
  peerUrl: string;
  adminUrl: string;
  identityPublicKey: string;
}

export type ReleasePolicy = 'immediate' | 'quantized';

export interface ServiceSettings {
  /** Extra request headers carried into the canonical request beyond the defaults. */
  forwardHeaders: string[];
  /** Extra reply headers signed and released beyond the defaults. */
  replyHeaders: string[];
  maxRequestBodyBytes: number;
  maxReplyBodyBytes: number;
  upstreamTimeoutMs: number;
}

export interface FirewallSettings {
  releasePolicy: ReleasePolicy;
  quantumMs: number;
  requestTimeoutMs: number;
  maxQueue: number;
  maxHeaderBytes: number;
  /** How long the top waits for s+1 matching replies before trying all replicas / answering 502. */
  retransmitMs: number;
}

export interface PbftSettings {
  tickMs: number;
  checkpointInterval: number;
  watermarkWindow: number;
  batchMax: number;
  batchDelayTicks: number;
  viewChangeTicks: number;
  maxClockSkewMs: number;
  replyCacheSize: number;
  maxPendingRequests: number;
  archiveBatches: number;
}

export interface ClusterConfig {
  version: 1;
  s: number;
  f: number;
  servicePublicKey: string;
  merkleDepth: number;
  service: ServiceSettings;
  firewall: FirewallSettings;
  pbft: PbftSettings;
  replicas: ReplicaEntry[];
  chains: FirewallEntry[][];
}

export const DEFAULT_MERKLE_DEPTH = 8;

export const DEFAULT_SERVICE: ServiceSettings = {
  forwardHeaders: [],
  replyHeaders: [],
  maxRequestBodyBytes: 1024 * 1024,
  maxReplyBodyBytes: 8 * 1024 * 1024,
  upstreamTimeoutMs: 10_000,
};

export const DEFAULT_FIREWALL: FirewallSettings = {
  releasePolicy: 'immediate',
  quantumMs: 10,
  requestTimeoutMs: 10_000,
  maxQueue: 4096,
  maxHeaderBytes: 16 * 1024,
  retransmitMs: 1_000,
};

export const DEFAULT_PBFT: PbftSettings = {
  tickMs: 10,
  checkpointInterval: 64,
  watermarkWindow: 256,
  batchMax: 256,
  batchDelayTicks: 1,
  viewChangeTicks: 200,
  maxClockSkewMs: 30_000,
  replyCacheSize: 100_000,
  maxPendingRequests: 10_000,
  archiveBatches: 1024,
};

const REPLICA_ID_RE = /^replica-(0|[1-9][0-9]*)$/;
const FIREWALL_ID_RE = /^fw-(0|[1-9][0-9]*)-(0|[1-9][0-9]*)$/;

export function replicaId(index: number): string {
  return `replica-${index}`;
}

export function firewallId(chain: number, position: number): string {
  return `fw-${chain}-${position}`;
}

export function parseNodeId(id: string): { kind: 'replica'; index: number } | { kind: 'firewall'; chain: number; position: number } {
  let m = REPLICA_ID_RE.exec(id);
  if (m) return { kind: 'replica', index: Number(m[1]) };
  m = FIREWALL_ID_RE.exec(id);
  if (m) return { kind: 'firewall', chain: Number(m[1]), position: Number(m[2]) };
  throw new CbftError(ErrorCodes.USAGE, `node id must be replica-<i> or fw-<chain>-<k>, got ${JSON.stringify(id)}`);
}

/** Sizes a cluster can have; the message says what is allowed. */
export function checkSizes(replicas: number, chains: number, chainLength: number): void {
  if (!Number.isInteger(replicas) || replicas < 4 || (replicas - 1) % 3 !== 0) {
    throw new CbftError(ErrorCodes.USAGE, `--replicas must be 3s+1 with s >= 1 (4, 7, 10, ...), got ${replicas}`);
  }
  if (!Number.isInteger(chains) || chains < 1) {
    throw new CbftError(ErrorCodes.USAGE, `--chains must be an integer >= 1, got ${chains}`);
  }
  if (!Number.isInteger(chainLength) || chainLength < 2) {
    throw new CbftError(ErrorCodes.USAGE, `--chain-length must be an integer >= 2 (f+1 with f >= 1), got ${chainLength}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Validation: a tiny path-aware checker, so errors read "cluster.json: replicas[2].url: ...".

class Check {
  constructor(private readonly source: string) {}

  fail(path: string, message: string): never {
    throw new CbftError(ErrorCodes.CLUSTER, `${this.source}: ${path}: ${message}`);
  }

  object(v: unknown, path: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'must be an object');
    return v as Record<string, unknown>;
  }

  array(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'must be an array');
    return v;
  }

  int(v: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string' || v.length === 0) this.fail(path, 'must be a non-empty string');
    return v;
  }

  url(v: unknown, path: string): string {
    const s = this.string(v, path);
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      this.fail(path, `not a URL: ${JSON.stringify(s)}`);
    }
    if (u.protocol !== 'http:') this.fail(path, `must be an http:// URL, got ${u.protocol}`);
    if (!u.port) this.fail(path, 'must name an explicit port');
    if (u.pathname !== '/' || u.search || u.hash) this.fail(path, 'must be a bare origin (no path, query or fragment)');
    return u.origin;
  }

  hex(v: unknown, path: string, bytes: number): string {
    const s = this.string(v, path);
    try {
      fromHex(s, bytes, path);
    } catch {
      this.fail(path, `must be ${bytes} bytes of lower-case hex`);
    }
    return s;
  }

  headers(v: unknown, path: string, defaults: readonly string[]): string[] {
    const list = this.array(v ?? [], path).map((x, i) => this.string(x, `${path}[${i}]`).toLowerCase());
    try {
      allowlist(defaults, list);
    } catch (e) {
      this.fail(path, (e as Error).message);
    }
    return list;
  }
}

function settings<T extends object>(c: Check, raw: unknown, path: string, defaults: T, read: (o: Record<string, unknown>, d: T) => T): T {
  if (raw === undefined) return { ...defaults };
  const o = c.object(raw, path);
  const known = new Set(Object.keys(defaults));
  for (const k of Object.keys(o)) if (!known.has(k)) c.fail(`${path}.${k}`, 'unknown setting');
  return read(o, defaults);
}

/** Validates a parsed cluster.json and fills in defaults. `source` names the file in errors. */
export function validateCluster(raw: unknown, source = 'cluster.json'): ClusterConfig {
  const c = new Check(source);
  const o = c.object(raw, '(root)');
  if (o.version !== 1) c.fail('version', `must be 1, got ${JSON.stringify(o.version)}`);
  const s = c.int(o.s, 's', 1, 100);
  const f = c.int(o.f, 'f', 1, 100);
  const servicePublicKey = c.hex(o.servicePublicKey, 'servicePublicKey', PUBLIC_KEY_BYTES);
  const merkleDepth = o.merkleDepth === undefined ? DEFAULT_MERKLE_DEPTH : c.int(o.merkleDepth, 'merkleDepth', MIN_DEPTH, MAX_DEPTH);

  const service = settings(c, o.service, 'service', DEFAULT_SERVICE, (x, d) => ({
    forwardHeaders: c.headers(x.forwardHeaders, 'service.forwardHeaders', DEFAULT_FORWARD_HEADERS),
    replyHeaders: c.headers(x.replyHeaders, 'service.replyHeaders', DEFAULT_REPLY_HEADERS),
    maxRequestBodyBytes: c.int(x.maxRequestBodyBytes ?? d.maxRequestBodyBytes, 'service.maxRequestBodyBytes', 0, 64 * 1024 * 1024),
    maxReplyBodyBytes: c.int(x.maxReplyBodyBytes ?? d.maxReplyBodyBytes, 'service.maxReplyBodyBytes', 0, 64 * 1024 * 1024),
    upstreamTimeoutMs: c.int(x.upstreamTimeoutMs ?? d.upstreamTimeoutMs, 'service.upstreamTimeoutMs', 1, 3_600_000),
  }));

  const firewall = settings(c, o.firewall, 'firewall', DEFAULT_FIREWALL, (x, d) => {
    const releasePolicy = (x.releasePolicy ?? d.releasePolicy) as ReleasePolicy;
    if (releasePolicy !== 'immediate' && releasePolicy !== 'quantized') {
      c.fail('firewall.releasePolicy', `must be "immediate" or "quantized", got ${JSON.stringify(releasePolicy)}`);
    }
    return {
      releasePolicy,
      quantumMs: c.int(x.quantumMs ?? d.quantumMs, 'firewall.quantumMs', 1, 60_000),
      requestTimeoutMs: c.int(x.requestTimeoutMs ?? d.requestTimeoutMs, 'firewall.requestTimeoutMs', 1, 3_600_000),
      maxQueue: c.int(x.maxQueue ?? d.maxQueue, 'firewall.maxQueue', 1, 1_000_000),
      maxHeaderBytes: c.int(x.maxHeaderBytes ?? d.maxHeaderBytes, 'firewall.maxHeaderBytes', 1024, 1024 * 1024),
      retransmitMs: c.int(x.retransmitMs ?? d.retransmitMs, 'firewall.retransmitMs', 1, 3_600_000),
    };
  });

  const pbft = settings(c, o.pbft, 'pbft', DEFAULT_PBFT, (x, d) => {
    const p: PbftSettings = {
      tickMs: c.int(x.tickMs ?? d.tickMs, 'pbft.tickMs', 1, 10_000),
      checkpointInterval: c.int(x.checkpointInterval ?? d.checkpointInterval, 'pbft.checkpointInterval', 1, 1_000_000),
      watermarkWindow: c.int(x.watermarkWindow ?? d.watermarkWindow, 'pbft.watermarkWindow', 2, 10_000_000),
      batchMax: c.int(x.batchMax ?? d.batchMax, 'pbft.batchMax', 1, 2 ** MAX_DEPTH),
      batchDelayTicks: c.int(x.batchDelayTicks ?? d.batchDelayTicks, 'pbft.batchDelayTicks', 0, 100_000),
      viewChangeTicks: c.int(x.viewChangeTicks ?? d.viewChangeTicks, 'pbft.viewChangeTicks', 1, 10_000_000),
      maxClockSkewMs: c.int(x.maxClockSkewMs ?? d.maxClockSkewMs, 'pbft.maxClockSkewMs', 1, 86_400_000),
      replyCacheSize: c.int(x.replyCacheSize ?? d.replyCacheSize, 'pbft.replyCacheSize', 1, 100_000_000),
      maxPendingRequests: c.int(x.maxPendingRequests ?? d.maxPendingRequests, 'pbft.maxPendingRequests', 1, 10_000_000),
      archiveBatches: c.int(x.archiveBatches ?? d.archiveBatches, 'pbft.archiveBatches', 1, 10_000_000),
    };
    if (p.watermarkWindow % p.checkpointInterval !== 0 || p.watermarkWindow < 2 * p.checkpointInterval) {
      c.fail('pbft.watermarkWindow', `must be a multiple of pbft.checkpointInterval (${p.checkpointInterval}) and at least twice it`);
    }
    return p;
  });
  if (pbft.batchMax > 2 ** merkleDepth) {
    c.fail('pbft.batchMax', `must be at most 2^merkleDepth = ${2 ** merkleDepth} (a batch's replies are the leaves of one tree)`);
  }

  const ids = new Set<string>();
  const urls = new Map<string, string>();
  const unique = (url: string, path: string, owner: string, shared?: string) => {
    const prev = urls.get(url);
    if (prev !== undefined && prev !== shared) c.fail(path, `${url} is already used by ${prev}`);
    urls.set(url, owner);
  };

  const rawReplicas = c.array(o.replicas, 'replicas');
  if (rawReplicas.length !== 3 * s + 1) c.fail('replicas', `must list n = 3s+1 = ${3 * s + 1} replicas, got ${rawReplicas.length}`);
  const replicas = rawReplicas.map((r, i): ReplicaEntry => {
    const p = `replicas[${i}]`;
    const x = c.object(r, p);
    const id = c.string(x.id, `${p}.id`);
    if (id !== replicaId(i)) c.fail(`${p}.id`, `must be ${replicaId(i)} (replicas are listed in index order)`);
    if (x.index !== i) c.fail(`${p}.index`, `must be ${i}`);
    if (x.shareIndex !== i + 1) c.fail(`${p}.shareIndex`, `must be ${i + 1}`);
    ids.add(id);
    const entry: ReplicaEntry = {
      id,
      index: i,
      shareIndex: i + 1,
      url: c.url(x.url, `${p}.url`),
      adminUrl: c.url(x.adminUrl, `${p}.adminUrl`),
      identityPublicKey: c.hex(x.identityPublicKey, `${p}.identityPublicKey`, IDENTITY_PUBLIC_KEY_BYTES),
      sharePublicKey: c.hex(x.sharePublicKey, `${p}.sharePublicKey`, PUBLIC_KEY_BYTES),
    };
    unique(entry.url, `${p}.url`, id);
    unique(entry.adminUrl, `${p}.adminUrl`, `${id} (admin)`);
    return entry;
  });

  const rawChains = c.array(o.chains, 'chains');
  if (rawChains.length < 1) c.fail('chains', 'must list at least one chain');
  const chains = rawChains.map((rawChain, ci) => {
    const chain = c.array(rawChain, `chains[${ci}]`);
    if (chain.length !== f + 1) c.fail(`chains[${ci}]`, `must have f+1 = ${f + 1} nodes, got ${chain.length}`);
    return chain.map((n, k): FirewallEntry => {
      const p = `chains[${ci}][${k}]`;
      const x = c.object(n, p);
      const id = c.string(x.id, `${p}.id`);
      if (id !== firewallId(ci, k)) c.fail(`${p}.id`, `must be ${firewallId(ci, k)}`);
      if (x.chain !== ci) c.fail(`${p}.chain`, `must be ${ci}`);
      if (x.position !== k) c.fail(`${p}.position`, `must be ${k}`);
      ids.add(id);
      const entry: FirewallEntry = {
        id,
        chain: ci,
        position: k,
        url: c.url(x.url, `${p}.url`),
        peerUrl: c.url(x.peerUrl, `${p}.peerUrl`),
        adminUrl: c.url(x.adminUrl, `${p}.adminUrl`),
        identityPublicKey: c.hex(x.identityPublicKey, `${p}.identityPublicKey`, IDENTITY_PUBLIC_KEY_BYTES),
      };
      if (k > 0 && entry.url !== entry.peerUrl) c.fail(`${p}.url`, 'must equal peerUrl above the bottom node');
      if (k === 0 && entry.url === entry.peerUrl) c.fail(`${p}.peerUrl`, 'must differ from the client-facing url of a bottom node');
      unique(entry.url, `${p}.url`, id);
      unique(entry.peerUrl, `${p}.peerUrl`, id, id);
      unique(entry.adminUrl, `${p}.adminUrl`, `${id} (admin)`);
      return entry;
    });
  });

  const keys = new Set<string>();
  for (const node of [...replicas, ...chains.flat()]) {
    if (keys.has(node.identityPublicKey)) c.fail(`${node.id}.identityPublicKey`, 'is shared with another node');
    keys.add(node.identityPublicKey);
    try {
      assertIdentityPublicKey(fromHex(node.identityPublicKey));
    } catch {
      c.fail(`${node.id}.identityPublicKey`, 'is not a valid Ed25519 public key');
    }
  }
  for (const k of Object.keys(o)) {
    if (!['version', 's', 'f', 'servicePublicKey', 'merkleDepth', 'service', 'firewall', 'pbft', 'replicas', 'chains'].includes(k)) {
      c.fail(k, 'unknown field');
    }
  }
  return { version: 1, s, f, servicePublicKey, merkleDepth, service, firewall, pbft, replicas, chains };
}

/** All node entries with their ids, for lookups by id. */
export function findNode(cluster: ClusterConfig, id: string): ReplicaEntry | FirewallEntry {
  const node = [...cluster.replicas, ...cluster.chains.flat()].find((n) => n.id === id);
  if (!node) throw new CbftError(ErrorCodes.USAGE, `no node ${JSON.stringify(id)} in the cluster file`);
  return node;
}
