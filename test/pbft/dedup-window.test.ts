import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DedupWindow } from '../../src/pbft/dedup-window.js';
import { toHex } from '../../src/codec/binary.js';

/** 32-byte digests from a small alphabet: many share their first 48 bits (the index key). */
const digestArb = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 7 })).map(([prefix, rest]) => {
  const d = new Uint8Array(32);
  d[5] = prefix; // 4 index keys
  d[31] = rest; // 8 digests per key
  return d;
});

describe('DedupWindow', () => {
  it('behaves exactly like a FIFO map of the last `capacity` digests, collisions of the index key included', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(digestArb, { maxLength: 80 }), (capacity, digests) => {
        const w = new DedupWindow(capacity);
        const reference = new Map<string, number>();
        digests.forEach((d, seq) => {
          const key = toHex(d);
          expect(w.seqOf(d)).toBe(reference.get(key));
          if (reference.has(key)) return; // executed already: a duplicate, not added again
          w.add(d, seq);
          reference.set(key, seq);
          if (reference.size > capacity) reference.delete(reference.keys().next().value as string);
          expect(w.size).toBe(reference.size);
        });
        // Every digest ever seen answers like the reference; pack() lists the window oldest first.
        for (const d of digests) expect(w.seqOf(d)).toBe(reference.get(toHex(d)));
        const packed = w.pack();
        expect(packed.seqs).toEqual([...reference.values()]);
        expect([...reference.keys()]).toEqual(packed.seqs.map((_, i) => toHex(packed.digests.subarray(i * 32, (i + 1) * 32))));
      }),
      { seed: 8, numRuns: 300 },
    );
  });

  it('stays exact through many evictions with random digests (index wrap-around, backward shifts)', () => {
    const w = new DedupWindow(37);
    const live: Uint8Array[] = [];
    let x = 12345;
    const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    const all: Uint8Array[] = [];
    for (let seq = 1; seq <= 2_000; seq++) {
      const d = new Uint8Array(32);
      for (let i = 0; i < 32; i += 4) new DataView(d.buffer).setUint32(i, next());
      w.add(d, seq);
      all.push(d);
      live.push(d);
      if (live.length > 37) live.shift();
    }
    all.forEach((d, i) => expect(w.seqOf(d)).toBe(i >= all.length - 37 ? i + 1 : undefined));
    expect(w.size).toBe(37);
  });
});
