import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCluster, type NodeKeys } from '../../src/cluster/keys.js';
import { startFakeReplicas } from './fake-replicas.js';
import { JSON_1K, BODY_64K } from './upstream.js';

/**
 * `node dist/bench/harness/fake-replicas-server.js --cluster DIR`: the fake replicas of
 * bench/harness/fake-replicas.ts (one in-process sequencer, real links, real partial signatures)
 * as their own process, answering like the bench upstream (/json 1 KiB, /echo, /64k), so the
 * `firewall` suite measures the firewall chain with the replicas' CPU kept apart. Prints
 * `{"url": ...}` when listening; SIGTERM stops it.
 */
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--cluster');
  const dir = process.argv[i + 1];
  if (i < 0 || !dir) throw new Error('--cluster DIR needed');
  const cluster = await loadCluster(dir);
  const keys: NodeKeys[] = [];
  for (const r of cluster.replicas) keys.push(JSON.parse(await readFile(join(dir, 'keys', `${r.id}.json`), 'utf8')) as NodeKeys);
  for (const c of cluster.chains) {
    const t = c[c.length - 1]!;
    keys.push(JSON.parse(await readFile(join(dir, 'keys', `${t.id}.json`), 'utf8')) as NodeKeys);
  }
  const replicas = await startFakeReplicas({
    cluster,
    keys,
    execute: (req) =>
      req.target.startsWith('/echo')
        ? { status: 200, headers: [['content-type', 'application/json']], body: req.body }
        : req.target.startsWith('/64k')
          ? { status: 200, headers: [['content-type', 'application/octet-stream']], body: BODY_64K }
          : { status: 200, headers: [['content-type', 'application/json; charset=utf-8']], body: JSON_1K },
  });
  process.stdout.write(JSON.stringify({ url: cluster.replicas[0]!.url, pid: process.pid }) + '\n');
  const stop = () => void replicas.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
