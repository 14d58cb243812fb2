import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Writer, fromHex, toHex, utf8 } from '../../src/codec/binary.js';
import { batchMessage, buildTree, nodeHash, padNode, rootFromProof } from '../../src/codec/merkle.js';
import { sha256 } from '../../src/crypto/hash.js';

const salt = sha256(utf8('salt'));
const leaf = (i: number) => sha256(utf8(`leaf ${i}`));
const tagged = (tag: string) => new Writer().string(tag).finish();

describe('merkle tree (fixed depth, sorted pairs)', () => {
  it('known answer: node, pad and root of a depth-1 and depth-2 tree', () => {
    const a = leaf(0);
    const b = leaf(1);
    const [lo, hi] = toHex(a) < toHex(b) ? [a, b] : [b, a];
    expect(toHex(nodeHash(a, b))).toBe(toHex(sha256(tagged('cbft/node/v1'), lo, hi)));
    expect(toHex(nodeHash(b, a))).toBe(toHex(nodeHash(a, b)));
    expect(toHex(padNode(salt, 0, 3))).toBe(toHex(sha256(tagged('cbft/pad/v2'), salt, fromHex('0000000003'))));
    expect(toHex(padNode(salt, 2, 1))).toBe(toHex(sha256(tagged('cbft/pad/v2'), salt, fromHex('0200000001'))));
    expect(toHex(buildTree([a, b], 1, salt).root)).toBe(toHex(nodeHash(a, b)));
    const t2 = buildTree([a], 2, salt);
    expect(toHex(t2.root)).toBe(toHex(nodeHash(nodeHash(a, padNode(salt, 0, 1)), padNode(salt, 1, 1))));
    expect(toHex(t2.root)).toMatchInlineSnapshot(`"b25db99240d7c6161bf0ebb386685f0fa8c7bc17dd7ccb102effea11c0238c5c"`);
    expect(toHex(batchMessage(t2.root, 2))).toBe(toHex(tagged('cbft/batch/v1')) + '02' + toHex(t2.root));
  });

  it('equals the full tree in which every all-padding subtree is its pad node', () => {
    const depth = 4;
    // Reference: recursion over the whole 2^depth-leaf tree.
    const subtree = (leaves: Uint8Array[], level: number, index: number): Uint8Array => {
      if (index << level >= leaves.length) return padNode(salt, level, index);
      if (level === 0) return leaves[index]!;
      return nodeHash(subtree(leaves, level - 1, 2 * index), subtree(leaves, level - 1, 2 * index + 1));
    };
    for (let size = 0; size <= 2 ** depth; size++) {
      const leaves = Array.from({ length: size }, (_, i) => leaf(i));
      expect(toHex(buildTree(leaves, depth, salt).root), `size ${size}`).toBe(toHex(subtree(leaves, depth, 0)));
    }
  });

  it('every proof has the same length whatever the batch size, and verifies its own leaf', () => {
    for (const size of [1, 2, 3, 5, 8]) {
      const leaves = Array.from({ length: size }, (_, i) => leaf(i));
      const tree = buildTree(leaves, 3, salt);
      for (let i = 0; i < size; i++) {
        const proof = tree.proof(i);
        expect(proof.length).toBe(3 * 32);
        expect(toHex(rootFromProof(leaves[i]!, proof, 3))).toBe(toHex(tree.root));
      }
      expect(() => tree.proof(size)).toThrow(/no reply leaf/);
    }
  });

  it('refuses oversize batches, wrong proof lengths and bad depths', () => {
    expect(() => buildTree([leaf(0), leaf(1), leaf(2)], 1, salt)).toThrow(/exceeds 2\^1/);
    expect(() => rootFromProof(leaf(0), new Uint8Array(64), 3)).toThrow(/96 bytes/);
    expect(() => buildTree([], 0, salt)).toThrow(/depth/);
    expect(() => buildTree([], 17, salt)).toThrow(/depth/);
  });

  it('the pad salt changes the root (pads are not predictable without it)', () => {
    expect(toHex(buildTree([leaf(0)], 3, salt).root)).not.toBe(toHex(buildTree([leaf(0)], 3, sha256(utf8('other'))).root));
  });

  it('property: a proof verifies only its own leaf', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }),
        fc.nat(),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (size, pick, foreign) => {
          const leaves = Array.from({ length: size }, (_, i) => leaf(i));
          const tree = buildTree(leaves, 4, salt);
          const i = pick % size;
          const proof = tree.proof(i);
          expect(toHex(rootFromProof(leaves[i]!, proof, 4))).toBe(toHex(tree.root));
          for (let j = 0; j < size; j++) {
            if (j !== i) expect(toHex(rootFromProof(leaves[j]!, proof, 4))).not.toBe(toHex(tree.root));
          }
          if (toHex(foreign) !== toHex(leaves[i]!)) expect(toHex(rootFromProof(foreign, proof, 4))).not.toBe(toHex(tree.root));
          // A flipped bit anywhere in the proof breaks it.
          const bad = proof.slice();
          bad[pick % bad.length]! ^= 1;
          expect(toHex(rootFromProof(leaves[i]!, bad, 4))).not.toBe(toHex(tree.root));
        },
      ),
      { numRuns: 200 },
    );
  });
});
