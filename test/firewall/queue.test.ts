import { afterEach, describe, expect, it, vi } from 'vitest';
import { ReleaseQueue, type Outcome } from '../../src/firewall/queue.js';
import { hopMarginMs, hopTimeoutMs } from '../../src/firewall/timeouts.js';
import { FailCode } from '../../src/wire/payloads.js';
import type { SignedReply } from '../../src/reply/signed-reply.js';

const reply = (tag: number): Outcome => ({
  kind: 'reply',
  signed: { reply: new Uint8Array([tag]), proof: new Uint8Array(0), signature: new Uint8Array(0) } as SignedReply,
  reply: { requestDigest: new Uint8Array(32), status: 200, headers: [], body: new Uint8Array([tag]) },
});
const d = (s: string) => new Uint8Array(32).fill(s.charCodeAt(0));

function make(o: Partial<ConstructorParameters<typeof ReleaseQueue<string>>[0]> = {}) {
  const released: Array<[string, string]> = [];
  const q = new ReleaseQueue<string>({
    maxQueue: 10,
    timeoutMs: 1_000,
    policy: 'immediate',
    quantumMs: 10,
    timeoutCode: () => FailCode.Timeout,
    onRelease: (e, out) => released.push([e.ctx, out.kind === 'reply' ? `reply:${out.reply.body[0]}` : `fail:${out.code}`]),
    ...o,
  });
  return { q, released };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ReleaseQueue', () => {
  it('releases strictly in arrival order whatever order outcomes come in (I2)', () => {
    const { q, released } = make();
    q.enqueue(d('a'), 'a', 'A');
    q.enqueue(d('b'), 'b', 'B');
    q.enqueue(d('c'), 'c', 'C');
    expect(q.resolveOne('c', reply(3))).toBe(true);
    expect(q.resolveOne('b', reply(2))).toBe(true);
    expect(released).toEqual([]);
    q.resolveOne('a', { kind: 'fail', code: FailCode.ReplicasDisagree });
    expect(released).toEqual([
      ['A', `fail:${FailCode.ReplicasDisagree}`],
      ['B', 'reply:2'],
      ['C', 'reply:3'],
    ]);
    expect(q.size).toBe(0);
  });

  it('classifies messages for digests it does not wait for: replayed, late, unknown', () => {
    vi.useFakeTimers();
    let now = 0;
    const { q } = make({ now: () => now, timeoutMs: 100 });
    q.enqueue(d('a'), 'a', 'A');
    q.enqueue(d('b'), 'b', 'B');
    q.resolveOne('a', reply(1));
    expect(q.resolveOne('a', reply(1))).toBe(false);
    expect(q.classify('a')).toBe('replayed');
    now = 200;
    vi.advanceTimersByTime(200);
    expect(q.classify('b')).toBe('late');
    expect(q.classify('z')).toBe('unknown');
  });

  it('pairs duplicates one message per entry, and resolveAll answers every duplicate', () => {
    const { q, released } = make();
    q.enqueue(d('a'), 'a', 'A1');
    q.enqueue(d('b'), 'b', 'B');
    q.enqueue(d('a'), 'a', 'A2');
    expect(q.waitingCount('a')).toBe(2);
    q.resolveOne('a', reply(1));
    expect(released).toEqual([['A1', 'reply:1']]);
    expect(q.isWaiting('a')).toBe(true);
    q.resolveOne('b', reply(2));
    q.resolveOne('a', reply(1));
    expect(released.map(([c]) => c)).toEqual(['A1', 'B', 'A2']);
    q.enqueue(d('x'), 'x', 'X1');
    q.enqueue(d('x'), 'x', 'X2');
    expect(q.resolveAll('x', reply(9))).toBe(2);
    expect(released.slice(3)).toEqual([
      ['X1', 'reply:9'],
      ['X2', 'reply:9'],
    ]);
  });

  it('is bounded: enqueue refuses beyond maxQueue', () => {
    const { q } = make({ maxQueue: 2 });
    expect(q.enqueue(d('a'), 'a', 'A')).toBeDefined();
    expect(q.enqueue(d('b'), 'b', 'B')).toBeDefined();
    expect(q.enqueue(d('c'), 'c', 'C')).toBeUndefined();
    q.resolveOne('a', reply(1));
    expect(q.enqueue(d('c'), 'c', 'C')).toBeDefined();
  });

  it('times out waiting entries in order, unblocking the entries behind them', () => {
    vi.useFakeTimers();
    let now = 0;
    const { q, released } = make({ now: () => now, timeoutMs: 100, timeoutCode: (e) => (e.ctx === 'A' ? FailCode.Timeout : FailCode.ReplicasDisagree) });
    q.enqueue(d('a'), 'a', 'A');
    now = 50;
    q.enqueue(d('b'), 'b', 'B');
    q.resolveOne('b', reply(2));
    expect(released).toEqual([]);
    now = 101;
    vi.advanceTimersByTime(101);
    expect(released).toEqual([
      ['A', `fail:${FailCode.Timeout}`],
      ['B', 'reply:2'],
    ]);
    q.enqueue(d('c'), 'c', 'C');
    now = 300;
    vi.advanceTimersByTime(200);
    expect(released[2]).toEqual(['C', `fail:${FailCode.ReplicasDisagree}`]);
  });

  it('quantized: releases only on multiples of the quantum of the wall clock', () => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_003);
    const times: number[] = [];
    const q = new ReleaseQueue<string>({
      maxQueue: 10,
      timeoutMs: 10_000,
      policy: 'quantized',
      quantumMs: 10,
      timeoutCode: () => FailCode.Timeout,
      onRelease: () => times.push(Date.now()),
    });
    q.enqueue(d('a'), 'a', 'A');
    q.enqueue(d('b'), 'b', 'B');
    q.resolveOne('a', reply(1));
    expect(times).toEqual([]);
    vi.advanceTimersByTime(4);
    q.resolveOne('b', reply(2));
    vi.advanceTimersByTime(10);
    expect(times).toEqual([1_000_010, 1_000_010]);
    q.enqueue(d('c'), 'c', 'C');
    vi.advanceTimersByTime(13); // now 1_000_030 + 0
    q.resolveOne('c', reply(3));
    vi.advanceTimersByTime(10);
    expect(times[2]! % 10).toBe(0);
    q.close();
  });

  it('failAll releases everything left in order, drained() resolves when empty', async () => {
    const { q, released } = make();
    q.enqueue(d('a'), 'a', 'A');
    q.enqueue(d('b'), 'b', 'B');
    q.resolveOne('b', reply(2));
    const drained = q.drained();
    q.failAll(FailCode.Overloaded);
    await drained;
    expect(released).toEqual([
      ['A', `fail:${FailCode.Overloaded}`],
      ['B', 'reply:2'],
    ]);
  });
});

describe('per-hop timeouts', () => {
  it('nodes further up give up earlier so their precise verdict travels down', () => {
    const s = { requestTimeoutMs: 10_000 };
    expect(hopTimeoutMs(s, 0, 3)).toBe(10_000);
    expect(hopTimeoutMs(s, 1, 3)).toBeLessThan(10_000);
    expect(hopTimeoutMs(s, 2, 3)).toBeLessThan(hopTimeoutMs(s, 1, 3));
    expect(hopMarginMs(10_000, 2)).toBe(1_000);
    expect(hopMarginMs(600, 2)).toBe(75);
    expect(hopTimeoutMs({ requestTimeoutMs: 2 }, 5, 6)).toBeGreaterThanOrEqual(1);
  });
});
