import { describe, expect, it } from 'vitest';
import type {
  Action,
  CheckpointMsg,
  ClientRequest,
  FetchMsg,
  PbftMessage,
  PrePrepareMsg,
  RequestMsg,
  StatusMsg,
  ViewChangeMsg,
} from '../../src/pbft/index.js';
import { Replica, batchDigest } from '../../src/pbft/index.js';
import { GENESIS_HISTORY } from '../../src/pbft/digests.js';
import type { Unsigned } from '../../src/pbft/signing.js';
import { verifyMessage } from '../../src/pbft/signing.js';
import { simCrypto } from '../../sim/fake-crypto.js';
import { Cluster, ENTROPY, NOW, TEST_CONFIG, expectDrop, keys, makeRequest, signAs } from './harness.js';

/**
 * Unit tests of the REQUEST handler (a backup forwarding a request it has held too long, the
 * primary taking it), of STATUS (retransmission, relays and catch-up it triggers) and of the
 * retransmission of open slots at STATUS gossip. One replica is driven by hand; its clock is
 * advanced one tick at a time, so every timing assertion names the exact tick.
 */


/** A replica with a clock that the test advances one tick at a time. */
class Driven {
  readonly r: Replica;
  private ticks = 0;

  constructor(id: number, extra: Partial<typeof TEST_CONFIG> = {}) {
    this.r = new Replica({ ...TEST_CONFIG, ...extra, id }, simCrypto(keys, id));
    this.tick();
    this.r.takeActions();
  }

  /** Current tick number of the replica (the constructor ticks once). */
  get tickNo(): number {
    return this.ticks;
  }

  tick(): void {
    this.ticks++;
    this.r.tick(NOW + this.ticks * 10, ENTROPY);
  }

  /** Ticks until the replica's tick number is `tickNo`, returning every action meanwhile. */
  tickTo(tickNo: number): Action[] {
    const all: Action[] = [];
    while (this.ticks < tickNo) {
      this.tick();
      all.push(...this.r.takeActions());
    }
    return all;
  }

  get now(): number {
    return NOW + this.ticks * 10;
  }
}

function sends(actions: Action[], type?: PbftMessage['type']): { to: number | 'all'; msg: PbftMessage }[] {
  return actions.flatMap((a) => (a.type === 'send' && (type === undefined || a.msg.type === type) ? [{ to: a.to, msg: a.msg }] : []));
}

function requestMsg(sender: number, request: ClientRequest): RequestMsg {
  return signAs<RequestMsg>(sender, { type: 'request', sender, request });
}

function status(sender: number, fields: Partial<Omit<StatusMsg, 'type' | 'sender' | 'sig'>> = {}): StatusMsg {
  return signAs<StatusMsg>(sender, { type: 'status', sender, view: 0, inViewChange: false, stableSeq: 0, committedThrough: 0, ...fields });
}

describe('a backup forwards a request it has held for forwardAfterTicks to the primary', () => {
  it('sends a signed REQUEST to the primary exactly at forwardAfterTicks, once per view', () => {
    const b = new Driven(1, { forwardAfterTicks: 3 });
    const req = makeRequest();
    const arrival = b.tickNo;
    b.r.submit(req);
    expect(sends(b.r.takeActions())).toEqual([]);
    expect(sends(b.tickTo(arrival + 2))).toEqual([]);

    const forwarded = sends(b.tickTo(arrival + 3), 'request');
    expect(forwarded).toHaveLength(1);
    expect(forwarded[0]!.to).toBe(0);
    const msg = forwarded[0]!.msg as RequestMsg;
    expect(msg.sender).toBe(1);
    expect(msg.request.digest).toEqual(req.digest);
    expect(msg.request.payload).toEqual(req.payload);
    expect(verifyMessage(simCrypto(keys, 0), msg)).toBe(true);

    // Not again in the same view (the request timer, not forwarding, handles a primary that ignores it).
    expect(sends(b.tickTo(arrival + 8), 'request')).toEqual([]);
  });

  it('forwards at most batchMax requests per tick, oldest first, and not one the primary already ordered', () => {
    const b = new Driven(1, { forwardAfterTicks: 2, batchMax: 2 });
    const reqs = [makeRequest(), makeRequest(), makeRequest(), makeRequest()];
    for (const r of reqs) b.r.submit(r);
    // The primary ordered reqs[0] already: the backup accepted its PRE-PREPARE.
    const batch = { timestamp: b.now, seed: new Uint8Array(32).fill(1), requests: [reqs[0]!] };
    b.r.receive(0, signAs<PrePrepareMsg>(0, { type: 'pre-prepare', sender: 0, view: 0, seq: 1, digest: batchDigest(batch), batch }));
    b.r.takeActions();
    const first = sends(b.tickTo(b.tickNo + 2), 'request').map((s) => (s.msg as RequestMsg).request.digest);
    expect(first).toEqual([reqs[1]!.digest, reqs[2]!.digest]);
    const second = sends(b.tickTo(b.tickNo + 1), 'request').map((s) => (s.msg as RequestMsg).request.digest);
    expect(second).toEqual([reqs[3]!.digest]);
  });

  it('the primary does not forward to itself', () => {
    const p = new Driven(0, { forwardAfterTicks: 1, batchDelayTicks: 50 });
    p.r.submit(makeRequest());
    expect(sends(p.tickTo(p.tickNo + 5), 'request')).toEqual([]);
  });

  it('in a cluster, a request that reached only the backups is ordered in view 0 (no view change needed)', () => {
    const c = new Cluster({ ...TEST_CONFIG, viewChangeTicks: 40, forwardAfterTicks: 2 });
    const req = makeRequest('backups-only');
    c.submit(req, [1, 2, 3]);
    c.runUntil(() => c.all().every((id) => c.executed[id]!.length === 1), 30);
    for (const id of c.all()) {
      expect(c.executedPayloads(id)).toEqual(['backups-only']);
      expect(c.replica(id).inspect()).toMatchObject({ view: 0, inViewChange: false });
    }
  });
});

describe('REQUEST at the primary', () => {
  it('proposes a forwarded request: persists and broadcasts a PRE-PREPARE carrying it', () => {
    const p = new Driven(0);
    const req = makeRequest();
    p.r.receive(1, requestMsg(1, req));
    const actions = p.r.takeActions();
    const pp = sends(actions, 'pre-prepare');
    expect(pp).toHaveLength(1);
    expect(pp[0]!.to).toBe('all');
    const msg = pp[0]!.msg as PrePrepareMsg;
    expect(msg).toMatchObject({ sender: 0, view: 0, seq: 1 });
    expect(msg.batch.requests.map((r) => r.digest)).toEqual([req.digest]);
    const persistAt = actions.findIndex((a) => a.type === 'persist' && a.record.kind === 'accepted');
    const sendAt = actions.findIndex((a) => a.type === 'send' && a.msg.type === 'pre-prepare');
    expect(persistAt).toBeGreaterThanOrEqual(0);
    expect(persistAt).toBeLessThan(sendAt);
    expect(p.r.inspect().pendingRequests).toBe(1);
  });

  it('holds a forwarded request like a submitted one: it is cut with the batch delay', () => {
    const p = new Driven(0, { batchDelayTicks: 2 });
    const req = makeRequest();
    p.r.receive(2, requestMsg(2, req));
    expect(sends(p.r.takeActions(), 'pre-prepare')).toEqual([]);
    expect(sends(p.tickTo(p.tickNo + 1), 'pre-prepare')).toEqual([]);
    const pp = sends(p.tickTo(p.tickNo + 1), 'pre-prepare');
    expect(pp.map((s) => (s.msg as PrePrepareMsg).batch.requests.map((r) => r.digest))).toEqual([[req.digest]]);
  });

  it('drops a REQUEST at a backup, and at a primary in a view change, as not-primary', () => {
    const b = new Driven(1);
    expectDrop(b.r, 'not-primary', () => b.r.receive(2, requestMsg(2, makeRequest())));
    expect(b.r.inspect().pendingRequests).toBe(0);

    // The primary of view 1, changing to it (its request timer expired) without a quorum yet.
    const p = new Driven(1);
    p.r.submit(makeRequest());
    p.tickTo(p.tickNo + TEST_CONFIG.viewChangeTicks!);
    p.r.takeActions();
    expect(p.r.inspect()).toMatchObject({ view: 1, inViewChange: true, primary: 1 });
    expectDrop(p.r, 'not-primary', () => p.r.receive(2, requestMsg(2, makeRequest())));
  });

  it('drops invalid requests: digest not matching the payload, payload too large, bad signature, forged sender', () => {
    const p = new Driven(0, { maxRequestBytes: 8 });
    const ok = makeRequest('ok');
    expectDrop(p.r, 'invalid', () => p.r.receive(1, requestMsg(1, { digest: new Uint8Array(32), payload: ok.payload })));
    expectDrop(p.r, 'invalid', () => p.r.receive(1, requestMsg(1, makeRequest('much too long for eight bytes'))));
    expectDrop(p.r, 'bad-signature', () => p.r.receive(1, { ...requestMsg(1, ok), sig: new Uint8Array(32) }));
    expectDrop(p.r, 'sender-mismatch', () => p.r.receive(2, requestMsg(1, ok)));
    expect(p.r.inspect().pendingRequests).toBe(0);
    // The same request, properly sent, is taken.
    p.r.receive(1, requestMsg(1, ok));
    expect(sends(p.r.takeActions(), 'pre-prepare')).toHaveLength(1);
  });

  it('drops a request that is already pending as a duplicate, without proposing it again', () => {
    const p = new Driven(0);
    const req = makeRequest();
    p.r.submit(req);
    expect(sends(p.r.takeActions(), 'pre-prepare')).toHaveLength(1);
    expectDrop(p.r, 'duplicate', () => p.r.receive(1, requestMsg(1, req)));
    expectDrop(p.r, 'duplicate', () => p.r.receive(2, requestMsg(2, req)));
    expect(sends(p.tickTo(p.tickNo + 3), 'pre-prepare')).toEqual([]);
    expect(p.r.inspect().pendingRequests).toBe(1);
  });

  it('drops a request that was already executed as a duplicate', () => {
    const c = new Cluster();
    const req = makeRequest();
    c.submit(req, [0]);
    c.runUntil(() => c.all().every((id) => c.executed[id]!.length === 1));
    c.tick(1);
    c.deliverAll();
    const primary = c.replica(0);
    expect(primary.inspect().pendingRequests).toBe(0);
    expectDrop(primary, 'duplicate', () => primary.receive(1, requestMsg(1, req)));
    expect(primary.inspect().pendingRequests).toBe(0);
  });

  it('drops a request as overloaded when the pending queue is full', () => {
    const p = new Driven(0, { maxPendingRequests: 2 });
    p.r.receive(1, requestMsg(1, makeRequest()));
    p.r.receive(2, requestMsg(2, makeRequest()));
    p.r.takeActions();
    expect(p.r.inspect().pendingRequests).toBe(2);
    expectDrop(p.r, 'overloaded', () => p.r.receive(3, requestMsg(3, makeRequest())));
    expect(p.r.inspect().pendingRequests).toBe(2);
  });
});

describe('STATUS from a peer that is behind', () => {
  /** A cluster whose checkpoint at seq 4 is stable everywhere, with nothing in flight. */
  function stableCluster(): Cluster {
    const c = new Cluster();
    for (let i = 0; i < 5; i++) c.submit(makeRequest());
    c.runUntil(() => c.all().every((id) => c.replica(id).inspect().lowWatermark === 4));
    // Let every periodic relay's rate limit expire, then forget what the gossip queued.
    c.tick(TEST_CONFIG.statusTicks! + 1);
    c.inflight = [];
    return c;
  }

  it('hands a peer behind our stable checkpoint the signed checkpoints that prove it, rate-limited', () => {
    const c = stableCluster();
    const r = c.replica(1);
    r.takeActions();
    r.receive(3, status(3, { stableSeq: 0, committedThrough: 0 }));
    const relayed = sends(r.takeActions());
    expect(relayed.length).toBeGreaterThanOrEqual(2);
    for (const s of relayed) {
      expect(s.to).toBe(3);
      expect(s.msg).toMatchObject({ type: 'checkpoint', seq: 4 });
      expect(verifyMessage(simCrypto(keys, 3), s.msg)).toBe(true);
    }
    const senders = relayed.map((s) => (s.msg as CheckpointMsg).sender);
    expect(new Set(senders).size).toBe(senders.length);
    expect(senders).not.toContain(3);
    // Together with its own vote the peer has a quorum: 2s+1 = 3.
    expect(senders.length + 1).toBeGreaterThanOrEqual(3);

    // Rate-limited: not again within statusTicks.
    r.receive(3, status(3, { stableSeq: 0 }));
    expect(sends(r.takeActions())).toEqual([]);
    c.tick(TEST_CONFIG.statusTicks!, [1]);
    r.takeActions();
    r.receive(3, status(3, { stableSeq: 0 }));
    expect(sends(r.takeActions(), 'checkpoint').length).toBe(relayed.length);
  });

  it('sends nothing to a peer that is level with us', () => {
    const c = stableCluster();
    const r = c.replica(1);
    r.takeActions();
    r.receive(3, status(3, { stableSeq: 4, committedThrough: 4 }));
    expect(sends(r.takeActions())).toEqual([]);
  });

  it('hands a peer in an earlier view our NEW-VIEW, rate-limited', () => {
    const vc = (sender: number): ViewChangeMsg =>
      signAs<ViewChangeMsg>(sender, { type: 'view-change', sender, newView: 1, stable: { seq: 0, digest: GENESIS_HISTORY, sigs: [] }, prepared: [] });
    const p = new Driven(1);
    p.r.receive(2, vc(2));
    p.r.receive(3, vc(3));
    const nv = sends(p.r.takeActions(), 'new-view')[0]?.msg;
    expect(nv).toBeDefined();
    expect(p.r.inspect()).toMatchObject({ view: 1, inViewChange: false });
    p.tick();
    p.r.takeActions();

    p.r.receive(0, status(0, { view: 0 }));
    expect(sends(p.r.takeActions())).toEqual([{ to: 0, msg: nv }]);
    p.r.receive(0, status(0, { view: 0 }));
    expect(sends(p.r.takeActions())).toEqual([]);
    p.tickTo(p.tickNo + TEST_CONFIG.statusTicks!);
    p.r.receive(0, status(0, { view: 0 }));
    expect(sends(p.r.takeActions())).toEqual([{ to: 0, msg: nv }]);
    // A peer still changing to our view gets it too.
    p.r.receive(2, status(2, { view: 1, inViewChange: true }));
    expect(sends(p.r.takeActions())).toEqual([{ to: 2, msg: nv }]);
    // A peer level with us does not.
    p.r.receive(3, status(3, { view: 1 }));
    expect(sends(p.r.takeActions())).toEqual([]);
  });

  it('while itself changing view, sends a VIEW-CHANGE for the earlier view a peer is still trying to reach', () => {
    const vc = (sender: number, newView: number): ViewChangeMsg =>
      signAs<ViewChangeMsg>(sender, { type: 'view-change', sender, newView, stable: { seq: 0, digest: GENESIS_HISTORY, sigs: [] }, prepared: [] });
    const r = new Driven(3);
    r.r.receive(1, vc(1, 2));
    r.r.receive(2, vc(2, 2));
    r.r.takeActions();
    expect(r.r.inspect()).toMatchObject({ view: 2, inViewChange: true });
    r.r.receive(1, status(1, { view: 1, inViewChange: true }));
    const out = sends(r.r.takeActions());
    expect(out).toHaveLength(1);
    expect(out[0]!.to).toBe(1);
    expect(out[0]!.msg).toMatchObject({ type: 'view-change', sender: 3, newView: 1 });
  });

  it('drops a STATUS with a bad signature, and does not act on it', () => {
    const c = stableCluster();
    const r = c.replica(1);
    r.takeActions();
    expectDrop(r, 'bad-signature', () => r.receive(3, { ...status(3, { stableSeq: 0 }), sig: new Uint8Array(32) }));
  });
});

describe('STATUS showing that we are behind', () => {
  it('s+1 peers reporting more committed batches start catch-up: a FETCH at the next tick', () => {
    const b = new Driven(1);
    b.r.receive(2, status(2, { committedThrough: 3 }));
    expect(sends(b.r.takeActions())).toEqual([]);
    // One peer (possibly faulty) is not enough.
    expect(sends(b.tickTo(b.tickNo + 1), 'fetch')).toEqual([]);
    b.r.receive(3, status(3, { committedThrough: 6 }));
    b.r.takeActions();
    const actions = b.tickTo(b.tickNo + 1);
    const fetches = sends(actions, 'fetch');
    expect(fetches).toHaveLength(1);
    expect([2, 3]).toContain(fetches[0]!.to);
    // The (s+1)-th highest report: 3 (at least one correct replica committed that far).
    expect(fetches[0]!.msg).toMatchObject({ type: 'fetch', sender: 1, fromSeq: 1, toSeq: 3 } satisfies Partial<FetchMsg>);
    expect(actions).toContainEqual({ type: 'event', event: { kind: 'catch-up', fromSeq: 1, toSeq: 3, peer: fetches[0]!.to } });
    // No second FETCH while the first is waiting for its answer; another peer once it times out.
    expect(sends(b.tickTo(b.tickNo + TEST_CONFIG.fetchRetryTicks! - 1), 'fetch')).toEqual([]);
    const retry = sends(b.tickTo(b.tickNo + 1), 'fetch');
    expect(retry).toHaveLength(1);
    expect(retry[0]!.to).not.toBe(fetches[0]!.to);
  });

  it('in a cluster, a replica that missed everything catches up from STATUS alone', () => {
    const c = new Cluster();
    const isolated = (e: { from: number; to: number; msg: PbftMessage }) =>
      e.to === 3 && e.msg.type !== 'status' && e.msg.type !== 'fetch-reply';
    for (let i = 0; i < 3; i++) c.submit(makeRequest(), [0, 1, 2]);
    c.runUntil(() => [0, 1, 2].every((id) => c.executed[id]!.length === 3), 200, (e) => e.to === 3);
    expect(c.executed[3]!).toHaveLength(0);
    c.runUntil(() => c.executed[3]!.length === 3, 200, isolated);
    expect(c.executedDigests(3)).toEqual(c.executedDigests(0));
  });
});

describe('STATUS gossip retransmits own messages only for slots open a whole period', () => {
  const statusTicks = TEST_CONFIG.statusTicks!;
  const nextGossip = (tick: number) => (Math.floor(tick / statusTicks) + 1) * statusTicks;

  it('a backup resends its PREPARE at the second gossip after the slot opened, not the first', () => {
    const b = new Driven(1);
    const batch = { timestamp: b.now, seed: new Uint8Array(32).fill(1), requests: [makeRequest()] };
    b.r.receive(0, signAs<PrePrepareMsg>(0, { type: 'pre-prepare', sender: 0, view: 0, seq: 1, digest: batchDigest(batch), batch }));
    const own = sends(b.r.takeActions(), 'prepare');
    expect(own).toHaveLength(1);

    const g1 = nextGossip(b.tickNo);
    const first = b.tickTo(g1);
    expect(sends(first, 'status')).toHaveLength(1);
    expect(sends(first, 'prepare')).toEqual([]);

    const second = b.tickTo(g1 + statusTicks);
    expect(sends(second, 'status')).toHaveLength(1);
    expect(sends(second, 'prepare')).toEqual([{ to: 'all', msg: own[0]!.msg }]);
    // Still open: resent at every later gossip too.
    expect(sends(b.tickTo(g1 + 2 * statusTicks), 'prepare')).toEqual([{ to: 'all', msg: own[0]!.msg }]);
  });

  it('the primary resends its PRE-PREPARE only from the second gossip on', () => {
    const p = new Driven(0);
    p.r.submit(makeRequest());
    const own = sends(p.r.takeActions(), 'pre-prepare');
    expect(own).toHaveLength(1);
    const g1 = nextGossip(p.tickNo);
    expect(sends(p.tickTo(g1), 'pre-prepare')).toEqual([]);
    expect(sends(p.tickTo(g1 + statusTicks), 'pre-prepare')).toEqual([{ to: 'all', msg: own[0]!.msg }]);
  });

  it('a slot that opens just before a gossip is not resent at it, and one that commits is not resent', () => {
    const p = new Driven(0);
    const g1 = nextGossip(p.tickNo);
    p.tickTo(g1 - 1);
    p.r.submit(makeRequest());
    expect(sends(p.r.takeActions(), 'pre-prepare')).toHaveLength(1);
    expect(sends(p.tickTo(g1), 'pre-prepare')).toEqual([]);

    // Another slot opened between gossips and committed before the next one: never resent.
    const c = new Cluster();
    c.submit(makeRequest(), [0]);
    c.runUntil(() => c.all().every((id) => c.executed[id]!.length === 1));
    c.inflight = [];
    for (let i = 0; i < 3 * statusTicks; i++) {
      c.tick(1);
      const resent = c.inflight.filter((e) => e.msg.type !== 'status' && e.msg.type !== 'checkpoint');
      expect(resent).toEqual([]);
      c.inflight = [];
    }
  });
});
