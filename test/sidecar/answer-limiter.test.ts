import { describe, expect, it } from 'vitest';
import { AnswerLimiter } from '../../src/sidecar/answer-limiter.js';

describe('AnswerLimiter', () => {
  it('answers a repeat only once the retransmission interval has passed, per top and request', () => {
    let now = 0;
    const limiter = new AnswerLimiter(1_000, 16, () => now);
    expect(limiter.allow('fw-0-1', 'aa')).toBe(true);
    now = 999;
    expect(limiter.allow('fw-0-1', 'aa')).toBe(false);
    expect(limiter.allow('fw-1-1', 'aa')).toBe(true); // another top
    expect(limiter.allow('fw-0-1', 'bb')).toBe(true); // another request
    now = 1_000;
    expect(limiter.allow('fw-0-1', 'aa')).toBe(true);
    now = 1_500;
    expect(limiter.allow('fw-0-1', 'aa')).toBe(false); // the interval restarts at each answer
  });

  it('is bounded: the oldest pairs are forgotten first', () => {
    const limiter = new AnswerLimiter(1_000, 2, () => 0);
    expect(limiter.allow('t', 'a')).toBe(true);
    expect(limiter.allow('t', 'b')).toBe(true);
    expect(limiter.allow('t', 'c')).toBe(true); // forgets a
    expect(limiter.allow('t', 'b')).toBe(false);
    expect(limiter.allow('t', 'a')).toBe(true);
  });
});
