import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_RETRANSMIT_BACKOFF, ReplicaClient, type ReplicaClientOptions } from '../../src/firewall/replica-client.js';
import { toHex, utf8 } from '../../src/codec/binary.js';
import { sha256 } from '../../src/crypto/hash.js';

/** Sends per replica link, with the virtual time of each. */
function harness(retransmitMs: number) {
  const sends: Array<{ replica: number; at: number }> = [];
  const links = [0, 1, 2, 3].map((replica) => ({
    send: () => {
      sends.push({ replica, at: Date.now() });
      return true;
    },
  }));
  let retransmissions = 0;
  const stub = <T>(v: unknown) => v as T;
  const client = new ReplicaClient(
    stub<ReplicaClientOptions>({
      s: 1,
      depth: 4,
      replicas: [0, 1, 2, 3].map((i) => ({ id: `replica-${i}`, sharePublicKey: '00' })),
      links,
      seal: (round: Array<{ request: Uint8Array }>) => round.map((r) => r.request),
      queue: { capacity: 100, resolveAll: () => undefined },
      verifier: {},
      backend: {},
      metrics: { primary: { set: () => undefined }, retransmissions: { inc: () => retransmissions++ } },
      retransmitMs,
      maxReplyBytes: 1024,
      replyLimits: { maxBody: 1024, maxHeaders: 16, maxHeaderBytes: 1024 },
      now: () => Date.now(),
    }),
  );
  return { client, sends, retransmissions: () => retransmissions };
}

describe('top retransmissions', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('go to every replica with exponential backoff, capped at MAX_RETRANSMIT_BACKOFF × retransmitMs', async () => {
    const { client, sends, retransmissions } = harness(100);
    const request = utf8('GET /slow');
    expect(client.submit(toHex(sha256(request)), request)).toBe(true);
    await vi.advanceTimersByTimeAsync(100 * (1 + 2 + 4 + 8 + 8 + 8) + 50);
    client.close();
    // First to the primary (replica 0) alone, then each retransmission to all four.
    expect(sends[0]).toEqual({ replica: 0, at: 0 });
    const rounds = [...new Set(sends.slice(1).map((s) => s.at))];
    for (const at of rounds) expect(sends.filter((s) => s.at === at).map((s) => s.replica)).toEqual([0, 1, 2, 3]);
    const gaps = rounds.map((at, i) => at - (i === 0 ? 0 : rounds[i - 1]!));
    // Each gap is the doubled delay (+1 ms of timer slack), never above the cap.
    expect(gaps.map((g) => Math.round(g / 100))).toEqual([1, 2, 4, 8, 8, 8]);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(100 * MAX_RETRANSMIT_BACKOFF + 2);
    expect(retransmissions()).toBe(6);
  });
});
