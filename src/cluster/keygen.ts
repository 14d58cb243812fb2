import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toHex } from '../codec/binary.js';
import { CbftError, ErrorCodes } from '../errors.js';
import { generateIdentity } from '../crypto/identity.js';
import { MAX_SHARES, deal } from '../crypto/threshold.js';
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

export const MAX_PORT = 65535;

/**
 * checkSizes plus the upper bounds keygen needs: at most MAX_SHARES replicas (one threshold share
 * each) and no more ports than exist. Usage errors that name the flags.
 */
export function checkClusterSizes(o: Pick<KeygenOptions, 'replicas' | 'chains' | 'chainLength'>, extraPorts = 0): void {
  checkSizes(o.replicas, o.chains, o.chainLength);
  if (o.replicas > MAX_SHARES) {
    throw new CbftError(ErrorCodes.USAGE, `--replicas must be 3s+1 in 4..${MAX_SHARES}, got ${o.replicas}`);
  }
  const count = portCount(o) + extraPorts;
  if (count > MAX_PORT) {
    throw new CbftError(
      ErrorCodes.USAGE,
      `--replicas ${o.replicas}, --chains ${o.chains} and --chain-length ${o.chainLength} need ${count} ports, more than the ${MAX_PORT} that exist; lower them`,
    );
  }
}

/**
 * The first of `count` consecutive ports must leave room for all of them below 65536: a usage
 * error naming --base-port and the allowed range otherwise.
 */
export function checkBasePort(basePort: number, count: number): number {
  const highest = MAX_PORT + 1 - count;
  if (!Number.isInteger(basePort) || basePort < 1 || basePort > highest) {
    throw new CbftError(
      ErrorCodes.USAGE,
      `--base-port must be an integer in 1..${highest} (${count} consecutive ports from it must stay below ${MAX_PORT + 1}), got ${basePort}`,
    );
  }
  return basePort;
}

export function generateCluster(o: KeygenOptions): { cluster: ClusterConfig; keys: NodeKeys[] } {
  checkClusterSizes(o);
  const host = o.host ?? DEFAULT_HOST;
  let port = checkBasePort(o.basePort ?? DEFAULT_BASE_PORT, portCount(o));
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
