/** A relay under the bandwidth cap (docs/edge.md "Bandwidth fair share"), in memory with fake timers. */
import { Duplex } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BandwidthScheduler } from '../src/bandwidth-scheduler.js';
import { relayConnection } from '../src/relay.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

const turn = () => new Promise<void>((r) => setImmediate(r));

/** Advances the fake clock by `ms`, 1 ms at a time, letting I/O-like callbacks (setImmediate) run. */
async function advance(ms: number): Promise<void> {
  for (let t = 0; t < ms; t++) {
    await vi.advanceTimersByTimeAsync(1);
    for (let i = 0; i < 4; i++) await turn();
  }
}

/**
 * An end of the relay whose writes complete one at a time, each on the next turn of the event loop (high-water mark 1): every
 * write returns `false`, so the relay's pipe waits for 'drain' and resumes the source after each chunk.
 */
function drainingSink(): Duplex & { received: number } {
  const sink = new Duplex({
    writableHighWaterMark: 1,
    read() {},
    write(chunk: Buffer, _enc, cb) {
      sink.received += chunk.length;
      setImmediate(cb);
    },
  }) as Duplex & { received: number };
  sink.received = 0;
  return sink;
}

/** A source that always has the next 16 KiB chunk ready while it flows, `chunks` of them (then EOF). */
function endlessSource(chunks = Number.POSITIVE_INFINITY): Duplex {
  const chunk = Buffer.alloc(16_384, 7);
  let left = chunks;
  return new Duplex({
    allowHalfOpen: true,
    read() {
      this.push(left-- > 0 ? chunk : null);
    },
    write(_c, _e, cb) {
      cb();
    },
  });
}

describe('relay metering', () => {
  it('holds the cap in the direction toward the stream although the pipe resumes the source on every drain', async () => {
    const scheduler = new BandwidthScheduler({ totalBandwidthMbps: 8, now: () => Date.now() }); // 1 000 B/ms
    const socket = endlessSource();
    const stream = drainingSink();
    const relay = relayConnection(socket, stream, { bandwidth: scheduler.account('backend') });
    await advance(1_000);
    // 1 s of the cap, plus the burst saved up (20 ms) and the chunk that went over.
    expect(stream.received).toBeGreaterThan(900_000);
    expect(stream.received).toBeLessThanOrEqual(1_000_000 + 20_000 + 16_384);
    expect(scheduler.stats().accounts[0]).toMatchObject({ id: 'backend', users: 1, throttled: true });
    relay.close('test');
    await advance(100);
    // The account was given back and its debt repaid: nothing left, no timer.
    expect(scheduler.accountCount).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('charges the prelude, and stops metering (and resumes the source) when the cap goes', async () => {
    const scheduler = new BandwidthScheduler({ totalBandwidthMbps: 8, now: () => Date.now() });
    const socket = endlessSource(64); // 1 MiB
    const stream = drainingSink();
    const relay = relayConnection(socket, stream, {
      bandwidth: scheduler.account('backend'),
      prelude: Buffer.alloc(100_000),
    });
    await advance(50);
    // The prelude alone is 100 ms of the cap: the source waits.
    expect(stream.received).toBeLessThan(100_000 + 20_000 + 16_384 + 1);
    const paused = stream.received;
    await advance(40);
    expect(stream.received - paused).toBeLessThan(16_384 * 2);
    scheduler.setCap(0);
    relay.setBandwidth(undefined);
    expect(scheduler.accountCount).toBe(0);
    // Without the cap the rest (over 900 KB) goes through, no time passing.
    for (let i = 0; i < 1_000 && stream.received < 100_000 + 64 * 16_384; i++) await turn();
    expect(stream.received).toBe(100_000 + 64 * 16_384);
    relay.close('test');
  });

  it('a relay without an account has no metering listener', () => {
    const socket = endlessSource();
    const stream = drainingSink();
    const relay = relayConnection(socket, stream);
    expect(socket.listenerCount('data')).toBe(2); // the forward's and the byte count's
    expect(socket.listenerCount('resume')).toBe(0);
    const scheduler = new BandwidthScheduler({ totalBandwidthMbps: 8, now: () => Date.now() });
    relay.setBandwidth(scheduler.account('backend'));
    expect(socket.listenerCount('data')).toBe(3);
    relay.setBandwidth(undefined);
    expect(socket.listenerCount('data')).toBe(2);
    expect(scheduler.accountCount).toBe(0);
    relay.close('test');
  });
});
