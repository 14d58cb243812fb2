// After a fault: was every acknowledged request applied exactly once on every correct replica?
// The bank keeps a ledger (GET /admin/ledger with BANK_ADMIN=1, on each copy's own port); the
// counting service counts executions per key and per sequence number (GET /__counts).
//
// A request whose outcome a killed sidecar logged as unknown ("request outcome unknown": it was
// possibly at the service when the sidecar died, and is never re-sent, by design) may be missing
// from that one replica's service; it must never be there twice. Everything else must match.

import { request } from 'undici';
import type { Acked } from './load.js';
import { metric, waitUntil, type FaultCluster } from './cluster.js';

export interface ConsistencyReport {
  /** Acknowledged requests missing on some correct replica (must be empty). */
  lost: string[];
  /** Requests applied twice, diverging replicas, ledger entries that contradict signed replies. */
  wrong: string[];
  notes: string[];
}

interface Transfer {
  id: string;
  from: string;
  to: string;
  amount: number;
  createdAt: string;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await request(url, { headersTimeout: 10_000, bodyTimeout: 10_000 });
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode}`);
  return (await res.body.json()) as T;
}

/** Digests that replica `id`'s sidecar logged as of unknown outcome (over all its restarts). */
export function unknownDigests(fc: FaultCluster, id: string): Set<string> {
  const out = new Set<string>();
  for (const l of fc.logLines(id)) if (String(l.msg).startsWith('request outcome unknown')) out.add(String(l.digest));
  return out;
}

export async function lastExecuted(fc: FaultCluster, id: string): Promise<number> {
  return metric(fc.adminUrl(id), 'cbft_sidecar_sequence');
}

/** Waits until every replica in `ids` executed the same sequence number; returns it. */
export async function waitConverged(fc: FaultCluster, ids: string[] = fc.cluster.replicas.map((r) => r.id), timeoutMs = 60_000): Promise<number> {
  let seq = -1;
  let stable = 0;
  await waitUntil(
    `replicas ${ids.join(', ')} at the same sequence number`,
    async () => {
      const seqs = await Promise.all(ids.map((id) => lastExecuted(fc, id)));
      const same = seqs.every((s) => s === seqs[0]);
      // Twice in a row: nothing is still being ordered.
      stable = same && seqs[0] === seq ? stable + 1 : 0;
      seq = seqs[0]!;
      return same && stable >= 2;
    },
    timeoutMs,
    200,
  );
  return seq;
}

export async function checkConsistency(fc: FaultCluster, acked: readonly Acked[], correct: number[] = fc.cluster.replicas.map((r) => r.index)): Promise<ConsistencyReport> {
  return fc.service === 'bank' ? checkBank(fc, acked, correct) : checkCounting(fc, acked, correct);
}

async function checkBank(fc: FaultCluster, acked: readonly Acked[], correct: number[]): Promise<ConsistencyReport> {
  const lost: string[] = [];
  const wrong: string[] = [];
  const notes: string[] = [];
  const ledgers = await Promise.all(
    correct.map(async (i) => ({ i, l: await getJson<{ count: number; transfers: Transfer[]; balances: Record<string, number> }>(fc.lc.upstreamUrls[i]! + '/admin/ledger') })),
  );
  const unknown = new Map(correct.map((i) => [i, unknownDigests(fc, `replica-${i}`)]));
  for (const { i, l } of ledgers) {
    const byId = new Map<string, Transfer>();
    for (const t of l.transfers) {
      if (byId.has(t.id)) wrong.push(`replica-${i}: transfer ${t.id} applied twice`);
      byId.set(t.id, t);
    }
    for (const a of acked) {
      if (a.effect === 'read') continue;
      const t = byId.get(a.effect);
      const signed = a.body as Transfer;
      if (!t) {
        if (unknown.get(i)!.has(a.digest)) notes.push(`replica-${i}: ${a.key} (outcome unknown after a crash) not at its service`);
        else lost.push(`replica-${i}: acknowledged transfer ${a.effect} (${a.key}) is not in its ledger`);
        continue;
      }
      if (t.from !== signed.from || t.to !== signed.to || t.amount !== signed.amount || t.createdAt !== signed.createdAt) {
        wrong.push(`replica-${i}: ledger entry ${JSON.stringify(t)} differs from the signed reply ${JSON.stringify(signed)}`);
      }
    }
  }
  // Same transfers in the same order everywhere (a replica with unknown outcomes may lack those).
  const clean = ledgers.filter(({ i }) => unknown.get(i)!.size === 0);
  const ref = clean[0] ?? ledgers[0]!;
  const refIds = ref.l.transfers.map((t) => t.id);
  for (const { i, l } of ledgers) {
    if (i === ref.i) continue;
    const ids = l.transfers.map((t) => t.id);
    if (unknown.get(i)!.size === 0) {
      if (ids.join() !== refIds.join()) wrong.push(`replica-${i}: ledger (${ids.length} transfers) differs from replica-${ref.i} (${refIds.length})`);
      if (JSON.stringify(l.balances) !== JSON.stringify(ref.l.balances)) wrong.push(`replica-${i}: balances differ from replica-${ref.i}`);
    } else {
      const have = new Set(ids);
      const subsequence = refIds.filter((id) => have.has(id));
      if (subsequence.join() !== ids.join()) wrong.push(`replica-${i}: ledger order differs from replica-${ref.i}`);
      if (ids.length < refIds.length) notes.push(`replica-${i}: ${refIds.length - ids.length} transfer(s) of unknown outcome missing at its service`);
    }
  }
  return { lost, wrong, notes };
}

async function checkCounting(fc: FaultCluster, acked: readonly Acked[], correct: number[]): Promise<ConsistencyReport> {
  const lost: string[] = [];
  const wrong: string[] = [];
  const notes: string[] = [];
  const counts = await Promise.all(
    correct.map(async (i) => ({ i, c: await getJson<{ executions: number; perSeq: Record<string, string[]>; perKey: Record<string, number> }>(fc.lc.upstreamUrls[i]! + '/__counts') })),
  );
  const unknown = new Map(correct.map((i) => [i, unknownDigests(fc, `replica-${i}`)]));
  for (const { i, c } of counts) {
    for (const [key, n] of Object.entries(c.perKey)) if (n > 1) wrong.push(`replica-${i}: ${key} executed ${n} times`);
    for (const a of acked) {
      const n = c.perKey[a.key] ?? 0;
      if (n === 0) {
        if (unknown.get(i)!.has(a.digest)) notes.push(`replica-${i}: ${a.key} (outcome unknown after a crash) not at its service`);
        else lost.push(`replica-${i}: acknowledged ${a.key} never executed`);
      }
      const seq = String((a.body as { seq: string }).seq);
      const keys = c.perSeq[seq];
      if (n > 0 && !(keys ?? []).includes(a.key)) wrong.push(`replica-${i}: ${a.key} executed outside batch ${seq} named by its signed reply`);
    }
  }
  const ref = counts.find(({ i }) => unknown.get(i)!.size === 0) ?? counts[0]!;
  for (const { i, c } of counts) {
    if (i === ref.i) continue;
    for (const [seq, keys] of Object.entries(c.perSeq)) {
      const want = ref.c.perSeq[seq];
      if (want === undefined) continue;
      const expected = unknown.get(i)!.size === 0 ? want : want.filter((k) => keys.includes(k));
      if (keys.join() !== expected.join()) wrong.push(`replica-${i}: batch ${seq} holds ${keys.join(',')} but replica-${ref.i} ${want.join(',')}`);
    }
  }
  return { lost, wrong, notes };
}
