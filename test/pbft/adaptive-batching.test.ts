import { describe, expect, it } from 'vitest';
import type { Action, PrePrepareMsg, PrepareMsg } from '../../src/pbft/index.js';
import { Replica } from '../../src/pbft/index.js';
import type { Unsigned } from '../../src/pbft/signing.js';
import { signMessage } from '../../src/pbft/signing.js';
import { simCrypto, simKeys } from '../../sim/fake-crypto.js';
import { Cluster, TEST_CONFIG, makeRequest } from './harness.js';

/** The primary's adaptive batching (what the sidecar runs): no delay when idle, bigger batches when busy. */
const keys = simKeys(4, 42);
const NOW = 5_000_000;
const ENTROPY = new Uint8Array(32).fill(7);

function primary(extra: Partial<typeof TEST_CONFIG> = {}): Replica {
  const r = new Replica({ ...TEST_CONFIG, batchMax: 8, ...extra, adaptiveBatching: true, batchHoldTicks: 5, id: 0 }, simCrypto(keys, 0));
  r.tick(NOW, ENTROPY);
  r.takeActions();
  return r;
}

function proposals(actions: Action[]): PrePrepareMsg[] {
  return actions.flatMap((a) => (a.type === 'send' && a.msg.type === 'pre-prepare' ? [a.msg] : []));
}

function prepare(sender: number, pp: PrePrepareMsg): PrepareMsg {
  return signMessage<PrepareMsg>(simCrypto(keys, sender), { type: 'prepare', sender, view: 0, seq: pp.seq, digest: pp.digest } as Unsigned<PrepareMsg>);
}

describe('adaptive batching at the primary', () => {
  it('an idle primary cuts everything one input brought, at the end of that input, without waiting for a tick', () => {
    const r = primary();
    for (let i = 0; i < 3; i++) r.submit(makeRequest());
    const pp = proposals(r.takeActions());
    expect(pp.map((m) => m.batch.requests.length)).toEqual([3]);
  });

  it('while its batch is in pre-prepare/prepare, new requests wait and form one batch once it is prepared', () => {
    const r = primary();
    r.submit(makeRequest());
    const [first] = proposals(r.takeActions());
    expect(first!.batch.requests.length).toBe(1);
    // Three more inputs while seq 1 is not prepared: nothing is cut.
    for (let i = 0; i < 3; i++) {
      r.submit(makeRequest());
      expect(proposals(r.takeActions())).toEqual([]);
    }
    // 2s = 2 prepares from backups: seq 1 is prepared, the waiting requests go as one batch.
    r.receive(1, prepare(1, first!));
    expect(proposals(r.takeActions())).toEqual([]);
    r.receive(2, prepare(2, first!));
    const next = proposals(r.takeActions());
    expect(next.map((m) => [m.seq, m.batch.requests.length])).toEqual([[2, 3]]);
  });

  it('a full batch never waits, and a partial one waits batchHoldTicks at most', () => {
    const r = primary({ batchMax: 2 });
    r.submit(makeRequest());
    expect(proposals(r.takeActions()).length).toBe(1);
    r.submit(makeRequest());
    r.submit(makeRequest());
    expect(proposals(r.takeActions()).map((m) => m.batch.requests.length)).toEqual([2]); // full: at once
    r.submit(makeRequest());
    // (Ticks also re-send the pre-prepares still in flight: only new sequence numbers count.)
    const fresh = (actions: Action[]) => proposals(actions).filter((m) => m.seq > 2);
    for (let t = 1; t < 5; t++) {
      r.tick(NOW + 10 * t, ENTROPY);
      expect(fresh(r.takeActions())).toEqual([]);
    }
    r.tick(NOW + 50, ENTROPY);
    expect(fresh(r.takeActions()).map((m) => [m.seq, m.batch.requests.length])).toEqual([[3, 1]]);
  });

  it('a cluster with adaptive batching executes every request once, in the same order everywhere', () => {
    const c = new Cluster({ ...TEST_CONFIG, adaptiveBatching: true, batchHoldTicks: 3, batchMax: 4 });
    const reqs = Array.from({ length: 20 }, () => makeRequest());
    for (const q of reqs) c.submit(q);
    const order = (id: number) => c.executed[id]!.flatMap((b) => b.requests.map((q) => Buffer.from(q.digest).toString('hex')));
    c.runUntil(() => [0, 1, 2, 3].every((id) => order(id).length >= reqs.length));
    const orders = [0, 1, 2, 3].map(order);
    for (const o of orders) expect(o).toEqual(orders[0]);
    expect(new Set(orders[0]).size).toBe(reqs.length);
  });
});
