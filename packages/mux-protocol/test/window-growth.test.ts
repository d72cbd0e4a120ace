/**
 * Receive windows that grow with the bandwidth-delay product between Nexus ends (docs/protocol.md §1.5,
 * "Windows that grow"): the rule on a clock of its own, then two sessions on a real WebSocket through a
 * delay line, as a device far from its node is.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DATA_HEADER_LENGTH,
  decodeBackendMessage,
  FrameType,
  MAX_DATA_PAYLOAD,
  MAX_WINDOW_BYTES,
  MIN_GROWTH_RTT_MS,
  type MuxSessionOptions,
  type MuxStream,
  NEXUS_DATA_PAYLOAD,
  ReceiveLedger,
  WindowGrowthPool,
  WindowTuner,
} from '../src/index.js';
import { readExactly, type SessionPair, sha256, writeAll } from './suites/session.suite.js';
import { createWebSocketPair } from './suites/ws-pair.js';

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };
const MiB = 1024 * 1024;
const FRAME = NEXUS_DATA_PAYLOAD;

/** A tuner on a clock the test moves, over a stream's ledger: a base window of 16 frames that may grow to 128. */
function tuner(pool = new WindowGrowthPool(64 * MiB)) {
  const clock = { ms: 0 };
  const ledger = new ReceiveLedger({ window: 16, batch: 2 });
  const t = new WindowTuner(ledger, { maxWindow: 128, frameBytes: FRAME, pool, now: () => clock.ms });
  return { t, pool, clock, ledger };
}

/** Plays a round trip of `rttMs`: a grant of 2 goes out, and the frame only it allowed arrives `rttMs` later. */
function sampleRtt(t: WindowTuner, clock: { ms: number }, rttMs: number): void {
  t.granted(2);
  // Frames up to what was granted before this grant prove nothing about it.
  for (let i = 0; i < 16; i++) t.received();
  clock.ms += rttMs;
  t.received();
}

describe('the rule', () => {
  it('measures the round trip from a grant to the first frame only it allowed', () => {
    const { t, clock } = tuner();
    expect(t.rtt).toBe(Number.POSITIVE_INFINITY);
    t.granted(2); // total granted 18; the probe waits for frame 17
    clock.ms += 5;
    for (let i = 0; i < 16; i++) t.received();
    expect(t.rtt).toBe(Number.POSITIVE_INFINITY);
    clock.ms += 35;
    t.received();
    expect(t.rtt).toBe(40);
    // A later, shorter sample wins; a longer one does not.
    t.granted(2);
    clock.ms += 30;
    t.received();
    t.received();
    expect(t.rtt).toBe(30);
    t.granted(2);
    clock.ms += 90;
    t.received();
    t.received();
    expect(t.rtt).toBe(30);
  });

  it('never grows on a guess: no round trip measured, no growth', () => {
    const { t, ledger } = tuner();
    t.delivered(16, true);
    expect(ledger.window).toBe(16);
  });

  it('doubles a window used in less than two round trips, up to the largest, and not one used slowly', () => {
    const { t, clock, pool, ledger } = tuner();
    sampleRtt(t, clock, 50);
    // Half the window and more delivered within 10 ms, at a 50 ms round trip: the sender waited for credits.
    for (const [delivered, window] of [
      [9, 32],
      [17, 64],
      [33, 128],
      // At the largest window (128 frames, 16 MiB) it stays.
      [65, 128],
    ] as const) {
      clock.ms += 10;
      t.delivered(delivered, true);
      expect(ledger.window).toBe(window);
    }
    // The added frames are credits to grant.
    expect(ledger.pending).toBe(112);
    expect(t.grown).toBe(112);
    // The pool counts the base window (16 frames) and the growth.
    expect(pool.free).toBe(64 * MiB - 128 * FRAME);
    t.release();
    t.release();
    expect(pool.free).toBe(64 * MiB);
    expect(pool.peak).toBe(112 * FRAME);

    // Slow use: 9 of 16 frames took 400 ms at a 50 ms round trip; the window was not what held it back.
    const slow = tuner();
    sampleRtt(slow.t, slow.clock, 50);
    slow.clock.ms += 400;
    slow.t.delivered(9, true);
    expect(slow.ledger.window).toBe(16);
    // Less than half the window used: no decision yet. A stream that no longer receives: none at all.
    slow.clock.ms += 1;
    slow.t.delivered(7, true);
    slow.t.delivered(16, false);
    expect(slow.ledger.window).toBe(16);
  });

  it('narrows a grown window back to its base once it is used slowly with its reader behind', () => {
    const { t, clock, ledger, pool } = tuner();
    sampleRtt(t, clock, 50);
    // A burst that found the reader's buffer full, then the window used up fast: it grows all the same
    // (a window used up in one round trip arrives as such a burst).
    t.behind();
    clock.ms += 1;
    t.delivered(12, true);
    expect(ledger.window).toBe(32);
    // Granted already: the peer may use those credits, so the window narrows as frames are delivered.
    expect(ledger.take(16)).toBe(16);
    // The reader falls behind and the next half window takes 1 s: it narrows back to 16.
    t.behind();
    clock.ms += 1000;
    t.delivered(17, true);
    expect(ledger.window).toBe(32);
    expect(ledger.narrowing).toBe(16);
    for (let i = 0; i < 16; i++) ledger.received();
    ledger.countDelivered(10);
    t.delivered(0, true);
    expect(ledger.window).toBe(22);
    expect(pool.free).toBe(64 * MiB - 22 * FRAME);
    ledger.countDelivered(6);
    t.delivered(0, true);
    expect(ledger.window).toBe(16);
    expect(t.grown).toBe(0);
    expect(pool.free).toBe(64 * MiB - 16 * FRAME);
    // The invariant of a well-behaved sender holds throughout.
    expect(ledger.outstanding + ledger.buffered + ledger.pending).toBe(ledger.window);
    // Used slowly with the reader keeping up: it keeps what it has.
    const kept = tuner();
    sampleRtt(kept.t, kept.clock, 50);
    kept.t.delivered(9, true);
    kept.clock.ms += 1000;
    kept.t.delivered(17, true);
    expect(kept.ledger.window).toBe(32);
  });

  it('on a short path (a round trip under 4 ms: one host, a LAN) the window stays', () => {
    for (const rtt of [0, 1, MIN_GROWTH_RTT_MS - 1]) {
      const { t, clock, ledger } = tuner();
      sampleRtt(t, clock, rtt);
      expect(t.rtt).toBe(rtt);
      t.delivered(16, true);
      expect(ledger.window).toBe(16);
    }
    // At 4 ms, a window used up at once grows.
    const { t, clock, ledger } = tuner();
    sampleRtt(t, clock, MIN_GROWTH_RTT_MS);
    t.delivered(16, true);
    expect(ledger.window).toBe(32);
  });

  it('takes its growth from the session’s pool, and stops when the pool is full', () => {
    // Two base windows of 16 frames and room for 20 more: the first stream takes 16, the second the 4 left.
    const pool = new WindowGrowthPool(52 * FRAME);
    const [a, b] = [tuner(pool), tuner(pool)];
    for (const { t, clock } of [a, b]) sampleRtt(t, clock, 50);
    a.t.delivered(9, true);
    b.t.delivered(9, true);
    expect(a.ledger.window).toBe(32);
    expect(b.ledger.window).toBe(20);
    expect(pool.free).toBe(0);
    a.t.release();
    expect(pool.free).toBe(32 * FRAME);
    expect(() => new WindowGrowthPool(-1)).toThrow(RangeError);
  });

  it('grows no stream of a session whose streams’ base windows already fill the pool', () => {
    // 32 streams of 2 MiB: 64 MiB of windows, the bandwidth-delay product growth is for, already open.
    const pool = new WindowGrowthPool(64 * MiB);
    const streams = Array.from({ length: 32 }, () => tuner(pool));
    for (const { t, clock } of streams) sampleRtt(t, clock, 50);
    for (const { t } of streams) t.delivered(16, true);
    expect(streams.map(({ ledger }) => ledger.window)).toEqual(streams.map(() => 16));
    // One ends: its window's room is there for the others again.
    streams[0]!.t.release();
    streams[1]!.t.delivered(16, true);
    expect(streams[1]!.ledger.window).toBe(32);
  });
});

describe('two sessions through a delay line of 25 ms each way', () => {
  const pairs: SessionPair[] = [];
  afterEach(async () => {
    await Promise.all(pairs.splice(0).map((pair) => pair.close()));
  });

  /** Credits each side granted and DATA frames each side sent, per stream. */
  function counter() {
    const granted: Record<'hub' | 'backend', number> = { hub: 0, backend: 0 };
    const frames: Record<'hub' | 'backend', number> = { hub: 0, backend: 0 };
    /** The largest number of credits the hub had out (granted, not yet used by the backend). */
    let hubOut = 0;
    return {
      granted,
      frames,
      get hubOut() {
        return hubOut;
      },
      observe(from: 'hub' | 'backend', message: Uint8Array) {
        if (message[0] === FrameType.Data && message.length > DATA_HEADER_LENGTH) frames[from]++;
        const decoded = decodeBackendMessage(message);
        if (decoded.ok && decoded.value.type === 'control') {
          const m = decoded.value.message;
          if ((m.event === 'connect' || m.event === 'resume_stream') && m.credits) granted[from] += m.credits;
        }
        hubOut = Math.max(hubOut, granted.hub - frames.backend);
      },
    };
  }

  async function download(pair: SessionPair, bytes: number): Promise<void> {
    const accepted = new Promise<MuxStream>((resolve) => pair.backend.once('stream', resolve));
    const hubSide = pair.hub.openStream(OPEN);
    const backendSide = await accepted;
    const data = randomBytes(bytes);
    const [got] = await Promise.all([
      readExactly(hubSide, data.length),
      writeAll(backendSide, data, 256 * 1024),
    ]);
    expect(sha256(got)).toBe(sha256(data));
  }

  /** A pair of these options through the 25 ms line, after a download of `bytes`; what was seen on the wire. */
  async function farDownload(
    hub: Partial<MuxSessionOptions>,
    backend: Partial<MuxSessionOptions>,
    bytes: number,
  ) {
    const seen = counter();
    const pair = await createWebSocketPair({ hub, backend, observe: seen.observe, delayMs: 25 });
    pairs.push(pair);
    await download(pair, bytes);
    return { seen, growth: pair.hub.stats().windowGrowthPeak };
  }
  const nexus = { maxDataPayload: FRAME, sendDataPayload: FRAME };

  it('between Nexus ends, the receiver’s window grows past 2 MiB and stays within 16 MiB', async () => {
    const { seen, growth } = await farDownload(nexus, nexus, 48 * MiB);
    // The hub had more than the base window's 16 frames out at once, and never more than 16 MiB.
    expect(seen.hubOut).toBeGreaterThan(16);
    expect(seen.hubOut).toBeLessThanOrEqual(MAX_WINDOW_BYTES / FRAME);
    // The session's counters say so too.
    expect(growth).toBeGreaterThan(0);
  }, 30_000);

  it('toward a peer that said nothing of larger frames (the reference), the window stays 64 frames', async () => {
    const { seen, growth } = await farDownload({ maxDataPayload: FRAME }, {}, 8 * MiB);
    expect(seen.frames.backend).toBeGreaterThanOrEqual((8 * MiB) / MAX_DATA_PAYLOAD);
    expect(seen.hubOut).toBeLessThanOrEqual(64);
    expect(growth).toBe(0);
  }, 30_000);

  it('with growth turned off, the window stays the base one', async () => {
    const { seen, growth } = await farDownload({ ...nexus, windowGrowth: false }, nexus, 8 * MiB);
    expect(seen.hubOut).toBeLessThanOrEqual(16);
    expect(growth).toBe(0);
  }, 30_000);
});
