import type { FirewallSettings } from '../cluster/config.js';

/**
 * Per-hop request timeouts, and what a timeout costs in covert-channel terms.
 *
 * Every node of a chain of L nodes gives up on a request after
 *     T_k = T - k·δ,   δ = clamp(⌊T / 4L⌋, 1 ms, 1000 ms),   T = firewall.requestTimeoutMs,
 * so the top (k = L-1) gives up first and its precise verdict (502 `replicas_disagree` when
 * replicas answered but no s+1 of them agreed, 504 `timeout` when none answered) travels down as a
 * Fail message and reaches every node below before that node's own, later deadline. The bottom
 * (k = 0) uses T itself: a client never waits longer than `requestTimeoutMs` for the firewall's
 * answer, whatever the nodes above do.
 *
 * Covert-channel cost. Ordering (I2) closes the reordering, insertion and omission channels of the
 * paper only as long as an omission stalls the queue for good. A timeout turns an omission into a
 * per-request signal instead: a Byzantine node above the first correct node can choose, for each
 * request, between (a) releasing the one valid signed reply, (b) sending a Fail with one of three
 * codes (502, 503, 504), or (c) staying silent until the correct node's own deadline (504), and it
 * can choose when in [0, T_k] to do so. A client below therefore observes at most
 *     log2(4) = 2 bits per request from the outcome, plus
 *     log2(T_k / q + 1) bits per request from the release time under `quantized` release with tick q
 *     (about log2(T_k / timer resolution) bits under `immediate`),
 * and nothing from reply contents, order, or extra bytes (I1, I3). Each suppressed reply costs the
 * attacker visibly: the client gets an error instead of its answer, every entry queued behind it
 * waits until the deadline (head-of-line), the correct node counts it in
 * `cbft_firewall_releases_total{outcome="timeout"|…}` and, for late or foreign messages, in
 * `cbft_alarms_total`. A high-rate channel is therefore a visible outage, not a quiet leak; lowering
 * T shrinks the timing part, quantizing shrinks it further, and an operator who wants to trade
 * precision for 1 bit less per request can treat every error as one code at the client.
 */
export function hopTimeoutMs(settings: Pick<FirewallSettings, 'requestTimeoutMs'>, position: number, chainLength: number): number {
  const t = settings.requestTimeoutMs;
  const delta = hopMarginMs(t, chainLength);
  return Math.max(1, t - position * delta);
}

export function hopMarginMs(requestTimeoutMs: number, chainLength: number): number {
  return Math.min(1000, Math.max(1, Math.floor(requestTimeoutMs / (4 * Math.max(1, chainLength)))));
}
