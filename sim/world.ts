import { toHex } from '../src/codec/binary.js';
import { sha256 } from '../src/crypto/hash.js';
import type { Action, ClientRequest, ExecuteBatch, MutantName, PbftMessage, PersistRecord, ResolvedConfig } from '../src/pbft/index.js';
import { Replica, compactRecords, decodeMessage, decodeRecord, encodeMessage, encodeRecord } from '../src/pbft/index.js';
import { Adversary } from './adversary.js';
import type { Transmission } from './adversary.js';
import { EventQueue } from './event-queue.js';
import { simCrypto, simKeys } from './fake-crypto.js';
import { AgreementChecker, checkReplicaState } from './invariants.js';
import { Prng } from './prng.js';
import type { Scenario } from './scenario.js';
import { describeScenario, drawScenario } from './scenario.js';
import { Trace } from './trace.js';

export interface RunOptions {
  readonly seed: number;
  readonly s: number;
  /** Steps of the fault phase; a step is one simulator event. */
  readonly steps: number;
  readonly mutant?: MutantName;
  /** Keep the whole trace (for a replay), not just the tail. */
  readonly fullTrace?: boolean;
}

export interface RunStats {
  steps: number;
  livenessSteps: number;
  virtualMs: number;
  requests: number;
  decidedSeqs: number;
  maxView: number;
  viewChanges: number;
  stableCheckpoints: number;
  crashes: number;
  partitions: number;
  catchUps: number;
  messages: number;
  drops: Record<string, number>;
}

export interface RunResult {
  readonly ok: boolean;
  readonly seed: number;
  readonly s: number;
  readonly scenario: string;
  readonly failure?: string;
  readonly trace?: string[];
  readonly stats: RunStats;
}

type SimEvent =
  | { time: number; order: number; kind: 'tick'; node: number; instance: number }
  | { time: number; order: number; kind: 'deliver'; to: number; from: number; fromInstance: number; bytes: Uint8Array; note: string }
  | { time: number; order: number; kind: 'client' }
  | { time: number; order: number; kind: 'submit'; node: number; request: number }
  | { time: number; order: number; kind: 'report'; node: number; incarnation: number }
  | { time: number; order: number; kind: 'chaos' }
  | { time: number; order: number; kind: 'restart'; node: number }
  | { time: number; order: number; kind: 'resubmit' };

type EventBody = SimEvent extends infer E ? (E extends SimEvent ? Omit<E, 'order'> : never) : never;

/** A correct replica: the engine plus what survives a crash (its WAL and its executor's record). */
interface HonestNode {
  readonly id: number;
  engine: Replica | null;
  wal: PersistRecord[];
  walCompactedAt: number;
  /** Durable: the shell's record of executed batches. */
  lastExecuted: number;
  executedRequests: Set<string>;
  /** Execute actions of the current incarnation not yet reported. */
  execQueue: ExecuteBatch[];
  lastEmitted: number;
  nextReportTime: number;
  incarnation: number;
  crashPending: boolean;
  /** Request digest -> seq it was executed at (to catch double execution across restarts). */
  requestSeq: Map<string, number>;
}

interface ByzantineNode {
  readonly id: number;
  readonly adversary: Adversary;
  readonly instances: Replica[];
}

const START_TIME_MS = 1_000_000;
const TRACE_TAIL = 250;

/** Runs one seeded scenario: a fault phase of `steps` events, then a liveness phase. */
export function runSeed(options: RunOptions): RunResult {
  return new World(options).run();
}

class World {
  private readonly sc: Scenario;
  private readonly rng: Prng;
  private readonly netRng: Prng;
  /**
   * Dedup hash keys, one fresh key per engine instance (restarts included), as the sidecar draws
   * one per process. A stream of its own, so the other draws (and thus each seed's run) are as before.
   */
  private readonly dedupKeyRng: Prng;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly trace: Trace;
  private readonly agreement = new AgreementChecker();
  private readonly honest = new Map<number, HonestNode>();
  private readonly byzantine = new Map<number, ByzantineNode>();
  private readonly keys: Uint8Array[];
  private readonly entropy: Prng[][];
  private readonly configs: ResolvedConfig[] = [];
  private readonly requests: ClientRequest[] = [];
  private readonly twinGroup: number[];
  private now = START_TIME_MS;
  private phase: 'faults' | 'liveness' = 'faults';
  private partition: { side: Set<number>; until: number } | null = null;
  private failure: string | null = null;
  private readonly stats: RunStats;

  constructor(private readonly options: RunOptions) {
    this.sc = drawScenario(options.seed, options.s, options.mutant);
    this.rng = new Prng(options.seed * 7919 + options.s);
    this.netRng = this.rng.fork();
    this.dedupKeyRng = new Prng((options.seed * 7919 + options.s) ^ 0x64656475);
    this.trace = new Trace(options.fullTrace ? null : TRACE_TAIL);
    this.keys = simKeys(this.sc.n, options.seed);
    this.entropy = Array.from({ length: this.sc.n }, () => [this.rng.fork(), this.rng.fork()]);
    this.twinGroup = Array.from({ length: this.sc.n }, () => this.rng.int(2));
    this.stats = {
      steps: 0,
      livenessSteps: 0,
      virtualMs: 0,
      requests: 0,
      decidedSeqs: 0,
      maxView: 0,
      viewChanges: 0,
      stableCheckpoints: 0,
      crashes: 0,
      partitions: 0,
      catchUps: 0,
      messages: 0,
      drops: {},
    };
    for (let id = 0; id < this.sc.n; id++) {
      const behaviour = this.sc.byzantine.get(id);
      if (behaviour) {
        const count = behaviour === 'twins' ? 2 : 1;
        const instances = Array.from({ length: count }, () => this.newEngine(id));
        const adversary = new Adversary(
          id,
          behaviour,
          simCrypto(this.keys, id),
          this.rng.fork(),
          this.sc.n,
          instances[0]!.config.checkpointInterval,
          this.sc.slowPrimaryDelayMs,
        );
        this.byzantine.set(id, { id, adversary, instances });
        this.configs[id] = instances[0]!.config;
      } else {
        const node: HonestNode = {
          id,
          engine: this.newEngine(id),
          wal: [],
          walCompactedAt: 0,
          lastExecuted: 0,
          executedRequests: new Set(),
          execQueue: [],
          lastEmitted: 0,
          nextReportTime: 0,
          incarnation: 0,
          crashPending: false,
          requestSeq: new Map(),
        };
        this.honest.set(id, node);
        this.configs[id] = node.engine!.config;
      }
    }
  }

  private newEngine(id: number, restored?: { records: PersistRecord[]; lastExecuted: number }): Replica {
    const dedupHashKey = this.dedupKeyRng.bytes(8);
    return new Replica({ ...this.sc.engine, s: this.sc.s, id, dedupHashKey }, simCrypto(this.keys, id), restored);
  }

  run(): RunResult {
    for (let id = 0; id < this.sc.n; id++) {
      const instances = this.byzantine.get(id)?.instances.length ?? 1;
      for (let k = 0; k < instances; k++) this.schedule({ time: this.now + this.rng.int(this.sc.tickMs), kind: 'tick', node: id, instance: k });
    }
    this.schedule({ time: this.now + 1, kind: 'client' });
    this.schedule({ time: this.now + this.sc.chaosEveryMs, kind: 'chaos' });

    for (let step = 0; step < this.options.steps && this.failure === null; step++) {
      this.step();
      this.stats.steps++;
    }
    if (this.failure === null) {
      this.heal();
      // A backlog left by overload drains at a bounded rate: the bound grows with it.
      const batchMax = this.configs[[...this.honest.keys()][0]!]!.batchMax;
      const budget = this.sc.livenessBudgetMs + Math.ceil(this.outstanding() / batchMax) * this.sc.livenessPerBatchMs;
      const deadline = this.now + budget;
      while (this.failure === null && !this.allExecuted()) {
        if (this.now > deadline) {
          this.failure = `LIVENESS: after ${budget} ms without faults, not every request was executed by every correct replica:\n${this.progressReport()}`;
          break;
        }
        this.step();
        this.stats.livenessSteps++;
      }
    }
    this.stats.virtualMs = this.now - START_TIME_MS;
    this.stats.requests = this.requests.length;
    this.stats.decidedSeqs = this.agreement.decidedCount;
    for (const node of this.honest.values()) {
      const counters: Record<string, number> = node.engine?.counters() ?? {};
      for (const [reason, count] of Object.entries(counters)) if (count > 0) this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + count;
    }
    const base = { seed: this.options.seed, s: this.options.s, scenario: describeScenario(this.sc), stats: this.stats };
    if (this.failure !== null) return { ...base, ok: false, failure: this.failure, trace: this.trace.toLines(START_TIME_MS) };
    return { ...base, ok: true };
  }

  private schedule(event: EventBody): void {
    this.queue.push({ ...event, order: 0 } as SimEvent);
  }

  private step(): void {
    const ev = this.queue.pop();
    if (!ev) {
      this.failure = 'simulator: event queue ran dry';
      return;
    }
    this.now = ev.time;
    switch (ev.kind) {
      case 'tick':
        return this.onTick(ev.node, ev.instance);
      case 'deliver':
        return this.onDeliver(ev.to, ev.from, ev.fromInstance, ev.bytes, ev.note);
      case 'client':
        return this.onClient();
      case 'submit':
        return this.onSubmit(ev.node, ev.request);
      case 'report':
        return this.onReport(ev.node, ev.incarnation);
      case 'chaos':
        return this.onChaos();
      case 'restart':
        return this.restart(ev.node);
      case 'resubmit':
        return this.onResubmit();
    }
  }

  // -----------------------------------------------------------------------------------------------
  // Events

  private clock(id: number): number {
    return this.now + this.sc.clockOffsetMs[id]!;
  }

  private onTick(id: number, instance: number): void {
    this.schedule({ time: this.now + this.sc.tickMs, kind: 'tick', node: id, instance });
    const entropy = this.entropy[id]![instance]!.bytes(32);
    const node = this.honest.get(id);
    if (node) {
      if (!node.engine) return;
      node.engine.tick(this.clock(id), entropy);
      this.processHonest(node);
      return;
    }
    const byz = this.byzantine.get(id)!;
    const engine = byz.instances[instance]!;
    engine.tick(this.clock(id), entropy);
    this.processByzantine(byz, instance);
    if (instance === 0) for (const t of byz.adversary.onTick(engine.inspect())) this.sendTransmission(id, instance, t);
  }

  private onDeliver(to: number, from: number, fromInstance: number, bytes: Uint8Array, note: string): void {
    this.stats.messages++;
    const node = this.honest.get(to);
    if (node) {
      if (!node.engine) return;
      const tag = this.byzantine.has(from) ? `(byz${fromInstance})` : '';
      this.trace.add(this.now, () => `r${from}${tag} -> r${to}: ${describeBytes(bytes, note)}`);
      node.engine.receiveBytes(from, bytes);
      this.processHonest(node);
      return;
    }
    const byz = this.byzantine.get(to)!;
    byz.adversary.record(bytes);
    byz.instances.forEach((engine, k) => {
      engine.receiveBytes(from, bytes);
      this.processByzantine(byz, k);
    });
  }

  private onClient(): void {
    if (this.phase !== 'faults') return;
    const index = this.requests.length;
    const payload = new Uint8Array(24);
    new DataView(payload.buffer).setUint32(0, index);
    payload.set(this.rng.bytes(20), 4);
    this.requests.push({ digest: sha256(payload), payload });
    this.trace.add(this.now, `client request #${index} ${toHex(this.requests[index]!.digest).slice(0, 8)}`);
    for (const id of this.honest.keys()) {
      if (this.rng.chance(this.sc.submitCoverage)) this.schedule({ time: this.now + this.rng.int(5), kind: 'submit', node: id, request: index });
    }
    for (const id of this.byzantine.keys()) this.schedule({ time: this.now + this.rng.int(5), kind: 'submit', node: id, request: index });
    const gap = Math.max(1, Math.round(-Math.log(1 - this.rng.next()) * this.sc.requestGapMs));
    this.schedule({ time: this.now + gap, kind: 'client' });
  }

  private onSubmit(id: number, index: number): void {
    const request = this.requests[index]!;
    const node = this.honest.get(id);
    if (node) {
      if (!node.engine) return;
      node.engine.submit(request);
      this.processHonest(node);
      return;
    }
    const byz = this.byzantine.get(id)!;
    byz.instances.forEach((engine, k) => {
      engine.submit(request);
      this.processByzantine(byz, k);
    });
  }

  /** The shell finished executing the oldest queued batch and recorded it durably. */
  private onReport(id: number, incarnation: number): void {
    const node = this.honest.get(id)!;
    if (node.incarnation !== incarnation || !node.engine) return;
    const batch = node.execQueue.shift();
    if (!batch) return;
    if (batch.seq !== node.lastExecuted + 1) {
      this.fail(`EXECUTION ORDER: replica ${id} completed seq ${batch.seq} after ${node.lastExecuted}`);
      return;
    }
    node.lastExecuted = batch.seq;
    for (const r of batch.requests) node.executedRequests.add(toHex(r.digest));
    node.engine.executed(batch.seq);
    this.processHonest(node);
  }

  private onChaos(): void {
    this.schedule({ time: this.now + this.sc.chaosEveryMs, kind: 'chaos' });
    if (this.phase !== 'faults') return;
    if (this.partition && this.now >= this.partition.until) {
      this.trace.add(this.now, 'partition healed');
      this.partition = null;
    }
    if (!this.partition && this.rng.chance(this.sc.partitionChance)) {
      const ids = this.rng.shuffle(Array.from({ length: this.sc.n }, (_, i) => i));
      const side = new Set(ids.slice(0, this.rng.range(1, this.sc.n - 1)));
      this.partition = { side, until: this.now + this.rng.range(100, 1500) };
      this.stats.partitions++;
      this.trace.add(this.now, `partition {${[...side].sort().join(',')}} | rest until ${this.partition.until - START_TIME_MS}ms`);
    }
    const down = [...this.honest.values()].filter((n) => !n.engine || n.crashPending).length;
    if (down <= this.sc.s && this.rng.chance(this.sc.crashChance)) {
      const up = [...this.honest.values()].filter((n) => n.engine && !n.crashPending);
      if (up.length > 0) this.rng.pick(up).crashPending = true;
    }
    if (this.byzantine.size > 0 && this.rng.chance(0.1)) {
      for (let i = 0; i < this.sc.n; i++) this.twinGroup[i] = this.rng.int(2);
      this.trace.add(this.now, `twins regroup: ${this.twinGroup.join('')}`);
    }
  }

  private onResubmit(): void {
    for (const node of this.honest.values()) {
      if (!node.engine) continue;
      for (const req of this.requests) {
        if (node.executedRequests.has(toHex(req.digest))) continue;
        node.engine.submit(req);
      }
      this.processHonest(node);
    }
    this.schedule({ time: this.now + 300, kind: 'resubmit' });
  }

  // -----------------------------------------------------------------------------------------------
  // Engine outputs

  private processHonest(node: HonestNode): void {
    const engine = node.engine;
    if (!engine) return;
    const actions = engine.takeActions();
    const crashAt = node.crashPending ? this.rng.int(actions.length + 1) : -1;
    for (let i = 0; i < actions.length; i++) {
      if (i === crashAt) return this.crash(node, `after ${i} of ${actions.length} actions`);
      this.carryOut(node, actions[i]!);
      if (this.failure !== null) return;
    }
    if (crashAt === actions.length) return this.crash(node, 'after its actions');
    this.checkEngine(node);
  }

  private carryOut(node: HonestNode, action: Action): void {
    switch (action.type) {
      case 'send':
        this.transmit(node.id, 0, action.to, encodeMessage(action.msg), 0, action.msg.type);
        return;
      case 'persist':
        node.wal.push(action.record);
        if (node.wal.length > 2 * node.walCompactedAt + 64) {
          node.wal = compactRecords(node.wal);
          node.walCompactedAt = node.wal.length;
        }
        return;
      case 'execute':
        return this.onExecute(node, action.batch);
      case 'resend-reply': {
        const seq = node.requestSeq.get(toHex(action.digest));
        if (seq !== action.seq) this.fail(`REPLY CACHE: replica ${node.id} resends ${toHex(action.digest).slice(0, 8)} as executed at ${action.seq}, but it ran at ${seq}`);
        return;
      }
      case 'reject':
        if (action.reason === 'invalid') this.fail(`REJECT: replica ${node.id} rejected a valid request: ${action.detail}`);
        return;
      case 'event':
        return this.onEvent(node.id, action.event);
    }
  }

  private onExecute(node: HonestNode, batch: ExecuteBatch): void {
    if (batch.seq !== node.lastEmitted + 1) {
      this.fail(`EXECUTION ORDER: replica ${node.id} was asked to execute seq ${batch.seq} after ${node.lastEmitted}`);
      return;
    }
    node.lastEmitted = batch.seq;
    const problem = this.agreement.check(node.id, batch);
    if (problem) return this.fail(problem);
    for (const r of batch.requests) {
      const key = toHex(r.digest);
      const earlier = node.requestSeq.get(key);
      if (earlier !== undefined && earlier !== batch.seq) return this.fail(`DOUBLE EXECUTION: replica ${node.id} executes request ${key.slice(0, 8)} at seq ${batch.seq}, already at ${earlier}`);
      node.requestSeq.set(key, batch.seq);
    }
    for (const d of batch.duplicates) {
      const key = toHex(d.digest);
      if (node.requestSeq.get(key) !== d.seq) return this.fail(`DEDUP: replica ${node.id} skips ${key.slice(0, 8)} as executed at ${d.seq}, but it ran at ${node.requestSeq.get(key)}`);
    }
    this.trace.add(this.now, `r${node.id} EXECUTE seq ${batch.seq}${batch.isNull ? ' (null)' : ''}: ${batch.requests.length} requests, ${batch.duplicates.length} duplicates`);
    node.execQueue.push(batch);
    node.nextReportTime = Math.max(node.nextReportTime, this.now) + this.rng.int(this.sc.executionDelayMaxMs + 1);
    this.schedule({ time: node.nextReportTime, kind: 'report', node: node.id, incarnation: node.incarnation });
  }

  private onEvent(id: number, event: import('../src/pbft/index.js').PbftEvent): void {
    switch (event.kind) {
      case 'dropped':
        return;
      case 'diverged':
        return this.fail(`DIVERGED: replica ${id} at seq ${event.seq}`);
      case 'view-change-started':
        this.stats.viewChanges++;
        this.trace.add(this.now, `r${id} starts view change to v${event.view} (timeout ${event.timeoutTicks} ticks)`);
        return;
      case 'view-changed':
        this.stats.maxView = Math.max(this.stats.maxView, event.view);
        this.trace.add(this.now, `r${id} enters view v${event.view} (primary r${event.primary})`);
        return;
      case 'checkpoint-stable':
        this.stats.stableCheckpoints++;
        this.trace.add(this.now, `r${id} stable checkpoint ${event.seq}`);
        return;
      case 'catch-up':
        this.stats.catchUps++;
        this.trace.add(this.now, `r${id} catch-up ${event.fromSeq}..${event.toSeq} from r${event.peer}`);
        return;
      case 'catch-up-unavailable':
        this.trace.add(this.now, `r${id} cannot catch up: needs ${event.neededSeq}, r${event.peer} has from ${event.oldestAvailable}`);
        return;
    }
  }

  private processByzantine(byz: ByzantineNode, instance: number): void {
    const engine = byz.instances[instance]!;
    for (let rounds = 0; rounds < 100; rounds++) {
      const actions = engine.takeActions();
      if (actions.length === 0) return;
      for (const action of actions) {
        if (action.type === 'send') {
          for (const t of byz.adversary.outgoing(action.msg, action.to)) this.sendTransmission(byz.id, instance, t);
        } else if (action.type === 'execute') {
          engine.executed(action.batch.seq);
        }
      }
    }
  }

  private sendTransmission(from: number, fromInstance: number, t: Transmission): void {
    this.transmit(from, fromInstance, t.to, t.bytes, t.extraDelayMs, t.note);
  }

  /** Puts a message on the simulated network, subject to the current faults. */
  private transmit(from: number, fromInstance: number, dest: number | 'all', bytes: Uint8Array, extraDelayMs: number, note: string): void {
    const targets = dest === 'all' ? this.othersOf(from) : [dest];
    for (const to of targets) {
      if (to === from) continue;
      if (this.byzantine.get(from)?.instances.length === 2 && this.twinGroup[to] !== fromInstance) continue;
      const faults = this.phase === 'faults';
      if (faults && this.partition && this.partition.side.has(from) !== this.partition.side.has(to)) continue;
      const net = this.sc.network;
      if (faults && this.netRng.chance(net.dropRate)) continue;
      const copies = faults && this.netRng.chance(net.duplicateRate) ? 2 : 1;
      for (let c = 0; c < copies; c++) {
        let delay = this.netRng.range(net.minDelayMs, net.maxDelayMs) + extraDelayMs;
        if (faults && this.netRng.chance(net.longDelayRate)) delay += this.netRng.range(1, net.longDelayMaxMs);
        this.schedule({ time: this.now + delay, kind: 'deliver', to, from, fromInstance, bytes, note });
      }
    }
  }

  private othersOf(id: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.sc.n; i++) if (i !== id) out.push(i);
    return out;
  }

  // -----------------------------------------------------------------------------------------------
  // Crashes, restarts, invariants, liveness

  private crash(node: HonestNode, when: string): void {
    node.engine = null;
    node.crashPending = false;
    node.execQueue = [];
    node.incarnation++;
    this.stats.crashes++;
    this.trace.add(this.now, `r${node.id} CRASHES ${when} (executed through ${node.lastExecuted}, WAL ${node.wal.length} records)`);
    this.schedule({ time: this.now + this.rng.range(100, 2000), kind: 'restart', node: node.id });
  }

  private restart(id: number): void {
    const node = this.honest.get(id)!;
    if (node.engine) return;
    // The WAL goes through its byte encoding, as it would on disk.
    const records = compactRecords(node.wal).map((r) => decodeRecord(encodeRecord(r)));
    try {
      node.engine = this.newEngine(id, { records, lastExecuted: node.lastExecuted });
    } catch (err) {
      this.fail(`RESTART: replica ${id} failed to restore from ${records.length} records: ${String(err)}`);
      return;
    }
    node.lastEmitted = node.lastExecuted;
    node.nextReportTime = this.now;
    this.trace.add(this.now, `r${id} RESTARTS from ${records.length} records, executed through ${node.lastExecuted}`);
    this.processHonest(node);
  }

  private checkEngine(node: HonestNode): void {
    const engine = node.engine;
    if (!engine) return;
    if (engine.lastInternalError !== null) {
      const err = engine.lastInternalError;
      return this.fail(`INTERNAL ERROR in replica ${node.id}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    const problem = checkReplicaState(engine.inspect(), this.configs[node.id]!);
    if (problem) this.fail(problem);
  }

  private fail(message: string): void {
    if (this.failure === null) this.failure = message;
  }

  /** Faults stop: the network heals, crashed replicas restart, the tops retry every request. */
  private heal(): void {
    this.phase = 'liveness';
    this.partition = null;
    this.trace.add(this.now, '=== faults stop: liveness phase ===');
    for (const node of this.honest.values()) {
      node.crashPending = false;
      if (!node.engine) this.restart(node.id);
    }
    this.schedule({ time: this.now + 1, kind: 'resubmit' });
  }

  /** Requests the slowest correct replica has not executed yet. */
  private outstanding(): number {
    let most = 0;
    for (const node of this.honest.values()) most = Math.max(most, this.requests.length - node.executedRequests.size);
    return most;
  }

  private allExecuted(): boolean {
    for (const node of this.honest.values()) if (node.executedRequests.size < this.requests.length) return false;
    return true;
  }

  private progressReport(): string {
    const lines: string[] = [];
    for (const node of this.honest.values()) {
      const st = node.engine?.inspect();
      lines.push(
        `  r${node.id}: executed ${node.executedRequests.size}/${this.requests.length} requests, through seq ${node.lastExecuted}` +
          (st ? `; view ${st.view}${st.inViewChange ? ' (changing)' : ''}, low ${st.lowWatermark}, dispatched ${st.lastDispatched}, pending ${st.pendingRequests}` : ' (down)'),
      );
    }
    return lines.join('\n');
  }
}

/** One line for the trace: message type and its key fields. */
function describeBytes(bytes: Uint8Array, note: string): string {
  let msg: PbftMessage;
  try {
    msg = decodeMessage(bytes);
  } catch {
    return `malformed (${note})`;
  }
  const extra = note && note !== msg.type ? ` [${note}]` : '';
  switch (msg.type) {
    case 'pre-prepare':
      return `pre-prepare v${msg.view} n${msg.seq} ${toHex(msg.digest).slice(0, 8)} (${msg.batch.requests.length} req)${extra}`;
    case 'prepare':
    case 'commit':
      return `${msg.type} v${msg.view} n${msg.seq} ${toHex(msg.digest).slice(0, 8)}${extra}`;
    case 'checkpoint':
      return `checkpoint n${msg.seq} ${toHex(msg.digest).slice(0, 8)}${extra}`;
    case 'view-change':
      return `view-change to v${msg.newView} stable ${msg.stable.seq} prepared [${msg.prepared.map((c) => `${c.seq}@v${c.view}`).join(' ')}]${extra}`;
    case 'new-view':
      return `new-view v${msg.view} from r${msg.sender} O=[${msg.prePrepares.map((p) => `${p.seq}:${toHex(p.digest).slice(0, 6)}`).join(' ')}]${extra}`;
    case 'status':
      return `status v${msg.view}${msg.inViewChange ? '*' : ''} stable ${msg.stableSeq} committed ${msg.committedThrough}${extra}`;
    case 'fetch':
      return `fetch ${msg.fromSeq}..${msg.toSeq}${extra}`;
    case 'fetch-reply':
      return `fetch-reply [${msg.entries.map((e) => e.seq).join(' ')}] oldest ${msg.oldestAvailable}${extra}`;
    case 'request':
      return `request ${toHex(msg.request.digest).slice(0, 8)}${extra}`;
  }
}
