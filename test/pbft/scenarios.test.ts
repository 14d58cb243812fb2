import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/codec/binary.js';
import type { NewViewMsg, PbftEvent, PrePrepareMsg } from '../../src/pbft/index.js';
import { Cluster, TEST_CONFIG, makeRequest } from './harness.js';

/** Scripted scenarios named in issue 3, step by step with explicit message delivery. */

function viewEvents(c: Cluster, id: number): PbftEvent[] {
  return c.events[id]!.filter((e) => e.kind === 'view-changed' || e.kind === 'view-change-started');
}

function expectSameExecutions(c: Cluster, ids: number[]): void {
  const first = c.executedDigests(ids[0]!);
  for (const id of ids.slice(1)) expect(c.executedDigests(id)).toEqual(first);
}

describe('normal operation', () => {
  it('orders, executes and checkpoints requests identically on every replica', () => {
    const c = new Cluster();
    const requests = Array.from({ length: 10 }, () => makeRequest());
    for (const r of requests) c.submit(r);
    c.runUntil(() => c.all().every((id) => c.executedPayloads(id).length === 10));
    expectSameExecutions(c, c.all());
    const payloads = c.executedPayloads(0);
    expect(new Set(payloads).size).toBe(10);
    c.runUntil(() => c.replica(0).inspect().lowWatermark >= 4);
    for (const id of c.all()) {
      const st = c.replica(id).inspect();
      expect(st.minSlotSeq === null || st.minSlotSeq > st.lowWatermark).toBe(true);
      expect(st.view).toBe(0);
    }
  });
});

describe('primary crash mid-batch', () => {
  it('a batch whose pre-prepare reached a single backup is proposed again by the next primary', () => {
    const c = new Cluster();
    const r = makeRequest('mid-batch-1');
    c.submit(r);
    // The primary's pre-prepare reaches replica 1 only; then the primary crashes.
    c.deliverAll((e) => e.from === 0 && e.to !== 1);
    c.crash(0);
    c.runUntil(() => [1, 2, 3].every((id) => c.executedPayloads(id).includes('mid-batch-1')));
    for (const id of [1, 2, 3]) {
      expect(c.replica(id).inspect().view).toBe(1);
      expect(c.executedPayloads(id)).toEqual(['mid-batch-1']);
    }
    expectSameExecutions(c, [1, 2, 3]);
    // The old primary restarts from its WAL and catches up without executing anything twice.
    c.restart(0);
    c.runUntil(() => c.executedPayloads(0).includes('mid-batch-1'));
    expect(c.executedPayloads(0)).toEqual(['mid-batch-1']);
    expectSameExecutions(c, [0, 1, 2, 3]);
  });

  it('a batch committed at one backup before the primary crashed keeps its sequence number', () => {
    const c = new Cluster();
    const r = makeRequest('mid-batch-2');
    c.submit(r);
    // Pre-prepare and prepares everywhere; commits reach replica 1 only.
    c.deliverAll((e) => e.msg.type === 'commit' && e.to !== 1);
    expect(c.executedPayloads(1)).toEqual(['mid-batch-2']);
    expect(c.executedPayloads(2)).toEqual([]);
    const committed = c.executed[1]![0]!;
    c.crash(0);
    c.runUntil(() => [2, 3].every((id) => c.executedPayloads(id).length === 1));
    for (const id of [2, 3]) {
      expect(c.executed[id]![0]!.seq).toBe(committed.seq);
      expect(toHex(c.executed[id]![0]!.batchDigest)).toBe(toHex(committed.batchDigest));
    }
    expect(c.executedPayloads(1)).toEqual(['mid-batch-2']);
  });
});

describe('view change with a batch prepared at one replica only', () => {
  /** Everyone accepts the pre-prepare of seq 1; only replica 2 receives the prepares. */
  function preparedAtReplica2(): { c: Cluster; digest: string } {
    const c = new Cluster();
    c.submit(makeRequest('prepared-at-2'));
    c.deliverAll((e) => (e.msg.type === 'prepare' && e.to !== 2) || e.msg.type === 'commit');
    const pp = c.wal[2]!.find((rec) => rec.kind === 'accepted');
    expect(pp).toBeDefined();
    expect(c.wal[2]!.some((rec) => rec.kind === 'prepared')).toBe(true);
    for (const id of [1, 3]) expect(c.wal[id]!.some((rec) => rec.kind === 'prepared')).toBe(false);
    return { c, digest: toHex((pp as { prePrepare: PrePrepareMsg }).prePrepare.digest) };
  }

  it('re-proposes the prepared batch when that replica is in the view-change quorum', () => {
    const { c, digest } = preparedAtReplica2();
    c.crash(0);
    // View 0 never completes (its votes are lost) and the primary is down, so the view-change
    // quorum is {1, 2, 3}: replica 2's certificate must survive into view 1.
    const drop = (e: { msg: { type: string; view?: number } }): boolean => ['prepare', 'commit'].includes(e.msg.type) && e.msg.view === 0;
    c.runUntil(() => [1, 2, 3].every((id) => c.executedPayloads(id).length === 1), 500, drop as never);
    const nv = findNewView(c);
    expect(nv).toBeDefined();
    expect(nv!.viewChanges.map((vc) => vc.sender)).toEqual([1, 2, 3]);
    expect(nv!.prePrepares.map((p) => toHex(p.digest))).toEqual([digest]);
    for (const id of [1, 2, 3]) {
      expect(c.executed[id]![0]!.seq).toBe(1);
      expect(toHex(c.executed[id]![0]!.batchDigest)).toBe(digest);
    }
  });

  it('orders the request afresh when the quorum does not include that replica', () => {
    const { c, digest } = preparedAtReplica2();
    // View 0 never completes, and replica 2's view change is lost: the quorum is {0, 1, 3}.
    const drop = (e: { from: number; msg: { type: string; view?: number } }): boolean =>
      (['pre-prepare', 'prepare', 'commit'].includes(e.msg.type) && e.msg.view === 0) || (e.from === 2 && e.msg.type === 'view-change');
    c.runUntil(() => c.all().every((id) => c.executedPayloads(id).length === 1), 500, drop as never);
    const nv = findNewView(c);
    expect(nv!.viewChanges.map((vc) => vc.sender)).toEqual([0, 1, 3]);
    expect(nv!.prePrepares).toEqual([]);
    expectSameExecutions(c, c.all());
    for (const id of c.all()) {
      expect(c.executedPayloads(id)).toEqual(['prepared-at-2']);
      expect(toHex(c.executed[id]![0]!.batchDigest)).not.toBe(digest);
    }
  });
});

function findNewView(c: Cluster): NewViewMsg | undefined {
  for (const wal of c.wal) {
    for (const rec of wal) if (rec.kind === 'snapshot' && rec.snapshot.newView) return rec.snapshot.newView;
  }
  return undefined;
}

describe('two view changes in a row', () => {
  it('skips a second faulty primary with a doubled timeout', () => {
    const c = new Cluster({ ...TEST_CONFIG, s: 2 });
    c.crash(0);
    c.crash(1);
    c.submit(makeRequest('two-view-changes'));
    c.runUntil(() => [2, 3, 4, 5, 6].every((id) => c.executedPayloads(id).length === 1), 1000);
    for (const id of [2, 3, 4, 5, 6]) {
      const st = c.replica(id).inspect();
      expect(st.view).toBe(2);
      expect(st.primary).toBe(2);
      const started = viewEvents(c, id).filter((e) => e.kind === 'view-change-started');
      expect(started.map((e) => (e as { view: number }).view)).toEqual([1, 2]);
      const timeouts = started.map((e) => (e as { timeoutTicks: number }).timeoutTicks);
      expect(timeouts[1]).toBe(2 * timeouts[0]!);
    }
    expectSameExecutions(c, [2, 3, 4, 5, 6]);
    // The doubled timeout is kept until the new view has made progress for a whole timeout
    // period, then halves step by step (so an overloaded system does not change view again and again).
    expect(c.replica(3).inspect().viewChangeAttempt).toBe(2);
    const attempts = new Set<number>();
    for (let i = 0; i < 60; i++) {
      c.submit(makeRequest(`calm-${i}`));
      c.runUntil(() => c.executedPayloads(3).includes(`calm-${i}`), 100);
      c.tick(2);
      attempts.add(c.replica(3).inspect().viewChangeAttempt);
    }
    expect([...attempts].sort()).toEqual([0, 1, 2]);
    expect(c.replica(3).inspect()).toMatchObject({ view: 2, viewChangeAttempt: 0 });
  });
});

describe('catch-up across a checkpoint', () => {
  it('a partitioned replica adopts the stable checkpoint and re-executes the batches it missed', () => {
    const c = new Cluster();
    const isolated = (e: { from: number; to: number }): boolean => e.from === 3 || e.to === 3;
    for (let i = 0; i < 14; i++) c.submit(makeRequest(`catch-up-${i}`), [0, 1, 2]);
    c.runUntil(() => [0, 1, 2].every((id) => c.executedPayloads(id).length === 14), 500, isolated);
    c.runUntil(() => c.replica(0).inspect().lowWatermark >= 8, 200, isolated);
    expect(c.executed[3]).toEqual([]);
    // The others truncated their logs past what replica 3 ever saw.
    expect(c.replica(0).inspect().minSlotSeq ?? Infinity).toBeGreaterThan(4);
    c.runUntil(() => c.executedPayloads(3).length === 14, 300);
    expectSameExecutions(c, [0, 1, 2, 3]);
    expect(c.events[3]!.some((e) => e.kind === 'catch-up')).toBe(true);
    c.runUntil(() => c.replica(3).inspect().lowWatermark === c.replica(0).inspect().lowWatermark, 100);
  });

  it('a restarted replica resumes from its WAL and fetches only what it lacks', () => {
    const c = new Cluster();
    for (let i = 0; i < 4; i++) c.submit(makeRequest(`restart-a-${i}`));
    c.runUntil(() => c.all().every((id) => c.executedPayloads(id).length === 4));
    const before = c.executed[2]!.length;
    c.crash(2);
    for (let i = 0; i < 10; i++) c.submit(makeRequest(`restart-b-${i}`), [0, 1, 3]);
    c.runUntil(() => [0, 1, 3].every((id) => c.executedPayloads(id).length === 14));
    c.runUntil(() => c.replica(0).inspect().lowWatermark >= 8);
    c.restart(2);
    // Nothing reported executed before the crash is executed again.
    expect(c.executed[2]!.length).toBe(before);
    c.runUntil(() => c.executedPayloads(2).length === 14, 300);
    expectSameExecutions(c, [0, 1, 2, 3]);
    expect(new Set(c.executedPayloads(2)).size).toBe(14);
  });

  it('batches handed to the shell but not reported executed are handed over again after a restart', () => {
    const c = new Cluster();
    c.autoExecute = false;
    for (let i = 0; i < 3; i++) c.submit(makeRequest(`unreported-${i}`));
    c.runUntil(() => c.executed[1]!.length >= 2);
    // The shell finished the first batch only, then crashed.
    const first = c.executed[1]![0]!;
    c.replica(1).executed(first.seq);
    c.lastExecuted[1] = first.seq;
    const dispatched = c.executed[1]!.length;
    c.crash(1);
    c.executed[1] = [first];
    c.restart(1);
    expect(c.executed[1]!.map((b) => b.seq)).toEqual(Array.from({ length: dispatched }, (_, i) => i + 1));
  });
});

describe('limits of catch-up', () => {
  it('a replica further behind than every archive reports that it cannot catch up', () => {
    const c = new Cluster({ ...TEST_CONFIG, archiveBatches: 4 });
    const isolated = (e: { from: number; to: number }): boolean => e.from === 3 || e.to === 3;
    for (let i = 0; i < 30; i++) {
      c.submit(makeRequest(`far-${i}`), [0, 1, 2]);
      c.runUntil(() => [0, 1, 2].every((id) => c.executedPayloads(id).length === i + 1), 100, isolated);
    }
    c.runUntil(() => c.replica(0).inspect().lowWatermark >= 24, 200, isolated);
    expect(c.replica(0).inspect().archivedBatches).toBeLessThan(30);
    c.runUntil(() => c.events[3]!.some((e) => e.kind === 'catch-up-unavailable'), 200);
    expect(c.executed[3]).toEqual([]);
  });
});

describe('status gossip', () => {
  it('relays the NEW-VIEW to a replica that missed it', () => {
    const c = new Cluster();
    c.crash(0);
    c.submit(makeRequest('relay-nv'), [1, 2, 3]);
    // Replica 3 misses every NEW-VIEW sent by the new primary itself.
    const dropNewViewTo3 = (e: { from: number; to: number; msg: { type: string } }): boolean =>
      e.to === 3 && e.from === 1 && e.msg.type === 'new-view';
    c.runUntil(() => [1, 2].every((id) => c.replica(id).inspect().view === 1 && !c.replica(id).inspect().inViewChange), 300, dropNewViewTo3 as never);
    c.runUntil(() => c.replica(3).inspect().view === 1 && !c.replica(3).inspect().inViewChange, 300, dropNewViewTo3 as never);
    c.runUntil(() => c.executedPayloads(3).includes('relay-nv'), 300, dropNewViewTo3 as never);
  });

  it('hands the stable checkpoint proof to a replica whose own peers never voted for it', () => {
    const c = new Cluster();
    const isolated = (e: { from: number; to: number }): boolean => e.from === 3 || e.to === 3;
    for (let i = 0; i < 9; i++) c.submit(makeRequest(`proof-${i}`), [0, 1, 2]);
    c.runUntil(() => [0, 1, 2].every((id) => c.replica(id).inspect().lowWatermark >= 8), 300, isolated);
    // From now on replica 3 hears only from replica 0: the votes of 1 and 2 can reach it only
    // inside the proof that replica 0 relays.
    let relayed = 0;
    const onlyFrom0 = (e: { from: number; to: number; msg: { type: string; sender: number } }): boolean => {
      if (e.to !== 3) return false;
      if (e.from !== 0) return true;
      if (e.msg.type === 'checkpoint' && e.msg.sender !== 0) relayed++;
      return false;
    };
    c.runUntil(() => c.replica(3).inspect().lowWatermark >= 8, 300, onlyFrom0 as never);
    expect(relayed).toBeGreaterThan(0);
  });
});
