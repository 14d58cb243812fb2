import type { PbftCrypto, PbftMessage, ReplicaInspection } from '../src/pbft/index.js';
import { batchDigest, encodeMessage } from '../src/pbft/index.js';
import { GENESIS_HISTORY } from '../src/pbft/digests.js';
import { signMessage } from '../src/pbft/signing.js';
import type { Unsigned } from '../src/pbft/signing.js';
import type { Prng } from './prng.js';
import type { ByzantineBehaviour } from './scenario.js';

/** One concrete message put on the wire by a Byzantine replica. */
export interface Transmission {
  readonly to: number;
  readonly bytes: Uint8Array;
  readonly extraDelayMs: number;
  readonly note: string;
}

const REPLAY_MEMORY = 256;

/**
 * A Byzantine replica runs the real engine (one instance, or two for Twins) and this adversary
 * rewrites what it sends and adds traffic of its own. It holds only its own signing key, so it can
 * lie, equivocate, replay and forge, but never sign as another replica.
 */
export class Adversary {
  private readonly memory: Uint8Array[] = [];
  private memoryNext = 0;

  constructor(
    readonly id: number,
    readonly behaviour: ByzantineBehaviour,
    private readonly crypto: PbftCrypto,
    private readonly rng: Prng,
    private readonly n: number,
    private readonly checkpointInterval: number,
    private readonly slowPrimaryDelayMs: number,
  ) {}

  /** Remembers traffic for later replay. */
  record(bytes: Uint8Array): void {
    if (this.behaviour !== 'replay' && this.behaviour !== 'mixed') return;
    if (this.memory.length < REPLAY_MEMORY) this.memory.push(bytes);
    else this.memory[this.memoryNext] = bytes;
    this.memoryNext = (this.memoryNext + 1) % REPLAY_MEMORY;
  }

  /** What actually leaves for an engine's `send` action. */
  outgoing(msg: PbftMessage, to: number | 'all'): Transmission[] {
    const targets = to === 'all' ? this.others() : [to];
    const plain = (): Transmission[] => {
      const bytes = encodeMessage(msg);
      this.record(bytes);
      return targets.map((t) => ({ to: t, bytes, extraDelayMs: 0, note: msg.type }));
    };
    switch (this.behaviour) {
      case 'silent':
        return [];
      case 'slow-primary':
        if (msg.type !== 'pre-prepare') return plain();
        return targets.map((t) => ({ to: t, bytes: encodeMessage(msg), extraDelayMs: this.slowPrimaryDelayMs, note: 'slow pre-prepare' }));
      case 'equivocate':
        return targets.map((t) => this.maybeConflicting(msg, t, 0.5));
      case 'mixed': {
        const out: Transmission[] = [];
        for (const t of targets) {
          const roll = this.rng.next();
          if (roll < 0.15) continue;
          if (roll < 0.35) out.push(this.maybeConflicting(msg, t, 1));
          else if (roll < 0.45) out.push({ to: t, bytes: encodeMessage(msg), extraDelayMs: this.rng.range(50, 1000), note: `delayed ${msg.type}` });
          else out.push({ to: t, bytes: encodeMessage(msg), extraDelayMs: 0, note: msg.type });
        }
        return out;
      }
      default:
        return plain();
    }
  }

  /** Extra traffic, once per tick. */
  onTick(state: ReplicaInspection): Transmission[] {
    const out: Transmission[] = [];
    const replay = this.behaviour === 'replay' ? 0.5 : this.behaviour === 'mixed' ? 0.15 : 0;
    const forge = this.behaviour === 'forge' ? 0.6 : this.behaviour === 'mixed' ? 0.2 : 0;
    if (replay > 0 && this.memory.length > 0 && this.rng.chance(replay)) {
      for (let i = this.rng.range(1, 3); i > 0; i--) {
        out.push({ to: this.randomOther(), bytes: this.rng.pick(this.memory), extraDelayMs: 0, note: 'replay' });
      }
    }
    if (forge > 0 && this.rng.chance(forge)) out.push(this.forgery(state));
    return out;
  }

  private others(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.n; i++) if (i !== this.id) out.push(i);
    return out;
  }

  private randomOther(): number {
    const r = this.rng.int(this.n - 1);
    return r >= this.id ? r + 1 : r;
  }

  private sign<T extends PbftMessage>(unsigned: Unsigned<T>): T {
    return signMessage<T>(this.crypto, unsigned);
  }

  /** The message, or (with probability p) a validly signed conflicting version of it. */
  private maybeConflicting(msg: PbftMessage, to: number, p: number): Transmission {
    if (!this.rng.chance(p)) return { to, bytes: encodeMessage(msg), extraDelayMs: 0, note: msg.type };
    let alt: PbftMessage;
    switch (msg.type) {
      case 'prepare':
      case 'commit':
        alt = this.sign({ ...msg, digest: this.rng.bytes(32) });
        break;
      case 'pre-prepare': {
        const requests = this.rng.shuffle([...msg.batch.requests]).slice(0, this.rng.range(1, msg.batch.requests.length));
        const batch = { ...msg.batch, seed: this.rng.bytes(32), requests };
        alt = this.sign({ ...msg, digest: batchDigest(batch), batch });
        break;
      }
      case 'checkpoint':
        alt = this.sign({ ...msg, digest: this.rng.bytes(32) });
        break;
      case 'view-change':
        // Lies by omission: claims nothing was prepared.
        alt = this.sign({ ...msg, prepared: [] });
        break;
      case 'status':
        alt = this.sign({ ...msg, committedThrough: msg.committedThrough + this.rng.range(1, 50) });
        break;
      default:
        alt = msg;
    }
    return { to, bytes: encodeMessage(alt), extraDelayMs: 0, note: `conflicting ${msg.type}` };
  }

  /** A message meant to be dropped: out of window, stale or future view, bad signature, malformed. */
  private forgery(state: ReplicaInspection): Transmission {
    const rng = this.rng;
    const to = this.randomOther();
    const window = state.highWatermark - state.lowWatermark;
    const seq = rng.pick([
      0,
      state.lowWatermark,
      state.highWatermark + 1,
      state.highWatermark + rng.range(1, 3 * window),
      rng.range(state.lowWatermark + 1, state.highWatermark),
    ]);
    const view = Math.max(0, state.view + rng.pick([-1, 0, 0, 1, 5]));
    const digest = rng.bytes(32);
    const kind = rng.int(11);
    let msg: PbftMessage;
    let note: string;
    switch (kind) {
      case 0:
        msg = this.sign({ type: 'prepare', sender: this.id, view, seq, digest });
        note = `forged prepare v${view} n${seq}`;
        break;
      case 1:
        msg = this.sign({ type: 'commit', sender: this.id, view, seq, digest });
        note = `forged commit v${view} n${seq}`;
        break;
      case 2: {
        const payload = rng.bytes(16);
        const batch = { timestamp: 1_000_000, seed: rng.bytes(32), requests: [{ digest: rng.bytes(32), payload }] };
        msg = this.sign({ type: 'pre-prepare', sender: this.id, view, seq, digest: batchDigest(batch), batch });
        note = `forged pre-prepare v${view} n${seq}`;
        break;
      }
      case 3: {
        const cpSeq = Math.max(this.checkpointInterval, Math.ceil(seq / this.checkpointInterval) * this.checkpointInterval);
        msg = this.sign({ type: 'checkpoint', sender: this.id, seq: cpSeq, digest });
        note = `forged checkpoint n${cpSeq}`;
        break;
      }
      case 4:
        msg = this.sign({ type: 'status', sender: this.id, view: view + 3, inViewChange: rng.chance(0.5), stableSeq: seq, committedThrough: seq + 1000 });
        note = 'lying status';
        break;
      case 5:
        msg = this.sign({ type: 'fetch', sender: this.id, fromSeq: rng.range(0, seq + 5), toSeq: rng.range(0, seq + 50) });
        note = 'fetch';
        break;
      case 6: {
        const batch = { timestamp: 5, seed: rng.bytes(32), requests: [{ digest: rng.bytes(32), payload: rng.bytes(8) }] };
        const entry = { seq: state.lastDispatched + 1, batch, cert: { view, digest: batchDigest(batch), commits: [{ replica: this.id, sig: rng.bytes(32) }] } };
        msg = this.sign({ type: 'fetch-reply', sender: this.id, oldestAvailable: 1, entries: [entry] });
        note = 'fetch-reply with a fake certificate';
        break;
      }
      case 7:
        msg = this.sign({
          type: 'view-change',
          sender: this.id,
          newView: state.view + rng.range(1, 3),
          stable: { seq: 0, digest: GENESIS_HISTORY, sigs: [] },
          prepared: rng.chance(0.5) ? [] : [{ view, seq: state.lowWatermark + 1, digest, primarySig: rng.bytes(32), prepares: [] }],
        });
        note = 'forged view-change';
        break;
      case 8:
        msg = this.sign({ type: 'new-view', sender: this.id, view: state.view + rng.range(1, this.n), viewChanges: [], prePrepares: [] });
        note = 'forged new-view';
        break;
      case 9: {
        // Claims to be another replica: the transport's sender id gives it away.
        const victim = this.randomOther();
        msg = this.sign({ type: 'prepare', sender: victim, view, seq, digest });
        note = `prepare claiming sender ${victim}`;
        break;
      }
      default: {
        const real = this.sign<PbftMessage>({ type: 'commit', sender: this.id, view, seq, digest });
        const bytes = encodeMessage(real);
        const mode = rng.int(3);
        let bad: Uint8Array;
        if (mode === 0) bad = bytes.subarray(0, rng.int(bytes.length));
        else if (mode === 1) {
          bad = bytes.slice();
          bad[rng.int(bad.length)]! ^= 1 << rng.int(8);
        } else {
          bad = new Uint8Array(bytes.length + 1);
          bad.set(bytes);
        }
        return { to, bytes: bad, extraDelayMs: 0, note: `corrupted bytes (mode ${mode})` };
      }
    }
    if (rng.chance(0.15)) {
      msg = { ...msg, sig: rng.bytes(32) };
      note += ' with a bad signature';
    }
    return { to, bytes: encodeMessage(msg), extraDelayMs: 0, note };
  }
}
