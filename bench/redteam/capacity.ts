/**
 * Capacity estimates for a binary timing channel from real samples: each sample is the bit the
 * adversary sent and what the receiving client observed (the request's latency, or that it
 * failed).
 *
 * - Threshold decoder: the receiver learns a latency threshold (and its direction) from the
 *   preamble, whose bits are public, and decodes the remaining (secret) bits with it. The errors on
 *   those bits give the crossover probability p of a binary symmetric channel (balanced over the
 *   two inputs) and the capacity estimate C = 1 − H(p) bits per request.
 * - In-sample best threshold over all samples: an optimistic bound on what a threshold decoder
 *   can do (it picks the threshold after seeing the bits).
 * - Empirical mutual information between the bit and the latency quantised into equal-count
 *   bins (failures in a bin of their own), Miller–Madow bias-corrected and clipped at 0; a decoder
 *   that is not a single threshold cannot beat it by much more than its estimation error.
 */

export interface Sample {
  bit: 0 | 1;
  /** Latency in ms as the client measured it; undefined when the request failed. */
  latencyMs: number | undefined;
}

export interface Threshold {
  threshold: number;
  /** +1: latency above the threshold decodes as 1; -1: below decodes as 1. */
  direction: 1 | -1;
  balancedError: number;
}

export interface CapacityEstimate {
  samples: number;
  train: number;
  test: number;
  ones: number;
  zeros: number;
  failures: number;
  /** Balanced error rate of the preamble-trained decoder on the secret bits (NaN if undefined). */
  pErr: number;
  /** 1 − H(pErr), bits per request. */
  bscBits: number;
  /** 95% interval of the capacity from the Wilson interval of pErr over the secret bits. */
  bscBitsLow: number;
  bscBitsHigh: number;
  /** In-sample best-threshold balanced error and its 1 − H(p). */
  pErrInSample: number;
  bscBitsInSample: number;
  /** Bias-corrected plug-in mutual information between bit and binned latency, bits per request. */
  miBits: number;
  /** 95th percentile of the same estimate with the bits randomly permuted: values below are noise. */
  miNoise95: number;
  bins: number;
  medianMs0: number;
  medianMs1: number;
  /** Decoded secret bits that matched the sent ones (test part), for the "what leaked" line. */
  correct: number;
}

/** Wilson score interval (95%) for a proportion p observed over n trials. */
export function wilson(p: number, n: number, z = 1.96): [number, number] {
  if (n === 0 || Number.isNaN(p)) return [0, 1];
  const d = 1 + (z * z) / n;
  const c = p + (z * z) / (2 * n);
  const h = z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return [Math.max(0, (c - h) / d), Math.min(1, (c + h) / d)];
}

export function h2(p: number): number {
  if (!(p > 0 && p < 1)) return 0;
  return -p * Math.log2(p) - (1 - p) * Math.log2(1 - p);
}

/** Capacity of a BSC with crossover p, as a receiver that knows the mapping can use it. */
export function bscCapacity(p: number): number {
  if (Number.isNaN(p)) return 0;
  // Symmetric: a decoder wrong more often than not is as informative once its output is flipped.
  return 1 - h2(p);
}

/** 95% interval of 1 − H(p) from the Wilson interval of an error rate p observed over n bits. */
export function bscInterval(p: number, n: number): [number, number] {
  if (Number.isNaN(p)) return [0, 1];
  const [pLow, pHigh] = wilson(p, n);
  const low = pLow <= 0.5 && pHigh >= 0.5 ? 0 : Math.min(bscCapacity(pLow), bscCapacity(pHigh));
  return [low, Math.max(bscCapacity(pLow), bscCapacity(pHigh))];
}

const FAILED = Number.POSITIVE_INFINITY;
const value = (s: Sample) => (s.latencyMs === undefined ? FAILED : s.latencyMs);

export function median(xs: number[]): number {
  const finite = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (finite.length === 0) return NaN;
  const m = finite.length >> 1;
  return finite.length % 2 ? finite[m]! : (finite[m - 1]! + finite[m]!) / 2;
}

function balancedError(samples: Sample[], t: Omit<Threshold, 'balancedError'>): number {
  let e0 = 0;
  let e1 = 0;
  let n0 = 0;
  let n1 = 0;
  for (const s of samples) {
    const decoded = decode(t, s);
    if (s.bit === 0) {
      n0++;
      if (decoded !== 0) e0++;
    } else {
      n1++;
      if (decoded !== 1) e1++;
    }
  }
  if (n0 === 0 || n1 === 0) return NaN;
  return (e0 / n0 + e1 / n1) / 2;
}

export function decode(t: Omit<Threshold, 'balancedError'>, s: Sample): 0 | 1 {
  const v = value(s);
  const above = v > t.threshold;
  return (t.direction === 1 ? above : !above) ? 1 : 0;
}

/** The threshold (and direction) with the lowest balanced error on `samples`. */
export function bestThreshold(samples: Sample[]): Threshold {
  const values = [...new Set(samples.map(value))].sort((a, b) => a - b);
  const candidates = [values[0]! - 1];
  for (let i = 0; i + 1 < values.length; i++) {
    const a = values[i]!;
    const b = values[i + 1]!;
    candidates.push(Number.isFinite(b) ? (a + b) / 2 : a + 1e9);
  }
  let best: Threshold = { threshold: candidates[0]!, direction: 1, balancedError: 0.5 };
  for (const threshold of candidates) {
    for (const direction of [1, -1] as const) {
      const e = balancedError(samples, { threshold, direction });
      if (!Number.isNaN(e) && e < best.balancedError) best = { threshold, direction, balancedError: e };
    }
  }
  return best;
}

/** Plug-in mutual information (bits) of a joint count table, Miller–Madow corrected, >= 0. */
export function mutualInformation(joint: number[][]): number {
  const n = joint.flat().reduce((a, b) => a + b, 0);
  if (n === 0) return 0;
  const rows = joint.map((r) => r.reduce((a, b) => a + b, 0));
  const cols = joint[0]!.map((_, j) => joint.reduce((a, r) => a + r[j]!, 0));
  const H = (counts: number[]) => {
    let h = 0;
    for (const c of counts) if (c > 0) h -= (c / n) * Math.log2(c / n);
    // Miller–Madow: + (m − 1) / (2 n ln 2) for m non-empty cells.
    const m = counts.filter((c) => c > 0).length;
    return h + (m - 1) / (2 * n * Math.LN2);
  };
  const mi = H(rows) + H(cols) - H(joint.flat());
  return Math.max(0, mi);
}

function binnedMI(samples: Sample[], bits: Array<0 | 1>): { mi: number; bins: number } {
  // Bins: equal-count quantiles of the finite latencies, plus one bin for failures.
  const finite = samples.filter((s) => s.latencyMs !== undefined).map((s) => s.latencyMs!).sort((a, b) => a - b);
  const bins = Math.max(2, Math.min(8, Math.floor(finite.length / 12)));
  const edges: number[] = [];
  for (let k = 1; k < bins; k++) edges.push(finite[Math.floor((k * finite.length) / bins)] ?? Infinity);
  const binOf = (s: Sample) => {
    if (s.latencyMs === undefined) return bins;
    let k = 0;
    while (k < edges.length && s.latencyMs >= edges[k]!) k++;
    return k;
  };
  const joint = [new Array<number>(bins + 1).fill(0), new Array<number>(bins + 1).fill(0)];
  samples.forEach((s, i) => joint[bits[i]!]![binOf(s)]!++);
  return { mi: mutualInformation(joint), bins };
}

/** A small deterministic PRNG (mulberry32): the permutation test, the red team's workload. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `train`: the calibration samples (public bits) the receiver learns its threshold from;
 * `test`: the secret bits it decodes. MI and the in-sample bound use both.
 */
export function estimateCapacity(train: Sample[], test: Sample[]): CapacityEstimate {
  const samples = [...train, ...test];
  const t = bestThreshold(train);
  const pErr = balancedError(test, t);
  const inSample = bestThreshold(samples);
  const pIn = balancedError(samples, inSample);
  const bits = samples.map((s) => s.bit);
  const { mi, bins } = binnedMI(samples, bits);
  const rand = prng(12345);
  const noise: number[] = [];
  for (let k = 0; k < 200; k++) {
    const perm = [...bits];
    for (let i = perm.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    noise.push(binnedMI(samples, perm).mi);
  }
  noise.sort((a, b) => a - b);
  const correct = test.filter((s) => decode(t, s) === s.bit).length;
  const [lowCap, highCap] = bscInterval(pErr, test.length);
  return {
    samples: samples.length,
    train: train.length,
    test: test.length,
    ones: samples.filter((s) => s.bit === 1).length,
    zeros: samples.filter((s) => s.bit === 0).length,
    failures: samples.filter((s) => s.latencyMs === undefined).length,
    pErr,
    bscBits: bscCapacity(pErr),
    bscBitsLow: lowCap,
    bscBitsHigh: highCap,
    pErrInSample: pIn,
    bscBitsInSample: bscCapacity(pIn),
    miBits: mi,
    miNoise95: noise[Math.floor(noise.length * 0.95)] ?? 0,
    bins,
    medianMs0: median(samples.filter((s) => s.bit === 0).map(value)),
    medianMs1: median(samples.filter((s) => s.bit === 1).map(value)),
    correct,
  };
}
