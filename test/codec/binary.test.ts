import { describe, expect, it } from 'vitest';
import { Reader, Writer, fromBase64, fromHex, toBase64, toHex } from '../../src/codec/binary.js';

describe('binary writer/reader', () => {
  it('encodes big-endian, length-prefixed fields (known answer)', () => {
    const bytes = new Writer(1).u8(1).u16(0x0203).u32(0x04050607).u64(8).bytes(fromHex('aabb')).string('hé').finish();
    expect(toHex(bytes)).toBe('01' + '0203' + '04050607' + '0000000000000008' + '00000002aabb' + '0000000368c3a9');
    const r = new Reader(bytes);
    expect([r.u8(), r.u16(), r.u32(), r.u64()]).toEqual([1, 0x0203, 0x04050607, 8]);
    expect(toHex(r.bytes())).toBe('aabb');
    expect(r.string()).toBe('hé');
    expect(() => r.end()).not.toThrow();
  });

  it('refuses out-of-range values, truncation, oversize fields and trailing bytes', () => {
    expect(() => new Writer().u8(256)).toThrow(/out of range/);
    expect(() => new Writer().u16(-1)).toThrow(/out of range/);
    expect(() => new Writer().u64(2 ** 53)).toThrow(/out of range/);
    expect(() => new Writer().fixed(new Uint8Array(3), 4)).toThrow(/expected 4 bytes/);
    expect(() => new Reader(fromHex('0001')).u32()).toThrow(/truncated/);
    expect(() => new Reader(fromHex('00000005aa')).bytes()).toThrow(/truncated/);
    expect(() => new Reader(fromHex('00000005aaaaaaaaaa')).bytes(4)).toThrow(/exceeds limit 4/);
    expect(() => new Reader(fromHex('00000002ff fe'.replace(' ', ''))).string()).toThrow(/UTF-8/);
    const r = new Reader(fromHex('0102'));
    r.u8();
    expect(() => r.end()).toThrow(/1 trailing bytes/);
    expect(() => new Reader(fromHex('ffffffffffffffff')).u64()).toThrow(/2\^53/);
  });

  it('hex and base64 decoding is strict', () => {
    expect(() => fromHex('ABCD')).toThrow(/lower-case hex/);
    expect(() => fromHex('abc')).toThrow(/lower-case hex/);
    expect(() => fromHex('abcd', 3)).toThrow(/expected 3 bytes/);
    expect(toBase64(fromBase64('AAEC'))).toBe('AAEC');
    expect(() => fromBase64('AAE')).toThrow(/base64/);
    expect(() => fromBase64('AA=C')).toThrow(/base64/);
  });
});
