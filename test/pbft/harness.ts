import { sha256 } from '../../src/crypto/hash.js';
import { expect } from 'vitest';
import type {
  Action,
  DropReason,
  ClientRequest,
  ExecuteBatch,
  PbftConfig,
  PbftEvent,
  PbftMessage,
  PersistRecord,
} from '../../src/pbft/index.js';
import { Replica, compactRecords, decodeMessage, decodeRecord, encodeMessage, encodeRecord } from '../../src/pbft/index.js';
import { signMessage, type Unsigned } from '../../src/pbft/signing.js';
import { simCrypto, simKeys } from '../../sim/fake-crypto.js';

/** A message in flight between two replicas. */
export interface Envelope {
  readonly from: number;
  readonly to: number;
  readonly msg: PbftMessage;
}

export type ClusterConfig = Omit<PbftConfig, 'id' | 'n'>;

export const TEST_CONFIG: ClusterConfig = {
  s: 1,
  checkpointInterval: 4,
  watermarkWindow: 8,
  batchMax: 2,
  batchDelayTicks: 0,
  viewChangeTicks: 10,
  statusTicks: 5,
  fetchRetryTicks: 3,
  fetchMaxBatches: 4,
  maxClockSkewMs: 1000,
};

let requestCounter = 0;

export function makeRequest(label = `req-${requestCounter++}`): ClientRequest {
  const payload = new TextEncoder().encode(label);
  return { digest: sha256(payload), payload };
}

/**
 * Hand-driven cluster for scripted scenarios: messages queue up in `inflight` and are delivered
 * only when the test says so, so each step of a scenario is explicit. Messages travel as bytes
 * through the real codec. Executions are reported back immediately unless `autoExecute` is off.
 */
export class Cluster {
  readonly n: number;
  readonly keys: Uint8Array[];
  readonly replicas: (Replica | null)[];
  readonly wal: PersistRecord[][];
  readonly executed: ExecuteBatch[][];
  readonly events: PbftEvent[][];
  readonly lastExecuted: number[];
  inflight: Envelope[] = [];
  now = 1_000_000;
  autoExecute = true;

  constructor(readonly config: ClusterConfig = TEST_CONFIG) {
    this.n = 3 * config.s + 1;
    this.keys = simKeys(this.n, 42);
    this.replicas = Array.from({ length: this.n }, (_, id) => new Replica({ ...config, id }, simCrypto(this.keys, id)));
    this.wal = Array.from({ length: this.n }, () => []);
    this.executed = Array.from({ length: this.n }, () => []);
    this.events = Array.from({ length: this.n }, () => []);
    this.lastExecuted = new Array<number>(this.n).fill(0);
    // The shell ticks from the start: the primary needs a clock and entropy to propose.
    this.tick(1);
  }

  replica(id: number): Replica {
    const r = this.replicas[id];
    if (!r) throw new Error(`replica ${id} is down`);
    return r;
  }

  /** Drains a replica's actions into the cluster (sends queue up, executions are reported). */
  collect(id: number): Action[] {
    const r = this.replicas[id];
    if (!r) return [];
    const all: Action[] = [];
    for (let round = 0; round < 1000; round++) {
      const actions = r.takeActions();
      if (actions.length === 0) break;
      all.push(...actions);
      for (const a of actions) {
        switch (a.type) {
          case 'send': {
            const targets = a.to === 'all' ? this.others(id) : [a.to];
            for (const to of targets) this.inflight.push({ from: id, to, msg: a.msg });
            break;
          }
          case 'persist':
            this.wal[id]!.push(a.record);
            break;
          case 'execute':
            this.executed[id]!.push(a.batch);
            if (this.autoExecute) {
              this.lastExecuted[id] = a.batch.seq;
              r.executed(a.batch.seq);
            }
            break;
          case 'event':
            this.events[id]!.push(a.event);
            break;
          default:
            break;
        }
      }
    }
    return all;
  }

  collectAll(): void {
    for (let id = 0; id < this.n; id++) this.collect(id);
  }

  submit(request: ClientRequest, to: readonly number[] = this.all()): void {
    for (const id of to) {
      const r = this.replicas[id];
      if (!r) continue;
      r.submit(request);
      this.collect(id);
    }
  }

  /** Advances every live replica by `count` ticks of 10 ms. */
  tick(count = 1, ids: readonly number[] = this.all()): void {
    for (let i = 0; i < count; i++) {
      this.now += 10;
      for (const id of ids) {
        const r = this.replicas[id];
        if (!r) continue;
        r.tick(this.now, sha256(new TextEncoder().encode(`entropy-${id}-${this.now}`)));
        this.collect(id);
      }
    }
  }

  /**
   * Delivers in-flight messages (FIFO) until none is left, dropping those `drop` selects.
   * Messages to a crashed replica are lost.
   */
  deliverAll(drop: (e: Envelope) => boolean = () => false, maxMessages = 100_000): number {
    let delivered = 0;
    while (this.inflight.length > 0 && delivered < maxMessages) {
      const e = this.inflight.shift()!;
      if (drop(e)) continue;
      this.deliver(e);
      delivered++;
    }
    return delivered;
  }

  deliver(e: Envelope): void {
    const r = this.replicas[e.to];
    if (!r) return;
    r.receiveBytes(e.from, encodeMessage(e.msg));
    this.collect(e.to);
  }

  /** Ticks and delivers until `done` holds (or fails after `maxTicks`). */
  runUntil(done: () => boolean, maxTicks = 500, drop?: (e: Envelope) => boolean): void {
    for (let i = 0; i < maxTicks; i++) {
      this.deliverAll(drop);
      if (done()) return;
      this.tick();
    }
    this.deliverAll(drop);
    if (!done()) throw new Error(`condition not reached after ${maxTicks} ticks`);
  }

  crash(id: number): void {
    this.replicas[id] = null;
    this.inflight = this.inflight.filter((e) => e.to !== id);
  }

  /** Restarts from the WAL (compacted unless told otherwise, and round-tripped through the record codec). */
  restart(id: number, compact = true): void {
    const wal = compact ? compactRecords(this.wal[id]!) : this.wal[id]!;
    const records = wal.map((r) => decodeRecord(encodeRecord(r)));
    this.replicas[id] = new Replica({ ...this.config, id }, simCrypto(this.keys, id), { records, lastExecuted: this.lastExecuted[id]! });
    this.collect(id);
  }

  all(): number[] {
    return Array.from({ length: this.n }, (_, i) => i);
  }

  others(id: number): number[] {
    return this.all().filter((i) => i !== id);
  }

  /** Executed request payloads of replica `id`, in order. */
  executedPayloads(id: number): string[] {
    return this.executed[id]!.flatMap((b) => b.requests.map((r) => new TextDecoder().decode(r.payload)));
  }

  /** Seq -> batch digest hex of replica `id`'s executions. */
  executedDigests(id: number): string[] {
    return this.executed[id]!.map((b) => `${b.seq}:${Buffer.from(b.batchDigest).toString('hex').slice(0, 12)}`);
  }
}

/** Decodes (strictly) what a message would be on the wire, for assertions. */
export function roundTrip(msg: PbftMessage): PbftMessage {
  return decodeMessage(encodeMessage(msg));
}

/** Keys, clock and entropy of the handler unit tests, which drive one replica by hand. */
export const keys = simKeys(4, 42);
export const NOW = 5_000_000;
export const ENTROPY = new Uint8Array(32).fill(7);

/** A message as replica `id` would sign it. */
export function signAs<T extends PbftMessage>(id: number, unsigned: Unsigned<T>): T {
  return signMessage<T>(simCrypto(keys, id), unsigned);
}

/** `act` makes `r` drop one message for `reason`: counted, reported, and nothing else done. */
export function expectDrop(r: Replica, reason: DropReason, act: () => void): void {
  const before = r.counters()[reason];
  act();
  const actions = r.takeActions();
  expect(r.counters()[reason]).toBe(before + 1);
  expect(actions.some((a) => a.type === 'event' && a.event.kind === 'dropped' && a.event.reason === reason)).toBe(true);
  expect(actions.some((a) => a.type === 'send' || a.type === 'persist' || a.type === 'execute' || a.type === 'reject')).toBe(false);
}
