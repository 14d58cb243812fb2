const DIGEST = 32;

/** Bytes of the index's hash key (two 32-bit words). */
export const DEDUP_HASH_KEY_BYTES = 8;

/**
 * The key used when the shell supplies none: fixed, so the engine stays deterministic, but also
 * public, so it gives no protection against hash flooding (see DedupWindow). Production shells
 * must pass a secret random key (`PbftConfig.dedupHashKey`); tests and the simulator may rely on
 * this one or pass a seeded key.
 */
export const DEFAULT_DEDUP_HASH_KEY: Uint8Array = Uint8Array.of(0xb9, 0x79, 0x37, 0x9e, 0x6b, 0xca, 0xeb, 0x85);

/** Executed request digests with their seq, oldest first, packed: what a snapshot stores. */
export interface PackedDedup {
  /** count × 32 bytes. */
  readonly digests: Uint8Array;
  readonly seqs: readonly number[];
}

export const EMPTY_DEDUP: PackedDedup = { digests: new Uint8Array(0), seqs: [] };

/**
 * The last `capacity` executed request digests (FIFO) and the seq each ran at, in a ring of
 * packed bytes with an open-addressing index, all allocated (and touched) up front: the window's
 * memory is fixed from the start instead of growing for as long as the window fills (minutes at
 * a few hundred requests per second). Kept as objects in a string-keyed Map, a window of 100,000
 * digests cost about 100 MiB of resident memory per replica (bench/PROFILE.md); here about 6 MiB.
 *
 * The index hashes two words of the digest with a secret key, so nobody can choose requests whose
 * digests pile up in one probe sequence (hash flooding): anyone may submit requests, and with a
 * known key, about as many tries per request as the index has slots find one whose digest has a
 * chosen home slot, and a pile of them turns every lookup on the execution path (and every
 * eviction) into a linear scan of one long probe run. The engine draws no
 * randomness itself (it is a deterministic state machine), so the key is an input: the shell
 * passes a fresh random one per process (PbftConfig.dedupHashKey), the simulator a seeded one.
 * Keys need not agree between replicas or across restarts: lookups compare whole digests, so they
 * are exact, and the window's behaviour depends only on the executed prefix of the log, never on
 * the key; the key changes only where entries sit in the index, i.e. only how long probes are.
 */
export class DedupWindow {
  private readonly digests: Uint8Array;
  private readonly seqs: Float64Array;
  private head = 0;
  private count = 0;
  /** slot + 1 of the entry at each position, 0 = empty; linear probing, backward-shift deletion. */
  private readonly table: Int32Array;
  private readonly mask: number;
  private readonly shift: number;
  private readonly k0: number;
  private readonly k1: number;

  constructor(readonly capacity: number, hashKey: Uint8Array = DEFAULT_DEDUP_HASH_KEY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('dedup: capacity must be a positive integer');
    if (!(hashKey instanceof Uint8Array) || hashKey.length !== DEDUP_HASH_KEY_BYTES) {
      throw new Error(`dedup: hash key must be ${DEDUP_HASH_KEY_BYTES} bytes`);
    }
    this.digests = new Uint8Array(capacity * DIGEST).fill(0);
    this.seqs = new Float64Array(capacity).fill(0);
    let bits = 1;
    while (1 << bits < 2 * capacity) bits++;
    this.table = new Int32Array(1 << bits).fill(0);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
    // Odd multipliers: multiplication by them is a bijection on 32-bit words.
    this.k0 = (word(hashKey, 0) | 1) >>> 0;
    this.k1 = (word(hashKey, 4) | 1) >>> 0;
  }

  get size(): number {
    return this.count;
  }

  /** The seq `digest` was executed at, if it is in the window. */
  seqOf(digest: Uint8Array): number | undefined {
    if (digest.length !== DIGEST) return undefined;
    for (let i = this.home(word(digest, 0), word(digest, 4)); ; i = (i + 1) & this.mask) {
      const v = this.table[i]!;
      if (v === 0) return undefined;
      if (this.matches(v - 1, digest)) return this.seqs[v - 1];
    }
  }

  /** Appends a digest that is not in the window, evicting the oldest when full. */
  add(digest: Uint8Array, seq: number): void {
    if (digest.length !== DIGEST) throw new Error(`dedup: digest must be ${DIGEST} bytes`);
    if (this.count === this.capacity) {
      this.unindex(this.head);
      this.head = (this.head + 1) % this.capacity;
      this.count--;
    }
    const slot = (this.head + this.count) % this.capacity;
    this.digests.set(digest, slot * DIGEST);
    this.seqs[slot] = seq;
    this.count++;
    let i = this.homeOf(slot);
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = slot + 1;
  }

  /** A copy, oldest first. */
  pack(): PackedDedup {
    const digests = new Uint8Array(this.count * DIGEST);
    const seqs: number[] = new Array<number>(this.count);
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head + i) % this.capacity;
      digests.set(this.digests.subarray(slot * DIGEST, (slot + 1) * DIGEST), i * DIGEST);
      seqs[i] = this.seqs[slot]!;
    }
    return { digests, seqs };
  }

  private home(w0: number, w1: number): number {
    return (Math.imul(w0 ^ this.k1, this.k0) + Math.imul(w1, this.k1)) >>> this.shift;
  }

  private homeOf(slot: number): number {
    return this.home(word(this.digests, slot * DIGEST), word(this.digests, slot * DIGEST + 4));
  }

  /** Removes `slot` from the index, shifting later entries of its probe run back into the gap. */
  private unindex(slot: number): void {
    let i = this.homeOf(slot);
    while (this.table[i] !== slot + 1) i = (i + 1) & this.mask;
    for (let j = (i + 1) & this.mask; this.table[j] !== 0; j = (j + 1) & this.mask) {
      const k = this.homeOf(this.table[j]! - 1);
      // The entry at j may move to the gap at i unless its home lies cyclically in (i, j].
      const stays = i <= j ? i < k && k <= j : i < k || k <= j;
      if (stays) continue;
      this.table[i] = this.table[j]!;
      i = j;
    }
    this.table[i] = 0;
  }

  private matches(slot: number, digest: Uint8Array): boolean {
    const base = slot * DIGEST;
    for (let i = 0; i < DIGEST; i++) if (this.digests[base + i] !== digest[i]) return false;
    return true;
  }
}

/** The big-endian 32-bit word at `offset` (no DataView per lookup on the execution path). */
function word(b: Uint8Array, offset: number): number {
  return ((b[offset]! << 24) | (b[offset + 1]! << 16) | (b[offset + 2]! << 8) | b[offset + 3]!) >>> 0;
}
