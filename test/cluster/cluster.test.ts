import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, stat, chmod, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCluster, writeCluster, portCount } from '../../src/cluster/keygen.js';
import { validateCluster, checkSizes, parseNodeId } from '../../src/cluster/config.js';
import { loadCluster, loadNodeKeys } from '../../src/cluster/keys.js';
import { fromHex, utf8 } from '../../src/codec/binary.js';
import { threshold } from '../../src/index.js';

const small = generateCluster({ replicas: 4, chains: 2, chainLength: 2, basePort: 9000 });

describe('cluster generation', () => {
  it('describes s, f, every node and assigns ports in order', () => {
    const c = small.cluster;
    expect(c.s).toBe(1);
    expect(c.f).toBe(1);
    expect(c.replicas.map((r) => r.id)).toEqual(['replica-0', 'replica-1', 'replica-2', 'replica-3']);
    expect(c.replicas[0]).toMatchObject({ url: 'http://127.0.0.1:9000', adminUrl: 'http://127.0.0.1:9001', shareIndex: 1 });
    expect(c.chains[0]![0]).toMatchObject({ id: 'fw-0-0', url: 'http://127.0.0.1:9008', peerUrl: 'http://127.0.0.1:9009', adminUrl: 'http://127.0.0.1:9010' });
    expect(c.chains[0]![1]).toMatchObject({ id: 'fw-0-1', url: 'http://127.0.0.1:9011', peerUrl: 'http://127.0.0.1:9011' });
    expect(c.chains[1]![0]!.url).toBe('http://127.0.0.1:9013');
    const ports = [...c.replicas.flatMap((r) => [r.url, r.adminUrl]), ...c.chains.flat().flatMap((n) => [n.url, n.peerUrl, n.adminUrl])];
    expect(new Set(ports).size).toBe(portCount({ replicas: 4, chains: 2, chainLength: 2 }));
  });

  it('its shares are real: s+1 partials under the published share keys combine to the service key', () => {
    const msg = utf8('batch');
    const partials = small.keys
      .filter((k) => k.shareSecretKey)
      .slice(1, 3)
      .map((k) => ({ index: k.shareIndex!, signature: threshold.partialSign({ index: k.shareIndex!, secretKey: fromHex(k.shareSecretKey!) }, msg) }));
    const sig = threshold.combine(partials, 2);
    expect(threshold.verify(fromHex(small.cluster.servicePublicKey), msg, sig)).toBe(true);
  });

  it('refuses impossible sizes with a message that says what is allowed', () => {
    expect(() => checkSizes(5, 1, 2)).toThrow(/3s\+1 with s >= 1 \(4, 7, 10/);
    expect(() => checkSizes(1, 1, 2)).toThrow(/3s\+1/);
    expect(() => checkSizes(4, 0, 2)).toThrow(/--chains must be an integer >= 1/);
    expect(() => checkSizes(4, 1, 1)).toThrow(/--chain-length must be an integer >= 2/);
    expect(() => generateCluster({ replicas: 4, chains: 1, chainLength: 2, basePort: 65530 })).toThrow(/base-port/);
  });

  it('parses node ids', () => {
    expect(parseNodeId('replica-3')).toEqual({ kind: 'replica', index: 3 });
    expect(parseNodeId('fw-1-0')).toEqual({ kind: 'firewall', chain: 1, position: 0 });
    expect(() => parseNodeId('fw-01-0')).toThrow(/node id/);
  });
});

describe('cluster validation names the bad field', () => {
  const base = () => JSON.parse(JSON.stringify(small.cluster)) as Record<string, any>;
  const cases: Array<[string, (c: Record<string, any>) => void, RegExp]> = [
    ['wrong version', (c) => (c.version = 2), /version: must be 1/],
    ['bad service key', (c) => (c.servicePublicKey = 'zz'), /servicePublicKey: must be 96 bytes/],
    ['replica count vs s', (c) => c.replicas.pop(), /replicas: must list n = 3s\+1 = 4/],
    ['replica url', (c) => (c.replicas[2].url = 'https://x:1'), /replicas\[2\]\.url: must be an http:\/\/ URL/],
    ['url without port', (c) => (c.replicas[1].url = 'http://x'), /replicas\[1\]\.url: must name an explicit port/],
    ['duplicate url', (c) => (c.replicas[1].url = c.replicas[0].url), /replicas\[1\]\.url: .* already used by replica-0/],
    ['chain length vs f', (c) => c.chains[1].pop(), /chains\[1\]: must have f\+1 = 2 nodes/],
    ['fw id', (c) => (c.chains[0][1].id = 'fw-0-7'), /chains\[0\]\[1\]\.id: must be fw-0-1/],
    ['unknown setting', (c) => (c.pbft.batchSize = 3), /pbft\.batchSize: unknown setting/],
    ['release policy', (c) => (c.firewall.releasePolicy = 'fast'), /firewall\.releasePolicy: must be "immediate" or "quantized"/],
    ['watermarks', (c) => (c.pbft.watermarkWindow = 100), /pbft\.watermarkWindow: must be a multiple/],
    ['batch vs depth', (c) => ((c.merkleDepth = 4), (c.pbft.batchMax = 17)), /pbft\.batchMax: must be at most 2\^merkleDepth = 16/],
    ['hop-by-hop allowlist', (c) => (c.service.replyHeaders = ['transfer-encoding']), /service\.replyHeaders: hop-by-hop/],
    ['shared identity', (c) => (c.chains[0][0].identityPublicKey = c.replicas[0].identityPublicKey), /identityPublicKey: is shared/],
    ['unknown top-level field', (c) => (c.extra = 1), /extra: unknown field/],
  ];
  it.each(cases)('%s', (_name, mutate, message) => {
    const c = base();
    mutate(c);
    expect(() => validateCluster(c, 'x.json')).toThrow(message);
  });

  it('accepts its own output unchanged', () => {
    expect(validateCluster(base())).toEqual(small.cluster);
  });
});

describe('cluster files on disk', () => {
  it('writes cluster.json and 0600 key files that load back and must match the cluster', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cbft-cluster-'));
    await writeCluster(dir, small.cluster, small.keys);
    expect(await loadCluster(dir)).toEqual(small.cluster);
    const keyFile = join(dir, 'keys', 'replica-1.json');
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'keys'))).mode & 0o777).toBe(0o700);
    expect(await readFile(join(dir, 'cluster.json'), 'utf8')).not.toMatch(/SecretKey/);

    const replica = await loadNodeKeys(dir, small.cluster, 'replica-1');
    expect(replica.share?.index).toBe(2);
    const fw = await loadNodeKeys(dir, small.cluster, 'fw-1-1');
    expect(fw.share).toBeUndefined();

    await chmod(keyFile, 0o644);
    await expect(loadNodeKeys(dir, small.cluster, 'replica-1')).rejects.toThrow(/chmod 600/);
    await chmod(keyFile, 0o600);

    // A key file swapped for another node's is refused.
    await writeFile(keyFile, await readFile(join(dir, 'keys', 'replica-2.json')), { mode: 0o600 });
    await expect(loadNodeKeys(dir, small.cluster, 'replica-1')).rejects.toThrow(/holds keys for "replica-2"/);
    await expect(loadNodeKeys(dir, small.cluster, 'replica-9')).rejects.toThrow(/no node "replica-9"/);
  });

  it('reports unreadable or non-JSON cluster files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cbft-cluster-'));
    await expect(loadCluster(dir)).rejects.toThrow(/cannot read/);
    await writeFile(join(dir, 'cluster.json'), '{');
    await expect(loadCluster(dir)).rejects.toThrow(/not valid JSON/);
  });
});
