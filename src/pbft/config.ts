import { DEDUP_HASH_KEY_BYTES, DEFAULT_DEDUP_HASH_KEY } from './dedup-window.js';
import { PbftErrorCodes, pbftError } from './errors.js';
import type { MutantName } from './mutants.js';
import { isMutantName } from './mutants.js';

/**
 * Engine configuration. Everything time-like is counted in ticks (the shell calls `tick()` every
 * tickMs), except the clock-skew bound, which compares wall-clock milliseconds.
 */
export interface PbftConfig {
  /** Number of replicas; must be 3s+1. Optional: derived from s. */
  n?: number;
  /** Byzantine replicas tolerated. */
  s: number;
  /** This replica's id, 0..n-1. */
  id: number;
  /** K: a checkpoint every K sequence numbers. */
  checkpointInterval?: number;
  /** L: high watermark = low watermark + L; a multiple of K, at least 2K. */
  watermarkWindow?: number;
  /** Most requests in one batch. */
  batchMax?: number;
  /** The primary cuts a partial batch once its oldest request has waited this many ticks. */
  batchDelayTicks?: number;
  /**
   * Adaptive batching (instead of batchDelayTicks): the primary cuts a partial batch at the end
   * of the input that brought its requests (`takeActions`) unless its previous batch of this view
   * is still in pre-prepare/prepare; then the requests wait and join one bigger batch, cut as
   * soon as that batch is prepared, or after `batchHoldTicks` at the latest. An idle primary adds
   * no delay; a busy one makes fewer, bigger batches (signature and pairing costs are per batch).
   */
  adaptiveBatching?: boolean;
  /** Adaptive batching: most ticks a partial batch waits for the previous one to be prepared. */
  batchHoldTicks?: number;
  /** Base view-change timeout in ticks; doubled by every view change, halved after a timeout period of progress. */
  viewChangeTicks?: number;
  /** Cap on the doubling: the timeout never exceeds viewChangeTicks * 2^this. */
  maxViewChangeBackoff?: number;
  /** Period of STATUS broadcasts and retransmissions, in ticks. */
  statusTicks?: number;
  /** A catch-up FETCH unanswered for this many ticks is retried with another peer. */
  fetchRetryTicks?: number;
  /** Most committed batches in one FETCH-REPLY. */
  fetchMaxBatches?: number;
  /** A backup forwards a request to the primary once it has been pending this many ticks. */
  forwardAfterTicks?: number;
  /** Backups refuse a batch whose timestamp differs from their clock by more than this. */
  maxClockSkewMs?: number;
  /** How many executed request digests are remembered for de-duplication (deterministic FIFO). */
  dedupWindow?: number;
  /**
   * Secret key (8 bytes) of the de-duplication window's hash index. The engine draws no randomness
   * itself, so the shell passes fresh random bytes per process (e.g. `randomBytes(8)`): with a known
   * key, clients could submit requests whose digests collide in the index (hash flooding, see
   * DedupWindow). Replicas need not agree on it; it never changes which requests are duplicates.
   * Default: a fixed public key (deterministic, for tests and the simulator; no flooding resistance).
   */
  dedupHashKey?: Uint8Array;
  /** Bound on requests waiting to be ordered; beyond it submissions are rejected as overloaded. */
  maxPendingRequests?: number;
  /** Most committed batches kept (with commit certificates) to serve catch-up. */
  archiveBatches?: number;
  /** Largest request payload accepted, in bytes. */
  maxRequestBytes?: number;
  /** Most batches handed to the shell but not yet reported executed (flow control); default L. */
  maxExecutionBacklog?: number;
  /** Planted bug for the simulator; never set in production. */
  mutant?: MutantName;
}

export interface ResolvedConfig {
  readonly n: number;
  readonly s: number;
  readonly id: number;
  readonly checkpointInterval: number;
  readonly watermarkWindow: number;
  readonly batchMax: number;
  readonly batchDelayTicks: number;
  readonly adaptiveBatching: boolean;
  readonly batchHoldTicks: number;
  readonly viewChangeTicks: number;
  readonly maxViewChangeBackoff: number;
  readonly statusTicks: number;
  readonly fetchRetryTicks: number;
  readonly fetchMaxBatches: number;
  readonly forwardAfterTicks: number;
  readonly maxClockSkewMs: number;
  readonly dedupWindow: number;
  /** A copy of the configured key (or the default): later changes to the caller's bytes do not leak in. */
  readonly dedupHashKey: Uint8Array;
  readonly maxPendingRequests: number;
  readonly archiveBatches: number;
  readonly maxRequestBytes: number;
  readonly maxExecutionBacklog: number;
  readonly mutant: MutantName | undefined;
}

/** Defaults assume the shell ticks every 10 ms. */
export const DEFAULT_CONFIG = {
  checkpointInterval: 32,
  watermarkWindow: 128,
  batchMax: 64,
  batchDelayTicks: 1,
  batchHoldTicks: 10,
  viewChangeTicks: 200,
  maxViewChangeBackoff: 6,
  statusTicks: 20,
  fetchRetryTicks: 20,
  fetchMaxBatches: 16,
  maxClockSkewMs: 5_000,
  dedupWindow: 16_384,
  maxPendingRequests: 4_096,
  archiveBatches: 256,
  maxRequestBytes: 1 << 20,
} as const;

/** Hard limits of the wire format (u16 replica ids, bounded lists); see codec.ts. */
export const MAX_REPLICAS = 1024;
export const MAX_BATCH_REQUESTS = 4096;
export const MAX_REQUEST_BYTES = 16 << 20;

export function resolveConfig(input: PbftConfig): ResolvedConfig {
  const s = input.s;
  requireInt('s', s, 1, Math.floor((MAX_REPLICAS - 1) / 3));
  const n = input.n ?? 3 * s + 1;
  if (n !== 3 * s + 1) throw pbftError(PbftErrorCodes.CONFIG, `n must be 3s+1 = ${3 * s + 1}, got ${n}`);
  requireInt('id', input.id, 0, n - 1);
  const checkpointInterval = input.checkpointInterval ?? DEFAULT_CONFIG.checkpointInterval;
  requireInt('checkpointInterval', checkpointInterval, 1, 1 << 20);
  const watermarkWindow = input.watermarkWindow ?? Math.max(DEFAULT_CONFIG.watermarkWindow, 2 * checkpointInterval);
  requireInt('watermarkWindow', watermarkWindow, 2 * checkpointInterval, 1 << 22);
  if (watermarkWindow % checkpointInterval !== 0) {
    throw pbftError(PbftErrorCodes.CONFIG, `watermarkWindow (${watermarkWindow}) must be a multiple of checkpointInterval (${checkpointInterval})`);
  }
  const viewChangeTicks = input.viewChangeTicks ?? DEFAULT_CONFIG.viewChangeTicks;
  requireInt('viewChangeTicks', viewChangeTicks, 2, 1 << 24);
  const archiveBatches = input.archiveBatches ?? Math.max(DEFAULT_CONFIG.archiveBatches, watermarkWindow);
  requireInt('archiveBatches', archiveBatches, checkpointInterval, 1 << 24);
  const cfg: ResolvedConfig = {
    n,
    s,
    id: input.id,
    checkpointInterval,
    watermarkWindow,
    batchMax: input.batchMax ?? DEFAULT_CONFIG.batchMax,
    batchDelayTicks: input.batchDelayTicks ?? DEFAULT_CONFIG.batchDelayTicks,
    adaptiveBatching: input.adaptiveBatching ?? false,
    batchHoldTicks: input.batchHoldTicks ?? DEFAULT_CONFIG.batchHoldTicks,
    viewChangeTicks,
    maxViewChangeBackoff: input.maxViewChangeBackoff ?? DEFAULT_CONFIG.maxViewChangeBackoff,
    statusTicks: input.statusTicks ?? DEFAULT_CONFIG.statusTicks,
    fetchRetryTicks: input.fetchRetryTicks ?? DEFAULT_CONFIG.fetchRetryTicks,
    fetchMaxBatches: input.fetchMaxBatches ?? DEFAULT_CONFIG.fetchMaxBatches,
    forwardAfterTicks: input.forwardAfterTicks ?? Math.max(1, Math.floor(viewChangeTicks / 4)),
    maxClockSkewMs: input.maxClockSkewMs ?? DEFAULT_CONFIG.maxClockSkewMs,
    dedupWindow: input.dedupWindow ?? DEFAULT_CONFIG.dedupWindow,
    dedupHashKey: resolveDedupHashKey(input.dedupHashKey),
    maxPendingRequests: input.maxPendingRequests ?? DEFAULT_CONFIG.maxPendingRequests,
    archiveBatches,
    maxRequestBytes: input.maxRequestBytes ?? DEFAULT_CONFIG.maxRequestBytes,
    maxExecutionBacklog: input.maxExecutionBacklog ?? watermarkWindow,
    mutant: input.mutant,
  };
  requireInt('batchMax', cfg.batchMax, 1, MAX_BATCH_REQUESTS);
  requireInt('batchDelayTicks', cfg.batchDelayTicks, 0, 1 << 20);
  requireInt('batchHoldTicks', cfg.batchHoldTicks, 1, 1 << 20);
  requireInt('maxViewChangeBackoff', cfg.maxViewChangeBackoff, 0, 20);
  requireInt('statusTicks', cfg.statusTicks, 1, 1 << 20);
  requireInt('fetchRetryTicks', cfg.fetchRetryTicks, 1, 1 << 20);
  requireInt('fetchMaxBatches', cfg.fetchMaxBatches, 1, 1024);
  requireInt('forwardAfterTicks', cfg.forwardAfterTicks, 1, 1 << 24);
  requireInt('maxClockSkewMs', cfg.maxClockSkewMs, 0, 86_400_000);
  requireInt('dedupWindow', cfg.dedupWindow, 1, 1 << 24);
  requireInt('maxPendingRequests', cfg.maxPendingRequests, 1, 1 << 24);
  requireInt('maxRequestBytes', cfg.maxRequestBytes, 0, MAX_REQUEST_BYTES);
  requireInt('maxExecutionBacklog', cfg.maxExecutionBacklog, 1, 1 << 24);
  if (cfg.mutant !== undefined && !isMutantName(cfg.mutant)) {
    throw pbftError(PbftErrorCodes.CONFIG, `unknown mutant: ${String(cfg.mutant)}`);
  }
  return cfg;
}

function resolveDedupHashKey(key: unknown): Uint8Array {
  if (key === undefined) return DEFAULT_DEDUP_HASH_KEY.slice();
  if (!(key instanceof Uint8Array) || key.length !== DEDUP_HASH_KEY_BYTES) {
    throw pbftError(PbftErrorCodes.CONFIG, `dedupHashKey must be ${DEDUP_HASH_KEY_BYTES} bytes`);
  }
  return Uint8Array.from(key);
}

function requireInt(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw pbftError(PbftErrorCodes.CONFIG, `${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
}
