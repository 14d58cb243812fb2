import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { CbftError } from '../../src/errors.js';
import { sha256 } from '../../src/crypto/hash.js';
import type {
  Action,
  Batch,
  CheckpointMsg,
  ClientRequest,
  CommitMsg,
  PbftMessage,
  PrePrepareMsg,
  PrepareMsg,
  ViewChangeMsg,
} from '../../src/pbft/index.js';
import { PbftErrorCodes, Replica, batchDigest, createEd25519Crypto, encodeMessage } from '../../src/pbft/index.js';
import { GENESIS_HISTORY } from '../../src/pbft/digests.js';
import type { Unsigned } from '../../src/pbft/signing.js';
import { simCrypto, simKeys } from '../../sim/fake-crypto.js';
import { Cluster, ENTROPY, NOW, TEST_CONFIG, expectDrop, keys, makeRequest, signAs } from './harness.js';

/** Unit tests per handler: one replica driven by hand-made, signed messages. */


function newReplica(id = 1, extra: Partial<typeof TEST_CONFIG> = {}): Replica {
  const r = new Replica({ ...TEST_CONFIG, ...extra, id }, simCrypto(keys, id));
  r.tick(NOW, ENTROPY);
  r.takeActions();
  return r;
}

function batchOf(requests: ClientRequest[], timestamp = NOW): Batch {
  return { timestamp, seed: new Uint8Array(32).fill(1), requests };
}

function prePrepare(seq: number, batch: Batch, view = 0, sender = view % 4): PrePrepareMsg {
  return signAs<PrePrepareMsg>(sender, { type: 'pre-prepare', sender, view, seq, digest: batchDigest(batch), batch });
}

function vote<T extends PrepareMsg | CommitMsg>(type: T['type'], sender: number, seq: number, digest: Uint8Array, view = 0): T {
  return signAs<T>(sender, { type, sender, view, seq, digest } as Unsigned<T>);
}

function kinds(actions: Action[]): string[] {
  return actions
    .filter((a) => a.type !== 'event' || a.event.kind !== 'dropped')
    .map((a) => (a.type === 'send' ? `send:${a.msg.type}` : a.type === 'persist' ? `persist:${a.record.kind}` : a.type === 'event' ? `event:${a.event.kind}` : a.type));
}

describe('configuration', () => {
  it('rejects invalid configurations with CBFT_ERR_PBFT_CONFIG', () => {
    const bad = [
      { s: 1, n: 5, id: 0 },
      { s: 1, id: 4 },
      { s: 0, id: 0 },
      { s: 1, id: 0, checkpointInterval: 4, watermarkWindow: 10 },
      { s: 1, id: 0, checkpointInterval: 4, watermarkWindow: 4 },
      { s: 1, id: 0, batchMax: 0 },
      { s: 1, id: 0, mutant: 'nope' as never },
    ];
    for (const cfg of bad) {
      expect(() => new Replica(cfg, simCrypto(keys, 0))).toThrow(expect.objectContaining({ code: PbftErrorCodes.CONFIG }) as Error);
    }
  });

  it('derives n from s and fills in defaults', () => {
    const r = new Replica({ s: 2, id: 6 }, simCrypto(simKeys(7, 1), 6));
    expect(r.config.n).toBe(7);
    expect(r.config.watermarkWindow % r.config.checkpointInterval).toBe(0);
    expect(r.inspect().highWatermark).toBe(r.config.watermarkWindow);
  });
});

describe('submit', () => {
  it('rejects a request whose digest does not match its payload', () => {
    const r = newReplica(0);
    r.submit({ digest: new Uint8Array(32), payload: new Uint8Array([1]) });
    const [a] = r.takeActions();
    expect(a).toMatchObject({ type: 'reject', reason: 'invalid' });
  });

  it('rejects when the pending queue is full, and ignores a duplicate submission', () => {
    const r = newReplica(1, { maxPendingRequests: 1 });
    const req = makeRequest();
    r.submit(req);
    r.submit(req);
    expect(r.takeActions()).toEqual([]);
    r.submit(makeRequest());
    expect(r.takeActions()).toEqual([expect.objectContaining({ type: 'reject', reason: 'overloaded' })]);
  });

  it('answers an already executed request from the reply cache', () => {
    const c = new Cluster();
    const req = makeRequest();
    c.submit(req);
    c.runUntil(() => c.executed[2]!.length === 1);
    c.replica(2).submit(req);
    expect(c.replica(2).takeActions()).toEqual([{ type: 'resend-reply', digest: req.digest, seq: 1 }]);
  });
});

describe('primary batching', () => {
  it('persists the pre-prepare before sending it', () => {
    const r = newReplica(0, { batchDelayTicks: 0 });
    r.submit(makeRequest());
    expect(kinds(r.takeActions())).toEqual(['persist:accepted', 'send:pre-prepare']);
  });

  it('cuts a full batch at once and a partial one after batchDelayTicks', () => {
    const r = newReplica(0, { batchDelayTicks: 2, batchMax: 3 });
    r.submit(makeRequest());
    expect(r.takeActions()).toEqual([]);
    r.tick(NOW + 10, ENTROPY);
    expect(kinds(r.takeActions())).not.toContain('send:pre-prepare');
    r.tick(NOW + 20, ENTROPY);
    const sent = r.takeActions().find((a) => a.type === 'send' && a.msg.type === 'pre-prepare');
    expect(sent && sent.type === 'send' && sent.msg.type === 'pre-prepare' && sent.msg.batch.requests.length).toBe(1);
    for (let i = 0; i < 3; i++) r.submit(makeRequest());
    const full = r.takeActions().find((a) => a.type === 'send' && a.msg.type === 'pre-prepare');
    expect(full && full.type === 'send' && full.msg.type === 'pre-prepare' && full.msg.batch.requests.length).toBe(3);
  });

  it('does not propose beyond the high watermark', () => {
    const r = newReplica(0, { batchDelayTicks: 0, batchMax: 1 });
    for (let i = 0; i < 12; i++) r.submit(makeRequest());
    const seqs = r
      .takeActions()
      .flatMap((a) => (a.type === 'send' && a.msg.type === 'pre-prepare' ? [a.msg.seq] : []));
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

describe('pre-prepare at a backup', () => {
  const req = makeRequest();
  const batch = batchOf([req]);

  it('accepts: persists it, then sends a prepare', () => {
    const r = newReplica(1);
    r.receive(0, prePrepare(1, batch));
    expect(kinds(r.takeActions())).toEqual(['persist:accepted', 'send:prepare']);
  });

  it('drops a pre-prepare that is not from the primary, outside the watermarks, or for another view', () => {
    const r = newReplica(1);
    expectDrop(r, 'not-primary', () => r.receive(2, prePrepare(1, batch, 0, 2)));
    expectDrop(r, 'outside-watermarks', () => r.receive(0, prePrepare(9, batch)));
    expectDrop(r, 'outside-watermarks', () => r.receive(0, prePrepare(0, batch)));
    expectDrop(r, 'future-view', () => r.receive(2, prePrepare(1, batch, 2, 2)));
  });

  it('drops bad signatures, forged senders, non-members and malformed bytes', () => {
    const r = newReplica(1);
    const good = prePrepare(1, batch);
    expectDrop(r, 'bad-signature', () => r.receive(0, { ...good, sig: new Uint8Array(32) }));
    expectDrop(r, 'sender-mismatch', () => r.receive(2, good));
    expectDrop(r, 'non-member', () => r.receive(9, good));
    expectDrop(r, 'non-member', () => r.receive(1, good));
    expectDrop(r, 'malformed', () => r.receiveBytes(0, encodeMessage(good).subarray(0, 20)));
  });

  it('drops an invalid batch: wrong digest, empty, duplicate request, clock skew', () => {
    const r = newReplica(1);
    const wrongDigest = signAs<PrePrepareMsg>(0, { type: 'pre-prepare', sender: 0, view: 0, seq: 1, digest: new Uint8Array(32), batch });
    expectDrop(r, 'invalid', () => r.receive(0, wrongDigest));
    expectDrop(r, 'invalid', () => r.receive(0, prePrepare(1, { timestamp: 0, seed: new Uint8Array(32), requests: [] })));
    expectDrop(r, 'invalid', () => r.receive(0, prePrepare(1, batchOf([req, req]))));
    expectDrop(r, 'clock-skew', () => r.receive(0, prePrepare(1, batchOf([req], NOW + 60_000))));
  });

  it('counts a conflicting pre-prepare for the same slot as equivocation', () => {
    const r = newReplica(1);
    r.receive(0, prePrepare(1, batch));
    r.takeActions();
    expectDrop(r, 'equivocation', () => r.receive(0, prePrepare(1, batchOf([makeRequest()]))));
    expectDrop(r, 'duplicate', () => r.receive(0, prePrepare(1, batch)));
  });

  it('drops a timestamp that goes backwards relative to a neighbouring batch of the same view', () => {
    const r = newReplica(1);
    r.receive(0, prePrepare(2, batchOf([makeRequest()], NOW + 100)));
    r.takeActions();
    expectDrop(r, 'invalid', () => r.receive(0, prePrepare(3, batchOf([makeRequest()], NOW + 50))));
  });
});

describe('prepare and commit', () => {
  const batch = batchOf([makeRequest()]);
  const digest = batchDigest(batch);

  it('prepares with 2s matching prepares, persisting the certificate before committing', () => {
    const r = newReplica(1);
    r.receive(0, prePrepare(1, batch));
    r.takeActions();
    // 2s = 2 prepares from distinct backups: its own plus one more.
    r.receive(2, vote<PrepareMsg>('prepare', 2, 1, new Uint8Array(32)));
    expect(kinds(r.takeActions())).toEqual([]);
    r.receive(3, vote<PrepareMsg>('prepare', 3, 1, digest));
    expect(kinds(r.takeActions())).toEqual(['persist:prepared', 'send:commit']);
  });

  it('ignores a prepare from the primary and counts duplicates and equivocation', () => {
    const r = newReplica(1);
    expectDrop(r, 'invalid', () => r.receive(0, vote<PrepareMsg>('prepare', 0, 1, digest)));
    r.receive(2, vote<PrepareMsg>('prepare', 2, 1, digest));
    r.takeActions();
    expectDrop(r, 'duplicate', () => r.receive(2, vote<PrepareMsg>('prepare', 2, 1, digest)));
    expectDrop(r, 'equivocation', () => r.receive(2, vote<PrepareMsg>('prepare', 2, 1, new Uint8Array(32))));
  });

  it('commits with 2s+1 matching commits: persists the batch, then executes it', () => {
    const r = newReplica(1);
    r.receive(0, prePrepare(1, batch));
    r.receive(2, vote<PrepareMsg>('prepare', 2, 1, digest));
    r.receive(3, vote<PrepareMsg>('prepare', 3, 1, digest));
    r.receive(0, vote<CommitMsg>('commit', 0, 1, digest));
    r.takeActions();
    r.receive(2, vote<CommitMsg>('commit', 2, 1, digest));
    const actions = r.takeActions();
    expect(kinds(actions)).toEqual(['persist:committed', 'execute']);
    const exec = actions.find((a) => a.type === 'execute');
    expect(exec && exec.type === 'execute' && exec.batch).toMatchObject({ seq: 1, timestamp: NOW, isNull: false, duplicates: [] });
  });

  it('does not commit on commits alone, without being prepared', () => {
    const r = newReplica(1);
    r.receive(0, prePrepare(1, batch));
    for (const id of [0, 2, 3]) r.receive(id, vote<CommitMsg>('commit', id, 1, digest));
    expect(kinds(r.takeActions()).filter((k) => k === 'execute')).toEqual([]);
  });

  it('skips at execution a request that a faulty primary ordered twice, on every replica alike', () => {
    const c = new Cluster();
    const req = makeRequest('twice');
    // Replica 0 is the primary; it (faultily) proposes the same request at seq 1 and seq 2.
    for (const seq of [1, 2]) {
      const pp = signAs<PrePrepareMsg>(0, { type: 'pre-prepare', sender: 0, view: 0, seq, digest: batchDigest(batchOf([req], c.now + seq)), batch: batchOf([req], c.now + seq) });
      for (const id of [1, 2, 3]) c.inflight.push({ from: 0, to: id, msg: pp });
    }
    c.runUntil(() => [1, 2, 3].every((id) => c.executed[id]!.length === 2));
    for (const id of [1, 2, 3]) {
      const [first, second] = c.executed[id]!;
      expect(first!.requests.map((r) => r.digest)).toEqual([req.digest]);
      expect(second!.requests).toEqual([]);
      expect(second!.duplicates).toEqual([{ digest: req.digest, seq: 1 }]);
    }
  });
});

describe('checkpoints', () => {
  it('sends a checkpoint after executing seq K, makes it stable with 2s+1 and truncates the log', () => {
    const c = new Cluster();
    for (let i = 0; i < 5; i++) c.submit(makeRequest());
    c.runUntil(() => c.all().every((id) => c.replica(id).inspect().lowWatermark === 4));
    for (const id of c.all()) {
      const st = c.replica(id).inspect();
      expect(st.highWatermark).toBe(12);
      expect(st.minSlotSeq === null || st.minSlotSeq > 4).toBe(true);
      expect(c.wal[id]!.some((rec) => rec.kind === 'snapshot' && rec.snapshot.stable.seq === 4)).toBe(true);
      expect(c.events[id]!).toContainEqual({ kind: 'checkpoint-stable', seq: 4 });
    }
  });

  it('drops checkpoints that are not at a multiple of K, stale, or conflicting', () => {
    const r = newReplica(1);
    const cp = (seq: number, digest: Uint8Array, sender = 2): CheckpointMsg => signAs<CheckpointMsg>(sender, { type: 'checkpoint', sender, seq, digest });
    expectDrop(r, 'invalid', () => r.receive(2, cp(3, GENESIS_HISTORY)));
    expectDrop(r, 'invalid', () => r.receive(2, cp(0, GENESIS_HISTORY)));
    r.receive(2, cp(4, GENESIS_HISTORY));
    r.takeActions();
    expectDrop(r, 'equivocation', () => r.receive(2, cp(4, new Uint8Array(32))));
    // Two more matching votes make 4 stable (history digests are not checked until executed).
    r.receive(3, cp(4, GENESIS_HISTORY, 3));
    r.receive(0, cp(4, GENESIS_HISTORY, 0));
    expect(r.inspect().lowWatermark).toBe(4);
    r.takeActions();
    expectDrop(r, 'stale-checkpoint', () => r.receive(2, cp(4, GENESIS_HISTORY)));
  });

  it('executed() out of order is a usage error', () => {
    const r = newReplica(1);
    expect(() => r.executed(1)).toThrow(expect.objectContaining({ code: PbftErrorCodes.USAGE }) as Error);
  });
});

describe('view change', () => {
  it('a backup whose request is not executed in time sends a VIEW-CHANGE after persisting a snapshot', () => {
    const r = newReplica(2);
    r.submit(makeRequest());
    let actions: Action[] = [];
    for (let t = 1; t <= 10 && !actions.some((a) => a.type === 'send' && a.msg.type === 'view-change'); t++) {
      r.tick(NOW + t * 10, ENTROPY);
      actions = r.takeActions();
    }
    const k = kinds(actions);
    expect(k.indexOf('persist:snapshot')).toBeGreaterThanOrEqual(0);
    expect(k.indexOf('persist:snapshot')).toBeLessThan(k.indexOf('send:view-change'));
    expect(r.inspect()).toMatchObject({ view: 1, inViewChange: true });
    // Normal-case messages are no longer accepted.
    expectDrop(r, 'stale-view', () => r.receive(0, prePrepare(1, batchOf([makeRequest()]))));
  });

  function viewChange(sender: number, newView: number): ViewChangeMsg {
    return signAs<ViewChangeMsg>(sender, { type: 'view-change', sender, newView, stable: { seq: 0, digest: GENESIS_HISTORY, sigs: [] }, prepared: [] });
  }

  it('joins a view change that s+1 other replicas ask for', () => {
    const r = newReplica(3);
    r.receive(1, viewChange(1, 1));
    expect(r.inspect().inViewChange).toBe(false);
    r.receive(2, viewChange(2, 1));
    expect(r.inspect()).toMatchObject({ view: 1, inViewChange: true });
    expect(kinds(r.takeActions())).toContain('send:view-change');
  });

  it('the new primary sends NEW-VIEW with 2s+1 view changes; a backup accepts it and rejects a tampered one', () => {
    const primary = newReplica(1);
    primary.receive(2, viewChange(2, 1));
    primary.receive(3, viewChange(3, 1));
    const nv = primary.takeActions().flatMap((a) => (a.type === 'send' && a.msg.type === 'new-view' ? [a.msg] : []))[0];
    expect(nv).toBeDefined();
    expect(nv!.viewChanges.map((vc) => vc.sender)).toEqual([1, 2, 3]);
    expect(primary.inspect()).toMatchObject({ view: 1, inViewChange: false });

    const backup = newReplica(3);
    expectDrop(backup, 'invalid', () => backup.receive(1, signAs(1, { ...nv!, viewChanges: nv!.viewChanges.slice(1) })));
    const wrongDigest = { ...nv!.prePrepares[0], seq: 1, digest: new Uint8Array(32), sig: new Uint8Array(32) };
    expectDrop(backup, 'invalid', () => backup.receive(1, signAs(1, { ...nv!, prePrepares: [wrongDigest] })));
    expectDrop(backup, 'bad-signature', () => backup.receive(1, { ...nv!, sig: new Uint8Array(32) }));
    backup.receive(1, nv!);
    expect(backup.inspect()).toMatchObject({ view: 1, inViewChange: false, primary: 1 });
    expect(kinds(backup.takeActions())).toContain('event:view-changed');
    // A relayed copy (from a replica other than the primary) is fine too, once.
    expectDrop(backup, 'stale-view', () => backup.receive(2, nv!));
  });

  it('drops a view change with a forged prepared certificate', () => {
    const r = newReplica(3);
    const forged = signAs<ViewChangeMsg>(2, {
      type: 'view-change',
      sender: 2,
      newView: 1,
      stable: { seq: 0, digest: GENESIS_HISTORY, sigs: [] },
      prepared: [{ view: 0, seq: 1, digest: new Uint8Array(32), primarySig: new Uint8Array(32), prepares: [{ replica: 1, sig: new Uint8Array(32) }, { replica: 2, sig: new Uint8Array(32) }] }],
    });
    expectDrop(r, 'invalid', () => r.receive(2, forged));
  });
});

describe('catch-up', () => {
  it('serves committed batches with certificates and refuses fake ones', () => {
    const c = new Cluster();
    for (let i = 0; i < 3; i++) c.submit(makeRequest());
    c.runUntil(() => c.executed[0]!.length >= 3);
    const server = c.replica(0);
    server.receive(3, signAs(3, { type: 'fetch', sender: 3, fromSeq: 1, toSeq: 3 }));
    const reply = server.takeActions().flatMap((a) => (a.type === 'send' && a.msg.type === 'fetch-reply' ? [a.msg] : []))[0]!;
    expect(reply.entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(reply.entries[0]!.cert.commits).toHaveLength(3);

    const fresh = newReplica(3);
    const fake = signAs<PbftMessage>(0, { ...reply, entries: [{ ...reply.entries[0]!, cert: { ...reply.entries[0]!.cert, commits: reply.entries[0]!.cert.commits.slice(0, 2) } }] } as never);
    expectDrop(fresh, 'invalid', () => fresh.receive(0, fake));
    fresh.receive(0, reply);
    const executed = fresh.takeActions().flatMap((a) => (a.type === 'execute' ? [a.batch.seq] : []));
    expect(executed).toEqual([1, 2, 3]);
  });

  it('rate-limits fetches per peer and tick', () => {
    const r = newReplica(0);
    r.receive(3, signAs(3, { type: 'fetch', sender: 3, fromSeq: 1, toSeq: 3 }));
    r.takeActions();
    expectDrop(r, 'rate-limited', () => r.receive(3, signAs(3, { type: 'fetch', sender: 3, fromSeq: 1, toSeq: 3 })));
  });
});

describe('restart', () => {
  it('refuses records that do not cover what the shell says it executed', () => {
    expect(() => new Replica({ ...TEST_CONFIG, id: 1 }, simCrypto(keys, 1), { records: [], lastExecuted: 3 })).toThrow(
      expect.objectContaining({ code: PbftErrorCodes.RESTORE }) as Error,
    );
  });

  it('does not accept a different pre-prepare for a slot it accepted before the crash', () => {
    const c = new Cluster();
    const batch = batchOf([makeRequest()], c.now);
    c.replica(1).receive(0, prePrepare(1, batch));
    c.collect(1);
    c.crash(1);
    c.restart(1);
    const r = c.replica(1);
    r.takeActions();
    expectDrop(r, 'equivocation', () => r.receive(0, prePrepare(1, batchOf([makeRequest()], c.now))));
  });
});

describe('Ed25519', () => {
  it('a cluster signing with node:crypto Ed25519 orders a request', () => {
    const pairs = Array.from({ length: 4 }, () => generateKeyPairSync('ed25519'));
    const publics = pairs.map((p) => p.publicKey);
    const replicas = pairs.map((p, id) => new Replica({ ...TEST_CONFIG, id }, createEd25519Crypto(p.privateKey, publics)));
    const queue: { from: number; to: number; bytes: Uint8Array }[] = [];
    const executed: number[][] = [[], [], [], []];
    const drain = (id: number): void => {
      for (const a of replicas[id]!.takeActions()) {
        if (a.type === 'send') for (let to = 0; to < 4; to++) if (to !== id && (a.to === 'all' || a.to === to)) queue.push({ from: id, to, bytes: encodeMessage(a.msg) });
        if (a.type === 'execute') {
          executed[id]!.push(a.batch.seq);
          replicas[id]!.executed(a.batch.seq);
          drain(id);
        }
      }
    };
    replicas.forEach((r, id) => {
      r.tick(NOW, ENTROPY);
      drain(id);
    });
    const req = { digest: sha256(new Uint8Array([1, 2, 3])), payload: new Uint8Array([1, 2, 3]) };
    replicas.forEach((r, id) => {
      r.submit(req);
      drain(id);
    });
    while (queue.length > 0) {
      const m = queue.shift()!;
      replicas[m.to]!.receiveBytes(m.from, m.bytes);
      drain(m.to);
    }
    expect(executed).toEqual([[1], [1], [1], [1]]);
    for (const r of replicas) expect(r.counters()['bad-signature']).toBe(0);
  });

  it('rejects keys that are not Ed25519', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => createEd25519Crypto(privateKey, [])).toThrow(CbftError);
  });
});
