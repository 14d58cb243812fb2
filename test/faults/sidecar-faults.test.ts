// Process-level faults of the replicas (issue 9): a real cluster of cbft processes on 127.0.0.1
// (4 sidecars in front of 4 copies of the example bank, 2 chains of 2 firewall nodes), a steady
// bounded load from clients that retry with the same nonce, and real kills, pauses, damaged
// logs and skewed clocks. Firewall and legacy-service faults: firewall-and-service-faults.test.ts. After each fault: every acknowledged transfer is in every correct replica's ledger
// exactly once, in the same order, no client got an unsigned or wrong reply, and the cluster
// served again within a generous bound (reported, not asserted otherwise). Needs `npm run build`
// (npm test and npm run test:faults build first). Results: test/faults/RESULTS.md.

import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metric, startFaultCluster, type FaultCluster } from './helpers/cluster.js';
import { bankTransfer } from './helpers/load.js';
import { caughtUp, primaryOf, rows, runScenario, viewOf, type ScenarioResult } from './helpers/scenario.js';
import { fileClock, formatTable, publishRows } from './helpers/results.js';
import { encodeWalRecord, scanWal } from '../../src/sidecar/wal.js';

/** Wall time of this file, kept in RESULTS.md. */
const clock = fileClock(import.meta.url);

const LOAD = { clients: 4, ratePerClient: 4 };
const SCENARIO_TIMEOUT = 200_000;
const SKEW_MS = 10 * 60_000;

let fc: FaultCluster | undefined;

afterAll(async () => {
  await fc?.stop();
  const all = publishRows(rows, clock);
  console.log(`\n[faults] results (kept in test/faults/RESULTS.md by npm run test:faults):\n${formatTable(all)}\n`);
}, 60_000);

const f = () => fc!;
const replicaIds = () => f().cluster.replicas.map((r) => r.id);
const walOf = (id: string) => join(f().workDir, 'data', id, 'wal.log');
const backupOf = async (offset = 1) => `replica-${((await primaryOf(f())) + offset) % 4}`;
const sumOver = async (ids: string[], name: string, ...labels: string[]) =>
  (await Promise.all(ids.map((id) => (f().alive(id) ? metric(f().adminUrl(id), name, ...labels) : 0)))).reduce((a, b) => a + b, 0);

/** The encoding of the log's last record, as the next append would write it (to damage). */
function lastRecordAgain(id: string): Buffer {
  const scan = scanWal(readFileSync(walOf(id)));
  const last = scan.records[scan.records.length - 1];
  if (!last) throw new Error(`${id}: empty write-ahead log`);
  return encodeWalRecord(last);
}

/** The log line a sidecar writes when it cut a damaged tail off its write-ahead log. */
function cutLine(id: string, reason: string): Record<string, unknown> | undefined {
  return f()
    .logLines(id)
    .reverse()
    .find((l) => String(l.msg).includes('torn or corrupt tail detected and cut') && l.reason === reason);
}

/** Every signed transfer carries the batch timestamp: never further than the skew bound from real time. */
function timestampsBounded(r: ScenarioResult): string[] {
  const bound = f().cluster.pbft.maxClockSkewMs + 2_000;
  const bad: string[] = [];
  let worst = 0;
  for (const a of r.load.acked) {
    const t = Date.parse((a.body as { createdAt: string }).createdAt);
    const off = t < a.sentAt ? a.sentAt - t : t > a.ackAt ? t - a.ackAt : 0;
    worst = Math.max(worst, off);
    if (off > bound) bad.push(`${a.key}: createdAt ${(a.body as { createdAt: string }).createdAt} is ${off} ms outside [sent, acknowledged]`);
  }
  expect(bad, 'timestamps accepted from a skewed clock').toEqual([]);
  return [`signed timestamps within ${(worst / 1000).toFixed(1)} s of real time`];
}

describe('sidecar faults under load', () => {
  beforeAll(async () => {
    fc = await startFaultCluster({
      replicas: 4,
      chains: 2,
      chainLength: 2,
      service: 'bank',
      // Small, so restarts below also restore from compacted logs (and restore quickly).
      env: { CBFT_WAL_COMPACT_BYTES: String(256 * 1024) },
    });
  }, 120_000);

  it('kill -9 and restart of a backup sidecar', async () => {
    const victim = await backupOf(3);
    await runScenario({
      name: 'kill -9 + restart: backup sidecar',
      group: 1,
      order: 1,
      fc: f(),
      load: { ...LOAD, make: bankTransfer('backup-kill') },
      inject: () => f().kill(victim),
      holdMs: 2_000,
      heal: () => f().restart(victim),
      recovered: () => caughtUp(f(), victim),
    });
  }, SCENARIO_TIMEOUT);

  it('kill -9 and restart of the primary sidecar (view change)', async () => {
    const victim = `replica-${await primaryOf(f())}`;
    const view0 = await viewOf(f(), victim);
    await runScenario({
      name: 'kill -9 + restart: primary sidecar (view change)',
      group: 1,
      order: 2,
      fc: f(),
      load: { ...LOAD, make: bankTransfer('primary-kill') },
      inject: () => f().kill(victim),
      holdMs: 3_000,
      heal: () => f().restart(victim),
      recovered: () => caughtUp(f(), victim),
      after: async () => {
        const view = await viewOf(f(), victim);
        expect(view).toBeGreaterThan(view0);
        return [`view ${view0} → ${view}`];
      },
    });
  }, SCENARIO_TIMEOUT);

  it('SIGSTOP / SIGCONT of the primary sidecar, longer than the view-change and request timeouts', async () => {
    const victim = `replica-${await primaryOf(f())}`;
    const view0 = await viewOf(f(), victim);
    await runScenario({
      name: 'SIGSTOP 6 s + SIGCONT: primary sidecar',
      group: 1,
      order: 3,
      fc: f(),
      load: { ...LOAD, make: bankTransfer('primary-pause') },
      inject: async () => f().signal(victim, 'SIGSTOP'),
      holdMs: 6_000,
      heal: async () => f().signal(victim, 'SIGCONT'),
      recovered: () => caughtUp(f(), victim),
      after: async () => {
        const view = await viewOf(f(), victim);
        expect(view).toBeGreaterThan(view0);
        return [`view ${view0} → ${view}`];
      },
    });
  }, SCENARIO_TIMEOUT);

  // The damage a crash can really leave: an append that was cut short (a torn record) or that
  // reached the disk garbled. Records the sidecar finished writing are never touched: after a
  // process crash the OS still has them, and losing written-but-unsynced records is the documented
  // machine-crash trade-off of CBFT_WAL_SYNC=batch (src/sidecar/README.md, "Durability").
  it('a backup sidecar restarted on a write-ahead log with a torn last record', async () => {
    const victim = await backupOf(2);
    await runScenario({
      name: 'restart on a torn WAL tail: backup sidecar',
      group: 1,
      order: 4,
      fc: f(),
      load: { ...LOAD, make: bankTransfer('wal-torn') },
      inject: async () => {
        await f().kill(victim);
        const next = lastRecordAgain(victim);
        appendFileSync(walOf(victim), next.subarray(0, Math.max(9, next.length >> 1)));
      },
      holdMs: 1_000,
      heal: () => f().restart(victim),
      recovered: () => caughtUp(f(), victim),
      after: () => {
        const line = cutLine(victim, 'torn-record');
        expect(line, 'the sidecar says it cut a torn record').toBeDefined();
        return [`cut ${String(line!.droppedBytes)} bytes (torn-record)`];
      },
    });
  }, SCENARIO_TIMEOUT);

  it('a backup sidecar restarted on a write-ahead log with a corrupted last record and garbage after it', async () => {
    const victim = await backupOf(1);
    await runScenario({
      name: 'restart on a corrupted WAL tail: backup sidecar',
      group: 1,
      order: 5,
      fc: f(),
      load: { ...LOAD, make: bankTransfer('wal-corrupt') },
      inject: async () => {
        await f().kill(victim);
        const next = Buffer.from(lastRecordAgain(victim));
        next[next.length - 1]! ^= 0xff;
        appendFileSync(walOf(victim), Buffer.concat([next, Buffer.from([0, 0, 1])]));
      },
      holdMs: 1_000,
      heal: () => f().restart(victim),
      recovered: () => caughtUp(f(), victim),
      after: () => {
        const line = cutLine(victim, 'bad-checksum');
        expect(line, 'the sidecar says it cut a corrupt record').toBeDefined();
        return [`cut ${String(line!.droppedBytes)} bytes (bad-checksum)`];
      },
    });
  }, SCENARIO_TIMEOUT);

  it('more than s replicas down at once (the primary and a backup): 503/504, never a wrong answer, service resumes by itself', async () => {
    const primary = `replica-${await primaryOf(f())}`;
    const backup = await backupOf(2);
    await runScenario({
      name: '> s replicas down (primary + backup), then back',
      group: 1,
      order: 6,
      fc: f(),
      load: { ...LOAD, make: bankTransfer('quorum-loss') },
      inject: async () => {
        await Promise.all([f().kill(primary), f().kill(backup)]);
      },
      holdMs: 6_000,
      heal: async () => {
        await Promise.all([f().restart(primary), f().restart(backup)]);
      },
      recovered: async () => (await caughtUp(f(), primary)) && (await caughtUp(f(), backup)),
      expectErrorsDuringFault: true,
    });
  }, SCENARIO_TIMEOUT);

  it('clock skew: the primary runs 10 minutes ahead; its timestamps are refused, a view change follows, nothing skewed is signed', async () => {
    const victim = `replica-${await primaryOf(f())}`;
    const others = f().cluster.replicas.map((r) => r.id).filter((id) => id !== victim);
    const skewDrops0 = await sumOver(others, 'cbft_dropped_messages_total', 'layer="pbft"', 'reason="clock-skew"');
    const view0 = await viewOf(f(), victim);
    await runScenario({
      name: 'clock skew +10 min: primary sidecar',
      group: 1,
      order: 7,
      fc: f(),
      load: { ...LOAD, make: bankTransfer('skew-primary') },
      inject: async () => f().setSkew(victim, SKEW_MS),
      holdMs: 4_000,
      heal: async () => f().setSkew(victim, 0),
      recovered: () => caughtUp(f(), victim),
      after: async (r) => {
        const drops = (await sumOver(others, 'cbft_dropped_messages_total', 'layer="pbft"', 'reason="clock-skew"')) - skewDrops0;
        expect(drops, 'pre-prepares refused for their timestamp').toBeGreaterThan(0);
        const view = await viewOf(f(), victim);
        expect(view).toBeGreaterThan(view0);
        return [`${drops} skewed pre-prepares refused, view ${view0} → ${view}`, ...timestampsBounded(r)];
      },
    });
  }, SCENARIO_TIMEOUT);

  it('clock skew across restarts: a backup started 10 minutes ahead, then restarted with its clock fixed, is heard again', async () => {
    // Frames carry the sender's session start (its wall clock when the process started); a
    // receiver refuses sessions older than the newest it saw from that sender, as replays. A
    // replica that once started with a fast clock and is restarted with a correct one must not
    // be refused by every peer (silently: the sender took the 409 for "already delivered").
    const victim = await backupOf(2);
    const peers = replicaIds().filter((id) => id !== victim);
    const stale = () => sumOver(peers, 'cbft_dropped_messages_total', 'layer="transport"', 'reason="stale-session"');
    let last = { value: -1, since: 0 };
    const peersHearIt = async () => {
      const v = await stale();
      if (v !== last.value) last = { value: v, since: Date.now() };
      return Date.now() - last.since >= 2_000;
    };
    const stale0 = await stale();
    await runScenario({
      name: 'clock skew +10 min across restarts: backup sidecar',
      group: 1,
      order: 9,
      fc: f(),
      load: { ...LOAD, make: bankTransfer('skew-restart') },
      inject: async () => {
        f().setSkew(victim, SKEW_MS);
        await f().kill(victim);
        await f().restart(victim);
      },
      holdMs: 1_000,
      heal: async () => {
        f().setSkew(victim, 0);
        await f().kill(victim);
        await f().restart(victim);
      },
      recovered: async () => (await caughtUp(f(), victim)) && (await peersHearIt()),
      after: async () => [`peers refused ${(await stale()) - stale0} of its frames as from a stale session, then heard it`],
    });
  }, SCENARIO_TIMEOUT);

  it('clock skew: a backup runs 10 minutes behind; it refuses the primary, the others go on, it catches up once fixed', async () => {
    const victim = await backupOf(1);
    const drops0 = await metric(f().adminUrl(victim), 'cbft_dropped_messages_total', 'layer="pbft"', 'reason="clock-skew"');
    await runScenario({
      name: 'clock skew −10 min: backup sidecar',
      group: 1,
      order: 8,
      fc: f(),
      load: { ...LOAD, make: bankTransfer('skew-backup') },
      inject: async () => f().setSkew(victim, -SKEW_MS),
      holdMs: 4_000,
      heal: async () => f().setSkew(victim, 0),
      recovered: () => caughtUp(f(), victim),
      after: async (r) => {
        const drops = (await metric(f().adminUrl(victim), 'cbft_dropped_messages_total', 'layer="pbft"', 'reason="clock-skew"')) - drops0;
        expect(drops, 'the skewed backup refused pre-prepares').toBeGreaterThan(0);
        return [`it refused ${drops} pre-prepares while skewed`, ...timestampsBounded(r)];
      },
    });
  }, SCENARIO_TIMEOUT);
});
