// One fault scenario: start a steady load, inject the fault, keep it for a while, heal it, wait
// until the cluster serves again and the healed part is back in step, stop the load (every
// logical request is retried until acknowledged or its deadline), let the replicas converge and
// compare what every correct replica applied with what the clients were told.

import { expect } from 'vitest';
import { metric, sleep, waitUntil, type FaultCluster } from './cluster.js';
import { checkConsistency, lastExecuted, waitConverged } from './ledger.js';
import { LoadGen, type LoadOptions, type WindowStats } from './load.js';
import { secs, today, type Row } from './results.js';

/** Generous bound on recovery: the tests fail only beyond it (they never assert speed otherwise). */
export const RECOVERY_BOUND_MS = 90_000;

export interface ScenarioSpec {
  name: string;
  group: number;
  order: number;
  fc: FaultCluster;
  load: Omit<LoadOptions, 'cluster'>;
  /** Injects the fault (kill, pause, damage, skew...). */
  inject(load: LoadGen): Promise<void>;
  /** How long the fault lasts before `heal`. */
  holdMs: number;
  heal(): Promise<void>;
  /** Polled after heal: the healed part is back in step. */
  recovered(load: LoadGen): Promise<boolean>;
  /** Replicas whose services must hold every acknowledged request (default all). */
  correct?: number[];
  /** Extra checks after the run; returns notes for the table. */
  after?(r: ScenarioResult): Promise<string[] | void> | string[] | void;
  /** Whether clients must have seen errors while the fault lasted (more than s replicas down). */
  expectErrorsDuringFault?: boolean;
  /**
   * Chains that must keep serving while the fault lasts (from the injection until the cluster
   * serves again after the heal): through each, at least `minPerSec` verified answers per second
   * of outage on average, and no stretch longer than `maxGapMs` without one. Measured on what
   * came back through that chain's bottom node, whichever chain answered a request first.
   */
  carriesOn?: { chains: number[]; maxGapMs: number; minPerSec: number };
}

export interface ChainStats {
  chain: number;
  from: number;
  to: number;
  /** Verified answers that came back through this chain in [from, to]. */
  verified: number;
  /** Longest stretch without a verified answer through this chain in [from, to] (ms). */
  maxGapMs: number;
  errors: number;
  conn: number;
}

export interface ScenarioResult {
  load: LoadGen;
  tFault: number;
  tHeal: number;
  recoverMs: number | undefined;
  during: WindowStats;
  /** Per `carriesOn` chain, over the outage. */
  carried: ChainStats[];
  notes: string[];
}

/** Verified answers, errors and the longest gap through one chain between two instants. */
export function chainStats(load: LoadGen, chain: number, from: number, to: number): ChainStats {
  let verified = 0;
  let errors = 0;
  let conn = 0;
  let maxGapMs = 0;
  let prev = from;
  const events = load.events.filter((e) => e.chain === chain && e.at >= from && e.at <= to).sort((a, b) => a.at - b.at);
  for (const e of events) {
    if (e.kind === 'error') errors++;
    if (e.kind === 'conn') conn++;
    if (e.kind !== 'verified') continue;
    verified++;
    maxGapMs = Math.max(maxGapMs, e.at - prev);
    prev = e.at;
  }
  maxGapMs = Math.max(maxGapMs, to - prev);
  return { chain, from, to, verified, maxGapMs, errors, conn };
}

export const rows: Row[] = [];

export async function primaryOf(fc: FaultCluster): Promise<number> {
  for (const r of fc.cluster.replicas) {
    if (!fc.alive(r.id)) continue;
    try {
      return await metric(r.adminUrl, 'cbft_sidecar_primary');
    } catch {
      // try the next one
    }
  }
  throw new Error('no replica answers');
}

export async function viewOf(fc: FaultCluster, id: string): Promise<number> {
  return metric(fc.adminUrl(id), 'cbft_sidecar_view');
}

/** Replica `id` executed at least as far as the slowest of the others, in the same view. */
export async function caughtUp(fc: FaultCluster, id: string): Promise<boolean> {
  const others = fc.cluster.replicas.filter((r) => r.id !== id && fc.alive(r.id)).map((r) => r.id);
  const [mine, myView, ...rest] = await Promise.all([lastExecuted(fc, id), viewOf(fc, id), ...others.map((o) => lastExecuted(fc, o))]);
  const views = await Promise.all(others.map((o) => viewOf(fc, o)));
  if (process.env.CBFT_FAULTS_DEBUG) console.log(`[faults] caughtUp ${id}: seq ${mine} view ${myView}; others ${rest.join(',')} views ${views.join(',')}`);
  return mine >= Math.min(...rest) && views.every((v) => v === myView);
}

export async function runScenario(s: ScenarioSpec): Promise<ScenarioResult> {
  const { fc } = s;
  const load = new LoadGen({ cluster: fc.cluster, ...s.load }).start();
  let result: ScenarioResult | undefined;
  const notes: string[] = [];
  let tFault = 0;
  let tHeal = 0;
  let recoverMs: number | undefined;
  let failure: unknown;
  try {
    // Steady state first.
    await waitUntil('the load is served before the fault', () => load.ackCount() >= 6, 30_000, 50);
    tFault = Date.now();
    await s.inject(load);
    await sleep(s.holdMs);
    tHeal = Date.now();
    await s.heal();
    const healMs = Date.now() - tHeal;
    if (process.env.CBFT_FAULTS_DEBUG) console.log(`[faults] ${s.name}: heal took ${healMs} ms`);
    try {
      await waitUntil(
        `${s.name}: served again and back in step`,
        async () => load.firstAckSentAfter(tHeal) !== undefined && (await s.recovered(load)),
        RECOVERY_BOUND_MS - (Date.now() - tHeal),
        100,
      );
      recoverMs = Date.now() - tHeal;
    } catch (err) {
      failure = err;
    }
    // A little steady state after recovery.
    await sleep(500);
  } catch (err) {
    failure ??= err;
  } finally {
    await load.stop();
  }
  const during = load.window(tFault || load.startedAt, recoverMs !== undefined ? tHeal + recoverMs : Date.now());
  const carried = (s.carriesOn?.chains ?? []).map((c) => chainStats(load, c, during.from, during.to));
  for (const c of carried) {
    const secsOut = (c.to - c.from) / 1000;
    notes.push(
      `chain ${c.chain} carried on: ${c.verified} verified answers in the ${secs(c.to - c.from)} outage (${(c.verified / Math.max(0.001, secsOut)).toFixed(1)}/s), ` +
        `longest gap ${secs(c.maxGapMs)}${c.errors + c.conn > 0 ? `, ${c.errors} errors, ${c.conn} connection failures` : ''}`,
    );
  }
  let lost = load.lost.length;
  let wrong = load.wrong.length;
  const details: string[] = [...load.lost.map((l) => `lost ${l.key}: ${l.lastReasons.join('; ')}`), ...load.wrong.map((w) => `wrong ${w.key} chain ${w.chain}: ${w.detail}`)];
  const correct = s.correct ?? fc.cluster.replicas.map((r) => r.index);
  try {
    await waitConverged(fc, correct.map((i) => `replica-${i}`), 60_000);
    const report = await checkConsistency(fc, load.acked, correct);
    lost += report.lost.length;
    wrong += report.wrong.length;
    details.push(...report.lost, ...report.wrong);
    // Requests a crash left "at the service" are never re-sent (by design): that copy lacks them.
    const unknownAt = new Map<string, number>();
    for (const n of report.notes) {
      const who = n.slice(0, n.indexOf(':'));
      if (n.includes('outcome unknown')) unknownAt.set(who, (unknownAt.get(who) ?? 0) + 1);
    }
    for (const [who, k] of unknownAt) notes.push(`${who}: ${k} request(s) in flight when its service died are missing there (outcome unknown: logged, reply adopted from peers, never re-sent)`);
  } catch (err) {
    failure ??= err;
  }
  result = { load, tFault, tHeal, recoverMs, during, carried, notes };
  if (!failure && s.after) {
    try {
      const extra = await s.after(result);
      if (extra) notes.push(...extra);
    } catch (err) {
      failure = err;
    }
  }
  if (process.env.CBFT_FAULTS_DEBUG) {
    const lat = load.acked.map((a) => a.ackAt - a.sentAt).sort((a, b) => a - b);
    console.log(`[faults] ${s.name}: ${lat.length} acked, latency p50 ${lat[Math.floor(lat.length / 2)]} ms p90 ${lat[Math.floor(lat.length * 0.9)]} ms max ${lat[lat.length - 1]} ms`);
  }
  const errs = Object.entries(during.errors)
    .map(([k, v]) => `${v}×${k}`)
    .join(', ');
  if (errs) notes.push(`client saw ${errs}`);
  if (fc.crashes.length > 0) notes.push(`crashed: ${fc.crashes.join('; ')}`);
  rows.push({
    group: s.group,
    order: s.order,
    name: s.name,
    load: during.ratePerSec.toFixed(1),
    recover: recoverMs === undefined ? 'did not recover' : secs(recoverMs),
    gap: secs(during.maxGapMs),
    lost,
    wrong,
    notes: notes.join('; '),
    date: today(),
  });
  console.log(
    `[faults] ${s.name}: ${during.ratePerSec.toFixed(1)} req/s held, recovered in ${secs(recoverMs)}, longest gap ${secs(during.maxGapMs)}, ` +
      `lost ${lost}, wrong ${wrong}${notes.length ? ` (${notes.join('; ')})` : ''}`,
  );
  if (details.length > 0) console.log(`[faults] ${s.name} details:\n  ${details.slice(0, 20).join('\n  ')}`);
  await load.close();
  if (failure) throw failure;
  expect(details, 'lost or wrong requests').toEqual([]);
  expect(lost).toBe(0);
  expect(wrong).toBe(0);
  expect(recoverMs).toBeDefined();
  expect(recoverMs!).toBeLessThan(RECOVERY_BOUND_MS);
  expect(fc.crashes, 'processes that crashed').toEqual([]);
  for (const c of carried) {
    expect(c.verified, `verified answers through chain ${c.chain} while the fault lasted`).toBeGreaterThanOrEqual(Math.ceil(s.carriesOn!.minPerSec * ((c.to - c.from) / 1000)));
    expect(c.maxGapMs, `longest gap through chain ${c.chain} while the fault lasted`).toBeLessThan(s.carriesOn!.maxGapMs);
  }
  if (s.expectErrorsDuringFault) expect(Object.keys(during.errors).length + during.conn, 'clients were told the service is unavailable').toBeGreaterThan(0);
  return result;
}
