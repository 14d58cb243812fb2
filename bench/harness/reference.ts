import type { Target } from './matrix.js';
import { startService, type RunningService } from './service.js';

/**
 * The references every cbft figure is compared with: the bench upstream on its own (`direct`)
 * and one plain @fastify/http-proxy in front of it (`proxy`); the proxy is the `front`
 * accounting group, the upstream the `service` group.
 */
export interface References {
  direct: Target;
  proxy: Target;
  services: RunningService[];
  stop(): Promise<void>;
}

export async function startReferences(): Promise<References> {
  const services: RunningService[] = [];
  const stop = () => Promise.all(services.map((s) => s.stop())).then(() => undefined);
  try {
    const upstream = await startService('upstream', new URL('./upstream.js', import.meta.url));
    services.push(upstream);
    const proxy = await startService('proxy', new URL('./proxy.js', import.meta.url), ['--upstream', upstream.url]);
    services.push(proxy);
    return {
      direct: { name: 'direct', url: upstream.url, processes: [{ role: 'upstream', pid: upstream.pid, group: 'service' }] },
      proxy: {
        name: 'proxy',
        url: proxy.url,
        processes: [
          { role: 'proxy', pid: proxy.pid, group: 'front' },
          { role: 'upstream', pid: upstream.pid, group: 'service' },
        ],
      },
      services,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
