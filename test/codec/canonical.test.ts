import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { fromHex, toHex, utf8 } from '../../src/codec/binary.js';
import {
  decodeReply,
  decodeRequest,
  digestOf,
  encodeLeaf,
  encodeReply,
  encodeRequest,
  leafHash,
  type CanonicalReply,
  type CanonicalRequest,
} from '../../src/codec/canonical.js';
import { canonicalHeaders, allowlist, DEFAULT_FORWARD_HEADERS, pairRawHeaders } from '../../src/codec/headers.js';
import { sha256 } from '../../src/crypto/hash.js';

const request: CanonicalRequest = {
  nonce: fromHex('000102030405060708090a0b0c0d0e0f'),
  method: 'POST',
  target: '/transfers?x=1',
  headers: [
    ['authorization', 'Bearer t'],
    ['content-type', 'application/json'],
  ],
  body: utf8('{"a":1}'),
};

const reply: CanonicalReply = {
  requestDigest: sha256(utf8('req')),
  status: 201,
  headers: [['content-type', 'application/json']],
  body: utf8('{}'),
};

describe('canonical request', () => {
  it('known answer: exact bytes and digest', () => {
    const bytes = encodeRequest(request);
    expect(toHex(bytes)).toBe(
      [
        '0000000f' + toHex(utf8('cbft/request/v1')),
        '000102030405060708090a0b0c0d0e0f',
        '00000004' + toHex(utf8('POST')),
        '0000000e' + toHex(utf8('/transfers?x=1')),
        '00000002',
        '0000000d' + toHex(utf8('authorization')) + '00000008' + toHex(utf8('Bearer t')),
        '0000000c' + toHex(utf8('content-type')) + '00000010' + toHex(utf8('application/json')),
        '00000007' + toHex(utf8('{"a":1}')),
      ].join(''),
    );
    expect(toHex(digestOf(bytes))).toMatchInlineSnapshot(`"eea394bedd480c9af9f37989d655b53fd05b67c5ebb7674ba0291e320b1a8b1f"`);
    expect(decodeRequest(bytes)).toEqual(request);
  });

  it('refuses unsorted or upper-case headers, bad methods and targets, trailing bytes', () => {
    expect(() => encodeRequest({ ...request, headers: [['b', '1'], ['a', '2']] })).toThrow(/sorted/);
    expect(() => encodeRequest({ ...request, headers: [['A', '1']] })).toThrow(/header name/);
    expect(() => encodeRequest({ ...request, headers: [['a', 'x\r\ny: z']] })).toThrow(/bad value/);
    expect(() => encodeRequest({ ...request, method: 'GE T' })).toThrow(/method/);
    expect(() => encodeRequest({ ...request, target: 'http://evil/' })).toThrow(/target/);
    const bytes = encodeRequest(request);
    expect(() => decodeRequest(new Uint8Array([...bytes, 0]))).toThrow(/trailing/);
    expect(() => decodeRequest(encodeReply(reply))).toThrow(/domain tag/);
    expect(() => decodeRequest(bytes, { maxBody: 3, maxHeaders: 10, maxHeaderBytes: 1000 })).toThrow(/exceeds limit/);
    expect(() => decodeRequest(bytes, { maxBody: 100, maxHeaders: 1, maxHeaderBytes: 1000 })).toThrow(/2 headers/);
  });
});

describe('canonical reply and leaf', () => {
  it('known answer: exact bytes, leaf and leaf hash', () => {
    const bytes = encodeReply(reply);
    expect(toHex(bytes)).toBe(
      '0000000d' + toHex(utf8('cbft/reply/v1')) + toHex(reply.requestDigest) + '00c9' + '00000001' +
        '0000000c' + toHex(utf8('content-type')) + '00000010' + toHex(utf8('application/json')) + '00000002' + toHex(utf8('{}')),
    );
    const leaf = encodeLeaf(bytes);
    expect(toHex(leaf)).toBe('0000000c' + toHex(utf8('cbft/leaf/v1')) + (bytes.length).toString(16).padStart(8, '0') + toHex(bytes));
    expect(toHex(leafHash(bytes))).toBe(toHex(sha256(leaf)));
    expect(decodeReply(bytes)).toEqual(reply);
  });

  it('refuses bad statuses', () => {
    expect(() => encodeReply({ ...reply, status: 99 })).toThrow(/status/);
    expect(() => encodeReply({ ...reply, status: 600 })).toThrow(/status/);
  });
});

describe('header canonicalisation', () => {
  it('keeps allowlisted fields, lower-cases, sorts stably, drops hop-by-hop and connection-named fields', () => {
    const allow = allowlist(DEFAULT_FORWARD_HEADERS, ['x-tenant', 'x-trace']);
    const raw = pairRawHeaders([
      'Host', 'example',
      'X-Trace', 'b',
      'Content-Type', 'text/plain',
      'Connection', 'keep-alive, X-Trace',
      'X-Tenant', '2',
      'Accept', 'a',
      'x-tenant', '1',
      'Transfer-Encoding', 'chunked',
    ]);
    expect(canonicalHeaders(raw, allow)).toEqual([
      ['accept', 'a'],
      ['content-type', 'text/plain'],
      ['x-tenant', '2'],
      ['x-tenant', '1'],
    ]);
    expect(() => allowlist([], ['transfer-encoding'])).toThrow(/hop-by-hop/);
    expect(() => allowlist([], ['bad header'])).toThrow(/not a valid header name/);
    expect(() => allowlist([], ['Host'])).toThrow(/host cannot be allowlisted/);
    expect(() => allowlist([], ['cbft-nonce'])).toThrow(/cbft's own/);
  });
});

// Property tests: distinct structures never encode alike; decoding inverts encoding.
const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,12}$/);
const headers = fc
  .array(fc.tuple(headerName, headerValue), { maxLength: 4 })
  .map((hs) => [...hs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)) as Array<[string, string]>);
const bytes = fc.uint8Array({ maxLength: 24 });
const arbRequest = fc.record({
  nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'),
  target: fc.stringMatching(/^\/[a-z0-9/?=&]{0,12}$/),
  headers,
  body: bytes,
});
const arbReply = fc.record({
  requestDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  status: fc.integer({ min: 100, max: 599 }),
  headers,
  body: bytes,
});
const same = (a: unknown, b: unknown) => JSON.stringify(a, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v)) === JSON.stringify(b, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v));

describe('encoding properties', () => {
  it('request: decode(encode(x)) = x, and distinct requests never share bytes', () => {
    fc.assert(
      fc.property(arbRequest, arbRequest, (a, b) => {
        const ea = encodeRequest(a);
        expect(same(decodeRequest(ea), a)).toBe(true);
        if (!same(a, b)) expect(toHex(ea)).not.toBe(toHex(encodeRequest(b)));
      }),
      { numRuns: 500 },
    );
  });

  it('reply: decode(encode(x)) = x, and distinct replies never share bytes', () => {
    fc.assert(
      fc.property(arbReply, arbReply, (a, b) => {
        const ea = encodeReply(a);
        expect(same(decodeReply(ea), a)).toBe(true);
        if (!same(a, b)) expect(toHex(ea)).not.toBe(toHex(encodeReply(b)));
      }),
      { numRuns: 500 },
    );
  });

  it('a request and a reply never encode alike, and neither decodes as the other', () => {
    fc.assert(
      fc.property(arbRequest, arbReply, (q, r) => {
        const eq = encodeRequest(q);
        const er = encodeReply(r);
        expect(toHex(eq)).not.toBe(toHex(er));
        expect(() => decodeReply(eq)).toThrow();
        expect(() => decodeRequest(er)).toThrow();
      }),
      { numRuns: 300 },
    );
  });

  it('moving bytes between adjacent fields changes the encoding (length prefixes)', () => {
    fc.assert(
      fc.property(arbRequest, (q) => {
        fc.pre(q.body.length > 0);
        const shifted = { ...q, target: q.target + String.fromCharCode(q.body[0]! % 26 + 97), body: q.body.subarray(1) };
        expect(toHex(encodeRequest(shifted))).not.toBe(toHex(encodeRequest(q)));
      }),
      { numRuns: 300 },
    );
  });
});
