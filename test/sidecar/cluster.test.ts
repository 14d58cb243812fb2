// Process-level tests of `cbft sidecar`: four real sidecar processes (the built CLI) in front of
// four copies of a counting service on 127.0.0.1, driven by an in-test top firewall node that
// submits requests over the real transport and accepts a reply only when s+1 partials combine
// into a valid service signature. Run `npm run build` first (npm test does).

import { LinkKey } from '../../src/transport/link-key.js';
import { appendFileSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../src/codec/binary.js';
import { digestOf } from '../../src/codec/canonical.js';
import { encodeFrame, MessageKind } from '../../src/transport/frame.js';
import { FRAME_PATH } from '../../src/transport/link.js';
import { IdentitySigner } from '../../src/crypto/identity.js';
import { fromHex } from '../../src/codec/binary.js';
import {
  TopClient,
  canonicalRequest,
  counts,
  freePorts,
  jsonBody,
  killAll,
  makeCluster,
  metric,
  startFixture,
  startSidecar,
  sumMetric,
  waitUntil,
  type Fixture,
  type Proc,
  type TestCluster,
  type VerifiedReply,
} from './helpers.js';

interface Running {
  tc: TestCluster;
  fixtures: Fixture[];
  sidecars: Proc[];
  tops: TopClient[];
  env: Record<string, string>;
}

const running: Running[] = [];
let logRun = 0;

async function startCluster(o: Parameters<typeof makeCluster>[0] & { env?: Record<string, string> } = {}): Promise<Running> {
  const tc = await makeCluster(o);
  const r: Running = { tc, fixtures: [], sidecars: [], tops: [], env: o.env ?? {} };
  running.push(r);
  const ports = await freePorts(tc.cluster.replicas.length);
  r.fixtures = await Promise.all(tc.cluster.replicas.map((_, i) => startFixture(join(tc.dir, `count-${i}.jsonl`), ports[i])));
  r.sidecars = await Promise.all(tc.cluster.replicas.map((rep, i) => startSidecar(tc.dir, rep.id, r.fixtures[i]!.url, r.env)));
  for (let c = 0; c < tc.cluster.chains.length; c++) {
    const top = new TopClient(tc.cluster, tc.keys, c);
    await top.start();
    r.tops.push(top);
  }
  return r;
}

async function teardown(r: Running): Promise<void> {
  if (process.env.CBFT_TEST_LOGS) {
    // Keep the sidecars' logs for inspection (CBFT_TEST_LOGS=DIR npx vitest run test/sidecar).
    const dir = join(process.env.CBFT_TEST_LOGS, String(++logRun));
    mkdirSync(dir, { recursive: true });
    r.sidecars.forEach((p, i) => writeFileSync(join(dir, `replica-${i}.log`), p.output));
  }
  await Promise.all(r.tops.map((t) => t.close()));
  await Promise.all([...r.sidecars, ...r.fixtures.map((f) => f.proc)].map((p) => p.kill('SIGKILL')));
  r.tc.cleanup();
}

afterEach(async () => {
  while (running.length) await teardown(running.pop()!);
});
afterAll(killAll);

const admin = (r: Running, i: number) => r.tc.cluster.replicas[i]!.adminUrl;
const lastExecuted = async (r: Running, i: number) => (await metric(admin(r, i), 'cbft_sidecar_sequence')) ?? -1;

interface Sent {
  key: string;
  digest: string;
  payload: Uint8Array;
  reply: VerifiedReply;
}

/** `clients` concurrent loops, each submitting `perClient` requests one after another. */
async function load(r: Running, prefix: string, clients: number, perClient: number, opts: { pauseMs?: number; stop?: () => boolean } = {}): Promise<Sent[]> {
  const out: Sent[] = [];
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let k = 0; k < perClient && !(opts.stop?.() ?? false); k++) {
        const key = `${prefix}-c${c}-${k}`;
        const payload = canonicalRequest('POST', `/op/${key}`, JSON.stringify({ c, k }), [['content-type', 'application/json']]);
        const top = r.tops[(c + k) % r.tops.length]!;
        const reply = await top.submit(payload, 60_000);
        out.push({ key, digest: toHex(digestOf(payload)), payload, reply });
        if (opts.pauseMs) await new Promise((res) => setTimeout(res, opts.pauseMs));
      }
    }),
  );
  return out;
}

/** Digests a sidecar logged as "outcome unknown" (never re-sent): allowed to be missing at its service. */
function unknownDigests(p: Proc[]): Set<string> {
  const out = new Set<string>();
  for (const proc of p) for (const l of proc.logLines()) if (String(l.msg).startsWith('request outcome unknown')) out.add(String(l.digest));
  return out;
}

/**
 * Every request was applied exactly once at every replica's service, in the same batches; a
 * request whose outcome a (killed) sidecar logged as unknown may be missing there, never doubled.
 */
async function expectExactlyOnce(r: Running, sent: Sent[], history: Proc[][] = r.sidecars.map((p) => [p])): Promise<void> {
  const all = await Promise.all(r.fixtures.map((f) => counts(f.url)));
  const seqOf = new Map<string, string>();
  for (const s of sent) seqOf.set(s.key, String(s.reply.seq));
  all.forEach((c, i) => {
    const unknown = unknownDigests(history[i]!);
    for (const [key, n] of Object.entries(c.perKey)) expect(n, `replica-${i}: ${key} executed ${n} times`).toBe(1);
    for (const s of sent) {
      const n = c.perKey[s.key] ?? 0;
      if (n === 0) expect(unknown.has(s.digest), `replica-${i} never executed ${s.key} and did not log it as unknown`).toBe(true);
    }
    // The service saw each request in the batch the signed reply names.
    for (const [seq, keys] of Object.entries(c.perSeq)) for (const key of keys) if (seqOf.has(key)) expect(seqOf.get(key), `${key} at replica-${i}`).toBe(seq);
  });
  // Same batches, same order, on every replica (for what each executed), compared with a replica
  // that was never killed.
  const reference = all[history.findIndex((h) => h.length === 1 && unknownDigests(h).size === 0)]!.perSeq;
  all.forEach((c, i) => {
    for (const [seq, keys] of Object.entries(c.perSeq)) {
      const ref = (reference[seq] ?? keys).filter((k) => keys.includes(k) || !unknownKeys(r, sent, history[i]!).has(k));
      expect(keys, `replica-${i} batch ${seq}`).toEqual(ref);
    }
  });
}

function unknownKeys(_r: Running, sent: Sent[], procs: Proc[]): Set<string> {
  const d = unknownDigests(procs);
  return new Set(sent.filter((s) => d.has(s.digest)).map((s) => s.key));
}

describe('cbft sidecar: four processes in front of four services', () => {
  it('orders and executes concurrent clients through two chains exactly once, answers retries from the cache, and drains on SIGTERM', async () => {
    const r = await startCluster({ chains: 2, service: { maxReplyBodyBytes: 4096 } });
    const t0 = Date.now();
    const sent = await load(r, 'conc', 8, 15);
    const elapsed = Date.now() - t0;
    expect(sent).toHaveLength(120);
    for (const s of sent) {
      expect(s.reply.reply.status).toBe(200);
      const body = jsonBody<{ key: string; seq: string; seed: string; timestamp: string }>(s.reply);
      expect(body.key).toBe(s.key);
      expect(body.seq).toBe(String(s.reply.seq)); // cbft-sequence as the service saw it
      expect(body.seed).toMatch(/^[0-9a-f]{64}$/);
      expect(Number(body.timestamp)).toBeGreaterThan(Date.now() - 120_000);
      // Only allowlisted headers are signed.
      expect(s.reply.reply.headers.map(([n]) => n)).toEqual(['content-type']);
    }
    // Distinct per-request seeds.
    expect(new Set(sent.map((s) => jsonBody<{ seed: string }>(s.reply).seed)).size).toBe(120);
    const batches = new Set(sent.map((s) => s.reply.seq)).size;
    console.log(`[concurrent] 120 requests from 8 clients in ${elapsed} ms over ${batches} batches`);

    // The same request through both chains at once: executed once, both tops answered.
    const both = canonicalRequest('POST', '/op/both-chains', 'x');
    const [a, b] = await Promise.all([r.tops[0]!.submitToAll(both), r.tops[1]!.submitToAll(both)]);
    expect(toHex(a.replyBytes)).toBe(toHex(b.replyBytes));
    expect(toHex(a.signature)).toBe(toHex(b.signature));
    // A retry of an executed request (same nonce, same bytes), through the other chain and to
    // every replica: the cached reply, proof and signature of its original batch.
    const first = sent[17]!;
    const retried = await r.tops[(first.reply.seq + 1) % 2]!.submitToAll(first.payload);
    expect(toHex(retried.replyBytes)).toBe(toHex(first.reply.replyBytes));
    expect(toHex(retried.proof)).toBe(toHex(first.reply.proof));
    expect(toHex(retried.signature)).toBe(toHex(first.reply.signature));
    expect(retried.seq).toBe(first.reply.seq);
    const again = await r.tops[1]!.submitToAll(both);
    expect(toHex(again.replyBytes)).toBe(toHex(a.replyBytes));
    expect(again.seq).toBe(a.seq);

    await waitUntil('all replicas executed everything', async () => {
      const seqs = await Promise.all([0, 1, 2, 3].map((i) => lastExecuted(r, i)));
      return seqs.every((s) => s === seqs[0]);
    });
    const c = await Promise.all(r.fixtures.map((f) => counts(f.url)));
    for (const x of c) expect(x.perKey['both-chains']).toBe(1);
    for (const x of c) expect(x.executions).toBe(121);
    await expectExactlyOnce(r, sent);

    // Hop-by-hop headers are removed both ways; only allowlisted reply headers are signed.
    const hop = await r.tops[0]!.submit(
      canonicalRequest('GET', '/hop', '', [
        ['accept', 'application/json'],
        ['connection', 'x-secret'],
        ['te', 'trailers'],
        ['x-secret', 'never forwarded'],
      ]),
    );
    expect(hop.reply.status).toBe(201);
    expect(hop.reply.headers).toEqual([
      ['cache-control', 'no-store'],
      ['content-type', 'application/json'],
      ['location', '/op/elsewhere'],
    ]);
    const echo = await r.tops[1]!.submit(canonicalRequest('POST', '/echo', 'body!', [['connection', 'close'], ['content-type', 'text/plain']]));
    const seen = jsonBody<{ headers: Record<string, string>; seq: string }>(echo).headers;
    expect(seen['cbft-sequence']).toBe(String(echo.seq));
    expect(seen['cbft-timestamp']).toMatch(/^[0-9]+$/);
    expect(seen['cbft-seed']).toMatch(/^[0-9a-f]{64}$/);
    expect(seen['content-type']).toBe('text/plain');
    expect(seen['content-length']).toBe('5');
    expect(seen['connection']).not.toBe('close');

    // An upstream reply over service.maxReplyBodyBytes: the fixed canonical 502, signed by s+1.
    const big = await r.tops[0]!.submit(canonicalRequest('GET', '/op/big-one?bytes=10000'));
    expect(big.reply.status).toBe(502);
    expect(jsonBody(big)).toMatchObject({ error: 'reply_too_large' });

    // Bad input on the sidecar port: dropped, counted, logged.
    const url = r.tc.cluster.replicas[0]!.url + FRAME_PATH;
    const post = async (body: Uint8Array) => {
      const res = await request(url, { method: 'POST', body });
      await res.body.dump();
      return res.statusCode;
    };
    const topKey = r.tc.keys.find((k) => k.id === 'fw-0-1')!;
    const topSigner = new IdentitySigner(fromHex(topKey.identitySecretKey));
    const replicaKey = r.tc.keys.find((k) => k.id === 'replica-1')!;
    const replicaSigner = new IdentitySigner(fromHex(replicaKey.identitySecretKey));
    const header = (from: string, counter: number) => ({ from, to: 'replica-0', session: new Uint8Array(16).fill(9), sessionStart: Date.now(), counter });
    const keyFor = (signer: IdentitySigner, from: string) => LinkKey.derive(signer, fromHex(r.tc.cluster.replicas[0]!.identityPublicKey), from, 'replica-0');
    expect(await post(utf8('not a frame at all'))).toBe(400);
    expect(await post(encodeFrame(header('fw-0-1', 1), [{ kind: MessageKind.Pbft, payload: utf8('x') }], keyFor(topSigner, 'fw-0-1')))).toBe(403);
    expect(await post(encodeFrame(header('replica-1', 1), [{ kind: MessageKind.Request, payload: utf8('x') }], keyFor(replicaSigner, 'replica-1')))).toBe(403);
    expect(await post(encodeFrame(header('fw-0-1', 2), [{ kind: MessageKind.Request, payload: utf8('x') }], keyFor(replicaSigner, 'fw-0-1')))).toBe(403);
    const good = encodeFrame(header('fw-0-1', 3), [{ kind: MessageKind.Request, payload: utf8('garbage request') }], keyFor(topSigner, 'fw-0-1'));
    expect(await post(good)).toBe(204);
    expect(await post(good)).toBe(409);
    const garbagePbft = encodeFrame(header('replica-1', 2), [{ kind: MessageKind.Pbft, payload: utf8('garbage pbft') }], keyFor(replicaSigner, 'replica-1'));
    expect(await post(garbagePbft)).toBe(204);
    const dropped = async (labels: string) => sumMetric(admin(r, 0), 'cbft_dropped_messages_total', labels);
    await waitUntil('drop counters', async () => (await dropped('reason="malformed-request"')) === 1);
    expect(await dropped('layer="transport",reason="malformed"')).toBe(1);
    expect(await dropped('layer="transport",reason="not-allowed"')).toBe(2);
    expect(await dropped('layer="transport",reason="bad-signature"')).toBe(1);
    expect(await dropped('layer="transport",reason="replay"')).toBe(1);
    expect(await dropped('layer="pbft",reason="malformed"')).toBe(1);
    for (const reason of ['malformed', 'not-allowed', 'bad-signature', 'replay', 'malformed-request']) {
      await waitUntil(`a log line for the ${reason} drop`, () =>
        r.sidecars[0]!.logLines().some((l) => l.msg === 'message dropped' && l.reason === reason),
      );
    }

    // Admin listener.
    const h = await request(admin(r, 0) + '/healthz');
    expect(h.statusCode).toBe(200);
    await h.body.dump();
    const ready = await request(admin(r, 1) + '/readyz');
    expect(ready.statusCode).toBe(200);
    await ready.body.dump();
    await waitUntil('all replicas executed the extra requests', async () => {
      const seqs = await Promise.all([0, 1, 2, 3].map((i) => lastExecuted(r, i)));
      return seqs.every((x) => x === seqs[0]);
    });
    const c2 = await counts(r.fixtures[2]!.url);
    expect(c2.executions).toBe(124);
    expect(await sumMetric(admin(r, 2), 'cbft_sidecar_batches_executed_total')).toBeGreaterThanOrEqual(batches);
    expect(await sumMetric(admin(r, 2), 'cbft_sidecar_executions_total', 'outcome="reply"')).toBe(123);
    expect(await sumMetric(admin(r, 2), 'cbft_sidecar_executions_total', 'outcome="reply_too_large"')).toBe(1);
    expect(await metric(admin(r, 2), 'cbft_sidecar_upstream_latency_seconds_count')).toBe(124);
    expect(await metric(admin(r, 2), 'cbft_sidecar_view')).toBe(0);
    expect(await sumMetric(admin(r, 0), 'cbft_sidecar_reply_cache_hits_total')).toBeGreaterThanOrEqual(1);

    // SIGTERM drains and exits 0.
    const exits = await Promise.all(r.sidecars.map((p) => p.stop()));
    for (const e of exits) expect(e).toEqual({ code: 0, signal: null });
    for (const p of r.sidecars) expect(p.output).toContain('"msg":"sidecar stopped"');
  });
});

/** Restarts sidecar i on the same data directory and waits until it has executed `target`. */
async function restart(r: Running, i: number, history: Proc[][]): Promise<{ proc: Proc; caughtUpMs: number; target: number }> {
  const target = Math.max(...(await Promise.all([0, 1, 2, 3].filter((j) => j !== i && r.sidecars[j]!.alive).map((j) => lastExecuted(r, j)))));
  const t0 = Date.now();
  const proc = await startSidecar(r.tc.dir, `replica-${i}`, r.fixtures[i]!.url, r.env);
  r.sidecars[i] = proc;
  history[i]!.push(proc);
  await waitUntil(`replica-${i} caught up to ${target}`, async () => (await lastExecuted(r, i)) >= target, 45_000);
  return { proc, caughtUpMs: Date.now() - t0, target };
}

async function allEqual(r: Running): Promise<number> {
  let last = -1;
  await waitUntil(
    'every replica at the same sequence number',
    async () => {
      const seqs = await Promise.all([0, 1, 2, 3].map((i) => lastExecuted(r, i)));
      last = seqs[0]!;
      return seqs.every((x) => x === seqs[0]);
    },
    45_000,
  );
  return last;
}

describe('cbft sidecar: crashes, restarts and outages', () => {
  it('survives kill -9 of a backup and then of the primary mid-load (view change); restarted replicas catch up; exactly once everywhere', async () => {
    // A small compaction threshold so the restarts below also restore from compacted logs.
    const r = await startCluster({ env: { CBFT_WAL_COMPACT_BYTES: String(48 * 1024) } });
    const history = r.sidecars.map((p) => [p]);
    let stop = false;
    const loadDone = load(r, 'crash', 6, 10_000, { stop: () => stop });
    try {
      await waitUntil('initial progress', async () => (await lastExecuted(r, 3)) >= 8, 30_000);

      // kill -9 a backup mid-load: the other three keep ordering and executing.
      await r.sidecars[3]!.kill('SIGKILL');
      const before = await lastExecuted(r, 0);
      await waitUntil('progress without replica-3', async () => (await lastExecuted(r, 0)) >= before + 8, 30_000);
      const b = await restart(r, 3, history);
      console.log(`[restart] replica-3 (backup) caught up to seq ${b.target} in ${b.caughtUpMs} ms`);
      expect(b.proc.output).toContain('restored from the write-ahead log');

      // kill -9 the primary mid-load: a view change, then progress under replica-1.
      await r.sidecars[0]!.kill('SIGKILL');
      const before2 = await lastExecuted(r, 1);
      const tKill = Date.now();
      await waitUntil(
        'view change and progress without the primary',
        async () => ((await metric(admin(r, 1), 'cbft_sidecar_view')) ?? 0) >= 1 && (await lastExecuted(r, 1)) >= before2 + 8,
        45_000,
      );
      console.log(`[view change] progress resumed ${Date.now() - tKill} ms after kill -9 of the primary`);
      const p = await restart(r, 0, history);
      console.log(`[restart] replica-0 (old primary) caught up to ${p.target} in ${p.caughtUpMs} ms`);
      // Load keeps flowing with everyone back.
      const after = await lastExecuted(r, 0);
      await waitUntil('progress with all four', async () => (await lastExecuted(r, 0)) >= after + 5, 30_000);
    } finally {
      stop = true;
    }
    const sent = await loadDone;
    expect(sent.length).toBeGreaterThan(50);
    for (const s of sent) expect(s.reply.reply.status).toBe(200);
    // Replies signed after the view change name it (the tops learnt the new primary).
    expect(Math.max(...r.tops.map((t) => t.log.reduce((m, l) => Math.max(m, l.view), 0)))).toBeGreaterThanOrEqual(1);
    const finalSeq = await allEqual(r);
    await expectExactlyOnce(r, sent, history);
    // Every sequence number was executed once on the replicas that never stopped, null batches
    // (gaps a view change fills) included.
    for (const i of [1, 2]) {
      expect(await sumMetric(admin(r, i), 'cbft_sidecar_batches_executed_total')).toBe(finalSeq);
    }
    const nulls = await sumMetric(admin(r, 1), 'cbft_sidecar_batches_executed_total', 'kind="null"');
    console.log(`[view change] ${finalSeq} batches executed, ${nulls} of them null batches`);
    // The small threshold forced compactions, and restarts restored from compacted logs.
    await waitUntil('a compaction log line', () => history.flat().some((p) => p.logLines().some((l) => l.msg === 'write-ahead log compacted')));
    expect(await sumMetric(admin(r, 1), 'cbft_sidecar_wal_compactions_total')).toBeGreaterThan(0);
  });

  it('does not re-send a request whose outcome is unknown after kill -9, recovers its reply from s+1 peers and does not sign that batch', async () => {
    const r = await startCluster();
    const history = r.sidecars.map((p) => [p]);
    // Warm up, so replica-2 is in step.
    await load(r, 'warm', 2, 3);
    const payload = canonicalRequest('POST', '/op/slow-one?sleep=1500', 'slow');
    const digest = toHex(digestOf(payload));
    const pending = r.tops[0]!.submit(payload);
    // The request is at replica-2's service: kill -9 its sidecar now.
    await waitUntil('slow request in flight at replica-2', async () => {
      const res = await request(r.fixtures[2]!.url + '/__inflight');
      return ((await res.body.json()) as { inflight: string[] }).inflight.includes('slow-one');
    });
    await r.sidecars[2]!.kill('SIGKILL');
    const signed = await pending; // the other three answer
    expect(signed.reply.status).toBe(200);
    expect(signed.signers).not.toContain(2);
    await waitUntil('service finished the orphaned request', async () => (await counts(r.fixtures[2]!.url)).perKey['slow-one'] === 1);

    const { proc } = await restart(r, 2, history);
    await proc.waitFor(/recovered the reply of an unknown-outcome request/, 20_000);
    const unknownLine = proc.logLines().find((l) => String(l.msg).startsWith('request outcome unknown'))!;
    expect(unknownLine.digest).toBe(digest);
    expect(unknownLine.seq).toBe(signed.seq);
    expect(await metric(r.tc.cluster.replicas[2]!.adminUrl, 'cbft_sidecar_unknown_outcomes_total')).toBe(1);
    expect(await metric(r.tc.cluster.replicas[2]!.adminUrl, 'cbft_sidecar_recovered_replies_total', 'result="adopted"')).toBe(1);

    // Never sent twice, and a retry is not answered by replica-2 for that batch (it did not sign it).
    const again = await r.tops[0]!.submitToAll(payload);
    expect(toHex(again.replyBytes)).toBe(toHex(signed.replyBytes));
    await new Promise((res) => setTimeout(res, 300));
    expect(r.tops[0]!.log.some((l) => l.from === 2 && l.seq === signed.seq)).toBe(false);
    // Replica-2 keeps working normally and signs later batches.
    const later = await load(r, 'after', 2, 3);
    await allEqual(r);
    const laterSeqs = new Set(later.map((s) => s.reply.seq));
    await waitUntil('replica-2 partials for later batches', () => r.tops[0]!.log.some((l) => l.from === 2 && laterSeqs.has(l.seq)));
    for (const f of r.fixtures) expect((await counts(f.url)).perKey['slow-one']).toBe(1);
    await expectExactlyOnce(r, later, history);
  });

  it('cuts a corrupted WAL tail on restart, says so, catches up and applies nothing twice', async () => {
    const r = await startCluster();
    const history = r.sidecars.map((p) => [p]);
    const first = await load(r, 'pre', 4, 5);
    await r.sidecars[1]!.kill('SIGKILL');
    const wal = join(r.tc.dir, 'data', 'replica-1', 'wal.log');
    // Flip a byte in the last record (bad checksum) and leave half a record header behind it.
    const image = readFileSync(wal);
    image[image.length - 5]! ^= 0xff;
    writeFileSync(wal, image);
    appendFileSync(wal, Buffer.from([0, 0, 1]));
    const sizeBefore = statSync(wal).size;
    const second = load(r, 'during', 2, 5);
    const { proc } = await restart(r, 1, history);
    const cut = proc.logLines().find((l) => String(l.msg).includes('torn or corrupt tail detected and cut'));
    expect(cut).toBeDefined();
    expect(cut!.reason).toBe('bad-checksum');
    expect(Number(cut!.droppedBytes)).toBeGreaterThan(3);
    expect(statSync(wal).size).toBeGreaterThan(0);
    expect(sizeBefore).toBeGreaterThan(Number(cut!.walOffset));
    const sent = [...first, ...(await second), ...(await load(r, 'post', 2, 5))];
    await allEqual(r);
    await expectExactlyOnce(r, sent, history);

    // A torn write (the file ends in the middle of a record) is cut the same way.
    await r.sidecars[1]!.kill('SIGKILL');
    truncateSync(wal, statSync(wal).size - 7);
    const again = await restart(r, 1, history);
    expect(again.proc.logLines().some((l) => String(l.msg).includes('torn or corrupt tail') && l.reason === 'torn-record')).toBe(true);
    const more = await load(r, 'final', 2, 4);
    await allEqual(r);
    await expectExactlyOnce(r, [...sent, ...more], history);
  });

  it('an upstream that is down for a while: the replica retries without sending, reports not ready, falls behind and catches up', async () => {
    const r = await startCluster();
    const history = r.sidecars.map((p) => [p]);
    const warm = await load(r, 'warm', 2, 3);
    await r.fixtures[1]!.proc.kill('SIGKILL');
    const during = await load(r, 'down', 3, 6); // the other three serve meanwhile
    const adm = admin(r, 1);
    await waitUntil('replica-1 reports the service unreachable', async () => {
      const res = await request(adm + '/readyz');
      const body = (await res.body.json()) as { reasons: string[] };
      return res.statusCode === 503 && body.reasons.includes('service unreachable');
    });
    expect(await metric(adm, 'cbft_sidecar_upstream_retries_total')).toBeGreaterThan(0);
    const behind = await lastExecuted(r, 1);
    expect(behind).toBeLessThan(await lastExecuted(r, 0));
    await r.sidecars[1]!.waitFor(/service unreachable; nothing was sent/);

    // SIGTERM while retrying: it drains promptly and exits 0; restarted, it resumes the request it
    // provably never sent (recorded as not-sent), without treating it as an unknown outcome.
    const tStop = Date.now();
    expect(await r.sidecars[1]!.stop()).toEqual({ code: 0, signal: null });
    expect(Date.now() - tStop).toBeLessThan(3_000);
    const restarted = await startSidecar(r.tc.dir, 'replica-1', r.fixtures[1]!.url, r.env);
    r.sidecars[1] = restarted;
    history[1]!.push(restarted);
    await restarted.waitFor(/service unreachable; nothing was sent/, 10_000);

    // The service comes back on the same port with its state: replica-1 catches up.
    const t0 = Date.now();
    r.fixtures[1] = await startFixture(r.fixtures[1]!.countFile, r.fixtures[1]!.port);
    await allEqual(r);
    console.log(`[upstream] replica-1 caught up ${(await lastExecuted(r, 0)) - behind} batches in ${Date.now() - t0} ms after its service came back`);
    const ready = await request(adm + '/readyz');
    expect(ready.statusCode).toBe(200);
    await ready.body.dump();
    await expectExactlyOnce(r, [...warm, ...during], history);
    expect(unknownDigests(history[1]!).size).toBe(0);
  });
});
