import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LogRateLimit, OTHER_KEY } from '../src/log-rate-limit.js';

describe('LogRateLimit', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function limit(options: { perWindow?: number; maxKeys?: number } = {}) {
    const reports: Array<[string, number]> = [];
    const rl = new LogRateLimit({
      windowMs: 1_000,
      ...options,
      onSuppressed: (k, n) => reports.push([k, n]),
    });
    return { rl, reports };
  }

  it('admits perWindow lines per key and window, and reports the rest when the window ends', () => {
    const { rl, reports } = limit({ perWindow: 3 });
    const admitted = Array.from({ length: 1_000 }, () => rl.admit('no-route')).filter(Boolean).length;
    expect(admitted).toBe(3);
    // Another key has its own window.
    expect(rl.admit('invalid-hostname')).toBe(true);
    expect(reports).toEqual([]);
    vi.advanceTimersByTime(1_000);
    expect(reports).toEqual([['no-route', 997]]);
    // A new window admits again.
    expect(rl.admit('no-route')).toBe(true);
    vi.advanceTimersByTime(1_000);
    expect(reports).toEqual([['no-route', 997]]);
  });

  it('reports what is suppressed at flush, once, and stops its timers', () => {
    const { rl, reports } = limit({ perWindow: 1 });
    rl.admit('a');
    rl.admit('a');
    rl.admit('a');
    rl.flush();
    expect(reports).toEqual([['a', 2]]);
    vi.advanceTimersByTime(5_000);
    expect(reports).toEqual([['a', 2]]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('counts the keys past maxKeys under one key, without admitting them', () => {
    const { rl, reports } = limit({ maxKeys: 2 });
    expect(rl.admit('a')).toBe(true);
    expect(rl.admit('b')).toBe(true);
    for (let i = 0; i < 100; i++) expect(rl.admit(`k${i}`)).toBe(false);
    expect(vi.getTimerCount()).toBe(3);
    vi.advanceTimersByTime(1_000);
    expect(reports).toEqual([[OTHER_KEY, 100]]);
  });
});
