import { Client } from 'undici';

/**
 * Reachability of neighbours for /readyz: a GET on each neighbour's peer URL every interval over
 * a keep-alive connection; any HTTP answer (the peer server answers 404 to GETs) means reachable.
 */
export class Prober {
  private readonly clients: Client[];
  private readonly state: Array<boolean | undefined>;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly urls: readonly string[],
    private readonly intervalMs = 1_000,
    private readonly timeoutMs = 2_000,
  ) {
    this.clients = urls.map((u) => new Client(u, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs, keepAliveTimeout: 30_000 }));
    this.state = urls.map(() => undefined);
  }

  start(): void {
    void this.round();
  }

  /** Whether neighbour i answered its last probe (undefined before the first answer or failure). */
  reachable(i: number): boolean | undefined {
    return this.state[i];
  }

  count(): number {
    return this.state.filter((s) => s === true).length;
  }

  /** Marks a neighbour reachable (e.g. a frame to it was just delivered). */
  saw(i: number): void {
    this.state[i] = true;
  }

  private async round(): Promise<void> {
    if (this.closed) return;
    await Promise.all(
      this.clients.map(async (c, i) => {
        try {
          const res = await c.request({ method: 'GET', path: '/cbft/v1/ping', signal: AbortSignal.timeout(this.timeoutMs) });
          await res.body.dump();
          this.state[i] = true;
        } catch {
          if (!this.closed) this.state[i] = false;
        }
      }),
    );
    if (this.closed) return;
    this.timer = setTimeout(() => void this.round(), this.intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all(this.clients.map((c) => c.destroy().catch(() => undefined)));
  }
}
