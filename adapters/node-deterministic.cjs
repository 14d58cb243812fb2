'use strict';
/*
 * cbft determinism adapter for Node.js services.
 *
 *   NODE_OPTIONS="--require /abs/path/adapters/node-deterministic.cjs" node server.js
 *
 * Every request that reaches a node:http / node:https server with valid `cbft-timestamp` and
 * `cbft-seed` headers runs in an AsyncLocalStorage context derived from them. Inside that context
 * the clock and the random sources of the runtime are served from the headers:
 *
 *   Date (new Date(), Date(), Date.now())          -> the cbft-timestamp, frozen for the request
 *   Math.random                                    -> stream "math"
 *   crypto.randomUUID, webcrypto.randomUUID        -> stream "uuid"
 *   crypto.randomBytes / randomFill / randomFillSync,
 *   crypto.getRandomValues, webcrypto.getRandomValues -> stream "bytes"
 *   crypto.randomInt                               -> stream "int"
 *   performance.now, process.hrtime(.bigint)       -> real, unless CBFT_DETERMINISTIC_MONOTONIC=1
 *
 * stream(label) is the AES-256-CTR keystream (128-bit big-endian counter from 0) under the key
 * HMAC-SHA256(key = seed bytes, message = "cbft-adapter/v1/" + label). Outside any request
 * context (startup, background timers) and for requests without the headers everything behaves
 * exactly as without the adapter. See adapters/README.md for the contract and the limits.
 *
 * Zero dependencies, CommonJS, safe to load twice (the second load is a no-op).
 */

const INSTALLED = Symbol.for('cbft.adapter.node-deterministic');

if (globalThis[INSTALLED] !== undefined) {
  module.exports = globalThis[INSTALLED];
} else {
  module.exports = install();
  Object.defineProperty(globalThis, INSTALLED, {
    value: module.exports,
    enumerable: false,
    writable: false,
    configurable: false,
  });
}

function install() {
  const { AsyncLocalStorage } = require('node:async_hooks');
  const nodeCrypto = require('node:crypto');
  const http = require('node:http');
  const https = require('node:https');
  const { constants: bufferConstants } = require('node:buffer');
  const { syncBuiltinESMExports } = require('node:module');
  const { performance } = require('node:perf_hooks');
  const types = require('node:util').types;

  const VERSION = 1;
  const HEADER_SEQUENCE = 'cbft-sequence';
  const HEADER_TIMESTAMP = 'cbft-timestamp';
  const HEADER_SEED = 'cbft-seed';
  const KEY_PREFIX = 'cbft-adapter/v1/';
  const MAX_DATE_MS = 8.64e15; // ECMAScript time value limit
  const TIMESTAMP_RE = /^[0-9]{1,16}$/;
  const SEED_RE = /^[0-9a-fA-F]{64}$/;
  const SEQUENCE_RE = /^[0-9]{1,20}$/;
  const POOL_BYTES = 512;
  const ZERO_IV = Buffer.alloc(16);
  const TWO_POW_53 = 9007199254740992;
  const RAND_MAX = 0xffff_ffff_ffff; // randomInt draws 48-bit integers, like node:crypto
  const K_MAX_POSSIBLE_LENGTH = Math.min(bufferConstants.MAX_LENGTH, 2 ** 32 - 1);
  const HEX = '0123456789abcdef';

  const STRICT = process.env.CBFT_DETERMINISTIC_STRICT === '1';
  const MONOTONIC = process.env.CBFT_DETERMINISTIC_MONOTONIC === '1';

  // ---------------------------------------------------------------------------------------------
  // Originals (captured before anything is patched).
  const RealDate = globalThis.Date;
  const realDateNow = RealDate.now;
  const realMathRandom = Math.random;
  const realCrypto = {
    randomBytes: nodeCrypto.randomBytes,
    randomFill: nodeCrypto.randomFill,
    randomFillSync: nodeCrypto.randomFillSync,
    randomInt: nodeCrypto.randomInt,
    randomUUID: nodeCrypto.randomUUID,
  };
  const webcrypto = nodeCrypto.webcrypto;
  const CryptoProto = Object.getPrototypeOf(webcrypto);
  const realGetRandomValues = CryptoProto.getRandomValues;
  const realWebRandomUUID = CryptoProto.randomUUID;
  const realPerformanceNow = performance.now;
  const realHrtime = process.hrtime;
  const realHrtimeBigint = process.hrtime.bigint;

  const storage = new AsyncLocalStorage();

  // ---------------------------------------------------------------------------------------------
  // Deterministic streams.

  class KeyStream {
    constructor(seed, label) {
      const key = nodeCrypto.createHmac('sha256', seed).update(KEY_PREFIX + label, 'utf8').digest();
      this.cipher = nodeCrypto.createCipheriv('aes-256-ctr', key, ZERO_IV);
      this.pool = Buffer.alloc(0);
      this.pos = 0;
    }

    /** Copies the next n keystream bytes into target[offset, offset + n). */
    readInto(target, offset, n) {
      let done = 0;
      while (done < n) {
        if (this.pos >= this.pool.length) {
          this.pool = this.cipher.update(Buffer.alloc(Math.max(POOL_BYTES, n - done)));
          this.pos = 0;
        }
        const take = Math.min(n - done, this.pool.length - this.pos);
        target.set(this.pool.subarray(this.pos, this.pos + take), offset + done);
        this.pos += take;
        done += take;
      }
    }

    read(n) {
      const out = Buffer.alloc(n); // not from the shared pool, like node's own randomBytes
      this.readInto(out, 0, n);
      return out;
    }
  }

  /** The per-request context. The seed itself is not exposed. */
  class DeterministicContext {
    #seed;
    #streams = new Map();
    #monotonicCalls = 0;

    constructor(timestamp, seed, sequence) {
      this.timestamp = timestamp;
      this.sequence = sequence;
      this.#seed = seed;
      Object.defineProperty(this, 'timestamp', { writable: false });
      Object.defineProperty(this, 'sequence', { writable: false });
    }

    stream(label) {
      let s = this.#streams.get(label);
      if (s === undefined) {
        s = new KeyStream(this.#seed, label);
        this.#streams.set(label, s);
      }
      return s;
    }

    /** Next value of the per-request virtual monotonic clock, in nanoseconds since the epoch. */
    nextMonotonicNs() {
      this.#monotonicCalls += 1;
      return BigInt(this.timestamp) * 1_000_000n + BigInt(this.#monotonicCalls) * 1000n;
    }

    nextMonotonicMs() {
      this.#monotonicCalls += 1;
      return this.timestamp + this.#monotonicCalls / 1000;
    }
  }

  function deterministicRandom(ctx) {
    const b = ctx.stream('math').read(8);
    // The top 53 bits of the 64-bit big-endian integer, divided by 2^53: uniform in [0, 1).
    return (b.readUInt32BE(0) * 2097152 + (b.readUInt32BE(4) >>> 11)) / TWO_POW_53;
  }

  function deterministicUUID(ctx) {
    const b = ctx.stream('uuid').read(16);
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // variant 10xx
    let s = '';
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) s += '-';
      s += HEX[b[i] >> 4] + HEX[b[i] & 15];
    }
    return s;
  }

  function deterministicInt(ctx, min, max) {
    const range = max - min;
    const randLimit = RAND_MAX - (RAND_MAX % range);
    const s = ctx.stream('int');
    for (;;) {
      const x = s.read(6).readUIntBE(0, 6);
      if (x < randLimit) return (x % range) + min;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Header contract.

  /**
   * Parses the cbft headers of a request (an IncomingMessage `headers` object: lower-case names).
   * Returns { context } when both headers are valid, {} when neither is present, and { error }
   * when they are present but partial or malformed.
   */
  function parseHeaders(headers) {
    const get = (name) => {
      if (headers === null || typeof headers !== 'object') return undefined;
      if (typeof headers.get === 'function' && typeof headers.has === 'function') {
        return headers.has(name) ? headers.get(name) : undefined; // WHATWG Headers
      }
      return headers[name];
    };
    const ts = get(HEADER_TIMESTAMP);
    const seed = get(HEADER_SEED);
    const seq = get(HEADER_SEQUENCE);
    if (ts === undefined && seed === undefined) return {};
    if (typeof ts !== 'string' || !TIMESTAMP_RE.test(ts) || !(Number(ts) <= MAX_DATE_MS)) {
      return { error: `${HEADER_TIMESTAMP} must be decimal milliseconds since the epoch` };
    }
    if (typeof seed !== 'string' || !SEED_RE.test(seed)) {
      return { error: `${HEADER_SEED} must be 64 hex characters` };
    }
    const sequence = typeof seq === 'string' && SEQUENCE_RE.test(seq) ? seq : undefined;
    return {
      context: new DeterministicContext(Number(ts), Buffer.from(seed, 'hex'), sequence),
    };
  }

  function contextFrom(init) {
    if (init instanceof DeterministicContext) return init;
    if (init !== null && typeof init === 'object' && !('get' in init) &&
        (typeof init.timestamp === 'number' || typeof init.timestamp === 'string') &&
        typeof init.seed === 'string') {
      const headers = {
        [HEADER_TIMESTAMP]: String(init.timestamp),
        [HEADER_SEED]: init.seed,
      };
      if (init.sequence !== undefined) headers[HEADER_SEQUENCE] = String(init.sequence);
      init = headers;
    }
    const parsed = parseHeaders(init);
    if (parsed.context === undefined) {
      throw new TypeError(`cbft-deterministic: ${parsed.error ?? 'cbft headers missing'}`);
    }
    return parsed.context;
  }

  // ---------------------------------------------------------------------------------------------
  // Date.

  const PatchedDate = function Date(...args) {
    const ctx = storage.getStore();
    if (new.target === undefined) {
      // Date() called as a function returns the current time as a string and ignores arguments.
      return ctx === undefined ? RealDate() : new RealDate(ctx.timestamp).toString();
    }
    if (args.length === 0 && ctx !== undefined) {
      return Reflect.construct(RealDate, [ctx.timestamp], new.target);
    }
    return Reflect.construct(RealDate, args, new.target);
  };
  function now() {
    const ctx = storage.getStore();
    return ctx === undefined ? realDateNow() : ctx.timestamp;
  }
  // Same prototype object: `instanceof Date` holds for dates made before or after the patch, by
  // Node's internals, and by subclasses; Date.prototype methods are the native ones.
  Object.defineProperty(PatchedDate, 'prototype', { value: RealDate.prototype, writable: false });
  Object.defineProperty(PatchedDate, 'length', { value: 7 });
  for (const [name, value] of [['now', now], ['parse', RealDate.parse], ['UTC', RealDate.UTC]]) {
    Object.defineProperty(PatchedDate, name, {
      value, writable: true, enumerable: false, configurable: true,
    });
  }
  Object.defineProperty(RealDate.prototype, 'constructor', {
    value: PatchedDate, writable: true, enumerable: false, configurable: true,
  });
  globalThis.Date = PatchedDate;

  // ---------------------------------------------------------------------------------------------
  // Math.random.

  Math.random = function random() {
    const ctx = storage.getStore();
    return ctx === undefined ? realMathRandom() : deterministicRandom(ctx);
  };

  // ---------------------------------------------------------------------------------------------
  // node:crypto. Argument handling mirrors node's own validation; whenever the arguments are not
  // plainly valid the original function is called, so callers get node's exact errors.

  function mirrorOffset(offset, elementSize, length) {
    if (typeof offset !== 'number') return -1;
    offset *= elementSize;
    if (Number.isNaN(offset) || offset > Math.min(length, K_MAX_POSSIBLE_LENGTH) || offset < 0) {
      return -1;
    }
    return offset >>> 0;
  }

  function mirrorSize(size, elementSize, offset, length) {
    if (typeof size !== 'number') return -1;
    size *= elementSize;
    if (Number.isNaN(size) || size > K_MAX_POSSIBLE_LENGTH || size < 0) return -1;
    if (size + offset > length) return -1;
    return size >>> 0;
  }

  /** The byte view randomFill(Sync)(buf, offset, size) writes to, or undefined if invalid. */
  function fillRegion(buf, offset, size) {
    const isView = ArrayBuffer.isView(buf);
    if (!isView && !types.isAnyArrayBuffer(buf)) return undefined;
    const elementSize = buf.BYTES_PER_ELEMENT || 1;
    const off = mirrorOffset(offset, elementSize, buf.byteLength);
    if (off < 0) return undefined;
    const len = size === undefined
      ? buf.byteLength - off
      : mirrorSize(size, elementSize, off, buf.byteLength);
    if (len < 0) return undefined;
    return isView
      ? new Uint8Array(buf.buffer, buf.byteOffset + off, len)
      : new Uint8Array(buf, off, len);
  }

  function fillFromStream(ctx, view) {
    if (view.length > 0) ctx.stream('bytes').readInto(view, 0, view.length);
  }

  function randomBytes(size, callback) {
    const ctx = storage.getStore();
    const n = ctx === undefined ? -1 : mirrorSize(size, 1, 0, Infinity);
    if (n < 0 || (callback !== undefined && typeof callback !== 'function')) {
      return Reflect.apply(realCrypto.randomBytes, this, arguments);
    }
    const buf = ctx.stream('bytes').read(n);
    if (callback === undefined) return buf;
    process.nextTick(callback, null, buf);
    return undefined;
  }

  function randomFillSync(buf, offset = 0, size) {
    const ctx = storage.getStore();
    const view = ctx === undefined ? undefined : fillRegion(buf, offset, size);
    if (view === undefined) return Reflect.apply(realCrypto.randomFillSync, this, arguments);
    fillFromStream(ctx, view);
    return buf;
  }

  function randomFill(buf, offset, size, callback) {
    const ctx = storage.getStore();
    if (ctx === undefined) return Reflect.apply(realCrypto.randomFill, this, arguments);
    let off = offset;
    let len = size;
    let cb = callback;
    const isBuffer = ArrayBuffer.isView(buf) || types.isAnyArrayBuffer(buf);
    if (typeof offset === 'function') {
      cb = offset;
      off = 0;
      len = isBuffer ? buf.length : undefined;
    } else if (typeof size === 'function') {
      cb = size;
      len = isBuffer ? buf.length - offset : undefined;
    }
    const view = typeof cb === 'function' ? fillRegion(buf, off, len) : undefined;
    if (view === undefined) return Reflect.apply(realCrypto.randomFill, this, arguments);
    fillFromStream(ctx, view);
    process.nextTick(cb, null, buf);
    return undefined;
  }

  function randomInt(min, max, callback) {
    const ctx = storage.getStore();
    if (ctx === undefined) return Reflect.apply(realCrypto.randomInt, this, arguments);
    let lo = min;
    let hi = max;
    let cb = callback;
    if (typeof max === 'undefined' || typeof max === 'function') {
      cb = max;
      hi = min;
      lo = 0;
    }
    if ((cb !== undefined && typeof cb !== 'function') ||
        !Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || hi <= lo ||
        !(hi - lo <= RAND_MAX)) {
      return Reflect.apply(realCrypto.randomInt, this, arguments);
    }
    const n = deterministicInt(ctx, lo, hi);
    if (cb === undefined) return n;
    process.nextTick(cb, null, n);
    return undefined;
  }

  function randomUUID(options) {
    const ctx = storage.getStore();
    const valid = options === undefined ||
      (options !== null && typeof options === 'object' && !Array.isArray(options) &&
        (options.disableEntropyCache === undefined ||
          typeof options.disableEntropyCache === 'boolean'));
    if (ctx === undefined || !valid) return Reflect.apply(realCrypto.randomUUID, this, arguments);
    return deterministicUUID(ctx);
  }

  nodeCrypto.randomBytes = randomBytes;
  nodeCrypto.randomFill = randomFill;
  nodeCrypto.randomFillSync = randomFillSync;
  nodeCrypto.randomInt = randomInt;
  nodeCrypto.randomUUID = randomUUID;
  // Deprecated aliases of randomBytes (DEP0115): keep their deprecation warning, serve the patch.
  for (const alias of ['pseudoRandomBytes', 'prng', 'rng']) {
    const d = Object.getOwnPropertyDescriptor(nodeCrypto, alias);
    if (d === undefined || !d.configurable) continue;
    if (typeof d.get === 'function') {
      Object.defineProperty(nodeCrypto, alias, {
        ...d,
        get() {
          Reflect.apply(d.get, this, []); // emits the deprecation warning once
          return randomBytes;
        },
      });
    } else if (typeof d.value === 'function') {
      Object.defineProperty(nodeCrypto, alias, { ...d, value: randomBytes });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Web Crypto (globalThis.crypto, require('node:crypto').webcrypto, crypto.getRandomValues).

  function isIntegerTypedArray(a) {
    return types.isUint8Array(a) || types.isInt8Array(a) || types.isUint8ClampedArray(a) ||
      types.isUint16Array(a) || types.isInt16Array(a) || types.isUint32Array(a) ||
      types.isInt32Array(a) || types.isBigUint64Array(a) || types.isBigInt64Array(a);
  }

  Object.defineProperty(CryptoProto, 'getRandomValues', {
    ...Object.getOwnPropertyDescriptor(CryptoProto, 'getRandomValues'),
    value: function getRandomValues(array) {
      const ctx = storage.getStore();
      if (ctx === undefined || this !== webcrypto || arguments.length < 1 ||
          !isIntegerTypedArray(array) || array.byteLength > 65536) {
        return Reflect.apply(realGetRandomValues, this, arguments);
      }
      fillFromStream(ctx, new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
      return array;
    },
  });
  Object.defineProperty(CryptoProto, 'randomUUID', {
    ...Object.getOwnPropertyDescriptor(CryptoProto, 'randomUUID'),
    value: function randomUUID() {
      const ctx = storage.getStore();
      if (ctx === undefined || this !== webcrypto) {
        return Reflect.apply(realWebRandomUUID, this, arguments);
      }
      return deterministicUUID(ctx);
    },
  });

  // ---------------------------------------------------------------------------------------------
  // Monotonic clocks: real by default (they measure durations, feed timeouts and busy-waits, and
  // rarely reach a reply). With CBFT_DETERMINISTIC_MONOTONIC=1, inside a request they return a
  // virtual clock: the cbft-timestamp plus 1 microsecond per call (shared by performance.now and
  // process.hrtime), so it is deterministic and still strictly increasing within a request.

  if (MONOTONIC) {
    performance.now = function now() {
      const ctx = storage.getStore();
      return ctx === undefined ? Reflect.apply(realPerformanceNow, this, arguments) : ctx.nextMonotonicMs();
    };
    const hrtime = function hrtime(time) {
      const ctx = storage.getStore();
      const validPrev = time === undefined ||
        (Array.isArray(time) && time.length === 2 &&
          typeof time[0] === 'number' && typeof time[1] === 'number');
      if (ctx === undefined || !validPrev) return Reflect.apply(realHrtime, this, arguments);
      const ns = ctx.nextMonotonicNs();
      let sec = Number(ns / 1_000_000_000n);
      let nsec = Number(ns % 1_000_000_000n);
      if (time !== undefined) {
        sec -= time[0];
        nsec -= time[1];
        if (nsec < 0) {
          sec -= 1;
          nsec += 1e9;
        }
      }
      return [sec, nsec];
    };
    hrtime.bigint = function bigint() {
      const ctx = storage.getStore();
      return ctx === undefined ? realHrtimeBigint() : ctx.nextMonotonicNs();
    };
    process.hrtime = hrtime;
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP servers: run each request with valid cbft headers inside its context. The 'request'
  // event is emitted synchronously, but the request's later events ('data', 'end', 'close',
  // 'finish', ...) are emitted from the connection's own async resource, which was created before
  // the request existed; the request and response emitters are therefore bound to the context too.

  const REQUEST_EVENTS = new Set(['request', 'checkContinue', 'checkExpectation']);
  const BOUND = Symbol('cbft.deterministic.context');
  let warnedMalformed = false;

  function bindEmitter(emitter, ctx) {
    if (emitter === null || typeof emitter !== 'object' || typeof emitter.emit !== 'function') return;
    if (emitter[BOUND] !== undefined) return;
    const original = emitter.emit;
    Object.defineProperty(emitter, BOUND, { value: ctx, enumerable: false, configurable: true });
    Object.defineProperty(emitter, 'emit', {
      value: function emit() {
        return storage.run(ctx, Reflect.apply, original, this, arguments);
      },
      enumerable: false,
      writable: true,
      configurable: true,
    });
  }

  function rejectMalformed(res, message) {
    const body = JSON.stringify({ error: 'cbft_bad_headers', message }) + '\n';
    res.writeHead(400, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body);
  }

  function patchServer(proto) {
    if (Object.prototype.hasOwnProperty.call(proto, BOUND)) return;
    const original = proto.emit;
    Object.defineProperty(proto, BOUND, { value: true });
    Object.defineProperty(proto, 'emit', {
      value: function emit(event, req, res) {
        if (!REQUEST_EVENTS.has(event) || req === null || typeof req !== 'object') {
          return Reflect.apply(original, this, arguments);
        }
        let ctx = req[BOUND];
        if (ctx === undefined) {
          const parsed = parseHeaders(req.headers);
          if (parsed.error !== undefined) {
            if (STRICT && res !== null && typeof res === 'object' && typeof res.writeHead === 'function') {
              rejectMalformed(res, parsed.error);
              if (typeof req.resume === 'function') req.resume();
              return true;
            }
            if (!warnedMalformed) {
              warnedMalformed = true;
              process.emitWarning(
                `cbft-deterministic: request with malformed cbft headers runs without the adapter (${parsed.error})`,
                { code: 'CBFT_BAD_HEADERS' },
              );
            }
            return Reflect.apply(original, this, arguments);
          }
          if (parsed.context === undefined) return Reflect.apply(original, this, arguments);
          ctx = parsed.context;
          bindEmitter(req, ctx);
          bindEmitter(res, ctx);
        }
        return storage.run(ctx, Reflect.apply, original, this, arguments);
      },
      enumerable: false,
      writable: true,
      configurable: true,
    });
  }

  patchServer(http.Server.prototype);
  patchServer(https.Server.prototype);

  // ESM `import { randomUUID } from 'node:crypto'` must see the patched functions.
  syncBuiltinESMExports();

  // ---------------------------------------------------------------------------------------------
  // Small public API (also reachable as globalThis[Symbol.for('cbft.adapter.node-deterministic')]).

  return Object.freeze({
    version: VERSION,
    headers: Object.freeze({ sequence: HEADER_SEQUENCE, timestamp: HEADER_TIMESTAMP, seed: HEADER_SEED }),
    options: Object.freeze({ strict: STRICT, monotonic: MONOTONIC }),
    /** Parses headers: { context } | {} (absent) | { error }. */
    parseHeaders,
    /** Runs fn(...args) in the context given by headers or { timestamp, seed, sequence? }. */
    run(init, fn, ...args) {
      return storage.run(contextFrom(init), fn, ...args);
    },
    /** Runs fn(...args) outside any request context (real clock and randomness). */
    exit(fn, ...args) {
      return storage.exit(fn, ...args);
    },
    /** The current context as { timestamp, sequence }, or undefined outside requests. */
    current() {
      const ctx = storage.getStore();
      return ctx === undefined ? undefined : { timestamp: ctx.timestamp, sequence: ctx.sequence };
    },
    /** The real wall clock, e.g. for logging latencies inside a request. */
    realNow() {
      return realDateNow();
    },
  });
}
