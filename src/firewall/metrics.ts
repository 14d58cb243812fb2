import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../log.js';

/**
 * Prometheus series of a firewall node. Alarms are security events: a message a correct node had
 * to drop because a neighbour (or a replica) misbehaved or the network replayed something.
 */
export type AlarmKind =
  | 'unknown-digest'
  | 'replayed-reply'
  | 'replayed-fail'
  | 'unknown-fail'
  | 'bad-signature'
  | 'malformed-reply'
  | 'malformed-fail'
  | 'malformed-request'
  | 'malformed-partial'
  | 'bad-proof'
  | 'bad-partial'
  | 'replica-mismatch'
  | 'equivocation'
  | 'unsolicited-reply'
  | 'bad-reply'
  | `frame-${string}`;

export class FirewallMetrics {
  readonly requests: Counter<'kind'>;
  readonly releases: Counter<'outcome'>;
  readonly alarms: Counter<'kind' | 'peer'>;
  readonly late: Counter;
  readonly verifySeconds: Histogram;
  readonly latencySeconds: Histogram;
  readonly retransmissions: Counter;
  readonly partials: Counter;
  readonly combineSeconds: Histogram;
  readonly queueDepth: Gauge;
  readonly primary: Gauge;

  constructor(
    registry: Registry,
    queueDepth: () => number,
    private readonly log?: Logger,
  ) {
    const registers = [registry];
    this.requests = new Counter({ name: 'cbft_firewall_requests_total', help: 'Requests received (HTTP at the bottom, Request messages above)', labelNames: ['kind'], registers });
    this.releases = new Counter({ name: 'cbft_firewall_releases_total', help: 'Answers released in queue order, by outcome', labelNames: ['outcome'], registers });
    this.alarms = new Counter({ name: 'cbft_alarms_total', help: 'Messages dropped because a neighbour or replica misbehaved, by kind and culprit', labelNames: ['kind', 'peer'], registers });
    this.late = new Counter({ name: 'cbft_firewall_late_total', help: 'Replies or fails that arrived after the local timeout (dropped)', registers });
    this.verifySeconds = new Histogram({
      name: 'cbft_firewall_verify_seconds',
      help: 'Threshold signature checks (one pairing per batch root)',
      buckets: [0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25],
      registers,
    });
    this.latencySeconds = new Histogram({
      name: 'cbft_firewall_latency_seconds',
      help: 'Time from a request entering the queue to its release',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.retransmissions = new Counter({ name: 'cbft_firewall_retransmissions_total', help: 'Requests the top re-sent to every replica', registers });
    this.partials = new Counter({ name: 'cbft_firewall_partials_total', help: 'Partial-reply messages the top received from replicas', registers });
    this.combineSeconds = new Histogram({
      name: 'cbft_firewall_combine_seconds',
      help: 'Combining s+1 partial signatures at the top',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'cbft_firewall_queue_depth',
      help: 'Requests queued and not yet released',
      registers,
      collect() {
        this.set(queueDepth());
      },
    });
    this.primary = new Gauge({ name: 'cbft_firewall_primary', help: 'Replica index the top believes is the PBFT primary', registers });
  }

  alarm(kind: AlarmKind, peer: string | undefined, detail?: Record<string, unknown>): void {
    this.alarms.inc({ kind, peer: peer ?? '' });
    this.log?.warn({ alarm: kind, peer, ...detail }, `alarm: ${kind}${peer ? ` from ${peer}` : ''}`);
  }
}
