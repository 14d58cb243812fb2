import { LinkKey } from '../../src/transport/link-key.js';
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { request } from 'undici';
import { toHex, utf8 } from '../../src/codec/binary.js';
import { decodeReply, decodeRequest } from '../../src/codec/canonical.js';
import { ResponseVerifier } from '../../src/client/verify-response.js';
import { signedResponseHeaders } from '../../src/firewall/front.js';
import type { FirewallNode } from '../../src/firewall/node.js';
import { encodeFrame, MessageKind } from '../../src/transport/frame.js';
import { decodeSignedReply, encodeFail, FailCode } from '../../src/wire/payloads.js';
import { IdentitySigner } from '../../src/crypto/identity.js';
import { fromHex } from '../../src/codec/binary.js';
import { startFakeReplicas, type FakeReplicas } from '../../bench/harness/fake-replicas.js';
import { digestOfReplyPayload, forgedRequest, signBatch, startByzantine, tamperReply, underSigned, type ByzantineNode } from './byzantine.js';
import { makeCluster, metricsOf, metricValue, rawExchange, startNodes, waitFor, type TestCluster } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** bottom (correct) ← fw-0-1 (Byzantine double) ← top (correct) ← fake replicas. */
async function byzantineMiddle(timeoutMs = 5_000): Promise<{ tc: TestCluster; byz: ByzantineNode; bottom: FirewallNode; replicas: FakeReplicas; url: string }> {
  const tc = await makeCluster({ length: 3, firewall: { requestTimeoutMs: timeoutMs } });
  const replicas = await startFakeReplicas({ cluster: tc.cluster, keys: tc.keys });
  const [top] = await startNodes(tc, ['fw-0-2']);
  const byz = await startByzantine(tc, 0, 1);
  const [bottom] = await startNodes(tc, ['fw-0-0']);
  cleanups.push(async () => {
    await bottom!.close();
    await byz.close();
    await top!.close();
    await replicas.close();
  });
  return { tc, byz, bottom: bottom!, replicas, url: tc.cluster.chains[0]![0]!.url };
}

async function get(url: string, path: string, headers: Record<string, string> = {}) {
  const res = await request(url + path, { headers });
  const body = Buffer.from(await res.body.arrayBuffer());
  const pairs = Object.entries(res.headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x] as [string, string]) : [[k, String(v)] as [string, string]]));
  return { status: res.statusCode, headers: pairs, body, at: performance.now() };
}

const alarms = async (node: FirewallNode, kind: string) => metricValue(await metricsOf(node), 'cbft_alarms_total', { kind });

describe('a Byzantine node above a correct bottom node', () => {
  it('adds headers and trailing bytes: none of it reaches the client, whose bytes are exactly the signed reply (I3)', async () => {
    const { byz, bottom, url, tc } = await byzantineMiddle();
    byz.passDown = false;
    const nonce = toHex(randomBytes(16));
    const host = new URL(url).host;
    const exchange = rawExchange(url, [`GET /decorate HTTP/1.1\r\nhost: ${host}\r\ncbft-nonce: ${nonce}\r\naccept: */*\r\n\r\n`]);
    await waitFor(() => byz.fromAbove.length === 1, 5_000, 'reply at the Byzantine node');
    const genuine = byz.fromAbove[0]!.payload;
    // 1. an extra header inside the signed structure, 2. a changed body, 3. trailing bytes, 4. a Fail-shaped blob.
    byz.sendDown(MessageKind.Reply, tamperReply(genuine, (r) => ({ ...r, headers: [...r.headers, ['x-leak', 'secret']] })));
    byz.sendDown(MessageKind.Reply, tamperReply(genuine, (r) => ({ ...r, body: utf8('exfiltrated') })));
    byz.sendDown(MessageKind.Reply, Buffer.concat([genuine, Buffer.from('smuggled')]));
    await waitFor(async () => (await alarms(bottom, 'bad-signature')) === 2 && (await alarms(bottom, 'malformed-reply')) === 1, 5_000, 'alarms');
    byz.sendDown(MessageKind.Reply, genuine);
    const { responses } = await exchange;
    const res = responses[0]!;
    // Build the exact bytes a correct bottom must write from the genuine signed reply alone.
    const signed = decodeSignedReply(genuine, 1 << 26);
    const reply = decodeReply(signed.reply);
    const h = signedResponseHeaders(reply, signed.proof, signed.signature, nonce, toHex(reply.requestDigest));
    let head = `HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status]}\r\n`;
    for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`;
    head += 'Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n';
    expect(res.raw.toString('latin1')).toBe(head + Buffer.from(reply.body).toString('latin1'));
    expect(res.raw.equals(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(reply.body)]))).toBe(true);
    expect(res.raw.toString('latin1')).not.toMatch(/x-leak|exfiltrated|smuggled/);
    const check = new ResponseVerifier(tc.cluster).check({ status: res.status, headers: res.headers, body: res.body });
    expect(check.ok).toBe(true);
  });

  it('reorders replies: the correct node still releases in request order (I2)', async () => {
    const { byz, url } = await byzantineMiddle();
    byz.passDown = false;
    const a = get(url, '/first');
    await waitFor(() => byz.fromBelow.length === 1);
    const b = get(url, '/second');
    await waitFor(() => byz.fromAbove.length === 2, 5_000, 'both replies');
    const byTarget = new Map(byz.fromAbove.map((m) => [JSON.parse(Buffer.from(decodeReply(decodeSignedReply(m.payload, 1 << 26).reply).body).toString()).target as string, m.payload]));
    let bDone = false;
    void b.then(() => (bDone = true));
    byz.sendDown(MessageKind.Reply, byTarget.get('/second')!);
    await new Promise((r) => setTimeout(r, 200));
    expect(bDone).toBe(false); // held: /first is ahead of it in the queue
    byz.sendDown(MessageKind.Reply, byTarget.get('/first')!);
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.status).toBe(200);
    expect(rb.status).toBe(200);
    expect(JSON.parse(ra.body.toString())).toMatchObject({ target: '/first' });
    expect(JSON.parse(rb.body.toString())).toMatchObject({ target: '/second' });
    expect(ra.at).toBeLessThanOrEqual(rb.at);
  });

  it('drops a reply: that request gets 504 at the deadline, the ones behind it wait for it, nothing leaks', async () => {
    const { byz, url, bottom } = await byzantineMiddle(800);
    byz.passDown = false;
    const t0 = performance.now();
    const a = get(url, '/dropped');
    await waitFor(() => byz.fromBelow.length === 1);
    const b = get(url, '/kept');
    await waitFor(() => byz.fromAbove.length === 2, 5_000, 'both replies');
    const kept = byz.fromAbove.find((m) => decodeReply(decodeSignedReply(m.payload, 1 << 26).reply).body.length > 0 && Buffer.from(decodeReply(decodeSignedReply(m.payload, 1 << 26).reply).body).toString().includes('/kept'))!;
    byz.sendDown(MessageKind.Reply, kept.payload);
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.status).toBe(504);
    expect(JSON.parse(ra.body.toString())).toMatchObject({ error: 'timeout' });
    expect(ra.at - t0).toBeGreaterThanOrEqual(750);
    expect(rb.status).toBe(200);
    expect(rb.at).toBeGreaterThanOrEqual(ra.at);
    // The dropped reply arriving after the deadline is late, not released.
    const dropped = byz.fromAbove.find((m) => m !== kept)!;
    byz.sendDown(MessageKind.Reply, dropped.payload);
    await waitFor(async () => metricValue(await metricsOf(bottom), 'cbft_firewall_late_total') === 1, 3_000, 'late counter');
  });

  it('replays an old signed reply and an old frame: dropped and counted', async () => {
    const { byz, url, bottom } = await byzantineMiddle();
    const first = await get(url, '/once');
    expect(first.status).toBe(200);
    const old = byz.fromAbove[0]!.payload;
    byz.passDown = false;
    const next = get(url, '/next');
    await waitFor(() => byz.fromAbove.length === 2);
    byz.sendDown(MessageKind.Reply, old); // the old reply instead of the new one
    await waitFor(async () => (await alarms(bottom, 'replayed-reply')) === 1, 3_000, 'replay alarm');
    // A replayed frame (same session and counter) is refused by the transport.
    const { status, frame } = await byz.postFrameDown([{ kind: MessageKind.Reply, payload: old }]);
    expect(status).toBe(204);
    expect(await byz.postRawDown(frame)).toBe(409);
    await waitFor(async () => (await alarms(bottom, 'frame-replay')) === 1, 3_000, 'frame replay alarm');
    // (The hand-made frames above opened a newer session at the bottom, so keep using it.)
    expect((await byz.postFrameDown([{ kind: MessageKind.Reply, payload: byz.fromAbove[1]!.payload }])).status).toBe(204);
    const r = await next;
    expect(JSON.parse(r.body.toString())).toMatchObject({ target: '/next' });
    expect(await alarms(bottom, 'replayed-reply')).toBe(2); // the old one posted in the frame above
  });

  it('injects a forged request: its reply reaches no client; requests sent down and forged senders are refused (I6)', async () => {
    const { byz, url, bottom, tc } = await byzantineMiddle();
    byz.sendUp(MessageKind.Request, forgedRequest('/forged'));
    await waitFor(() => byz.fromAbove.length === 1, 5_000, 'reply to the forged request');
    await waitFor(async () => (await alarms(bottom, 'unknown-digest')) === 1, 3_000, 'unknown digest alarm');
    expect(bottom.queueSize).toBe(0);
    // A Request sent down, a Fail for nothing, a frame claiming to be the top, a frame from the top's key.
    // (A frame with a forbidden message is refused whole, so the Fail goes in a frame of its own.)
    byz.sendDown(MessageKind.Request, forgedRequest('/down'));
    await waitFor(async () => (await alarms(bottom, 'frame-not-allowed')) === 1, 3_000, 'I6 alarm');
    byz.sendDown(MessageKind.Fail, encodeFail({ digest: randomBytes(32), code: FailCode.Timeout }));
    await waitFor(async () => (await alarms(bottom, 'unknown-fail')) === 1, 3_000, 'unknown fail alarm');
    const topKey = tc.keys.find((k) => k.id === 'fw-0-2')!;
    const asTop = encodeFrame({ from: 'fw-0-2', to: 'fw-0-0', session: randomBytes(16), sessionStart: Date.now(), counter: 1 }, [{ kind: MessageKind.Reply, payload: byz.fromAbove[0]!.payload }], LinkKey.derive(new IdentitySigner(fromHex(topKey.identitySecretKey)), fromHex(tc.cluster.chains[0]![0]!.identityPublicKey), 'fw-0-2', 'fw-0-0'));
    expect(await byz.postRawDown(asTop)).toBe(403);
    const byzKey = tc.keys.find((k) => k.id === 'fw-0-1')!;
    const forgedFrom = encodeFrame({ from: 'fw-0-2', to: 'fw-0-0', session: randomBytes(16), sessionStart: Date.now(), counter: 1 }, [], LinkKey.derive(new IdentitySigner(fromHex(byzKey.identitySecretKey)), fromHex(tc.cluster.chains[0]![0]!.identityPublicKey), 'fw-0-2', 'fw-0-0'));
    expect(await byz.postRawDown(forgedFrom)).toBe(403);
    const m = await metricsOf(bottom);
    expect(metricValue(m, 'cbft_alarms_total', { kind: 'frame-unknown-sender' })).toBe(2);
    // And the chain still serves honest requests.
    const ok = await get(url, '/honest');
    expect(ok.status).toBe(200);
  });

  it('sends a reply signed by s replicas only: dropped as a bad signature', async () => {
    const { byz, url, bottom, tc } = await byzantineMiddle();
    byz.passDown = false;
    const r = get(url, '/undersigned');
    await waitFor(() => byz.fromAbove.length === 1);
    const genuine = byz.fromAbove[0]!.payload;
    byz.sendDown(MessageKind.Reply, underSigned(tc, genuine, tc.cluster.s));
    await waitFor(async () => (await alarms(bottom, 'bad-signature')) === 1, 3_000, 'bad signature alarm');
    byz.sendDown(MessageKind.Reply, genuine);
    const res = await r;
    expect(res.status).toBe(200);
    expect(digestOfReplyPayload(genuine)).toBe(res.headers.find(([n]) => n === 'cbft-request-digest')![1]);
  });
});

describe('a Byzantine top above a correct middle node', () => {
  it('the middle releases in order, drops forged and under-signed replies, and the bottom serves the signed bytes', async () => {
    const tc = await makeCluster({ length: 3, firewall: { requestTimeoutMs: 2_000 } });
    const byzTop = await startByzantine(tc, 0, 2);
    byzTop.forwardUp = false;
    const [bottom, middle] = await startNodes(tc, ['fw-0-0', 'fw-0-1']);
    cleanups.push(async () => {
      await bottom!.close();
      await middle!.close();
      await byzTop.close();
    });
    const url = tc.cluster.chains[0]![0]!.url;
    const a = get(url, '/a');
    await waitFor(() => byzTop.fromBelow.length === 1);
    const b = get(url, '/b');
    await waitFor(() => byzTop.fromBelow.length === 2);
    const body = (i: number) => utf8(`reply to ${decodeRequest(byzTop.fromBelow[i]!).target}`);
    const [ra, rb, forged] = signBatch(tc, [byzTop.fromBelow[0]!, byzTop.fromBelow[1]!, forgedRequest('/x')], (i) => ({
      status: 200,
      headers: [['content-type', 'text/plain']],
      body: i < 2 ? body(i) : utf8('not asked for'),
    }));
    byzTop.sendDown(MessageKind.Reply, forged!.payload);
    byzTop.sendDown(MessageKind.Reply, underSigned(tc, ra!.payload, tc.cluster.s));
    byzTop.sendDown(MessageKind.Reply, rb!.payload);
    await waitFor(async () => (await alarms(middle!, 'unknown-digest')) === 1 && (await alarms(middle!, 'bad-signature')) === 1, 3_000, 'middle alarms');
    let bDone = false;
    void b.then(() => (bDone = true));
    await new Promise((r) => setTimeout(r, 150));
    expect(bDone).toBe(false);
    byzTop.sendDown(MessageKind.Reply, ra!.payload);
    const [resA, resB] = await Promise.all([a, b]);
    expect(resA.body.toString()).toBe('reply to /a');
    expect(resB.body.toString()).toBe('reply to /b');
    expect(resA.at).toBeLessThanOrEqual(resB.at);
    for (const r of [resA, resB]) expect(new ResponseVerifier(tc.cluster).check({ status: r.status, headers: r.headers, body: r.body }).ok).toBe(true);
    expect(metricValue(await metricsOf(bottom!), 'cbft_alarms_total')).toBe(0);
  });
});

describe('signed replies a bottom node cannot present faithfully', () => {
  it('answers 502 bad_reply instead of bytes the client could not verify', async () => {
    const tc = await makeCluster({ length: 2, firewall: { requestTimeoutMs: 5_000 } });
    const byzTop = await startByzantine(tc, 0, 1);
    byzTop.forwardUp = false;
    const [bottom] = await startNodes(tc, ['fw-0-0']);
    cleanups.push(async () => {
      await bottom!.close();
      await byzTop.close();
    });
    const url = tc.cluster.chains[0]![0]!.url;
    const pending = [get(url, '/a'), get(url, '/b'), get(url, '/c')];
    await waitFor(() => byzTop.fromBelow.length === 3);
    const signed = signBatch(tc, byzTop.fromBelow.slice(0, 3), (i) =>
      i === 0
        ? { status: 200, headers: [['x-not-allowlisted', 'secret']], body: utf8('a') }
        : i === 1
          ? { status: 101, headers: [], body: utf8('') }
          : { status: 204, headers: [], body: utf8('body on a 204') },
    );
    for (const s of signed) byzTop.sendDown(MessageKind.Reply, s.payload);
    const res = await Promise.all(pending);
    for (const r of res) {
      expect(r.status).toBe(502);
      expect(JSON.parse(r.body.toString())).toMatchObject({ error: 'bad_reply' });
      expect(r.headers.map(([n]) => n)).not.toContain('x-not-allowlisted');
    }
  });
});
