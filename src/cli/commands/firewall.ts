import { parseNodeId } from '../../cluster/config.js';
import { loadCluster, loadNodeKeys } from '../../cluster/keys.js';
import { createFirewallLogger, startFirewallNode } from '../../firewall/node.js';
import { intOption, parseCommand, requireOption } from '../args.js';

export const usage = `cbft firewall --cluster DIR --id fw-<chain>-<k> [--bind HOST] [--drain-ms MS] [--max-connections N]

Runs one firewall node; its role follows from k: 0 is the bottom (clients connect to its url),
the last node of the chain is the top (it talks to the sidecars), any other is a middle node.
  --cluster DIR          directory with cluster.json and keys/<id>.json
  --id ID                this node's id, e.g. fw-0-0
  --bind HOST            listen on HOST (e.g. 0.0.0.0) instead of the hosts in cluster.json
  --drain-ms MS          on SIGTERM, wait this long for queued requests (default: request timeout + 1000)
  --max-connections N    client connections the bottom accepts at once (default 10000)

Environment: LOG_LEVEL (pino level, default info); CBFT_BLS_BACKEND=mcl|noble (the library that
verifies and combines threshold signatures: mcl-wasm, the default, or @noble/curves; same answers).`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(argv, {
    cluster: { type: 'string' },
    id: { type: 'string' },
    bind: { type: 'string' },
    'drain-ms': { type: 'string' },
    'max-connections': { type: 'string' },
  });
  const dir = requireOption(values.cluster, '--cluster');
  const id = requireOption(values.id, '--id');
  const cluster = await loadCluster(dir);
  const keys = await loadNodeKeys(dir, cluster, id);
  const drainMs = intOption(values['drain-ms'], '--drain-ms', cluster.firewall.requestTimeoutMs + 1_000);
  const maxConnections = intOption(values['max-connections'], '--max-connections', 10_000);
  const parsed = parseNodeId(id);
  const length = parsed.kind === 'firewall' ? (cluster.chains[parsed.chain]?.length ?? 0) : 0;
  const position = parsed.kind === 'firewall' ? parsed.position : -1;
  const role = position === 0 ? 'firewall-bottom' : position === length - 1 ? 'firewall-top' : 'firewall-middle';
  const { logger, flush } = createFirewallLogger(id, role);
  const node = await startFirewallNode({ cluster, keys, bindHost: values.bind, logger, maxConnections });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, drainMs }, 'stopping: no new requests, draining queued ones');
      node.drain(drainMs).then(
        () => {
          logger.info('stopped');
          flush();
          resolve(0);
          // Anything still holding the loop open must not keep a stopped node alive.
          setTimeout(() => process.exit(0), 2_000).unref();
        },
        (err: Error) => {
          logger.error({ err: err.message }, 'drain failed');
          flush();
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
