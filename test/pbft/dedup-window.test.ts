import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync, readdirSync } from 'node:fs';
import { DEFAULT_DEDUP_HASH_KEY, DedupWindow } from '../../src/pbft/dedup-window.js';
import { toHex } from '../../src/codec/binary.js';
import { PbftErrorCodes, Replica, resolveConfig } from '../../src/pbft/index.js';
import { simCrypto, simKeys } from '../../sim/fake-crypto.js';

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

  it('answers the same under any hash key: the key moves entries in the index, never the results', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        fc.array(digestArb, { maxLength: 60 }),
        (capacity, key, digests) => {
          const keyed = new DedupWindow(capacity, key);
          const plain = new DedupWindow(capacity);
          digests.forEach((d, seq) => {
            expect(keyed.seqOf(d)).toBe(plain.seqOf(d));
            if (plain.seqOf(d) !== undefined) return;
            keyed.add(d, seq);
            plain.add(d, seq);
          });
          expect(keyed.pack()).toEqual(plain.pack());
        },
      ),
      { seed: 9, numRuns: 200 },
    );
  });

  it('is deterministic without a key (no randomness inside the engine) and refuses a key of the wrong size', () => {
    expect(DEFAULT_DEDUP_HASH_KEY).toHaveLength(8);
    expect(() => new DedupWindow(4, new Uint8Array(7))).toThrow(/8 bytes/);
    expect(() => new DedupWindow(4, new Uint8Array(16))).toThrow(/8 bytes/);
  });

  it('is configured through PbftConfig.dedupHashKey: validated, copied, defaulted', () => {
    const key = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    const cfg = resolveConfig({ s: 1, id: 0, dedupHashKey: key });
    expect(cfg.dedupHashKey).toEqual(key);
    key[0] = 99;
    expect(cfg.dedupHashKey[0]).toBe(1);
    expect(resolveConfig({ s: 1, id: 0 }).dedupHashKey).toEqual(DEFAULT_DEDUP_HASH_KEY);
    for (const bad of [new Uint8Array(7), new Uint8Array(0), 'key' as never, 42 as never]) {
      expect(() => resolveConfig({ s: 1, id: 0, dedupHashKey: bad })).toThrow(expect.objectContaining({ code: PbftErrorCodes.CONFIG }) as Error);
    }
    // A replica accepts a key, and a restart may use another one.
    const r = new Replica({ s: 1, id: 0, dedupHashKey: Uint8Array.of(9, 9, 9, 9, 9, 9, 9, 9) }, simCrypto(simKeys(4, 1), 0));
    expect(r.config.dedupHashKey).toEqual(Uint8Array.of(9, 9, 9, 9, 9, 9, 9, 9));
  });

  it('the configured key reaches the window, also after a restart (white-box: the effect is on probe lengths only)', () => {
    type Inside = { exec: { dedup: { k0: number; k1: number } } };
    const keyOf = (r: Replica) => {
      const d = (r as unknown as Inside).exec.dedup;
      return [d.k0 >>> 0, d.k1 >>> 0];
    };
    const key = Uint8Array.of(0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80);
    const crypto = simCrypto(simKeys(4, 1), 0);
    expect(keyOf(new Replica({ s: 1, id: 0, dedupHashKey: key }, crypto))).toEqual([0x10203041, 0x50607081]);
    expect(keyOf(new Replica({ s: 1, id: 0, dedupHashKey: key }, crypto, { records: [], lastExecuted: 0 }))).toEqual([0x10203041, 0x50607081]);
    expect(keyOf(new Replica({ s: 1, id: 0 }, crypto))).toEqual(keyOf(new Replica({ s: 1, id: 0 }, crypto)));
    expect(keyOf(new Replica({ s: 1, id: 0 }, crypto))).not.toEqual([0x10203041, 0x50607081]);
  });

  it('the engine source draws no randomness and reads no clock', () => {
    const dir = new URL('../../src/pbft/', import.meta.url);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      // Code only: comments may well say what the shell should pass.
      const text = readFileSync(new URL(file, dir), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      expect(text, file).not.toMatch(/\b(randomBytes|randomInt|randomUUID|getRandomValues|Math\.random|Date\.now|performance\.now)\s*\(/);
      expect(text, file).not.toMatch(/new Date\(\s*\)/);
    }
  });
});
