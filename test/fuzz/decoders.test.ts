// Fuzzing every decoder of bytes that come from outside a node (issue 9), with fast-check, for
// a bounded time: canonical requests and replies, frames, wire payloads (signed replies, fails,
// partial replies, request submissions), PBFT messages and persisted records, sidecar peer
// messages, write-ahead-log images and journal records, curl dumps (and what `cbft verify` does
// with them), cluster files, Merkle proofs, hex and base64.
//
// Inputs are random bytes and, more usefully, mutations of real encodings (bit flips, byte
// writes, truncation, insertion, deletion, duplicated chunks, length fields overwritten with
// extreme values) seeded from real values, including the messages and log records of a run of
// the PBFT engine with a view change. The properties:
//   - a decoder either returns or throws its documented error (CbftError with CBFT_ERR_DECODE,
//     DumpError for curl dumps, CBFT_ERR_CLUSTER for cluster files), never anything else
//     (a RangeError, a TypeError, a hang);
//   - what decodes re-encodes to exactly the same bytes (one encoding per value);
//   - structured values survive encode → decode unchanged;
//   - a curl dump whose signed content was altered is never accepted by the verifier.
//
// Time: CBFT_FUZZ_MS (default 12000) is shared by the properties; CBFT_FUZZ_SEED replays a run.

import type { LinkKey } from '../../src/transport/link-key.js';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Reader, fromBase64, fromHex, toBase64, toHex, utf8 } from '../../src/codec/binary.js';
import { decodeReply, decodeRequest, digestOf, encodeReply, encodeRequest, type CanonicalReply, type CanonicalRequest } from '../../src/codec/canonical.js';
import { isHeaderName, isHeaderValue } from '../../src/codec/headers.js';
import { rootFromProof } from '../../src/codec/merkle.js';
import { DEFAULT_SERVICE, validateCluster } from '../../src/cluster/config.js';
import { generateCluster } from '../../src/cluster/keygen.js';
import { parseCurlDump, DumpError } from '../../src/client/curl-dump.js';
import { ResponseVerifier } from '../../src/client/verify-response.js';
import { CbftError } from '../../src/errors.js';
import { signedResponseHeaders } from '../../src/firewall/front.js';
import { combine, deal } from '../../src/crypto/threshold.js';
import { decodeMessage, decodeRecord, encodeMessage, encodeRecord, type PersistRecord } from '../../src/pbft/index.js';
import { batchTree, signBatch } from '../../src/sidecar/batch.js';
import { decodeJournalRecord, encodeJournalRecord, replayJournal, type JournalRecord } from '../../src/sidecar/journal.js';
import { decodePeerMessage, encodePeerMessage, type PeerMessage } from '../../src/sidecar/peer-messages.js';
import { WAL_MAGIC, WalFile, encodeWalRecord, scanWal } from '../../src/sidecar/wal.js';
import { decodeFrame, encodeFrame, MessageKind, type FrameMessage } from '../../src/transport/frame.js';
import { decodeFail, decodePartialReplies, decodeSignedReply, encodeFail, encodePartialReplies, encodeSignedReply, FailCode } from '../../src/wire/payloads.js';
import { decodeSubmission, encodeSubmission } from '../../src/wire/submission.js';
import { Cluster, makeRequest } from '../pbft/harness.js';
import { KAT_MESSAGES } from '../pbft/kat-fixtures.js';

const TOTAL_MS = Number(process.env.CBFT_FUZZ_MS ?? 12_000);
const SEED = process.env.CBFT_FUZZ_SEED !== undefined ? Number(process.env.CBFT_FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const PROPERTIES = 22;
const BUDGET_MS = Math.max(200, Math.floor(TOTAL_MS / PROPERTIES));
const runs: Array<[string, number]> = [];

afterAll(() => {
  const total = runs.reduce((a, [, n]) => a + n, 0);
  console.log(`[fuzz] seed ${SEED}, ${BUDGET_MS} ms per property, ${total} inputs: ${runs.map(([n, k]) => `${n} ${k}`).join(', ')}`);
});

/** Runs a property for the time budget (or `maxRuns`); fails with fast-check's report. */
function fuzz<T>(name: string, arb: fc.Arbitrary<T>, predicate: (v: T) => void, o: { maxRuns?: number; budgetMs?: number } = {}): void {
  const details = fc.check(
    fc.property(arb, (v) => {
      predicate(v);
    }),
    { seed: SEED, numRuns: o.maxRuns ?? 1_000_000, interruptAfterTimeLimit: o.budgetMs ?? BUDGET_MS, markInterruptAsFailure: false },
  );
  runs.push([name, details.numRuns]);
  if (details.failed) throw new Error(`${name}: ${fc.defaultReportMessage(details) ?? 'failed'}`);
  expect(details.numRuns).toBeGreaterThan(0);
}

// ---------------------------------------------------------------------------------------------
// Mutations of real encodings

type Mutation =
  | { k: 'flip'; pos: number; bit: number }
  | { k: 'set'; pos: number; value: number }
  | { k: 'truncate'; keep: number }
  | { k: 'insert'; pos: number; bytes: Uint8Array }
  | { k: 'delete'; pos: number; n: number }
  | { k: 'dup'; pos: number; n: number }
  | { k: 'u32'; pos: number; value: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), pos: fc.nat(), bit: fc.nat(7) }),
  fc.record({ k: fc.constant('set' as const), pos: fc.nat(), value: fc.nat(255) }),
  fc.record({ k: fc.constant('truncate' as const), keep: fc.nat() }),
  fc.record({ k: fc.constant('insert' as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
  fc.record({ k: fc.constant('delete' as const), pos: fc.nat(), n: fc.integer({ min: 1, max: 9 }) }),
  fc.record({ k: fc.constant('dup' as const), pos: fc.nat(), n: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ k: fc.constant('u32' as const), pos: fc.nat(), value: fc.oneof(fc.constantFrom(0, 1, 2, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe), fc.nat()) }),
);

function mutate(seed: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let b = Buffer.from(seed);
  for (const m of ms) {
    const at = (p: number) => (b.length === 0 ? 0 : p % (b.length + 1));
    switch (m.k) {
      case 'flip':
        if (b.length) b[m.pos % b.length]! ^= 1 << m.bit;
        break;
      case 'set':
        if (b.length) b[m.pos % b.length] = m.value;
        break;
      case 'truncate':
        b = b.subarray(0, b.length === 0 ? 0 : m.keep % b.length);
        break;
      case 'insert': {
        const p = at(m.pos);
        b = Buffer.concat([b.subarray(0, p), m.bytes, b.subarray(p)]);
        break;
      }
      case 'delete': {
        const p = at(m.pos);
        b = Buffer.concat([b.subarray(0, p), b.subarray(p + m.n)]);
        break;
      }
      case 'dup': {
        const p = at(m.pos);
        b = Buffer.concat([b.subarray(0, p + m.n), b.subarray(p)]);
        break;
      }
      case 'u32':
        if (b.length >= 4) {
          b = Buffer.from(b);
          b.writeUInt32BE(m.value >>> 0, m.pos % (b.length - 3));
        }
        break;
    }
  }
  return new Uint8Array(b);
}

/** Mutated seeds (most inputs) and plain random bytes. */
function inputs(seeds: readonly Uint8Array[], maxRandom = 600): fc.Arbitrary<Uint8Array> {
  if (seeds.length === 0) throw new Error('no seeds');
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.nat(seeds.length - 1), fc.array(mutation, { minLength: 1, maxLength: 5 })).map(([i, ms]) => mutate(seeds[i]!, ms)) },
    { weight: 1, arbitrary: fc.nat(seeds.length - 1).map((i) => seeds[i]!) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: maxRandom }) },
  );
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** decode(bytes) throws the documented decode error, or gives a value that re-encodes to bytes. */
function strict<T>(bytes: Uint8Array, decode: (b: Uint8Array) => T, encode: (v: T) => Uint8Array, code = 'CBFT_ERR_DECODE'): void {
  let v: T;
  try {
    v = decode(bytes);
  } catch (err) {
    if (!(err instanceof CbftError) || err.code !== code) throw new Error(`undocumented error ${(err as Error)?.name}: ${(err as Error)?.message}`, { cause: err });
    return;
  }
  const again = encode(v);
  if (!same(again, bytes)) throw new Error(`decoded input re-encodes differently:\n in  ${toHex(bytes).slice(0, 200)}\n out ${toHex(again).slice(0, 200)}`);
}

// ---------------------------------------------------------------------------------------------
// Structured values

const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const headerName = fc.stringMatching(/^[a-z0-9-]{1,16}$/).filter(isHeaderName);
const headerValue = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?$/).filter(isHeaderValue);
const headers = fc.uniqueArray(fc.tuple(headerName, headerValue), { maxLength: 6, selector: ([n]) => n }).map((h) => h.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const target = fc.oneof(fc.constant('*'), fc.stringMatching(/^\/[\x21-\x7e]{0,40}$/));

const canonicalRequest: fc.Arbitrary<CanonicalRequest> = fc.record({
  nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  method: token,
  target,
  headers,
  body: fc.uint8Array({ maxLength: 200 }),
});
const canonicalReply: fc.Arbitrary<CanonicalReply> = fc.record({
  requestDigest: bytes32,
  status: fc.integer({ min: 100, max: 599 }),
  headers,
  body: fc.uint8Array({ maxLength: 200 }),
});

/** A link key whose MAC is a fixed value: re-encoding a decoded frame needs its MAC. */
const fixedKey = (mac: Uint8Array) => ({ mac: () => mac }) as unknown as LinkKey;

// ---------------------------------------------------------------------------------------------
// Real seeds: a PBFT run with a view change (messages and log records).

function pbftSeeds(): { messages: Uint8Array[]; records: Uint8Array[] } {
  const c = new Cluster();
  const messages: Uint8Array[] = [];
  const deliver = c.deliver.bind(c);
  c.deliver = (e) => {
    if (messages.length < 400) messages.push(encodeMessage(e.msg));
    deliver(e);
  };
  for (let i = 0; i < 10; i++) c.submit(makeRequest(`fuzz-${i}`));
  c.runUntil(() => c.all().every((id) => c.lastExecuted[id]! >= 5), 300);
  c.crash(0);
  for (let i = 10; i < 14; i++) c.submit(makeRequest(`fuzz-${i}`), [1, 2, 3]);
  c.runUntil(() => [1, 2, 3].every((id) => c.replica(id).inspect().view >= 1 && !c.replica(id).inspect().inViewChange), 600);
  c.restart(0);
  c.runUntil(() => c.lastExecuted[0]! >= c.lastExecuted[1]!, 600);
  const records = c.wal.flat().slice(0, 400).map((r) => encodeRecord(r));
  for (const m of Object.values(KAT_MESSAGES)) messages.push(encodeMessage(m));
  const types = new Set(messages.map((m) => decodeMessage(m).type));
  expect([...types].sort()).toEqual(expect.arrayContaining(['checkpoint', 'commit', 'new-view', 'pre-prepare', 'prepare', 'view-change']));
  return { messages, records };
}

describe('decoder fuzzing (bounded time)', () => {
  it('canonical requests and replies', () => {
    const reqSeeds = fc.sample(canonicalRequest, { numRuns: 30, seed: SEED }).map(encodeRequest);
    const repSeeds = fc.sample(canonicalReply, { numRuns: 30, seed: SEED }).map(encodeReply);
    fuzz('request', inputs(reqSeeds), (b) => strict(b, (x) => decodeRequest(x), encodeRequest));
    fuzz('reply', inputs(repSeeds), (b) => strict(b, (x) => decodeReply(x), encodeReply));
    fuzz('request/reply round trip', fc.tuple(canonicalRequest, canonicalReply), ([q, r]) => {
      expect(decodeRequest(encodeRequest(q))).toEqual(q);
      expect(decodeReply(encodeReply(r))).toEqual(r);
    });
  });

  it('frames', () => {
    const kinds = Object.values(MessageKind);
    const msgs = fc.array(fc.record({ kind: fc.constantFrom(...kinds), payload: fc.uint8Array({ maxLength: 80 }) }), { maxLength: 4 }) as fc.Arbitrary<FrameMessage[]>;
    const frameArb = fc.record({
      from: fc.stringMatching(/^[a-z0-9-]{1,12}$/),
      to: fc.stringMatching(/^[a-z0-9-]{1,12}$/),
      session: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      sessionStart: fc.nat(),
      counter: fc.nat(),
      messages: msgs,
      mac: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    });
    const enc = (f: { from: string; to: string; session: Uint8Array; sessionStart: number; counter: number; messages: FrameMessage[]; mac: Uint8Array }) =>
      encodeFrame(f, f.messages, fixedKey(f.mac));
    const seeds = fc.sample(frameArb, { numRuns: 30, seed: SEED }).map(enc);
    fuzz('frame', inputs(seeds), (b) => strict(b, (x) => decodeFrame(x), enc));
  });

  it('wire payloads: signed replies, fails, partial replies, request submissions', () => {
    const max = 1 << 20;
    const signed = fc.record({ reply: fc.uint8Array({ maxLength: 120 }), proof: fc.uint8Array({ maxLength: 64 }).map((p) => p.subarray(0, p.length - (p.length % 32))), signature: fc.uint8Array({ minLength: 48, maxLength: 48 }) });
    fuzz('signed reply', inputs(fc.sample(signed, { numRuns: 20, seed: SEED }).map(encodeSignedReply)), (b) => strict(b, (x) => decodeSignedReply(x, max), encodeSignedReply));
    const fail = fc.record({ digest: bytes32, code: fc.constantFrom(...Object.values(FailCode)) });
    fuzz('fail', inputs(fc.sample(fail, { numRuns: 10, seed: SEED }).map(encodeFail)), (b) => strict(b, (x) => decodeFail(x), encodeFail));
    const partial = fc.record({
      view: fc.nat(),
      seq: fc.nat(),
      partial: fc.uint8Array({ minLength: 48, maxLength: 48 }),
      items: fc.array(fc.record({ reply: fc.uint8Array({ maxLength: 60 }), proof: fc.uint8Array({ maxLength: 64 }) }), { minLength: 1, maxLength: 3 }),
    });
    fuzz('partial replies', inputs(fc.sample(partial, { numRuns: 20, seed: SEED }).map(encodePartialReplies)), (b) => strict(b, (x) => decodePartialReplies(x, max), encodePartialReplies));
    const submission = fc
      .record({ top: fc.stringMatching(/^fw-[0-9]-[0-9]$/), signature: fc.uint8Array({ minLength: 64, maxLength: 64 }), depth: fc.nat(3), request: fc.uint8Array({ maxLength: 100 }) })
      .chain((s) => fc.uint8Array({ minLength: 32 * s.depth, maxLength: 32 * s.depth }).map((proof) => ({ ...s, proof })));
    fuzz('request submission', inputs(fc.sample(submission, { numRuns: 20, seed: SEED }).map(encodeSubmission)), (b) => strict(b, (x) => decodeSubmission(x, max), encodeSubmission));
  });

  it('PBFT messages and persisted records (seeded from a run with a view change)', () => {
    const { messages, records } = pbftSeeds();
    fuzz('pbft message', inputs(messages, 300), (b) => strict(b, (x) => decodeMessage(x), encodeMessage));
    fuzz('pbft record', inputs(records, 300), (b) => strict(b, (x) => decodeRecord(x), (r: PersistRecord) => encodeRecord(r)));
  });

  it('sidecar peer messages and journal records; journal replay', () => {
    const peer: fc.Arbitrary<PeerMessage> = fc.oneof(
      fc.record({ type: fc.constant('submitted' as const), digest: bytes32, top: fc.stringMatching(/^fw-[0-9]-[0-9]$/) }),
      fc.record({ type: fc.constant('reply-query' as const), seq: fc.nat(), digest: bytes32 }),
      fc.record({ type: fc.constant('reply-answer' as const), seq: fc.nat(), digest: bytes32, reply: fc.option(fc.uint8Array({ maxLength: 80 }), { nil: undefined }) }),
    );
    fuzz('peer message', inputs(fc.sample(peer, { numRuns: 20, seed: SEED }).map(encodePeerMessage)), (b) => strict(b, (x) => decodePeerMessage(x, 1 << 20), encodePeerMessage));
    const journal: fc.Arbitrary<JournalRecord> = fc.oneof(
      fc.record({ kind: fc.constant('engine' as const), bytes: fc.uint8Array({ maxLength: 60 }) }),
      fc.record({ kind: fc.constantFrom('start' as const, 'not-sent' as const), seq: fc.nat(), index: fc.nat() }),
      fc.record({ kind: fc.constantFrom('done' as const, 'adopted' as const), seq: fc.nat(), index: fc.nat(), reply: fc.uint8Array({ maxLength: 60 }) }),
      fc.record({ kind: fc.constant('unknown' as const), seq: fc.nat(), index: fc.nat(), reason: fc.string({ maxLength: 30 }) }),
      fc.record({
        kind: fc.constant('batch-done' as const),
        batch: fc.record({ seq: fc.nat(), seed: bytes32, digests: fc.array(bytes32, { maxLength: 3 }), partial: fc.option(fc.uint8Array({ minLength: 48, maxLength: 48 }), { nil: undefined }) }),
      }),
      fc.record({ kind: fc.constant('executed' as const), seq: fc.nat() }),
    ) as fc.Arbitrary<JournalRecord>;
    const jSeeds = fc.sample(journal, { numRuns: 40, seed: SEED }).map(encodeJournalRecord);
    fuzz('journal record', inputs(jSeeds), (b) => strict(b, (x) => decodeJournalRecord(x), encodeJournalRecord));
    // Replaying a log of (possibly damaged) records: its state, or the decode error, nothing else.
    fuzz('journal replay', fc.array(inputs(jSeeds, 60), { maxLength: 12 }), (list) => {
      try {
        const s = replayJournal(list);
        expect(s.executedThrough).toBeGreaterThanOrEqual(0);
      } catch (err) {
        if (!(err instanceof CbftError) || err.code !== 'CBFT_ERR_DECODE') throw err;
      }
    });
  });

  it('write-ahead log images: the intact prefix is kept, the rest cut; opening a damaged file leaves a clean log', () => {
    const payloads = fc.sample(fc.array(fc.uint8Array({ maxLength: 50 }), { minLength: 1, maxLength: 6 }), { numRuns: 20, seed: SEED });
    const images = payloads.map((ps) => new Uint8Array(Buffer.concat([WAL_MAGIC, ...ps.map((p) => encodeWalRecord(p))])));
    fuzz('wal scan', inputs(images), (img) => {
      const image = Buffer.from(img);
      if (image.length < WAL_MAGIC.length || !image.subarray(0, WAL_MAGIC.length).equals(WAL_MAGIC)) return; // open() refuses those first
      const scan = scanWal(image);
      expect(scan.end).toBeLessThanOrEqual(image.length);
      const rebuilt = Buffer.concat([WAL_MAGIC, ...scan.records.map((r) => encodeWalRecord(r))]);
      expect(rebuilt.equals(image.subarray(0, scan.end))).toBe(true);
      expect(scan.reason === undefined).toBe(scan.end === image.length);
    });
    const dir = mkdtempSync(join(tmpdir(), 'cbft-fuzz-wal-'));
    try {
      let n = 0;
      fuzz(
        'wal open',
        inputs(images),
        (img) => {
          const path = join(dir, `wal-${n++}.log`);
          writeFileSync(path, img);
          let opened;
          try {
            opened = WalFile.open(path);
          } catch (err) {
            // Only a file that is not a log at all is refused, and it is left as it was.
            expect((err as CbftError).code).toBe('CBFT_ERR_WAL');
            expect(same(readFileSync(path), img)).toBe(true);
            return;
          }
          opened.wal.close();
          const again = WalFile.open(path);
          again.wal.close();
          expect(again.truncation).toBeUndefined();
          expect(again.records.map(toHex)).toEqual(opened.records.map(toHex));
          rmSync(path);
        },
        { budgetMs: Math.min(BUDGET_MS, 2_000), maxRuns: 2_000 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('curl dumps: parse or DumpError; cbft verify accepts no altered signed content', () => {
    // A real signed reply: 2 of 4 shares combined, as the top does.
    const dealt = deal(2, 4);
    const cluster = { servicePublicKey: toHex(dealt.groupPublicKey), merkleDepth: 4, service: { ...DEFAULT_SERVICE } };
    const verifier = new ResponseVerifier(cluster);
    const reqBytes = encodeRequest({ nonce: new Uint8Array(16).fill(3), method: 'GET', target: '/accounts/acc-1', headers: [], body: new Uint8Array(0) });
    const digest = digestOf(reqBytes);
    const reply: CanonicalReply = { requestDigest: digest, status: 200, headers: [['cache-control', 'no-store'], ['content-type', 'application/json']], body: utf8('{"id":"acc-1","balance":1250000}') };
    const replyBytes = encodeReply(reply);
    const other = encodeReply({ ...reply, body: utf8('{"id":"acc-2"}') });
    const seed = new Uint8Array(32).fill(5);
    const parts = [0, 1].map((i) => signBatch([replyBytes, other], 4, seed, 7, dealt.shares[i]!));
    const signature = combine(parts.map((p, i) => ({ index: dealt.shares[i]!.index, signature: p.partial! })), 2);
    const proof = parts[0]!.proofs[0]!;
    expect(same(batchTree([replyBytes, other], 4, seed, 7).root, parts[0]!.root)).toBe(true);
    const head = signedResponseHeaders(reply, proof, signature, '03'.repeat(16), toHex(digest));
    const lines = ['HTTP/1.1 200 OK'];
    for (let i = 0; i < head.length; i += 2) lines.push(`${head[i]}: ${head[i + 1]}`);
    const dump = Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), Buffer.from(reply.body)]);
    const good = parseCurlDump(dump);
    expect(verifier.check(good, digest).ok).toBe(true);
    const withContinue = Buffer.concat([Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'), dump]);
    const lf = Buffer.from(dump.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    const seeds = [dump, withContinue, lf].map((b) => new Uint8Array(b));

    fuzz('curl dump', inputs(seeds, 400), (b) => {
      let parsed;
      try {
        parsed = parseCurlDump(b);
      } catch (err) {
        if (!(err instanceof DumpError)) throw err;
        return;
      }
      // What cbft verify does next never throws, and accepts only the signed content itself.
      const r = verifier.check(parsed, digest);
      if (r.ok) {
        expect(r.status).toBe(200);
        expect(toHex(r.body)).toBe(toHex(reply.body));
        expect(r.headers).toEqual(reply.headers);
      }
    });
  });

  it('cluster files, Merkle proofs, hex and base64', () => {
    const { cluster } = generateCluster({ replicas: 4, chains: 2, chainLength: 2, basePort: 20_000 });
    const json = JSON.stringify(cluster);
    expect(validateCluster(JSON.parse(json))).toBeDefined();
    const clusterInputs = fc.oneof(
      fc.array(mutation, { minLength: 1, maxLength: 4 }).map((ms) => Buffer.from(mutate(utf8(json), ms)).toString('latin1')),
      fc.json(),
    );
    fuzz('cluster file', clusterInputs, (text) => {
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        return; // loadCluster reports unparsable JSON itself
      }
      try {
        validateCluster(raw);
      } catch (err) {
        if (!(err instanceof CbftError) || err.code !== 'CBFT_ERR_CLUSTER') throw err;
      }
    });
    fuzz('merkle proof', fc.tuple(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: -1, max: 20 }), bytes32), ([proof, depth, leaf]) => {
      try {
        const root = rootFromProof(leaf, proof, depth);
        expect(root.length).toBe(32);
        expect(proof.length).toBe(depth * 32);
      } catch (err) {
        if (!(err instanceof CbftError)) throw err;
      }
    });
    fuzz('hex and base64', fc.tuple(fc.string({ maxLength: 80 }), fc.uint8Array({ maxLength: 60 })), ([s, b]) => {
      for (const dec of [(x: string) => fromHex(x), (x: string) => fromBase64(x)]) {
        try {
          dec(s);
        } catch (err) {
          if (!(err instanceof CbftError) || err.code !== 'CBFT_ERR_DECODE') throw err;
        }
      }
      expect(toHex(fromHex(toHex(b)))).toBe(toHex(b));
      expect(toHex(fromBase64(toBase64(b)))).toBe(toHex(b));
    });
    // The reader bounds every length before allocating.
    fuzz('reader bounds', fc.uint8Array({ maxLength: 40 }), (b) => {
      const r = new Reader(b, 'fuzz');
      try {
        r.bytes(16);
        r.string(8);
        r.u64();
      } catch (err) {
        if (!(err instanceof CbftError)) throw err;
      }
    });
  });
});
