import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The sidecar's Prometheus series (on top of the process metrics of createRegistry). */
export interface SidecarMetrics {
  batches: Counter<'kind'>;
  executions: Counter<'outcome'>;
  view: Gauge;
  primary: Gauge;
  lastExecuted: Gauge;
  executionQueue: Gauge;
  upstreamLatency: Histogram;
  upstreamRetries: Counter;
  dropped: Counter<'layer' | 'reason'>;
  partialsSent: Counter;
  partialsRefused: Counter;
  messagesRefused: Counter<'peer' | 'kind'>;
  cacheHits: Counter;
  repeatsNotAnswered: Counter;
  cacheEntries: Gauge;
  walBytes: Gauge;
  walSyncs: Gauge;
  walCompactions: Counter;
  unknownOutcomes: Counter;
  recoveredReplies: Counter<'result'>;
  viewChanges: Counter;
  rejected: Counter<'reason'>;
}

export function createSidecarMetrics(registry: Registry): SidecarMetrics {
  const registers = [registry];
  return {
    batches: new Counter({ name: 'cbft_sidecar_batches_executed_total', help: 'Committed batches executed, by kind (requests or null)', labelNames: ['kind'], registers }),
    executions: new Counter({
      name: 'cbft_sidecar_executions_total',
      help: 'Committed requests executed against the service, by outcome',
      labelNames: ['outcome'],
      registers,
    }),
    view: new Gauge({ name: 'cbft_sidecar_view', help: 'Current PBFT view', registers }),
    primary: new Gauge({ name: 'cbft_sidecar_primary', help: 'Index of the primary of the current view', registers }),
    lastExecuted: new Gauge({ name: 'cbft_sidecar_sequence', help: 'Highest sequence number executed and durably recorded', registers }),
    executionQueue: new Gauge({ name: 'cbft_sidecar_execution_queue_batches', help: 'Committed batches waiting for execution', registers }),
    upstreamLatency: new Histogram({
      name: 'cbft_sidecar_upstream_latency_seconds',
      help: 'Latency of requests to the local service',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    upstreamRetries: new Counter({ name: 'cbft_sidecar_upstream_retries_total', help: 'Attempts that could not reach the service (nothing sent), retried', registers }),
    dropped: new Counter({
      name: 'cbft_dropped_messages_total',
      help: 'Messages dropped on the sidecar port, by layer (transport, pbft, sidecar) and reason',
      labelNames: ['layer', 'reason'],
      registers,
    }),
    partialsSent: new Counter({ name: 'cbft_sidecar_partials_sent_total', help: 'Partial messages sent to top firewall nodes', registers }),
    partialsRefused: new Counter({ name: 'cbft_sidecar_partials_refused_total', help: 'Partial messages a full link to a top refused', registers }),
    messagesRefused: new Counter({
      name: 'cbft_sidecar_messages_refused_total',
      help: 'Messages to a peer replica that its link refused (bounded send queue full, or link closed), by peer and kind (pbft, replica)',
      labelNames: ['peer', 'kind'],
      registers,
    }),
    cacheHits: new Counter({ name: 'cbft_sidecar_reply_cache_hits_total', help: 'Requests answered from the reply cache', registers }),
    repeatsNotAnswered: new Counter({
      name: 'cbft_sidecar_repeats_not_answered_total',
      help: 'Repeats of a request not answered again because its answer to that top went out less than a retransmission interval ago',
      registers,
    }),
    cacheEntries: new Gauge({ name: 'cbft_sidecar_reply_cache_requests', help: 'Replies held in the reply cache', registers }),
    walBytes: new Gauge({ name: 'cbft_sidecar_wal_bytes', help: 'Size of the write-ahead log', registers }),
    walSyncs: new Gauge({ name: 'cbft_sidecar_wal_syncs', help: 'fdatasync calls on the write-ahead log since start', registers }),
    walCompactions: new Counter({ name: 'cbft_sidecar_wal_compactions_total', help: 'Write-ahead log compactions', registers }),
    unknownOutcomes: new Counter({ name: 'cbft_sidecar_unknown_outcomes_total', help: 'Requests whose outcome at the service is unknown (never re-sent)', registers }),
    recoveredReplies: new Counter({
      name: 'cbft_sidecar_recovered_replies_total',
      help: 'Replies of unknown-outcome requests recovered from s+1 peers (adopted) or given up',
      labelNames: ['result'],
      registers,
    }),
    viewChanges: new Counter({ name: 'cbft_sidecar_view_changes_total', help: 'Views installed since start', registers }),
    rejected: new Counter({ name: 'cbft_sidecar_rejected_requests_total', help: 'Requests the engine refused', labelNames: ['reason'], registers }),
  };
}

/** Rate-limits log lines per key: at most `burst` lines per `windowMs`, then a summary count. */
export class LogLimiter {
  private readonly windows = new Map<string, { start: number; count: number; suppressed: number }>();

  constructor(
    private readonly burst = 10,
    private readonly windowMs = 10_000,
  ) {}

  /** Whether to log now; `suppressed` is how many lines of this key were skipped before. */
  allow(key: string, now = Date.now()): { log: boolean; suppressed: number } {
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      const suppressed = w?.suppressed ?? 0;
      w = { start: now, count: 0, suppressed: 0 };
      this.windows.set(key, w);
      if (this.windows.size > 1024) this.windows.delete(this.windows.keys().next().value as string);
      w.count++;
      return { log: true, suppressed };
    }
    if (w.count < this.burst) {
      w.count++;
      return { log: true, suppressed: 0 };
    }
    w.suppressed++;
    return { log: false, suppressed: 0 };
  }
}
