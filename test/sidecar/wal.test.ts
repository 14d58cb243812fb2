import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { utf8 } from '../../src/codec/binary.js';
import { Journal, decodeJournalRecord, encodeJournalRecord, replayJournal, type JournalRecord } from '../../src/sidecar/journal.js';
import { RECORD_HEADER_BYTES, WAL_MAGIC, WalFile, encodeWalRecord, scanWal } from '../../src/sidecar/wal.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});
function tmpWal(): string {
  const d = mkdtempSync(join(tmpdir(), 'cbft-wal-'));
  dirs.push(d);
  return join(d, 'data', 'wal.log');
}

const payloads = (n: number) => Array.from({ length: n }, (_, i) => utf8(`record-${i}-${'x'.repeat(i * 7)}`));

function writeRecords(path: string, records: Uint8Array[]): void {
  const { wal } = WalFile.open(path);
  for (const r of records) wal.append(r);
  wal.sync();
  wal.close();
}

describe('WalFile', () => {
  it('creates a log, makes appends durable on sync only, and reads them back in order', () => {
    const path = tmpWal();
    const first = WalFile.open(path);
    expect(first.created).toBe(true);
    expect(first.records).toEqual([]);
    const recs = payloads(5);
    for (const r of recs) first.wal.append(r);
    expect(first.wal.dirty).toBe(true);
    // Not synced yet: nothing but the magic is on disk.
    expect(statSync(path).size).toBe(WAL_MAGIC.length);
    first.wal.sync();
    expect(first.wal.dirty).toBe(false);
    expect(first.wal.syncs).toBe(1); // group commit: one write + fdatasync for five records
    expect(statSync(path).size).toBe(first.wal.size);
    first.wal.close();

    const again = WalFile.open(path);
    expect(again.created).toBe(false);
    expect(again.truncation).toBeUndefined();
    expect(again.records).toEqual(recs);
    again.wal.close();
  });

  it('flushes without blocking: concurrent flushes share fdatasyncs, and compaction waits for them', async () => {
    const path = tmpWal();
    const { wal } = WalFile.open(path);
    const recs = payloads(20);
    const flushes: Array<Promise<void>> = [];
    for (const r of recs) {
      wal.append(r);
      flushes.push(wal.flush());
    }
    expect(wal.syncing).toBe(true);
    expect(() => wal.rewrite([])).toThrow(/sync is in flight/);
    await Promise.all(flushes);
    expect(wal.dirty).toBe(false);
    expect(wal.durableSize).toBe(statSync(path).size);
    // Group commit: far fewer fdatasyncs than flush calls (the first covers one record, the next the rest).
    expect(wal.syncs).toBeLessThanOrEqual(3);
    await wal.idle();
    wal.rewrite(recs.slice(0, 2));
    wal.close();
    expect(WalFile.open(path).records).toEqual(recs.slice(0, 2));
  });

  it('detects a torn record at the tail, cuts it, and appends cleanly after the cut', () => {
    const path = tmpWal();
    const recs = payloads(4);
    writeRecords(path, recs);
    const full = statSync(path).size;
    truncateSync(path, full - 3); // the last record lost its final bytes (a torn write)
    const opened = WalFile.open(path);
    expect(opened.records).toEqual(recs.slice(0, 3));
    expect(opened.truncation?.reason).toBe('torn-record');
    expect(opened.truncation!.droppedBytes).toBe(RECORD_HEADER_BYTES + recs[3]!.length - 3);
    // The file was cut at the record boundary.
    expect(statSync(path).size).toBe(opened.truncation!.offset);
    opened.wal.append(utf8('after-the-cut'));
    opened.wal.sync();
    opened.wal.close();
    const again = WalFile.open(path);
    expect(again.truncation).toBeUndefined();
    expect(again.records).toEqual([...recs.slice(0, 3), utf8('after-the-cut')]);
    again.wal.close();
  });

  it('detects a torn record header', () => {
    const path = tmpWal();
    writeRecords(path, payloads(2));
    const size = statSync(path).size;
    writeFileSync(path, Buffer.concat([readFileSync(path), Buffer.from([0, 0, 0])]));
    const opened = WalFile.open(path);
    expect(opened.records).toHaveLength(2);
    expect(opened.truncation).toEqual({ offset: size, droppedBytes: 3, reason: 'torn-header' });
    opened.wal.close();
  });

  it('detects a corrupt checksum (payload bit flip) and cuts the log at that record', () => {
    const path = tmpWal();
    const recs = payloads(6);
    writeRecords(path, recs);
    const image = readFileSync(path);
    // Flip one payload byte of record 4 (records 0..3 stay intact; 4 and 5 are dropped).
    let off = WAL_MAGIC.length;
    for (let i = 0; i < 4; i++) off += RECORD_HEADER_BYTES + recs[i]!.length;
    image[off + RECORD_HEADER_BYTES + 2]! ^= 0x40;
    writeFileSync(path, image);
    const opened = WalFile.open(path);
    expect(opened.records).toEqual(recs.slice(0, 4));
    expect(opened.truncation).toMatchObject({ offset: off, reason: 'bad-checksum', droppedBytes: image.length - off });
    opened.wal.close();
  });

  it('treats a corrupted length field as corruption (checksum covers the length) and never allocates it', () => {
    const path = tmpWal();
    const recs = payloads(3);
    writeRecords(path, recs);
    const image = readFileSync(path);
    const off = WAL_MAGIC.length + RECORD_HEADER_BYTES + recs[0]!.length;
    // A smaller length still inside the file: caught by the checksum.
    image.writeUInt32BE(recs[1]!.length - 1, off);
    expect(scanWal(image).reason).toBe('bad-checksum');
    // An absurd length: caught before any allocation.
    image.writeUInt32BE(0xfffffff0, off);
    expect(scanWal(image)).toMatchObject({ end: off, reason: 'bad-length' });
    expect(scanWal(image).records).toHaveLength(1);
  });

  it('refuses a file that is not a write-ahead log instead of overwriting it', () => {
    const path = tmpWal();
    writeRecords(path, payloads(1));
    writeFileSync(path, 'definitely not a log file');
    expect(() => WalFile.open(path)).toThrow(/not a cbft write-ahead log/);
    expect(readFileSync(path, 'utf8')).toBe('definitely not a log file');
  });

  it('compacts atomically: rewrite replaces the content, and a leftover temp file from a crash is ignored', () => {
    const path = tmpWal();
    const recs = payloads(50);
    const { wal } = WalFile.open(path);
    for (const r of recs) wal.append(r);
    wal.sync();
    const before = wal.size;
    wal.rewrite(recs.slice(45));
    expect(wal.size).toBeLessThan(before);
    wal.append(utf8('after-compaction'));
    wal.sync();
    wal.close();
    // A crash during a later compaction leaves a half-written temp file: the log itself is whole.
    writeFileSync(path + '.compact', encodeWalRecord(utf8('half')).subarray(0, 5));
    const opened = WalFile.open(path);
    expect(opened.truncation).toBeUndefined();
    expect(opened.records).toEqual([...recs.slice(45), utf8('after-compaction')]);
    expect(existsSync(path + '.compact')).toBe(false);
    opened.wal.close();
  });
});

describe('Journal', () => {
  const digest = (b: number) => new Uint8Array(32).fill(b);
  const seed = new Uint8Array(32).fill(9);
  const reply = (s: string) => utf8(s);

  it('round-trips every record kind and refuses unknown kinds or trailing bytes', () => {
    const all: JournalRecord[] = [
      { kind: 'engine', bytes: utf8('engine-record') },
      { kind: 'start', seq: 7, index: 2 },
      { kind: 'not-sent', seq: 7, index: 2 },
      { kind: 'done', seq: 7, index: 2, reply: reply('r') },
      { kind: 'unknown', seq: 7, index: 3, reason: 'crash' },
      { kind: 'adopted', seq: 7, index: 3, reply: reply('peer') },
      { kind: 'batch-done', batch: { seq: 7, seed, digests: [digest(1), digest(2)], partial: new Uint8Array(48).fill(5) } },
      { kind: 'batch-done', batch: { seq: 8, seed, digests: [], partial: undefined } },
      { kind: 'executed', seq: 99 },
    ];
    for (const r of all) expect(decodeJournalRecord(encodeJournalRecord(r))).toEqual(r);
    expect(() => decodeJournalRecord(new Uint8Array([42]))).toThrow(/unknown kind/);
    const extra = new Uint8Array([...encodeJournalRecord({ kind: 'executed', seq: 1 }), 0]);
    expect(() => decodeJournalRecord(extra)).toThrow(/trailing/);
  });

  it('replays execution progress: a started request without done is reported as started (outcome unknown)', () => {
    const recs: JournalRecord[] = [
      { kind: 'engine', bytes: utf8('e1') },
      { kind: 'start', seq: 1, index: 0 },
      { kind: 'done', seq: 1, index: 0, reply: reply('a') },
      { kind: 'batch-done', batch: { seq: 1, seed, digests: [digest(1)], partial: new Uint8Array(48).fill(1) } },
      { kind: 'start', seq: 2, index: 0 },
      { kind: 'done', seq: 2, index: 0, reply: reply('b') },
      { kind: 'start', seq: 2, index: 1 },
      { kind: 'not-sent', seq: 2, index: 1 },
      { kind: 'start', seq: 2, index: 2 },
      { kind: 'engine', bytes: utf8('e2') },
    ];
    const st = replayJournal(recs.map(encodeJournalRecord));
    expect(st.engineRecords).toEqual([utf8('e1'), utf8('e2')]);
    expect(st.executedThrough).toBe(1);
    expect(st.finished).toHaveLength(1);
    expect(st.finished[0]!.replies).toEqual([{ reply: reply('a'), own: true }]);
    const p = st.progress.get(2)!;
    expect(p.get(0)).toEqual({ state: 'done', reply: reply('b') });
    expect(p.get(1)).toEqual({ state: 'not-sent' }); // provably never reached the service: safe to send
    expect(p.get(2)).toEqual({ state: 'started' }); // may have reached it: outcome unknown
  });

  it('an adoption after the batch finished patches the finished batch; the executed marker raises the base', () => {
    const recs: JournalRecord[] = [
      { kind: 'executed', seq: 10 },
      { kind: 'start', seq: 11, index: 0 },
      { kind: 'unknown', seq: 11, index: 0, reason: 'crash' },
      { kind: 'start', seq: 11, index: 1 },
      { kind: 'done', seq: 11, index: 1, reply: reply('own') },
      { kind: 'batch-done', batch: { seq: 11, seed, digests: [digest(1), digest(2)], partial: undefined } },
      { kind: 'adopted', seq: 11, index: 0, reply: reply('from-peers') },
    ];
    const st = replayJournal(recs.map(encodeJournalRecord));
    expect(st.executedThrough).toBe(11);
    expect(st.progress.size).toBe(0);
    expect(st.finished[0]!.replies).toEqual([
      { reply: reply('from-peers'), own: false },
      { reply: reply('own'), own: true },
    ]);
  });

  it('persists through a Journal, cuts a torn tail on open and reports it', () => {
    const path = tmpWal();
    const a = Journal.open(path);
    expect(a.state.created).toBe(true);
    a.journal.append({ kind: 'start', seq: 1, index: 0 });
    a.journal.append({ kind: 'done', seq: 1, index: 0, reply: reply('x') });
    a.journal.sync();
    a.journal.append({ kind: 'start', seq: 1, index: 1 });
    a.journal.sync();
    a.journal.close();
    truncateSync(path, statSync(path).size - 1);
    const b = Journal.open(path);
    expect(b.state.truncation?.reason).toBe('torn-record');
    // The torn record was the start of index 1: it never happened as far as the log knows.
    expect(b.state.progress.get(1)?.get(1)).toBeUndefined();
    expect(b.state.progress.get(1)?.get(0)).toEqual({ state: 'done', reply: reply('x') });
    b.journal.close();
  });
});
