import { describe, expect, it } from 'vitest';
import { Backoff, computeBackoffDelay } from '../src/backoff.js';

const DEFAULTS = { initialDelayMs: 1_000, maxDelayMs: 60_000, factor: 2, jitter: 0.25 };

describe('computeBackoffDelay', () => {
  it.each([
    { attempt: 0, expected: 1_000 },
    { attempt: 1, expected: 2_000 },
    { attempt: 2, expected: 4_000 },
    { attempt: 5, expected: 32_000 },
    { attempt: 6, expected: 60_000 },
    { attempt: 50, expected: 60_000 },
    { attempt: 5_000, expected: 60_000 },
  ])('waits $expected ms before attempt $attempt without jitter', ({ attempt, expected }) => {
    expect(computeBackoffDelay(attempt, DEFAULTS, () => 0.5)).toBe(expected);
  });

  it('scales by 1 − jitter at the low end and 1 + jitter at the high end', () => {
    expect(computeBackoffDelay(0, DEFAULTS, () => 0)).toBe(750);
    expect(computeBackoffDelay(0, DEFAULTS, () => 0.999_999_999)).toBe(1_250);
    expect(computeBackoffDelay(10, DEFAULTS, () => 0)).toBe(45_000);
    expect(computeBackoffDelay(10, DEFAULTS, () => 0.999_999_999)).toBe(75_000);
  });

  it('spreads a fleet of reconnecting backends over the jitter band', () => {
    const delays = Array.from({ length: 1_000 }, () => computeBackoffDelay(3, DEFAULTS));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(6_000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(10_000);
    expect(new Set(delays).size).toBeGreaterThan(100);
  });

  // The cases the mesh's peer dialers were tested with when they had their own copy.
  it.each([
    { attempt: 0, random: 0.5, expected: 1_000 },
    { attempt: 0, random: 0, expected: 750 },
    { attempt: 3, random: 0.5, expected: 8_000 },
    { attempt: 10, random: 0.5, expected: 60_000 },
    { attempt: 10, random: 0.999_999, expected: 75_000 },
  ])('attempt $attempt with random $random waits $expected ms', ({ attempt, random, expected }) => {
    expect(computeBackoffDelay(attempt, DEFAULTS, () => random)).toBe(expected);
  });
});

describe('Backoff', () => {
  it('grows per attempt and starts over after reset()', () => {
    const backoff = new Backoff({ ...DEFAULTS, jitter: 0 });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([1_000, 2_000, 4_000]);
    expect(backoff.attempt).toBe(3);
    backoff.reset();
    expect(backoff.attempt).toBe(0);
    expect(backoff.next()).toBe(1_000);
  });

  it('stays at the cap forever', () => {
    const backoff = new Backoff({ ...DEFAULTS, jitter: 0 });
    let last = 0;
    for (let i = 0; i < 3_000; i++) last = backoff.next();
    expect(last).toBe(60_000);
  });
});
