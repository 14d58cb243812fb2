import autocannon from 'autocannon';

/**
 * autocannon as a library. autocannon's own latency histogram has 1 ms resolution, useless at
 * concurrency 1 on loopback (tens of µs), so latency percentiles here come from its per-response
 * event (fractional ms) into a log-bucketed histogram (1 µs buckets below 1 ms, 0.5 % above):
 * bounded memory however long the run.
 */
export interface LoadOptions {
  /** One URL, or several: connections are spread over them round-robin (e.g. two chains' bottoms). */
  url: string | string[];
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  body?: string | Buffer;
  headers?: Record<string, string>;
  connections: number;
  durationSec: number;
  pipelining?: number;
  timeoutSec?: number;
}

export interface LoadResult {
  connections: number;
  durationSec: number;
  requests: number;
  reqPerSec: number;
  bytesPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; mean: number; max: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(1000 + 3000);
  private n = 0;
  private sum = 0;
  private maxUs = 0;

  private static bucket(us: number): number {
    if (us < 1000) return Math.max(0, Math.floor(us));
    return Math.min(3999, 1000 + Math.floor(Math.log(us / 1000) / Math.log(1.005)));
  }

  private static value(bucket: number): number {
    if (bucket < 1000) return bucket + 0.5;
    return 1000 * Math.pow(1.005, bucket - 1000 + 0.5);
  }

  record(ms: number): void {
    const us = ms * 1000;
    this.counts[LatencyHistogram.bucket(us)]!++;
    this.n++;
    this.sum += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  get count(): number {
    return this.n;
  }

  /** Percentile in ms (q in 0..100). */
  percentile(q: number): number {
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil((q / 100) * this.n));
    let acc = 0;
    for (let b = 0; b < this.counts.length; b++) {
      acc += this.counts[b]!;
      if (acc >= rank) return Math.min(LatencyHistogram.value(b), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  mean(): number {
    return this.n ? this.sum / this.n / 1000 : NaN;
  }

  max(): number {
    return this.maxUs / 1000;
  }
}

export function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const hist = new LatencyHistogram();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: opts.url,
        method: opts.method ?? 'GET',
        ...(opts.body !== undefined ? { body: opts.body } : {}),
        ...(opts.headers ? { headers: opts.headers } : {}),
        connections: opts.connections,
        pipelining: opts.pipelining ?? 1,
        duration: opts.durationSec,
        timeout: opts.timeoutSec ?? 10,
      },
      (err, r) => {
        if (err) return reject(err);
        const seconds = r.duration > 0 ? r.duration : opts.durationSec;
        const requests = r['2xx'] + r.non2xx;
        resolve({
          connections: opts.connections,
          durationSec: seconds,
          requests,
          reqPerSec: requests / seconds,
          bytesPerSec: r.throughput.total / seconds,
          latencyMs: { p50: hist.percentile(50), p90: hist.percentile(90), p99: hist.percentile(99), mean: hist.mean(), max: hist.max() },
          errors: r.errors,
          timeouts: r.timeouts,
          non2xx: r.non2xx,
        });
      },
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) hist.record(responseTime);
    });
  });
}
