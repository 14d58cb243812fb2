import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/codec/binary.js';
import type { PersistRecord, Replica, Snapshot } from '../../src/pbft/index.js';
import { compactRecords, decodeRecord, encodeRecord } from '../../src/pbft/index.js';
import { GENESIS_EXEC } from '../../src/pbft/execution.js';
import { GENESIS_HISTORY } from '../../src/pbft/digests.js';
import { Cluster, makeRequest } from './harness.js';
import { KAT_BATCH, KAT_MESSAGES } from './kat-fixtures.js';

const D = new Uint8Array(32).fill(0x11);
const SIG = new Uint8Array(32).fill(0xab);

const SNAPSHOT: Snapshot = {
  view: 2,
  inViewChange: true,
  lastNormalView: 1,
  viewChangeAttempt: 1,
  ownViewChange: KAT_MESSAGES['view-change'] as Extract<PersistRecord, { kind: 'snapshot' }>['snapshot']['ownViewChange'],
  newView: null,
  stable: { seq: 0, digest: GENESIS_HISTORY, sigs: [] },
  execBase: { ...GENESIS_EXEC, dedup: { digests: D, seqs: [1] } },
  keepCommittedAbove: 0,
};

const RECORDS: PersistRecord[] = [
  { kind: 'accepted', prePrepare: KAT_MESSAGES['pre-prepare'] as Extract<PersistRecord, { kind: 'accepted' }>['prePrepare'] },
  { kind: 'prepared', cert: { view: 1, seq: 2, digest: D, primarySig: SIG, prepares: [{ replica: 2, sig: SIG }, { replica: 3, sig: SIG }] } },
  { kind: 'committed', entry: { seq: 2, batch: KAT_BATCH, cert: { view: 1, digest: D, commits: [0, 1, 2].map((replica) => ({ replica, sig: SIG })) } } },
  { kind: 'snapshot', snapshot: SNAPSHOT },
];

describe('persisted records', () => {
  it('round-trip through their strict binary encoding', () => {
    for (const rec of RECORDS) {
      const bytes = encodeRecord(rec);
      const back = decodeRecord(bytes);
      expect(back).toEqual(rec);
      expect(toHex(encodeRecord(back))).toBe(toHex(bytes));
      const trailing = new Uint8Array(bytes.length + 1);
      trailing.set(bytes);
      expect(() => decodeRecord(trailing)).toThrow(expect.objectContaining({ code: 'CBFT_ERR_DECODE' }) as Error);
    }
  });

  it('pins the bytes of a prepared-certificate record', () => {
    expect(toHex(encodeRecord(RECORDS[1]!))).toBe(
      '0102' + '0000000000000001' + '0000000000000002' + '11'.repeat(32) + '00000020' + 'ab'.repeat(32) + '0002' + '0002' + '00000020' + 'ab'.repeat(32) + '0003' + '00000020' + 'ab'.repeat(32),
    );
  });

  it('compaction keeps the last snapshot, what follows it, and only what the snapshot does not cover', () => {
    const c = new Cluster();
    for (let i = 0; i < 14; i++) c.submit(makeRequest(`compact-${i}`));
    c.runUntil(() => c.all().every((id) => c.replica(id).inspect().lowWatermark >= 8));
    const wal = c.wal[1]!;
    const compacted = compactRecords(wal);
    expect(compacted.length).toBeLessThan(wal.length);
    const snapIndex = compacted.findIndex((r) => r.kind === 'snapshot');
    expect(compacted.filter((r) => r.kind === 'snapshot')).toHaveLength(1);
    const snap = (compacted[snapIndex] as Extract<PersistRecord, { kind: 'snapshot' }>).snapshot;
    for (const rec of compacted.slice(0, snapIndex)) {
      if (rec.kind === 'committed') expect(rec.entry.seq).toBeGreaterThan(snap.keepCommittedAbove);
      if (rec.kind === 'prepared') expect(rec.cert.seq).toBeGreaterThan(snap.stable.seq);
      if (rec.kind === 'accepted') expect(rec.prePrepare.seq).toBeGreaterThan(snap.stable.seq);
    }
    expect(compactRecords(compacted)).toEqual(compacted);
  });

  it('restoring from the compacted log gives the same state as from the full log', () => {
    const c = new Cluster();
    for (let i = 0; i < 11; i++) c.submit(makeRequest(`restore-${i}`));
    c.runUntil(() => c.all().every((id) => c.executedPayloads(id).length === 11 && c.replica(id).inspect().lowWatermark >= 8));
    const restoredFull = restoreWith(c, 2, c.wal[2]!);
    const restoredCompact = restoreWith(c, 2, compactRecords(c.wal[2]!));
    expect(compactRecords(c.wal[2]!).length).toBeLessThan(c.wal[2]!.length);
    expect(restoredCompact).toEqual(restoredFull);
    expect(restoredFull.lowWatermark).toBe(c.replica(2).inspect().lowWatermark);
    expect(restoredFull.lastDispatched).toBe(c.replica(2).inspect().lastDispatched);
  });
});

function restoreWith(c: Cluster, id: number, records: PersistRecord[]): ReturnType<Replica['inspect']> {
  const saved = c.wal[id]!;
  c.wal[id] = records;
  c.crash(id);
  c.restart(id, false);
  c.wal[id] = saved;
  return c.replica(id).inspect();
}
