import { CbftError, ErrorCodes } from '../errors.js';

/**
 * Length-prefixed big-endian binary encoding. Every hashed or signed structure in cbft is built
 * with this writer so that two different structures can never produce the same bytes: each field
 * is either fixed-size or carries its length, and each structure starts with a domain tag.
 */
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(s: string): Uint8Array {
  return textEncoder.encode(s);
}

/**
 * Writers encode into pooled scratch buffers and copy out once in finish(): one allocation per
 * encoded message instead of two or more (every frame, record and message goes through here, and
 * the allocation churn shows in the sidecars' memory; bench/PROFILE.md). A writer that is never
 * finished (an encoding error) just leaves its scratch to the garbage collector.
 */
const SCRATCH_BYTES = 64 * 1024;
const SCRATCH_POOL_LIMIT = 8;
const scratchPool: Uint8Array[] = [];

/** A buffer that is written before it is read: skip zero-filling (megabytes for big replies). */
function uninitialised(size: number): Uint8Array {
  return new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size);
}

export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  private scratch: Uint8Array | undefined;

  constructor(initialCapacity = 256) {
    if (initialCapacity <= SCRATCH_BYTES) {
      this.scratch = scratchPool.pop() ?? new Uint8Array(SCRATCH_BYTES);
      this.buf = this.scratch;
    } else {
      this.buf = uninitialised(initialCapacity);
    }
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = uninitialised(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    checkUint(v, 0xff, 'u8');
    this.reserve(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u16(v: number): this {
    checkUint(v, 0xffff, 'u16');
    this.reserve(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    checkUint(v, 0xffffffff, 'u32');
    this.reserve(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
    return this;
  }

  /** Unsigned 64-bit; numbers above 2^53 are refused rather than silently rounded. */
  u64(v: number | bigint): this {
    const big = typeof v === 'bigint' ? v : BigInt(checkSafe(v));
    if (big < 0n || big > 0xffffffffffffffffn) throw new CbftError(ErrorCodes.ENCODE, `u64 out of range: ${v}`);
    this.reserve(8);
    this.view.setBigUint64(this.pos, big);
    this.pos += 8;
    return this;
  }

  /** Fixed-size field: the reader must know the length; refuses a wrong size. */
  fixed(b: Uint8Array, length: number): this {
    if (b.length !== length) throw new CbftError(ErrorCodes.ENCODE, `expected ${length} bytes, got ${b.length}`);
    this.reserve(length);
    this.buf.set(b, this.pos);
    this.pos += length;
    return this;
  }

  /** u32 length prefix, then the bytes. */
  bytes(b: Uint8Array): this {
    this.u32(b.length);
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** UTF-8 bytes with a u32 length prefix, encoded in place. */
  string(s: string): this {
    this.reserve(4 + s.length * 3);
    const { written } = textEncoder.encodeInto(s, this.buf.subarray(this.pos + 4));
    this.view.setUint32(this.pos, written);
    this.pos += 4 + written;
    return this;
  }

  /** A view of the bytes written so far (valid until the next write or finish). */
  written(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /**
   * The encoded bytes; the writer must not be used after it. Small encodings are copied out of
   * the scratch buffer; a big one whose capacity the caller sized (nearly) right is handed over
   * without a copy.
   */
  finish(): Uint8Array {
    if (this.scratch === undefined) {
      return this.buf.length - this.pos <= this.buf.length / 8 ? this.buf.subarray(0, this.pos) : this.buf.slice(0, this.pos);
    }
    const out = this.buf.slice(0, this.pos);
    if (scratchPool.length < SCRATCH_POOL_LIMIT) scratchPool.push(this.scratch);
    this.scratch = undefined;
    return out;
  }
}

export class Reader {
  private pos = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array, private readonly what = 'message') {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new CbftError(ErrorCodes.DECODE, `${this.what}: truncated (need ${n} bytes at offset ${this.pos}, have ${this.buf.length - this.pos})`);
    }
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** Reads a u64 that must fit in a safe integer (sequence numbers, timestamps, counters). */
  u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CbftError(ErrorCodes.DECODE, `${this.what}: u64 above 2^53`);
    return Number(v);
  }

  fixed(length: number): Uint8Array {
    this.need(length);
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  /** Length-prefixed bytes; `max` bounds the length before anything is allocated (I8). */
  bytes(max = Number.MAX_SAFE_INTEGER): Uint8Array {
    const len = this.u32();
    if (len > max) throw new CbftError(ErrorCodes.DECODE, `${this.what}: field of ${len} bytes exceeds limit ${max}`);
    return this.fixed(len);
  }

  string(max = 1 << 20): string {
    const b = this.bytes(max);
    try {
      return textDecoder.decode(b);
    } catch (cause) {
      throw new CbftError(ErrorCodes.DECODE, `${this.what}: invalid UTF-8`, { cause });
    }
  }

  /** Checks the whole input was consumed: trailing bytes would make two encodings of one value. */
  end(): void {
    if (this.pos !== this.buf.length) {
      throw new CbftError(ErrorCodes.DECODE, `${this.what}: ${this.buf.length - this.pos} trailing bytes`);
    }
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  get offset(): number {
    return this.pos;
  }
}

function checkUint(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new CbftError(ErrorCodes.ENCODE, `${what} out of range: ${v}`);
}

function checkSafe(v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new CbftError(ErrorCodes.ENCODE, `u64 out of range: ${v}`);
  return v;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

const HEX_RE = /^(?:[0-9a-f]{2})*$/;

/** Strict lower-case hex decoding; `length` (in bytes) is checked when given. */
export function fromHex(s: string, length?: number, what = 'hex'): Uint8Array {
  if (typeof s !== 'string' || !HEX_RE.test(s)) throw new CbftError(ErrorCodes.DECODE, `${what}: not lower-case hex`);
  if (length !== undefined && s.length !== length * 2) {
    throw new CbftError(ErrorCodes.DECODE, `${what}: expected ${length} bytes, got ${s.length / 2}`);
  }
  const b = Buffer.from(s, 'hex');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function fromBase64(s: string, what = 'base64'): Uint8Array {
  if (typeof s !== 'string' || !B64_RE.test(s)) throw new CbftError(ErrorCodes.DECODE, `${what}: not canonical base64`);
  const b = Buffer.from(s, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  // memcmp: replies of a MiB are compared too (the top reuses the leaf hash of identical replies).
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Byte-wise lexicographic comparison (the order used for sorted-pair hashing and header sorting). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}
