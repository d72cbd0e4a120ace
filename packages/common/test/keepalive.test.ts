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

  it('does not ping a link already past its deadline', () => {
    const ping = vi.fn();
    const onTimeout = vi.fn();
    const keepalive = new Keepalive({ intervalMs: 1_000, timeoutMs: 3_000 }, { ping, onTimeout });
    keepalive.start();
    vi.advanceTimersByTime(2_000);
    expect(ping).toHaveBeenCalledTimes(2);
    vi.advanceTimersByTime(1_000); // the third tick is the deadline
    expect(onTimeout).toHaveBeenCalledTimes(1);
    expect(ping).toHaveBeenCalledTimes(2);
  });

  it('is off with interval 0 (no pings, no deadline) and pings without a deadline with timeout 0', () => {
    const {
      keepalive: off,
      ping,
      onTimeout,
    } = (() => {
      const ping = vi.fn();
      const onTimeout = vi.fn();
      return {
        keepalive: new Keepalive({ intervalMs: 0, timeoutMs: 1_000 }, { ping, onTimeout }),
        ping,
        onTimeout,
      };
    })();
    off.start();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(ping).not.toHaveBeenCalled();
    expect(onTimeout).not.toHaveBeenCalled();

    const ping2 = vi.fn();
    const onTimeout2 = vi.fn();
    const noDeadline = new Keepalive(
      { intervalMs: 1_000, timeoutMs: 0 },
      { ping: ping2, onTimeout: onTimeout2 },
    );
    noDeadline.start();
    vi.advanceTimersByTime(60_000);
    expect(ping2).toHaveBeenCalledTimes(60);
    expect(onTimeout2).not.toHaveBeenCalled();
    noDeadline.stop();
  });

  it('setTiming restarts the ping timer and applies the new deadline to the silence already counted', () => {
    const { keepalive, ping, onTimeout } = make(); // 5 s / 10 s
    keepalive.start();
    vi.advanceTimersByTime(4_000);
    keepalive.setTiming({ intervalMs: 1_000, timeoutMs: 6_000 });
    vi.advanceTimersByTime(1_000); // t = 5 s
    expect(ping).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(999); // t = 5.999 s
    expect(onTimeout).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1); // silent since t = 0: the 6 s deadline, not the old 10 s
    expect(onTimeout).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('setTiming keeps an omitted field, and turning pings off and on again counts life seen meanwhile', () => {
    const { keepalive, ping, onTimeout } = make(); // 5 s / 10 s
    keepalive.start();
    keepalive.setTiming({ intervalMs: 0 });
    vi.advanceTimersByTime(60_000);
    expect(ping).not.toHaveBeenCalled();
    expect(onTimeout).not.toHaveBeenCalled();
    keepalive.markAlive(); // t = 60 s
    keepalive.setTiming({ intervalMs: 5_000 });
    vi.advanceTimersByTime(5_000);
    expect(ping).toHaveBeenCalledTimes(1);
    expect(onTimeout).not.toHaveBeenCalled();
    vi.advanceTimersByTime(5_000); // 10 s (the kept timeout) after the last sign of life
    expect(onTimeout).toHaveBeenCalledTimes(1);
  });

  it('setTiming with a new timeout only keeps the ping rhythm, and timeout 0 drops the deadline', () => {
    const { keepalive, ping, onTimeout } = make(); // 5 s / 10 s
    keepalive.start();
    vi.advanceTimersByTime(3_000);
    keepalive.setTiming({ timeoutMs: 20_000 });
    vi.advanceTimersByTime(2_000); // t = 5 s: the first ping, as before the change
    expect(ping).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10_000); // t = 15 s: past the old deadline
    expect(onTimeout).not.toHaveBeenCalled();
    keepalive.setTiming({ timeoutMs: 0 });
    expect(vi.getTimerCount()).toBe(1); // the ping timer alone
    vi.advanceTimersByTime(60_000);
    expect(onTimeout).not.toHaveBeenCalled();
    expect(ping).toHaveBeenCalledTimes(15);
    keepalive.stop();
  });

  it('reports how long the link was silent', () => {
    const { keepalive, onTimeout } = make(); // 5 s / 10 s
    keepalive.start();
    vi.advanceTimersByTime(10_000);
    expect(onTimeout).toHaveBeenCalledWith(10_000);
  });
});
