import { join, resolve } from 'node:path';
import { CbftError, ErrorCodes } from '../../errors.js';
import { loadCluster, loadNodeKeys } from '../../cluster/keys.js';
import { parseNodeId } from '../../cluster/config.js';
import { createLogger } from '../../log.js';
import { Sidecar } from '../../sidecar/sidecar.js';
import { intOption, parseCommand, requireOption } from '../args.js';

export const usage = `cbft sidecar --cluster DIR --id replica-<i> --upstream URL [--data DIR] [--bind HOST]

Runs one replica's sidecar in front of its copy of the legacy service.
  --cluster DIR    directory with cluster.json and keys/<id>.json
  --id ID          this replica's id, replica-<i>
  --upstream URL   the local legacy service, e.g. http://127.0.0.1:8080
  --data DIR       where the write-ahead log lives (default DIR/data/<id>)
  --bind HOST      listen on HOST instead of the host in the node's URLs (e.g. 0.0.0.0)

Environment: LOG_LEVEL (pino level, default info); CBFT_WAL_COMPACT_BYTES (compact the
write-ahead log once it exceeds this many bytes, default 64 MiB); CBFT_REPLY_CACHE_BYTES (memory
bound of the reply cache, default 16 MiB); CBFT_WAL_SYNC=request|batch
(request, the default: the log is on disk before every PBFT message leaves, at the end of
every batch and before each request goes to the service, so no crash, not even of the machine,
makes a request run twice; batch: that last record is only written to the OS, one disk sync per
request less, and a crash of the machine may re-run the requests of the batch in flight).
SIGTERM or SIGINT drain the sidecar (the request at the service finishes) and exit 0.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(argv, {
    cluster: { type: 'string' },
    id: { type: 'string' },
    upstream: { type: 'string' },
    data: { type: 'string' },
    bind: { type: 'string' },
  });
  const dir = requireOption(values.cluster, '--cluster');
  const id = requireOption(values.id, '--id');
  const upstream = requireOption(values.upstream, '--upstream');
  if (parseNodeId(id).kind !== 'replica') throw new CbftError(ErrorCodes.USAGE, `--id must be replica-<i>, got ${JSON.stringify(id)}`);
  let origin: string;
  try {
    const u = new URL(upstream);
    if (u.protocol !== 'http:') throw new Error('only http:// is supported');
    origin = u.origin;
  } catch (err) {
    throw new CbftError(ErrorCodes.USAGE, `--upstream must be an http:// URL: ${(err as Error).message}`);
  }
  const cluster = await loadCluster(dir);
  const keys = await loadNodeKeys(dir, cluster, id);
  const log = createLogger(id, 'sidecar');
  const compact = process.env.CBFT_WAL_COMPACT_BYTES;
  const cacheBytes = process.env.CBFT_REPLY_CACHE_BYTES;
  const walSync = process.env.CBFT_WAL_SYNC ?? 'request';
  if (walSync !== 'batch' && walSync !== 'request') throw new CbftError(ErrorCodes.USAGE, `CBFT_WAL_SYNC must be batch or request, got ${JSON.stringify(walSync)}`);
  const sidecar = await Sidecar.start({
    cluster,
    keys,
    upstream: origin,
    dataDir: resolve(values.data ?? join(dir, 'data', id)),
    ...(values.bind !== undefined ? { bindHost: values.bind } : {}),
    ...(compact !== undefined ? { compactMinBytes: intOption(compact, 'CBFT_WAL_COMPACT_BYTES', 0) } : {}),
    walSync,
    ...(cacheBytes !== undefined ? { replyCacheBytes: intOption(cacheBytes, 'CBFT_REPLY_CACHE_BYTES', 1) } : {}),
    log,
  });
  return await new Promise<number>((done) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'draining');
      sidecar.stop().then(
        () => done(0),
        (err: unknown) => {
          log.error({ err }, 'error while stopping');
          done(1);
        },
      );
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
