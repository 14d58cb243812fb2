import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CbftError } from '../../src/errors.js';
import { Writer, fromHex, toHex } from '../../src/codec/binary.js';
import type { PbftMessage } from '../../src/pbft/index.js';
import { DEFAULT_CODEC_LIMITS, decodeMessage, encodeMessage, signedBytes } from '../../src/pbft/index.js';
import { voteBytes } from '../../src/pbft/signing.js';
import { KAT_MESSAGES } from './kat-fixtures.js';

/**
 * Known answers: the exact wire bytes of one message of every type. A change here is a wire
 * format change (bump WIRE_VERSION), never an accident.
 */
const KNOWN: Record<PbftMessage['type'], string> = {
  'request': 
    '01010002111111111111111111111111111111111111111111111111111111111111111100000002686900000020abab' +
    'abababababababababababababababababababababababababababababab',
  'pre-prepare': 
    '010200010000000000000001000000000000000211111111111111111111111111111111111111111111111111111111' +
    '111111110000018bcfe56800222222222222222222222222222222222222222222222222222222222222222200000001' +
    '11111111111111111111111111111111111111111111111111111111111111110000000301020300000020ababababab' +
    'ababababababababababababababababababababababababababab',
  'prepare': 
    '010300030000000000000001000000000000000211111111111111111111111111111111111111111111111111111111' +
    '1111111100000020abababababababababababababababababababababababababababababababab',
  'commit': 
    '010400030000000000000001000000000000000211111111111111111111111111111111111111111111111111111111' +
    '1111111100000020abababababababababababababababababababababababababababababababab',
  'checkpoint': 
    '010500000000000000000004111111111111111111111111111111111111111111111111111111111111111100000020' +
    'abababababababababababababababababababababababababababababababab',
  'view-change': 
    '010600010000000000000002000000000000000411111111111111111111111111111111111111111111111111111111' +
    '111111110003000100000020abababababababababababababababababababababababababababababababab00020000' +
    '0020abababababababababababababababababababababababababababababababab000300000020abababababababab' +
    'abababababababababababababababababababababababab000000010000000000000001000000000000000511111111' +
    '1111111111111111111111111111111111111111111111111111111100000020abababababababababababababababab' +
    'abababababababababababababababab0002000200000020abababababababababababababababababababababababab' +
    'abababababababab000300000020abababababababababababababababababababababababababababababababab0000' +
    '0020abababababababababababababababababababababababababababababababab',
  'new-view': 
    '010700020000000000000002000000010000017201060001000000000000000200000000000000041111111111111111' +
    '1111111111111111111111111111111111111111111111110003000100000020abababababababababababababababab' +
    'abababababababababababababababab000200000020abababababababababababababababababababababababababab' +
    'abababababab000300000020abababababababababababababababababababababababababababababababab00000001' +
    '000000000000000100000000000000051111111111111111111111111111111111111111111111111111111111111111' +
    '00000020abababababababababababababababababababababababababababababababab0002000200000020abababab' +
    'abababababababababababababababababababababababababababab000300000020abababababababababababababab' +
    'abababababababababababababababababab00000020abababababababababababababababababababababababababab' +
    'abababababab000000010000000000000005111111111111111111111111111111111111111111111111111111111111' +
    '111100000020abababababababababababababababababababababababababababababababab00000020abababababab' +
    'abababababababababababababababababababababababababab',
  'status': 
    '010800010000000000000001010000000000000004000000000000000700000020ababababababababababababababab' +
    'ababababababababababababababababab',
  'fetch': 
    '010900030000000000000005000000000000000800000020abababababababababababababababababababababababab' +
    'abababababababab',
  'fetch-reply': 
    '010a000000000000000000010000000100000000000000050000018bcfe5680022222222222222222222222222222222' +
    '222222222222222222222222222222220000000111111111111111111111111111111111111111111111111111111111' +
    '111111110000000301020300000000000000011111111111111111111111111111111111111111111111111111111111' +
    '1111110003000000000020abababababababababababababababababababababababababababababababab0001000000' +
    '20abababababababababababababababababababababababababababababababab000200000020ababababababababab' +
    'ababababababababababababababababababababababab00000020ababababababababababababababababababababab' +
    'ababababababababababab',
};

describe('pbft wire codec', () => {
  for (const [type, hex] of Object.entries(KNOWN)) {
    it(`pins the bytes of ${type}`, () => {
      const msg = KAT_MESSAGES[type as PbftMessage['type']];
      expect(toHex(encodeMessage(msg))).toBe(hex);
      const decoded = decodeMessage(fromHex(hex));
      expect(decoded).toEqual(msg);
      expect(toHex(encodeMessage(decoded))).toBe(hex);
    });
  }

  it('lays out a PREPARE as version, type, sender, view, seq, digest, signature', () => {
    const expected = new Writer()
      .u8(1)
      .u8(3)
      .u16(3)
      .u64(1)
      .u64(2)
      .fixed(new Uint8Array(32).fill(0x11), 32)
      .bytes(new Uint8Array(32).fill(0xab))
      .finish();
    expect(toHex(encodeMessage(KAT_MESSAGES.prepare))).toBe(toHex(expected));
  });

  it('signs a domain-tagged encoding, distinct per message type', () => {
    expect(toHex(signedBytes(KAT_MESSAGES.prepare))).toBe('00000014636266742f706266742f707265706172652f76310003000000000000000100000000000000021111111111111111111111111111111111111111111111111111111111111111');
    const m = KAT_MESSAGES.prepare as Extract<PbftMessage, { type: 'prepare' }>;
    const asCommit = voteBytes('commit', m.sender, m.view, m.seq, m.digest);
    const asPrePrepare = voteBytes('pre-prepare', m.sender, m.view, m.seq, m.digest);
    expect(toHex(asCommit)).not.toBe(toHex(signedBytes(m)));
    expect(toHex(asPrePrepare)).not.toBe(toHex(signedBytes(m)));
    // A PRE-PREPARE's signature covers the header only, so certificates can omit the batch.
    const pp = KAT_MESSAGES['pre-prepare'] as Extract<PbftMessage, { type: 'pre-prepare' }>;
    expect(signedBytes(pp)).toEqual(voteBytes('pre-prepare', pp.sender, pp.view, pp.seq, pp.digest));
    expect(toHex(signedBytes(KAT_MESSAGES['view-change']))).toBe(
      
    '00000018636266742f706266742f766965772d6368616e67652f76310001000000000000000200000000000000041111' +
    '1111111111111111111111111111111111111111111111111111111111110003000100000020abababababababababab' +
    'abababababababababababababababababababababab000200000020abababababababababababababababababababab' +
    'abababababababababababab000300000020abababababababababababababababababababababababababababababab' +
    'abab00000001000000000000000100000000000000051111111111111111111111111111111111111111111111111111' +
    '11111111111100000020abababababababababababababababababababababababababababababababab000200020000' +
    '0020abababababababababababababababababababababababababababababababab000300000020abababababababab' +
    'abababababababababababababababababababababababab',
    );
  });

  it('rejects truncated input, trailing bytes, unknown versions and types, bad booleans', () => {
    const bytes = encodeMessage(KAT_MESSAGES.status);
    const decodeError = expect.objectContaining({ code: 'CBFT_ERR_DECODE' }) as Error;
    for (let cut = 0; cut < bytes.length; cut++) expect(() => decodeMessage(bytes.subarray(0, cut))).toThrow(decodeError);
    const trailing = new Uint8Array(bytes.length + 1);
    trailing.set(bytes);
    expect(() => decodeMessage(trailing)).toThrow(decodeError);
    const badVersion = bytes.slice();
    badVersion[0] = 2;
    expect(() => decodeMessage(badVersion)).toThrow(decodeError);
    const badType = bytes.slice();
    badType[1] = 99;
    expect(() => decodeMessage(badType)).toThrow(decodeError);
    const badBool = bytes.slice();
    badBool[12] = 2; // the inViewChange flag of the status message
    expect(() => decodeMessage(badBool)).toThrow(decodeError);
  });

  it('bounds list lengths and payload sizes before allocating', () => {
    const decodeError = expect.objectContaining({ code: 'CBFT_ERR_DECODE' }) as Error;
    const pp = encodeMessage(KAT_MESSAGES['pre-prepare']);
    expect(() => decodeMessage(pp, { ...DEFAULT_CODEC_LIMITS, maxBatchRequests: 0 })).toThrow(decodeError);
    expect(() => decodeMessage(pp, { ...DEFAULT_CODEC_LIMITS, maxRequestBytes: 2 })).toThrow(decodeError);
    expect(() => decodeMessage(encodeMessage(KAT_MESSAGES.prepare), { ...DEFAULT_CODEC_LIMITS, maxSigBytes: 16 })).toThrow(decodeError);
    // A huge declared count with no bytes behind it is refused up front.
    const fr = encodeMessage({ ...KAT_MESSAGES['fetch-reply'], entries: [] } as PbftMessage);
    const lie = fr.slice();
    new DataView(lie.buffer).setUint32(12, 60_000);
    expect(() => decodeMessage(lie)).toThrow(decodeError);
  });

  it('every input either decodes to a message that re-encodes to the same bytes, or throws CBFT_ERR_DECODE', () => {
    const seeds = Object.values(KAT_MESSAGES).map((m) => encodeMessage(m));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }), fc.nat(600), (which, flips, cut) => {
        const bytes = seeds[which]!.slice(0, Math.max(1, seeds[which]!.length - (cut % 3 === 0 ? cut % 40 : 0)));
        for (const [pos, value] of flips) bytes[pos % bytes.length] = value;
        let msg: PbftMessage;
        try {
          msg = decodeMessage(bytes);
        } catch (err) {
          return err instanceof CbftError && err.code === 'CBFT_ERR_DECODE';
        }
        return toHex(encodeMessage(msg)) === toHex(bytes);
      }),
      { numRuns: 3000, seed: 42 },
    );
  });

  it('random bytes never crash the decoder', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          const msg = decodeMessage(bytes);
          return toHex(encodeMessage(msg)) === toHex(bytes);
        } catch (err) {
          return err instanceof CbftError && err.code === 'CBFT_ERR_DECODE';
        }
      }),
      { numRuns: 2000, seed: 7 },
    );
  });
});
