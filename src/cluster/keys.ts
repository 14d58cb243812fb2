import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CbftError, ErrorCodes } from '../errors.js';
import { fromHex, toHex } from '../codec/binary.js';
import { IdentitySigner } from '../crypto/identity.js';
import { publicKeyOf } from '../crypto/threshold.js';
import { findNode, validateCluster, type ClusterConfig } from './config.js';

/** A node's secret key file, DIR/keys/<id>.json. Replicas also hold their threshold share. */
export interface NodeKeys {
  id: string;
  identitySecretKey: string;
  identityPublicKey: string;
  shareIndex?: number;
  shareSecretKey?: string;
  sharePublicKey?: string;
}

export interface LoadedKeys {
  id: string;
  identity: IdentitySigner;
  share?: { index: number; secretKey: Uint8Array; publicKey: Uint8Array };
}

export async function loadCluster(dir: string): Promise<ClusterConfig> {
  const file = join(dir, 'cluster.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new CbftError(ErrorCodes.CLUSTER, `cannot read ${file}: ${(cause as Error).message}`, { cause });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new CbftError(ErrorCodes.CLUSTER, `${file}: not valid JSON: ${(cause as Error).message}`, { cause });
  }
  return validateCluster(raw, file);
}

/**
 * Loads and checks a node's secret keys: the file must not be readable by others, and the keys
 * must match the public keys the cluster file publishes for that id.
 */
export async function loadNodeKeys(dir: string, cluster: ClusterConfig, id: string): Promise<LoadedKeys> {
  const node = findNode(cluster, id);
  const file = join(dir, 'keys', `${id}.json`);
  const fail = (message: string, cause?: unknown): never => {
    throw new CbftError(ErrorCodes.KEY, `${file}: ${message}`, cause === undefined ? undefined : { cause });
  };
  let mode: number;
  let text: string;
  try {
    mode = (await stat(file)).mode;
    text = await readFile(file, 'utf8');
  } catch (cause) {
    return fail(`cannot read key file: ${(cause as Error).message}`, cause);
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    fail(`key file is accessible by group or others (mode ${(mode & 0o777).toString(8)}); run chmod 600 on it`);
  }
  let k: NodeKeys;
  try {
    k = JSON.parse(text) as NodeKeys;
  } catch (cause) {
    return fail('not valid JSON', cause);
  }
  if (k.id !== id) fail(`holds keys for ${JSON.stringify(k.id)}, not ${id}`);
  let identity: IdentitySigner;
  try {
    identity = new IdentitySigner(fromHex(k.identitySecretKey, 32, 'identitySecretKey'));
  } catch (cause) {
    return fail('identitySecretKey is not a 32-byte hex Ed25519 seed', cause);
  }
  if (toHex(identity.publicKey) !== node.identityPublicKey) fail('identity key does not match the cluster file');
  if (!('sharePublicKey' in node)) return { id, identity };

  if (k.shareIndex !== node.shareIndex) fail(`shareIndex must be ${node.shareIndex}`);
  let secretKey: Uint8Array;
  try {
    secretKey = fromHex(k.shareSecretKey ?? '', 32, 'shareSecretKey');
    if (toHex(publicKeyOf(secretKey)) !== node.sharePublicKey) throw new Error('mismatch');
  } catch (cause) {
    return fail('share key is missing, malformed or does not match the cluster file', cause);
  }
  return { id, identity, share: { index: node.shareIndex, secretKey, publicKey: fromHex(node.sharePublicKey) } };
}
