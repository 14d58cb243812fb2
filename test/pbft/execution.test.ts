import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/crypto/hash.js';
import { ExecutionState, GENESIS_EXEC } from '../../src/pbft/execution.js';
import { NULL_BATCH, NULL_DIGEST, batchDigest } from '../../src/pbft/index.js';
import type { Batch, ClientRequest } from '../../src/pbft/index.js';

function req(n: number): ClientRequest {
  const payload = new Uint8Array([n]);
  return { digest: sha256(payload), payload };
}

function batch(ts: number, ...reqs: ClientRequest[]): Batch {
  return { timestamp: ts, seed: new Uint8Array(32).fill(ts % 256), requests: reqs };
}

describe('execution state', () => {
  it('skips requests already executed, naming where they ran, identically for identical prefixes', () => {
    const run = (): string[] => {
      const st = new ExecutionState(100, GENESIS_EXEC);
      const out: string[] = [];
      const batches = [batch(10, req(1), req(2)), batch(20, req(2), req(3)), batch(30, req(1))];
      batches.forEach((b, i) => {
        const o = st.apply(i + 1, b, batchDigest(b));
        out.push(`${o.requests.length}/${o.duplicates.map((d) => d.seq).join(',')}`);
      });
      return out;
    };
    expect(run()).toEqual(['2/', '1/1', '0/1']);
    expect(run()).toEqual(run());
  });

  it('keeps timestamps monotonic and treats the null batch as a no-op that still advances history', () => {
    const st = new ExecutionState(100, GENESIS_EXEC);
    expect(st.apply(1, batch(50, req(1)), NULL_DIGEST).timestamp).toBe(50);
    expect(st.apply(2, batch(40, req(2)), NULL_DIGEST).timestamp).toBe(50);
    const before = st.history;
    const o = st.apply(3, NULL_BATCH, NULL_DIGEST);
    expect(o).toEqual({ timestamp: 50, requests: [], duplicates: [] });
    expect(st.history).not.toEqual(before);
    expect(() => st.apply(5, NULL_BATCH, NULL_DIGEST)).toThrow();
  });

  it('forgets the oldest digests beyond the window, and a snapshot restores the same state', () => {
    const st = new ExecutionState(2, GENESIS_EXEC);
    st.apply(1, batch(1, req(1), req(2)), NULL_DIGEST);
    st.apply(2, batch(2, req(3)), NULL_DIGEST);
    expect(st.executedAt(req(1).digest)).toBeUndefined();
    expect(st.executedAt(req(3).digest)).toBe(2);
    const copy = new ExecutionState(2, st.snapshot());
    const b = batch(3, req(2), req(4));
    expect(copy.apply(3, b, batchDigest(b))).toEqual(st.apply(3, b, batchDigest(b)));
    expect(copy.history).toEqual(st.history);
  });
});
