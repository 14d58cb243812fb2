import { CbftError, ErrorCodes } from '../errors.js';
import { sha256 } from '../crypto/hash.js';
import { Reader, Writer, utf8 } from './binary.js';
import { isHeaderName, isHeaderValue, type HeaderField } from './headers.js';
import { Tags } from './tags.js';

/**
 * The canonical request and reply: the only bytes that are hashed and signed. Layout (all
 * integers big-endian, `bytes` = u32 length + data):
 *   request = bytes(tag) nonce[16] bytes(method) bytes(target) u32(n) n×(bytes(name) bytes(value)) bytes(body)
 *   reply   = bytes(tag) requestDigest[32] u16(status) u32(n) n×(bytes(name) bytes(value)) bytes(body)
 *   leaf    = bytes(tag) bytes(reply)
 * Decoding is strict (tag, sorted lower-case names, no trailing bytes), so every value has
 * exactly one encoding.
 */
export const NONCE_BYTES = 16;
export const DIGEST_BYTES = 32;

export interface CanonicalRequest {
  nonce: Uint8Array;
  method: string;
  target: string;
  headers: HeaderField[];
  body: Uint8Array;
}

export interface CanonicalReply {
  requestDigest: Uint8Array;
  status: number;
  headers: HeaderField[];
  body: Uint8Array;
}

export interface DecodeLimits {
  maxBody: number;
  maxHeaders: number;
  maxHeaderBytes: number;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = {
  maxBody: 64 * 1024 * 1024,
  maxHeaders: 256,
  maxHeaderBytes: 64 * 1024,
};

const METHOD_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/;
// Origin-form or asterisk-form request target; no whitespace or control characters.
const TARGET_RE = /^(?:\*|\/[\x21-\x7e\x80-\xff]*)$/;

function bad(what: string, message: string): never {
  throw new CbftError(ErrorCodes.DECODE, `${what}: ${message}`);
}

function writeHeaders(w: Writer, headers: readonly HeaderField[], what: string): void {
  w.u32(headers.length);
  let prev = '';
  for (const [name, value] of headers) {
    if (!isHeaderName(name)) throw new CbftError(ErrorCodes.ENCODE, `${what}: bad header name ${JSON.stringify(name)}`);
    if (!isHeaderValue(value)) throw new CbftError(ErrorCodes.ENCODE, `${what}: bad value for header ${name}`);
    if (name < prev) throw new CbftError(ErrorCodes.ENCODE, `${what}: headers not sorted by name`);
    prev = name;
    w.string(name).string(value);
  }
}

function readHeaders(r: Reader, limits: DecodeLimits, what: string): HeaderField[] {
  const count = r.u32();
  if (count > limits.maxHeaders) bad(what, `${count} headers exceed the limit of ${limits.maxHeaders}`);
  const out: HeaderField[] = [];
  let prev = '';
  let total = 0;
  for (let i = 0; i < count; i++) {
    const name = r.string(limits.maxHeaderBytes);
    const value = r.string(limits.maxHeaderBytes);
    total += name.length + value.length;
    if (total > limits.maxHeaderBytes) bad(what, `headers exceed ${limits.maxHeaderBytes} bytes`);
    if (!isHeaderName(name)) bad(what, `bad header name ${JSON.stringify(name)}`);
    if (!isHeaderValue(value)) bad(what, `bad value for header ${name}`);
    if (name < prev) bad(what, 'headers not sorted by name');
    prev = name;
    out.push([name, value]);
  }
  return out;
}

function expectTag(r: Reader, tag: string, what: string): void {
  const got = r.bytes(64);
  const want = utf8(tag);
  if (got.length !== want.length || !got.every((b, i) => b === want[i])) bad(what, `wrong domain tag (want ${tag})`);
}

export function encodeRequest(req: CanonicalRequest): Uint8Array {
  if (!METHOD_RE.test(req.method)) throw new CbftError(ErrorCodes.ENCODE, `request: bad method ${JSON.stringify(req.method)}`);
  if (!TARGET_RE.test(req.target)) throw new CbftError(ErrorCodes.ENCODE, 'request: bad target');
  const w = new Writer(128 + req.body.length + req.target.length);
  w.string(Tags.request).fixed(req.nonce, NONCE_BYTES).string(req.method).string(req.target);
  writeHeaders(w, req.headers, 'request');
  w.bytes(req.body);
  return w.finish();
}

export function decodeRequest(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): CanonicalRequest {
  const r = new Reader(bytes, 'request');
  expectTag(r, Tags.request, 'request');
  const nonce = r.fixed(NONCE_BYTES);
  const method = r.string(64);
  if (!METHOD_RE.test(method)) bad('request', 'bad method');
  const target = r.string(limits.maxHeaderBytes);
  if (!TARGET_RE.test(target)) bad('request', 'bad target');
  const headers = readHeaders(r, limits, 'request');
  const body = r.bytes(limits.maxBody);
  r.end();
  return { nonce, method, target, headers, body };
}

export function encodeReply(reply: CanonicalReply): Uint8Array {
  if (!Number.isInteger(reply.status) || reply.status < 100 || reply.status > 599) {
    throw new CbftError(ErrorCodes.ENCODE, `reply: bad status ${reply.status}`);
  }
  const w = new Writer(128 + reply.body.length);
  w.string(Tags.reply).fixed(reply.requestDigest, DIGEST_BYTES).u16(reply.status);
  writeHeaders(w, reply.headers, 'reply');
  w.bytes(reply.body);
  return w.finish();
}

export function decodeReply(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): CanonicalReply {
  const r = new Reader(bytes, 'reply');
  expectTag(r, Tags.reply, 'reply');
  const requestDigest = r.fixed(DIGEST_BYTES);
  const status = r.u16();
  if (status < 100 || status > 599) bad('reply', `bad status ${status}`);
  const headers = readHeaders(r, limits, 'reply');
  const body = r.bytes(limits.maxBody);
  r.end();
  return { requestDigest, status, headers, body };
}

/** The request digest every node queues and every reply names: SHA-256 of the canonical bytes. */
export function digestOf(canonicalBytes: Uint8Array): Uint8Array {
  return sha256(canonicalBytes);
}

export function encodeLeaf(replyBytes: Uint8Array): Uint8Array {
  return new Writer(replyBytes.length + 32).string(Tags.leaf).bytes(replyBytes).finish();
}

/** The Merkle leaf of a reply, hashed without copying the reply into a new buffer. */
const LEAF_PREFIX = new Writer(32).string(Tags.leaf).finish();
export function leafHash(replyBytes: Uint8Array): Uint8Array {
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, replyBytes.length);
  return sha256(LEAF_PREFIX, len, replyBytes);
}
