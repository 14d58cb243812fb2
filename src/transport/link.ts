import { randomBytes } from 'node:crypto';
import { Pool } from 'undici';
import type { IdentitySigner } from '../crypto/identity.js';
import { encodeFrame, SESSION_BYTES, type FrameMessage } from './frame.js';
import { LinkKey } from './link-key.js';

export const FRAME_PATH = '/cbft/v1/frames';
/** On a 409 "stale-session": the start of the receiver's newest session from this sender. */
export const SESSION_START_HEADER = 'cbft-session-start';
/** Longest reason text read from a refusing peer. */
const MAX_REASON_BYTES = 64;
/** How far ahead of our clock a peer's session start may be for us to start after it. */
const MAX_SESSION_LEAD_MS = 24 * 60 * 60 * 1000;

export interface LinkOptions {
  /** The neighbour's peer URL (origin). */
  url: string;
  from: string;
  to: string;
  /** This node's identity and the neighbour's public key: the link's MAC key derives from them. */
  signer: IdentitySigner;
  peerPublicKey: Uint8Array;
  /** Queue bounds (I8): beyond them `send` refuses and the caller answers overload. */
  maxQueuedMessages?: number;
  maxQueuedBytes?: number;
  /** A frame carries at most this many payload bytes (one bigger message still goes alone). */
  maxFrameBytes?: number;
  requestTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  onError?: (err: Error, attempt: number) => void;
}

export interface LinkStats {
  framesSent: number;
  messagesSent: number;
  messagesRefused: number;
  retries: number;
  queued: number;
  queuedBytes: number;
  up: boolean;
}

/**
 * One-way authenticated link to one neighbour over a keep-alive undici pool. Messages queued in
 * the same tick, or while a frame is in flight, travel together in the next frame (adaptive
 * batching: the busier the link, the bigger the frames). One frame is in flight at a time, so
 * the neighbour receives messages in send order. A failed frame is retried as-is with exponential
 * backoff; the receiver's replay window turns a duplicate delivery into a no-op. A slow or dead
 * neighbour only fills its own bounded queue.
 */
export class Link {
  private readonly pool: Pool;
  private readonly key: LinkKey;
  private session = randomBytes(SESSION_BYTES);
  private sessionStart = Date.now();
  private counter = 0;
  private queue: FrameMessage[] = [];
  private queuedBytes = 0;
  private inFlight = false;
  private scheduled = false;
  private closed = false;
  private backoffMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];
  readonly stats: LinkStats = { framesSent: 0, messagesSent: 0, messagesRefused: 0, retries: 0, queued: 0, queuedBytes: 0, up: true };
  private readonly o: Required<Omit<LinkOptions, 'onError'>> & Pick<LinkOptions, 'onError'>;

  constructor(options: LinkOptions) {
    this.o = {
      maxQueuedMessages: 100_000,
      maxQueuedBytes: 256 * 1024 * 1024,
      maxFrameBytes: 4 * 1024 * 1024,
      requestTimeoutMs: 10_000,
      minBackoffMs: 50,
      maxBackoffMs: 2_000,
      ...options,
    };
    this.key = LinkKey.derive(this.o.signer, this.o.peerPublicKey, this.o.from, this.o.to);
    this.pool = new Pool(this.o.url, {
      connections: 2,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      headersTimeout: this.o.requestTimeoutMs,
      bodyTimeout: this.o.requestTimeoutMs,
    });
  }

  /** Queues a message; false (and counted) when the queue is full or the link closed. */
  send(kind: FrameMessage['kind'], payload: Uint8Array): boolean {
    if (this.closed || this.queue.length >= this.o.maxQueuedMessages || this.queuedBytes + payload.length > this.o.maxQueuedBytes) {
      this.stats.messagesRefused++;
      return false;
    }
    this.queue.push({ kind, payload });
    this.queuedBytes += payload.length;
    this.updateQueueStats();
    if (!this.scheduled && !this.inFlight && this.retryTimer === undefined) {
      this.scheduled = true;
      // Let everything queued in this tick join the same frame.
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
    return true;
  }

  /** Room left before `send` refuses: callers use it to answer overload early. */
  get room(): number {
    return this.o.maxQueuedMessages - this.queue.length;
  }

  private updateQueueStats(): void {
    this.stats.queued = this.queue.length;
    this.stats.queuedBytes = this.queuedBytes;
  }

  private takeFrame(): FrameMessage[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length) {
      const size = this.queue[n]!.payload.length;
      if (n > 0 && bytes + size > this.o.maxFrameBytes) break;
      bytes += size;
      n++;
    }
    const taken = this.queue.splice(0, n);
    this.queuedBytes -= bytes;
    this.updateQueueStats();
    return taken;
  }

  private flush(): void {
    if (this.inFlight || this.closed || this.queue.length === 0) {
      if (!this.inFlight && this.queue.length === 0) this.resolveIdle();
      return;
    }
    const messages = this.takeFrame();
    this.inFlight = true;
    void this.deliver(this.encode(messages), messages, 0);
  }

  private encode(messages: FrameMessage[]): Uint8Array {
    return encodeFrame(
      { from: this.o.from, to: this.o.to, session: this.session, sessionStart: this.sessionStart, counter: this.counter++ },
      messages,
      this.key,
    );
  }

  private async deliver(frame: Uint8Array, messages: FrameMessage[], attempt: number): Promise<void> {
    const count = messages.length;
    try {
      const res = await this.pool.request({
        method: 'POST',
        path: FRAME_PATH,
        headers: { 'content-type': 'application/octet-stream' },
        body: frame,
      });
      // The reason of a 409 is a short word; anything longer is not read (bounded memory).
      const short = Number(res.headers['content-length']) <= MAX_REASON_BYTES;
      const text = res.statusCode === 409 && short ? await res.body.text() : (await res.body.dump(), '');
      if (res.statusCode === 409 && text === 'stale-session') {
        // The receiver saw a newer session from us: this process started with a clock behind
        // the one of an earlier run (e.g. a fast clock that was fixed). Nothing was delivered:
        // start a session after the receiver's and send these messages again in it. The header
        // is not authenticated: a start further ahead than MAX_SESSION_LEAD_MS is not followed
        // (the frame is dropped as refused), so nobody can push our sessions out of range.
        const theirs = Number(res.headers[SESSION_START_HEADER]);
        if (!Number.isSafeInteger(theirs) || theirs < 0 || theirs > Date.now() + MAX_SESSION_LEAD_MS) throw new LinkRefused(409);
        this.session = randomBytes(SESSION_BYTES);
        this.sessionStart = Math.max(Date.now(), theirs + 1);
        this.counter = 0;
        throw new StaleSession();
      }
      // 409 (replay, too-old): the receiver already had this frame (an earlier attempt got through).
      if (res.statusCode !== 204 && res.statusCode !== 409) {
        // A refused frame (4xx) will be refused again: drop it rather than retry forever.
        if (res.statusCode >= 400 && res.statusCode < 500) throw new LinkRefused(res.statusCode);
        throw new Error(`peer answered ${res.statusCode}`);
      }
      this.stats.framesSent++;
      this.stats.messagesSent += count;
      this.stats.up = true;
      this.backoffMs = 0;
      this.inFlight = false;
      this.flush();
    } catch (err) {
      if (this.closed) {
        this.inFlight = false;
        this.resolveIdle();
        return;
      }
      this.o.onError?.(err as Error, attempt);
      if (err instanceof LinkRefused) {
        this.inFlight = false;
        this.flush();
        return;
      }
      this.stats.up = false;
      this.stats.retries++;
      this.backoffMs = Math.min(this.o.maxBackoffMs, this.backoffMs === 0 ? this.o.minBackoffMs : this.backoffMs * 2);
      // In a new session the same messages need a new frame.
      const next = err instanceof StaleSession ? this.encode(messages) : frame;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        void this.deliver(next, messages, attempt + 1);
      }, this.backoffMs);
      this.retryTimer.unref();
    }
  }

  private resolveIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once everything queued so far was delivered (or the link closed). */
  idle(): Promise<void> {
    if (!this.inFlight && this.queue.length === 0 && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.queue = [];
    this.queuedBytes = 0;
    this.updateQueueStats();
    this.resolveIdle();
    await this.pool.destroy();
  }
}

class StaleSession extends Error {
  constructor() {
    super('peer refused our session as older than one it saw from us; starting a newer one');
  }
}

class LinkRefused extends Error {
  constructor(readonly status: number) {
    super(`peer refused the frame with ${status}`);
  }
}
