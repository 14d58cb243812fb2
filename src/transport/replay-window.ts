import { toHex } from '../codec/binary.js';

/**
 * Refuses replayed frames from one sender, like IPsec's anti-replay window: each sender process
 * has a random session and a start time; within a session counters are unique and may arrive out
 * of order up to WINDOW behind the highest seen. A newer session (a restarted sender) replaces the
 * old one; frames of an older session are refused.
 */
const WINDOW = 4096;

interface SenderState {
  session: string;
  start: number;
  highest: number;
  seen: Uint8Array; // bitmap over counters (highest - WINDOW, highest]
}

export type ReplayVerdict = 'fresh' | 'replay' | 'stale-session' | 'too-old';

export class ReplayWindow {
  private readonly senders = new Map<string, SenderState>();

  /** Start of the newest session seen from `from` (a refused older session must start after it). */
  sessionStart(from: string): number | undefined {
    return this.senders.get(from)?.start;
  }

  /** Checks and records a frame. Call only after its signature verified. */
  accept(from: string, session: Uint8Array, start: number, counter: number): ReplayVerdict {
    const id = toHex(session);
    let s = this.senders.get(from);
    if (!s || (s.session !== id && start > s.start)) {
      s = { session: id, start, highest: -1, seen: new Uint8Array(WINDOW / 8) };
      this.senders.set(from, s);
    } else if (s.session !== id) {
      return 'stale-session';
    }
    if (counter > s.highest) {
      // Slide the window forward, clearing bits of counters that fall out of it.
      const shift = counter - s.highest;
      if (shift >= WINDOW) s.seen.fill(0);
      else for (let c = s.highest + 1; c <= counter; c++) clear(s.seen, c);
      s.highest = counter;
      set(s.seen, counter);
      return 'fresh';
    }
    if (s.highest - counter >= WINDOW) return 'too-old';
    if (get(s.seen, counter)) return 'replay';
    set(s.seen, counter);
    return 'fresh';
  }
}

const bit = (c: number) => c % WINDOW;
function set(m: Uint8Array, c: number): void {
  m[bit(c) >> 3]! |= 1 << (bit(c) & 7);
}
function clear(m: Uint8Array, c: number): void {
  m[bit(c) >> 3]! &= ~(1 << (bit(c) & 7));
}
function get(m: Uint8Array, c: number): boolean {
  return (m[bit(c) >> 3]! & (1 << (bit(c) & 7))) !== 0;
}
