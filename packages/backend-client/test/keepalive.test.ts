import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Keepalive } from '../src/keepalive.js';

describe('Keepalive', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function make() {
    const ping = vi.fn();
    const onTimeout = vi.fn();
    const keepalive = new Keepalive({ intervalMs: 5_000, timeoutMs: 10_000 }, { ping, onTimeout });
    return { keepalive, ping, onTimeout };
  }

  it('pings every interval', () => {
    const { keepalive, ping } = make();
    keepalive.start();
    vi.advanceTimersByTime(4_999);
    expect(ping).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(ping).toHaveBeenCalledTimes(1);
    keepalive.markAlive();
    vi.advanceTimersByTime(5_000);
    expect(ping).toHaveBeenCalledTimes(2);
    keepalive.stop();
  });

  it('times out exactly timeoutMs after the last sign of life', () => {
    const { keepalive, onTimeout } = make();
    keepalive.start();
    vi.advanceTimersByTime(7_000);
    keepalive.markAlive(); // t = 7 s
    vi.advanceTimersByTime(9_999); // t = 16.999 s
    expect(onTimeout).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1); // t = 17 s
    expect(onTimeout).toHaveBeenCalledTimes(1);
    expect(keepalive.running).toBe(false);
  });

  it('never times out while messages keep arriving', () => {
    const { keepalive, onTimeout } = make();
    keepalive.start();
    for (let i = 0; i < 100; i++) {
      vi.advanceTimersByTime(3_000);
      keepalive.markAlive();
    }
    expect(onTimeout).not.toHaveBeenCalled();
    keepalive.stop();
  });

  it('stops pinging after a timeout and leaves no timer', () => {
    const { keepalive, ping, onTimeout } = make();
    keepalive.start();
    vi.advanceTimersByTime(10_000);
    expect(onTimeout).toHaveBeenCalledTimes(1);
    const pings = ping.mock.calls.length;
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(ping).toHaveBeenCalledTimes(pings);
    expect(onTimeout).toHaveBeenCalledTimes(1);
  });

  it('stop() clears every timer', () => {
    const { keepalive } = make();
    keepalive.start();
    expect(vi.getTimerCount()).toBe(2);
    keepalive.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not time out while the owner has paused reading the link', () => {
    const onTimeout = vi.fn();
    let paused = true;
    const keepalive = new Keepalive(
      { intervalMs: 5_000, timeoutMs: 10_000 },
      { ping: () => {}, onTimeout, suspended: () => paused },
    );
    keepalive.start();
    vi.advanceTimersByTime(60_000);
    expect(onTimeout).not.toHaveBeenCalled();
    paused = false;
    vi.advanceTimersByTime(9_999);
    expect(onTimeout).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1); // 10 s after the last suspended check
    expect(onTimeout).toHaveBeenCalledTimes(1);
  });
});
