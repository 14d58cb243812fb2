import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toHex } from '../codec/binary.js';
import { generateIdentity } from '../crypto/identity.js';
import { deal } from '../crypto/threshold.js';
import {
  DEFAULT_FIREWALL,
  DEFAULT_MERKLE_DEPTH,
  DEFAULT_PBFT,
  DEFAULT_SERVICE,
  checkSizes,
  firewallId,
  replicaId,
  validateCluster,
  type ClusterConfig,
  type FirewallEntry,
  type ReplicaEntry,
} from './config.js';
import type { NodeKeys } from './keys.js';

export interface KeygenOptions {
  replicas: number;
  chains: number;
  chainLength: number;
  host?: string;
  basePort?: number;
}

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_BASE_PORT = 7000;

/**
 * Ports are handed out in order from basePort: each replica gets url then adminUrl; each firewall
 * node (chain by chain, bottom first) gets url, then (bottom only) peerUrl, then adminUrl.
 */
export function portCount(o: Pick<KeygenOptions, 'replicas' | 'chains' | 'chainLength'>): number {
  return 2 * o.replicas + o.chains * (2 * o.chainLength + 1);
}

export function generateCluster(o: KeygenOptions): { cluster: ClusterConfig; keys: NodeKeys[] } {
  checkSizes(o.replicas, o.chains, o.chainLength);
  const host = o.host ?? DEFAULT_HOST;
  let port = o.basePort ?? DEFAULT_BASE_PORT;
  if (!Number.isInteger(port) || port < 1 || port + portCount(o) - 1 > 65535) {
    throw new RangeError(`--base-port must leave room for ${portCount(o)} ports below 65536`);
  }
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const next = () => `http://${hostPart}:${port++}`;
  const s = (o.replicas - 1) / 3;
  const dealt = deal(s + 1, o.replicas);
  const keys: NodeKeys[] = [];

  const replicas: ReplicaEntry[] = dealt.shares.map((share, i) => {
    const identity = generateIdentity();
    const id = replicaId(i);
    keys.push({
      id,
      identitySecretKey: toHex(identity.secretKey),
      identityPublicKey: toHex(identity.publicKey),
      shareIndex: share.index,
      shareSecretKey: toHex(share.secretKey),
      sharePublicKey: toHex(share.publicKey),
    });
    return {
      id,
      index: i,
      shareIndex: share.index,
      url: next(),
      adminUrl: next(),
      identityPublicKey: toHex(identity.publicKey),
      sharePublicKey: toHex(share.publicKey),
    };
  });

  const chains: FirewallEntry[][] = [];
  for (let c = 0; c < o.chains; c++) {
    const chain: FirewallEntry[] = [];
    for (let k = 0; k < o.chainLength; k++) {
      const identity = generateIdentity();
      const id = firewallId(c, k);
      keys.push({ id, identitySecretKey: toHex(identity.secretKey), identityPublicKey: toHex(identity.publicKey) });
      const url = next();
      const peerUrl = k === 0 ? next() : url;
      chain.push({ id, chain: c, position: k, url, peerUrl, adminUrl: next(), identityPublicKey: toHex(identity.publicKey) });
    }
    chains.push(chain);
  }

  const cluster = validateCluster({
    version: 1,
    s,
    f: o.chainLength - 1,
    servicePublicKey: toHex(dealt.groupPublicKey),
    merkleDepth: DEFAULT_MERKLE_DEPTH,
    service: DEFAULT_SERVICE,
    firewall: DEFAULT_FIREWALL,
    pbft: DEFAULT_PBFT,
    replicas,
    chains,
  });
  return { cluster, keys };
}

/** Writes DIR/cluster.json (public) and DIR/keys/<id>.json (secret, mode 0600, dir 0700). */
export async function writeCluster(dir: string, cluster: ClusterConfig, keys: NodeKeys[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const keyDir = join(dir, 'keys');
  await mkdir(keyDir, { recursive: true, mode: 0o700 });
  await chmod(keyDir, 0o700);
  for (const k of keys) {
    const file = join(keyDir, `${k.id}.json`);
    await writeFile(file, JSON.stringify(k, null, 2) + '\n', { mode: 0o600 });
    await chmod(file, 0o600);
  }
  await writeFile(join(dir, 'cluster.json'), JSON.stringify(cluster, null, 2) + '\n', { mode: 0o644 });
}
