// Bad input and attacks on a running cluster (issue 9): malformed HTTP, oversized headers and
// bodies, connection floods, invalid nonces, garbage / replayed / wrongly signed frames straight
// to the sidecar and firewall peer ports, and slow clients (started with the cluster, since the
// server only cuts them at its 10 s / 30 s timeouts; collected by the last test). A steady legitimate load runs through
// every test: it must keep being answered with verified replies (none lost, none wrong), every
// bad input must get the documented error (or be dropped and counted), no process may crash,
// connections must not leak, and memory must stay bounded (RSS before/after). Results go to
// test/faults/RESULTS.md with the process-fault rows.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/codec/binary.js';
import { encodeRequest } from '../../src/codec/canonical.js';
import { loadNodeKeys } from '../../src/cluster/keys.js';
import type { IdentitySigner } from '../../src/crypto/identity.js';
import { encodeMessage, signedBytes, type PbftMessage } from '../../src/pbft/index.js';
import { MessageKind } from '../../src/transport/frame.js';
import { FRAME_PATH } from '../../src/transport/link.js';
import { signSubmission } from '../../src/wire/submission.js';
import { metric, metricsText, openFds, rssBytes, sleep, startFaultCluster, waitUntil, type FaultCluster } from './helpers/cluster.js';
import { checkConsistency, waitConverged } from './helpers/ledger.js';
import { LoadGen, bankRead, bankTransfer } from './helpers/load.js';
import { closedCount, frame, openIdle, postFrame, rawExchange, recordingProxy, slowClient, type RawResult } from './helpers/raw.js';
import { fileClock, formatTable, publishRows, secs, today, type Row } from './helpers/results.js';
import { caughtUp, primaryOf } from './helpers/scenario.js';

/** Wall time of this file, kept in RESULTS.md. */
const clock = fileClock(import.meta.url);

const rows: Row[] = [];
let slow: { started: number; headers: Promise<RawResult[]>; bodies: Promise<RawResult[]>; truncated: Promise<RawResult> } | undefined;
let fc: FaultCluster | undefined;
const f = () => fc!;
const TEST_TIMEOUT = 150_000;
const RSS_BOUND = 150 * 1024 * 1024;

afterAll(async () => {
  await fc?.stop();
  const all = publishRows(rows, clock);
  console.log(`\n[faults] results (kept in test/faults/RESULTS.md by npm run test:faults):\n${formatTable(all)}\n`);
}, 60_000);

const port = (url: string) => Number(new URL(url).port);
const bottom = () => f().cluster.chains[0]![0]!;
const bottomPort = () => port(bottom().url);

async function signer(id: string): Promise<IdentitySigner> {
  return (await loadNodeKeys(f().lc.clusterDir, f().cluster, id)).identity;
}

/** The firewall's documented JSON error: exactly {error, message}, the code's fixed status. */
function expectFirewallError(r: RawResult, status: number, code: string, what: string): void {
  expect(r.status, `${what}: status (got ${r.data.toString('latin1').slice(0, 200)})`).toBe(status);
  expect(r.json, `${what}: JSON error body`).toEqual({ error: code, message: expect.any(String) as string });
  expect(r.data.toString('latin1'), `${what}: content-type`).toMatch(/\r\ncontent-type: application\/json\r\n/i);
  expect(r.data.toString('latin1'), `${what}: no Date or Server header`).not.toMatch(/\r\n(date|server):/i);
}

interface Watched {
  id: string;
  rss: number;
  fds: number;
}

/** Snapshot of the processes an attack targets: RSS and open descriptors. */
function watch(ids: string[]): Watched[] {
  return ids.map((id) => ({ id, rss: rssBytes(f().pid(id)), fds: openFds(f().pid(id)) }));
}

interface AttackOutcome {
  /** What was thrown at the cluster, for the load column. */
  thrown: string;
  notes?: string[];
  /** How long the offending connections lived, when that is the figure of interest. */
  livedMs?: number;
}

/**
 * Runs one attack under a steady legitimate load; afterwards checks that nothing crashed, the
 * targeted processes gave back their descriptors and did not grow without bound, the load was
 * served with verified replies only, and the ledgers agree.
 */
async function underAttack(name: string, order: number, targets: string[], attack: (load: LoadGen) => Promise<AttackOutcome>): Promise<void> {
  const load = new LoadGen({ cluster: f().cluster, clients: 2, ratePerClient: 4, make: bankTransfer(`bad-${order}`) }).start();
  const notes: string[] = [];
  let failure: unknown;
  let outcome: AttackOutcome = { thrown: '' };
  let recoverMs: number | undefined;
  let t0 = Date.now();
  let t1 = t0;
  const before = watch(targets);
  try {
    await waitUntil('legitimate load served before the attack', () => load.ackCount() >= 2, 30_000);
    t0 = Date.now();
    outcome = await attack(load);
    t1 = Date.now();
    // Serves again (each chain) after the attack.
    const r0 = Date.now();
    await waitUntil(
      `${name}: every chain serves after the attack`,
      async () => (await Promise.all(f().cluster.chains.map((_, c) => load.probe(c, bankRead(load.nextKey('probe')))))).every(Boolean),
      60_000,
      200,
    );
    recoverMs = Date.now() - r0;
  } catch (err) {
    failure = err;
    if (t1 === t0) t1 = Date.now();
  }
  t1 = Math.max(t1, t0 + 1);
  await load.stop();
  const during = load.window(t0, t1);
  let lost = load.lost.length;
  let wrong = load.wrong.length;
  const details = [...load.lost.map((l) => `lost ${l.key}: ${l.lastReasons.join('; ')}`), ...load.wrong.map((w) => `wrong ${w.key}: ${w.detail}`)];
  try {
    await waitConverged(f(), undefined, 60_000);
    const report = await checkConsistency(f(), load.acked);
    lost += report.lost.length;
    wrong += report.wrong.length;
    details.push(...report.lost, ...report.wrong);
  } catch (err) {
    failure ??= err;
  }
  // Descriptors back to (about) where they were; memory bounded.
  const grew: string[] = [];
  for (const b of before) {
    if (!f().alive(b.id)) continue;
    const pid = f().pid(b.id);
    try {
      await waitUntil(`${b.id} closes the attack's connections`, () => openFds(pid) <= b.fds + 16, 20_000, 250);
    } catch (err) {
      failure ??= new Error(`${b.id}: ${openFds(pid)} open descriptors after the attack, ${b.fds} before (leak?): ${(err as Error).message}`);
    }
    const rss = rssBytes(pid);
    grew.push(`${b.id} RSS ${(b.rss / 2 ** 20).toFixed(0)}→${(rss / 2 ** 20).toFixed(0)} MB`);
    if (rss - b.rss > RSS_BOUND) failure ??= new Error(`${b.id}: RSS grew by ${((rss - b.rss) / 2 ** 20).toFixed(0)} MB`);
  }
  notes.push(...(outcome.notes ?? []), grew.join(', '));
  if (f().crashes.length > 0) notes.push(`crashed: ${f().crashes.join('; ')}`);
  rows.push({
    group: 3,
    order,
    name,
    load: `${during.ratePerSec.toFixed(1)} + ${outcome.thrown}`,
    recover: outcome.livedMs !== undefined ? `lived ≤ ${secs(outcome.livedMs)}` : recoverMs === undefined ? 'did not recover' : secs(recoverMs),
    gap: secs(during.maxGapMs),
    lost,
    wrong,
    notes: notes.join('; '),
    date: today(),
  });
  console.log(`[faults] ${name}: ${during.ratePerSec.toFixed(1)} req/s legitimate + ${outcome.thrown}; lost ${lost}, wrong ${wrong}; ${notes.join('; ')}`);
  if (details.length) console.log(`[faults] ${name} details:\n  ${details.slice(0, 20).join('\n  ')}`);
  await load.close();
  if (failure) throw failure;
  expect(details).toEqual([]);
  expect(f().crashes, 'processes that crashed').toEqual([]);
  for (const id of [...f().lc.children.keys()]) expect(f().alive(id), `${id} alive`).toBe(true);
}

describe('bad input and attacks under a steady load', () => {
  beforeAll(async () => {
    fc = await startFaultCluster({ replicas: 4, chains: 2, chainLength: 2, service: 'bank' });
    // Slow clients are only cut at the server's timeouts (10 s for headers, 30 s for a whole
    // request): they start now, under the load of the first tests, and the slow-client test
    // collects them.
    const p = bottomPort();
    slow = {
      started: Date.now(),
      headers: Promise.all(Array.from({ length: 60 }, () => slowClient(p, 'GET / HTTP/1.1\r\nHost: x\r\n', 'X-Slow: aaaaaaaaaaaaaaaa\r\n', 500, 60_000))),
      bodies: Promise.all(Array.from({ length: 20 }, () => slowClient(p, 'POST /transfers HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n', '{', 500, 60_000))),
      // A request line that never ends.
      truncated: rawExchange(p, ['GET'], { timeoutMs: 20_000 }),
    };
    // Counted in every later descriptor baseline until the server cuts them.
    const fds0 = openFds(f().pid('fw-0-0'));
    await waitUntil('the slow clients are connected', () => openFds(f().pid('fw-0-0')) >= fds0 + 75, 15_000, 50).catch(() => undefined);
  }, 120_000);

  it('malformed HTTP: the documented 400 JSON error, connection closed, nothing forwarded', async () => {
    await underAttack('malformed HTTP (21 kinds)', 1, ['fw-0-0'], async (load) => {
      const p = bottomPort();
      const tA = Date.now();
      const requestsBefore = await metric(f().adminUrl('fw-0-1'), 'cbft_firewall_requests_total', 'kind="message"');
      const cases: Record<string, Array<string | Buffer>> = {
        'not HTTP': ['GARBAGE\r\n\r\n'],
        'random bytes': [randomBytes(700)],
        'bad content-length': ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
        'negative content-length': ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n'],
        'two content-lengths': ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
        'bad chunk size': ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n'],
        'content-length and chunked': ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
        'NUL in a header': [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n', 'latin1')],
        'space in a header name': ['GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n'],
        'obsolete line folding': ['GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n'],
        'bare LF line ends': ['GET / HTTP/1.1\nHost: x\n\n'],
        'HTTP/2 preface': ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
        'no Host header': ['GET / HTTP/1.1\r\n\r\n'],
        'two Host headers': ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
        'CONNECT (authority form)': ['CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n'],
        // An http(s) absolute-form target is accepted (reduced to its path, RFC 9112 §3.2.2); others are not.
        'absolute-form target, not http(s)': ['GET ftp://evil.example/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
        'method with a slash': ['GE/T / HTTP/1.1\r\nHost: x\r\n\r\n'],
        'space in the target': ['GET /a b HTTP/1.1\r\nHost: x\r\n\r\n'],
        'control character in the target': [Buffer.from('GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1')],
        'unknown HTTP version': ['GET / HTTP/7.3\r\nHost: x\r\n\r\n'],
        'chunk extension garbage': ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;\x01\r\nabc\r\n0\r\n\r\n'],
      };
      const seen: string[] = [];
      const rounds = 8;
      for (let round = 0; round < rounds; round++) {
        const results = await Promise.all(Object.entries(cases).map(async ([what, chunks]) => [what, await rawExchange(p, chunks, { timeoutMs: 8_000 })] as const));
        for (const [what, r] of results) {
          expectFirewallError(r, 400, 'malformed_request', what);
          expect(r.closed, `${what}: connection closed`).toBe(true);
          expect(r.ms, `${what}: answered at once`).toBeLessThan(5_000);
          if (round === 0) seen.push(what);
        }
      }
      // None of it went up the chain.
      const requestsAfter = await metric(f().adminUrl('fw-0-1'), 'cbft_firewall_requests_total', 'kind="message"');
      const legit = requestsAfter - requestsBefore;
      const attempts = load.events.filter((e) => e.chain === 0 && e.at >= tA - 10_000).length;
      expect(legit, 'requests that reached the top of chain 0 (legitimate attempts: ' + attempts + ')').toBeLessThanOrEqual(attempts + 8);
      return { thrown: `${Object.keys(cases).length * rounds} malformed requests`, notes: [`${seen.length} kinds answered 400 malformed_request at once; only the ${legit} legitimate requests went up meanwhile`] };
    });
  }, TEST_TIMEOUT);

  it('oversized headers and bodies: 431 and 413 before the body is read, bounded memory', async () => {
    await underAttack('oversized headers and bodies', 2, ['fw-0-0'], async () => {
      const p = bottomPort();
      const big = 'a'.repeat(20_000);
      let n = 0;
      for (let round = 0; round < 8; round++) {
        const rs = await Promise.all([
          rawExchange(p, [`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${big}\r\n\r\n`]),
          rawExchange(p, [`GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `x-h${i}: v`).join('\r\n')}\r\n\r\n`]),
          rawExchange(p, [`GET /${big} HTTP/1.1\r\nHost: x\r\n\r\n`]),
          // Declared too large: refused before reading it.
          rawExchange(p, ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n', 'x'.repeat(1000)]),
          rawExchange(p, ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n']),
          // Chunked, no declared length: cut once it passes the limit.
          rawExchange(p, ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', ...Array.from({ length: 24 }, () => `10000\r\n${'y'.repeat(0x10000)}\r\n`)], { gapMs: 2 }),
        ]);
        expectFirewallError(rs[0]!, 431, 'headers_too_large', 'a 20 kB header');
        expectFirewallError(rs[1]!, 431, 'headers_too_large', '3000 headers');
        expectFirewallError(rs[2]!, 431, 'headers_too_large', 'a 20 kB target');
        expectFirewallError(rs[3]!, 413, 'body_too_large', 'content-length 50 MB');
        expectFirewallError(rs[4]!, 413, 'body_too_large', 'Expect: 100-continue with 2 MB');
        expect(rs[4]!.data.toString('latin1')).not.toMatch(/100 Continue/);
        expectFirewallError(rs[5]!, 413, 'body_too_large', 'chunked body over 1 MiB');
        for (const r of rs) expect(r.closed, 'connection closed after the error').toBe(true);
        n += rs.length;
      }
      return { thrown: `${n} oversized requests (20 kB headers, 3000 headers, 50 MB / 1.5 MB bodies)` };
    });
  }, TEST_TIMEOUT);

  it('a flood of connections to the client port and to a peer port: the service goes on, nothing leaks', async () => {
    await underAttack('connection flood (3000 client-port + 600 peer-port sockets)', 4, ['fw-0-0', 'fw-0-1'], async (load) => {
      const tFlood = Date.now();
      const acks0 = load.ackCount();
      const [client, peer] = await Promise.all([openIdle(bottomPort(), 3000), openIdle(port(f().cluster.chains[0]![1]!.url), 600)]);
      // Half of the client-port sockets also start a request and stop halfway.
      client.slice(0, 1500).forEach((s) => s.write('POST /transfers HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345'));
      await sleep(6_000);
      const servedDuring = load.ackCount() - acks0;
      expect(servedDuring, 'legitimate requests answered during the flood').toBeGreaterThan(0);
      const closedByServer = closedCount(peer);
      for (const s of [...client, ...peer]) s.destroy();
      return {
        thrown: `${client.length} + ${peer.length} sockets for 6 s`,
        notes: [`${servedDuring} legitimate requests answered during the flood (${((servedDuring * 1000) / (Date.now() - tFlood)).toFixed(1)}/s); peer port refused ${closedByServer} sockets beyond its connection limit`],
      };
    });
  }, TEST_TIMEOUT);

  it('invalid cbft-nonce values: 400 malformed_request with the documented message', async () => {
    await underAttack('invalid cbft-nonce (8 kinds × 30)', 5, ['fw-0-0'], async () => {
      const p = bottomPort();
      const bad = ['nope', 'a'.repeat(31), 'a'.repeat(33), 'z'.repeat(32), '', `${'a'.repeat(32)}, ${'b'.repeat(32)}`, ' '.repeat(32), 'a'.repeat(30) + '\u00e9'];
      let n = 0;
      for (let round = 0; round < 30; round++) {
        const rs = await Promise.all(
          bad.map((nonce) => rawExchange(p, [Buffer.from(`POST /transfers HTTP/1.1\r\nHost: x\r\ncbft-nonce: ${nonce}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`, 'latin1')])),
        );
        rs.forEach((r, i) => {
          expectFirewallError(r, 400, 'malformed_request', `nonce ${JSON.stringify(bad[i])}`);
          expect(r.json!.message).toBe('cbft-nonce must be 32 hex characters');
        });
        n += rs.length;
      }
      // A valid upper-case nonce is accepted and echoed in lower case.
      const nonce = toHex(randomBytes(16)).toUpperCase();
      const ok = await rawExchange(p, [`GET /accounts/acc-8 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-acc-8\r\ncbft-nonce: ${nonce}\r\nConnection: close\r\n\r\n`], { timeoutMs: 15_000 });
      expect(ok.status).toBe(200);
      expect(ok.data.toString('latin1')).toContain(`cbft-nonce: ${nonce.toLowerCase()}`);
      return { thrown: `${n} requests with invalid nonces` };
    });
  }, TEST_TIMEOUT);

  it('garbage frames straight to every sidecar and firewall peer port: refused with a bare status, dropped, counted', async () => {
    await underAttack('garbage frames to sidecar and firewall peer ports', 6, ['replica-0', 'fw-0-0', 'fw-0-1'], async () => {
      const c = f().cluster;
      const mallory = (await signer('replica-3')) as IdentitySigner; // any key: the sender id below is unknown
      const targets = [...c.replicas.map((r) => ({ id: r.id, url: r.url })), ...c.chains.flat().map((n) => ({ id: n.id, url: n.peerUrl }))];
      const dropsBefore = await metric(f().adminUrl('replica-0'), 'cbft_dropped_messages_total', 'layer="transport"');
      const alarmsBefore = await metric(f().adminUrl('fw-0-0'), 'cbft_alarms_total');
      const statuses = new Map<string, number>();
      const count = (s: number | string) => statuses.set(String(s), (statuses.get(String(s)) ?? 0) + 1);
      let n = 0;
      for (let round = 0; round < 4; round++) {
        await Promise.all(
          targets.map(async (t) => {
            const results = await Promise.all([
              postFrame(t.url, randomBytes(1 + Math.floor(Math.random() * 3000))),
              postFrame(t.url, new Uint8Array(0)),
              postFrame(t.url, frame({ from: 'mallory', to: t.id, signer: mallory, messages: [{ kind: MessageKind.Request, payload: randomBytes(64) }] })),
              postFrame(t.url, frame({ from: 'replica-3', to: 'someone-else', signer: mallory, messages: [] })),
              postFrame(t.url, frame({ from: 'replica-3', to: t.id, signer: mallory, messages: [{ kind: MessageKind.Pbft, payload: randomBytes(10) }] }).subarray(0, 40)),
              postFrame(t.url, randomBytes(100), '/not-the-frame-path'),
              postFrame(t.url, new Uint8Array(0), FRAME_PATH, 'GET'),
            ]);
            expect(results[0], `${t.id}: random bytes`).toBe(400);
            expect(results[1], `${t.id}: empty body`).toBe(400);
            expect(results[2], `${t.id}: unknown sender`).toBe(403);
            expect(results[3], `${t.id}: wrong recipient`).toBe(403);
            expect(results[4], `${t.id}: truncated frame`).toBe(400);
            expect(results[5], `${t.id}: other path`).toBe(404);
            expect(results[6], `${t.id}: GET`).toBe(404);
            results.forEach(count);
            n += results.length;
          }),
        );
      }
      // A frame declaring a size over the limit is refused before it is read.
      const huge = await Promise.all(targets.map((t) => rawExchange(port(t.url), [`POST ${FRAME_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n`], { timeoutMs: 2_000 })));
      huge.forEach((r, i) => expect(r.status, `${targets[i]!.id}: a frame declared larger than the limit`).toBe(413));
      const drops = (await metric(f().adminUrl('replica-0'), 'cbft_dropped_messages_total', 'layer="transport"')) - dropsBefore;
      const alarms = (await metric(f().adminUrl('fw-0-0'), 'cbft_alarms_total')) - alarmsBefore;
      expect(drops).toBeGreaterThanOrEqual(20);
      expect(alarms).toBeGreaterThanOrEqual(20);
      return { thrown: `${n} bad frames to ${targets.length} peer ports`, notes: [`answers ${[...statuses].map(([s, k]) => `${k}×${s}`).join(', ')}; replica-0 counted ${drops} drops, fw-0-0 ${alarms} alarms`] };
    });
  }, TEST_TIMEOUT);

  it('replayed frames (recorded on the wire) to a firewall node and to a sidecar: 409, nothing processed twice', async () => {
    await underAttack('replayed frames (firewall and sidecar ports)', 7, ['replica-0'], async () => {
      const c = f().cluster;
      const top = c.chains[1]![1]!;
      const rep = c.replicas[await primaryOf(f())]!;
      // Record real frames: fw-1-0 → fw-1-1 (requests up the chain) and fw-1-1 → replica-0.
      const upProxy = await recordingProxy(top.url);
      const repProxy = await recordingProxy(rep.url);
      try {
        const bottomDir = await f().clusterCopy('via-up-proxy', (x) => {
          x.chains[1]![1]!.url = upProxy.url;
          x.chains[1]![1]!.peerUrl = upProxy.url;
        });
        const topDir = await f().clusterCopy('via-replica-proxy', (x) => {
          x.replicas[rep.index]!.url = repProxy.url;
        });
        await f().relaunchWithClusterDir('fw-1-1', topDir);
        await f().relaunchWithClusterDir('fw-1-0', bottomDir);
        await waitUntil('frames recorded on both links', () => upProxy.frames.length >= 10 && repProxy.frames.length >= 10, 60_000, 200);
        const topRequests0 = await metric(top.adminUrl, 'cbft_firewall_requests_total', 'kind="message"');
        const repDrops0 = await metric(rep.adminUrl, 'cbft_dropped_messages_total', 'reason="replay"');
        const upFrames = upProxy.frames.slice(0, 200);
        const repFrames = repProxy.frames.slice(0, 200);
        const upStatus = await Promise.all(upFrames.map((fr) => postFrame(top.url, fr)));
        const repStatus = await Promise.all(repFrames.map((fr) => postFrame(rep.url, fr)));
        for (const s of [...upStatus, ...repStatus]) expect(s, 'a replayed frame is refused').toBe(409);
        // Replayed again later: still refused.
        await sleep(1_000);
        expect(await postFrame(top.url, upFrames[0]!)).toBe(409);
        expect(await postFrame(rep.url, repFrames[0]!)).toBe(409);
        const topRequests1 = await metric(top.adminUrl, 'cbft_firewall_requests_total', 'kind="message"');
        const repDrops = (await metric(rep.adminUrl, 'cbft_dropped_messages_total', 'reason="replay"')) - repDrops0;
        expect(repDrops).toBeGreaterThanOrEqual(repFrames.length);
        return {
          thrown: `${upFrames.length + repFrames.length + 2} replayed frames`,
          notes: [`all refused with 409; fw-1-1 took ${topRequests1 - topRequests0} requests meanwhile (legitimate ones only)`],
        };
      } finally {
        // Back to the direct links.
        await f().restart('fw-1-1');
        await f().restart('fw-1-0');
        await upProxy.close();
        await repProxy.close();
      }
    });
  }, TEST_TIMEOUT);

  it('valid-looking messages signed by the wrong node: refused at the transport, or dropped by the engine and the sidecar', async () => {
    await underAttack('messages signed by the wrong node', 8, ['replica-0', 'fw-0-0'], async () => {
      const c = f().cluster;
      const r0 = c.replicas[0]!;
      const pkOf = (id: string) => fromHex([...c.replicas, ...c.chains.flat()].find((n) => n.id === id)!.identityPublicKey);
      const [s1, s2, s3, top0, top1] = await Promise.all([signer('replica-1'), signer('replica-2'), signer('replica-3'), signer('fw-0-1'), signer('fw-1-1')]);
      const now = Date.now();
      const anyMsg = (kind: MessageKind) => [{ kind, payload: randomBytes(48) }];
      // 1. The frame claims one node and carries another node's signature: 403 at the transport.
      const forged = await Promise.all([
        postFrame(r0.url, frame({ from: 'replica-1', to: r0.id, toPublicKey: pkOf(r0.id), signer: s2, messages: anyMsg(MessageKind.Pbft), sessionStart: now })),
        postFrame(r0.url, frame({ from: 'fw-0-1', to: r0.id, toPublicKey: pkOf(r0.id), signer: top1, messages: anyMsg(MessageKind.Request), sessionStart: now })),
        postFrame(c.chains[0]![0]!.peerUrl, frame({ from: 'fw-0-1', to: 'fw-0-0', toPublicKey: pkOf('fw-0-0'), signer: top1, messages: anyMsg(MessageKind.Reply), sessionStart: now })),
        postFrame(c.chains[0]![1]!.url, frame({ from: 'replica-2', to: 'fw-0-1', toPublicKey: pkOf('fw-0-1'), signer: s3, messages: anyMsg(MessageKind.Partial), sessionStart: now })),
        postFrame(c.chains[0]![1]!.url, frame({ from: 'fw-0-0', to: 'fw-0-1', toPublicKey: pkOf('fw-0-1'), signer: s1, messages: anyMsg(MessageKind.Request), sessionStart: now })),
      ]);
      for (const s of forged) expect(s, 'frame signed by another node').toBe(403);
      // 2. A real node's key, but a kind it may not send (a replica sending requests, a top
      //    sending PBFT messages, a bottom's upper neighbour sending requests down): 403.
      const notAllowed = await Promise.all([
        postFrame(r0.url, frame({ from: 'replica-1', to: r0.id, toPublicKey: pkOf(r0.id), signer: s1, messages: anyMsg(MessageKind.Request), sessionStart: 1 })),
        postFrame(r0.url, frame({ from: 'fw-0-1', to: r0.id, toPublicKey: pkOf(r0.id), signer: top0, messages: anyMsg(MessageKind.Pbft), sessionStart: 1 })),
        postFrame(c.chains[0]![0]!.peerUrl, frame({ from: 'fw-0-1', to: 'fw-0-0', toPublicKey: pkOf('fw-0-0'), signer: top0, messages: anyMsg(MessageKind.Request), sessionStart: 1 })),
      ]);
      for (const s of notAllowed) expect(s, 'message kind the sender may not send').toBe(403);

      // 3. Frames correctly signed by replica-1 (as a compromised replica-1 could send) carrying
      //    PBFT messages that claim or are signed by another replica, and a request envelope
      //    whose top signature is another top's: accepted by the transport, dropped inside.
      const pbftReasons = async () => {
        const m = new Map<string, number>();
        for (const l of (await metricsText(r0.adminUrl)).split('\n')) {
          if (!l.startsWith('cbft_dropped_messages_total{') || !l.includes('layer="pbft"')) continue;
          m.set(/reason="([^"]+)"/.exec(l)![1]!, Number(l.split(' ').pop()));
        }
        return m;
      };
      const reasons0 = await pbftReasons();
      const forgedDrops = async () => {
        const now = await pbftReasons();
        return [...now].map(([r, n]) => [r, n - (reasons0.get(r) ?? 0)] as const).filter(([, n]) => n > 0);
      };
      const unauth0 = await metric(r0.adminUrl, 'cbft_dropped_messages_total', 'reason="unauthenticated-request"');
      const view = await metric(r0.adminUrl, 'cbft_sidecar_view');
      const seq = (await metric(r0.adminUrl, 'cbft_sidecar_sequence')) + 1;
      const sign = (m: Omit<PbftMessage, 'sig'>, s: IdentitySigner) => encodeMessage({ ...m, sig: s.sign(signedBytes(m as PbftMessage)) } as PbftMessage);
      const digest = randomBytes(32);
      const pbft = [
        // Claims replica-2 as its sender, arrives from replica-1.
        sign({ type: 'prepare', sender: 2, view, seq, digest } as Omit<PbftMessage, 'sig'>, s2),
        // A relayed checkpoint claiming replica-2, signed by replica-1.
        sign({ type: 'checkpoint', sender: 2, seq: 64, digest } as Omit<PbftMessage, 'sig'>, s1),
        // A pre-prepare from a replica that is not the primary of this view.
        sign({ type: 'pre-prepare', sender: 1, view, seq, digest, batch: { timestamp: Date.now(), seed: new Uint8Array(32), requests: [] } } as unknown as Omit<PbftMessage, 'sig'>, s1),
        // A commit whose signature is replica-3's.
        sign({ type: 'commit', sender: 1, view, seq, digest } as Omit<PbftMessage, 'sig'>, s3),
      ];
      const st = Date.now();
      const request = encodeRequest({ nonce: randomBytes(16), method: 'POST', target: '/transfers', headers: [], body: new Uint8Array(0) });
      const inner = await Promise.all([
        postFrame(r0.url, frame({ from: 'replica-1', to: r0.id, toPublicKey: pkOf(r0.id), signer: s1, sessionStart: Date.now(), counter: 0, session: randomBytes(16), messages: pbft.map((payload) => ({ kind: MessageKind.Pbft, payload })) })),
        // The envelope claims fw-1-1 but is signed by fw-0-1, sent by fw-0-1.
        postFrame(r0.url, frame({ from: 'fw-0-1', to: r0.id, toPublicKey: pkOf(r0.id), signer: top0, sessionStart: st, counter: 0, session: randomBytes(16), messages: [{ kind: MessageKind.Request, payload: signSubmission(top0, 'fw-1-1', request) }] })),
        // The envelope names fw-0-1 (the sender) but carries fw-1-1's signature.
        postFrame(r0.url, frame({ from: 'fw-0-1', to: r0.id, toPublicKey: pkOf(r0.id), signer: top0, sessionStart: st + 1, counter: 1, session: randomBytes(16), messages: [{ kind: MessageKind.Request, payload: signSubmission(top1, 'fw-0-1', request) }] })),
      ]);
      expect(inner[0], 'replica-1 frame accepted by the transport').toBe(204);
      // The prepare (claims replica-2) and the relayed checkpoint (signed by replica-1 for
      // replica-2) are refused as such; the pre-prepare comes from a backup; the commit's
      // signature is replica-3's.
      await waitUntil(
        'the engine dropped the forged PBFT messages',
        async () => {
          const d = new Map(await forgedDrops());
          return ['sender-mismatch', 'not-primary', 'bad-signature', 'equivocation', 'stale-checkpoint', 'stale-view', 'outside-watermarks'].reduce((a, r) => a + (d.get(r) ?? 0), 0) >= pbft.length;
        },
        10_000,
      );
      const drops = await forgedDrops();
      const n = (reason: string) => drops.find(([r]) => r === reason)?.[1] ?? 0;
      expect(n('sender-mismatch'), 'a PREPARE claiming another sender').toBeGreaterThan(0);
      expect(n('not-primary'), 'a PRE-PREPARE from a backup').toBeGreaterThan(0);
      const unauth = (await metric(r0.adminUrl, 'cbft_dropped_messages_total', 'reason="unauthenticated-request"')) - unauth0;
      expect(inner.slice(1), 'fw-0-1 frames accepted by the transport').toEqual([204, 204]);
      expect(unauth, 'request envelopes not signed by the top named in them are dropped').toBe(2);
      // The forged frames took over the sessions of replica-1 and fw-0-1 at replica-0 (they carry
      // their real keys, as a compromised node would): restart both to give the real ones back.
      await f().kill('replica-1');
      await f().restart('replica-1');
      await f().kill('fw-0-1');
      await f().restart('fw-0-1');
      await waitUntil('replica-1 back in step', () => caughtUp(f(), 'replica-1'), 60_000, 250);
      return {
        thrown: `${forged.length + notAllowed.length} forged frames + ${pbft.length} forged PBFT messages + 2 forged request envelopes`,
        notes: [`frames: ${forged.length + notAllowed.length}×403; engine drops at replica-0: ${drops.map(([r, n]) => `${n}×${r}`).join(', ')}; ${unauth} unauthenticated envelopes dropped (${inner.slice(1).join(', ')} at the transport)`],
      };
    });
  }, TEST_TIMEOUT);
  it('slow clients sending a byte at a time (headers and bodies): cut with 408 at the server timeouts', async () => {
    await underAttack('slow clients (slowloris: a byte every 0.5 s)', 3, ['fw-0-0'], async () => {
      // Started with the cluster (see beforeAll): 60 clients dripping headers, 20 dripping a
      // body, 1 request line that never ends.
      const [h, b, t] = await Promise.all([slow!.headers, slow!.bodies, slow!.truncated]);
      for (const r of [...h, ...b, t]) expect(r.closed, 'the server closed the slow connection').toBe(true);
      for (const r of h) expectFirewallError(r, 408, 'malformed_request', 'headers never finished');
      expectFirewallError(t, 408, 'malformed_request', 'request line never finished');
      // A request whose body never finishes is cut at the request timeout (30 s).
      for (const r of b) {
        expect(r.ms).toBeLessThan(45_000);
        if (r.status !== undefined) expectFirewallError(r, 408, 'malformed_request', 'body never finished');
      }
      const hMax = Math.max(...h.map((r) => r.ms), t.ms);
      const bMax = Math.max(...b.map((r) => r.ms));
      expect(hMax).toBeLessThan(20_000);
      return {
        thrown: '60 slow-header + 20 slow-body + 1 unfinished connections',
        livedMs: Math.max(hMax, bMax),
        notes: [`slow headers cut with 408 after ≤ ${secs(hMax)}, slow bodies after ≤ ${secs(bMax)} (the service was served meanwhile)`],
      };
    });
  }, TEST_TIMEOUT);
});
