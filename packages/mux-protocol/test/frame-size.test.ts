/**
 * Larger DATA frames between two Nexus ends (docs/protocol.md §1.11): the agreement on a payload limit,
 * the window that goes with it, and two sessions on a real WebSocket that carry, refuse and bound them.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkOfferedDataPayload,
  DATA_HEADER_LENGTH,
  encodeDataFrame,
  FrameType,
  frameSizeTuning,
  MAX_DATA_PAYLOAD,
  MAX_OFFERED_DATA_PAYLOAD,
  type MuxProtocolError,
  type MuxStream,
  NEXUS_DATA_PAYLOAD,
  parseOfferedDataPayload,
  peerDataPayload,
  RECEIVE_BUDGET_FLOOR,
  ReceiveBudget,
  decodeBackendMessage,
} from '../src/index.js';
import { readExactly, type SessionPair, sha256, waitFor, writeAll } from './suites/session.suite.js';
import { createWebSocketPair } from './suites/ws-pair.js';

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };
const MiB = 1024 * 1024;

describe('what a peer accepts', () => {
  it('reads the peer’s word as said, and 32 768 from a peer that says nothing usable', () => {
    expect(peerDataPayload(262_144)).toBe(262_144);
    expect(peerDataPayload(65_536)).toBe(65_536);
    for (const hostile of [undefined, null, '131072', 1.5, Number.NaN, 2 ** 60, {}]) {
      expect(peerDataPayload(hostile)).toBe(MAX_DATA_PAYLOAD);
    }
    // Under the base size every end still takes 32 768; over the cap, the cap.
    expect(peerDataPayload(100)).toBe(MAX_DATA_PAYLOAD);
    expect(peerDataPayload(-1)).toBe(MAX_DATA_PAYLOAD);
    expect(peerDataPayload(10 * MAX_OFFERED_DATA_PAYLOAD)).toBe(MAX_OFFERED_DATA_PAYLOAD);
  });

  it('reads an offer from an HTTP header value: digits only', () => {
    expect(parseOfferedDataPayload('131072')).toBe(131_072);
    expect(parseOfferedDataPayload([' 65536 ', '1'])).toBe(65_536);
    for (const bad of [undefined, '', '12ab', '-5', '1e6', '0x20000', '9999999999']) {
      expect(parseOfferedDataPayload(bad)).toBeUndefined();
    }
  });

  it('refuses an offer outside 32 768 … 1 MiB', () => {
    expect(checkOfferedDataPayload(MAX_DATA_PAYLOAD)).toBe(MAX_DATA_PAYLOAD);
    for (const bad of [MAX_DATA_PAYLOAD - 1, MAX_OFFERED_DATA_PAYLOAD + 1, 65_536.5]) {
      expect(() => checkOfferedDataPayload(bad)).toThrow(RangeError);
    }
  });

  it('keeps the base protocol’s window, batch and allowance at 32 768, and their bytes at larger sizes', () => {
    expect(frameSizeTuning(MAX_DATA_PAYLOAD)).toEqual({
      maxDataPayload: MAX_DATA_PAYLOAD,
      maxMessageSize: 32_785,
      initialWindow: 64,
      grantBatch: 8,
      unmeteredAllowance: 1024,
      budgetUnits: 1,
    });
    expect(frameSizeTuning(NEXUS_DATA_PAYLOAD)).toEqual({
      maxDataPayload: NEXUS_DATA_PAYLOAD,
      maxMessageSize: NEXUS_DATA_PAYLOAD + DATA_HEADER_LENGTH,
      initialWindow: 16,
      grantBatch: 2,
      unmeteredAllowance: 256,
      budgetUnits: 4,
    });
    const largest = frameSizeTuning(MAX_OFFERED_DATA_PAYLOAD);
    expect(largest.initialWindow * MAX_OFFERED_DATA_PAYLOAD).toBe(2 * MiB);
    expect(largest.grantBatch).toBe(1);
  });
});

describe('a receive budget shared by streams of different frame sizes', () => {
  it('counts a larger frame as several units, floor included', () => {
    const budget = new ReceiveBudget(MiB); // 32 units of 32 768 bytes
    const large = budget.share(() => {}, 4);
    // The floor is the same 64 KiB in its own frames, at least one: 1 frame of 128 KiB.
    expect(large.floor).toBe(1);
    const other = new ReceiveBudget(MiB);
    expect(other.share(() => {}, 2).floor).toBe(1);
    expect(other.share(() => {}, 1).floor).toBe(RECEIVE_BUDGET_FLOOR);
    // The floor is free; beyond it a share starts with 8 units: 2 frames of 128 KiB.
    expect(large.afford(0, 16)).toBe(large.floor + 2);
    expect(large.taken).toBe(8);
    // It at most doubles with each grant; 16 frames would need (16 − 1) × 4 = 60 units: only 32 exist.
    expect(large.afford(0, 14)).toBe(large.floor + 4);
    expect(large.afford(0, 14)).toBe(large.floor + 8);
    expect(budget.used).toBe(32);
    expect(large.taken).toBe(32);
    const small = budget.share(() => {});
    expect(small.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR);
    // Delivered down to 2 frames beyond its floor (8 units): it keeps its even part and gives the rest back.
    large.settle(large.floor + 2);
    expect(large.taken).toBe(budget.shareLimit - (budget.shareLimit % 4));
    expect(budget.used).toBe(large.taken + small.taken);
    expect(() => budget.share(() => {}, 0)).toThrow(RangeError);
  });
});

describe('two sessions that accept 128 KiB, on a real WebSocket', () => {
  const pairs: SessionPair[] = [];
  afterEach(async () => {
    await Promise.all(pairs.splice(0).map((pair) => pair.close()));
  });

  /** DATA frame lengths each side sent. */
  function recorder() {
    const sizes: Record<'hub' | 'backend', number[]> = { hub: [], backend: [] };
    const grants: number[] = [];
    return {
      sizes,
      grants,
      observe(from: 'hub' | 'backend', message: Uint8Array) {
        if (message[0] === FrameType.Data) sizes[from].push(message.length - DATA_HEADER_LENGTH);
        const decoded = decodeBackendMessage(message);
        if (decoded.ok && decoded.value.type === 'control') {
          const m = decoded.value.message;
          if ((m.event === 'connect' || m.event === 'resume_stream') && m.credits) grants.push(m.credits);
        }
      },
    };
  }

  it('carries frames of up to 128 KiB both ways, with a window of 16 frames (2 MiB)', async () => {
    const seen = recorder();
    const tuning = { maxDataPayload: NEXUS_DATA_PAYLOAD, sendDataPayload: NEXUS_DATA_PAYLOAD };
    const pair = await createWebSocketPair({ hub: tuning, backend: tuning, observe: seen.observe });
    pairs.push(pair);
    const accepted = new Promise<MuxStream>((resolve) => pair.backend.once('stream', resolve));
    const hubSide = pair.hub.openStream(OPEN);
    const backendSide = await accepted;
    const down = randomBytes(8 * MiB);
    const up = randomBytes(8 * MiB);
    // Writes of 256 KiB: each is cut into frames at the agreed limit.
    const [gotDown, gotUp] = await Promise.all([
      readExactly(hubSide, down.length),
      readExactly(backendSide, up.length),
      writeAll(backendSide, down, 256 * 1024),
      writeAll(hubSide, up, 256 * 1024),
    ]);
    expect(sha256(gotDown)).toBe(sha256(down));
    expect(sha256(gotUp)).toBe(sha256(up));
    for (const side of ['hub', 'backend'] as const) {
      expect(Math.max(...seen.sizes[side])).toBe(NEXUS_DATA_PAYLOAD);
      expect(seen.sizes[side].length).toBeLessThanOrEqual((8 * MiB) / NEXUS_DATA_PAYLOAD + 1);
    }
    // connect.credits and the backend's first grant: 16 frames of 128 KiB, the base protocol's 2 MiB.
    expect(seen.grants.slice(0, 2)).toEqual([16, 16]);
    expect(pair.hub.maxDataPayload).toBe(NEXUS_DATA_PAYLOAD);
    expect(pair.hub.sendDataPayload).toBe(NEXUS_DATA_PAYLOAD);
  });

  it('each side sends what the other accepts: 128 KiB one way, 32 768 the other, with each one’s window', async () => {
    const seen = recorder();
    const pair = await createWebSocketPair({
      hub: { maxDataPayload: NEXUS_DATA_PAYLOAD },
      backend: { sendDataPayload: NEXUS_DATA_PAYLOAD },
      observe: seen.observe,
    });
    pairs.push(pair);
    const accepted = new Promise<MuxStream>((resolve) => pair.backend.once('stream', resolve));
    const hubSide = pair.hub.openStream(OPEN);
    const backendSide = await accepted;
    const down = randomBytes(4 * MiB);
    const up = randomBytes(4 * MiB);
    const [gotDown, gotUp] = await Promise.all([
      readExactly(hubSide, down.length),
      readExactly(backendSide, up.length),
      writeAll(backendSide, down, 256 * 1024),
      writeAll(hubSide, up, 256 * 1024),
    ]);
    expect(sha256(gotDown)).toBe(sha256(down));
    expect(sha256(gotUp)).toBe(sha256(up));
    expect(Math.max(...seen.sizes.backend)).toBe(NEXUS_DATA_PAYLOAD);
    expect(Math.max(...seen.sizes.hub)).toBe(MAX_DATA_PAYLOAD);
    // The hub's window: 16 frames of what it accepts; the backend's: the base protocol's 64.
    expect(seen.grants.slice(0, 2)).toEqual([16, 64]);
  });

  it('a stalled stream holds at most its window in bytes (2 MiB), as with 32 768-byte frames', async () => {
    const tuning = { maxDataPayload: NEXUS_DATA_PAYLOAD, sendDataPayload: NEXUS_DATA_PAYLOAD };
    const pair = await createWebSocketPair({ hub: tuning, backend: tuning });
    pairs.push(pair);
    const accepted = new Promise<MuxStream>((resolve) => pair.backend.once('stream', resolve));
    const hubSide = pair.hub.openStream(OPEN);
    const backendSide = await accepted;
    // Nobody reads the hub's side: the backend writes 32 MiB and is held back by the credits.
    const data = randomBytes(32 * MiB);
    const writing = writeAll(backendSide, data, 256 * 1024);
    await waitFor(() => backendSide.sendWindow === 0, 10_000, 'the window to run out');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const window = 16 * NEXUS_DATA_PAYLOAD;
    expect(hubSide.readableLength).toBeLessThanOrEqual(window);
    expect(hubSide.readableLength).toBeGreaterThan(window / 2);
    // The sender holds what it may not send yet: its high-water mark (two frames) and one write.
    expect(backendSide.writableLength).toBeLessThanOrEqual(2 * NEXUS_DATA_PAYLOAD + 256 * 1024);
    // Reading resumes: every byte arrives.
    const got = await readExactly(hubSide, data.length);
    await writing;
    expect(sha256(got)).toBe(sha256(data));
  });

  it('sessions left at 32 768 send only that, and a larger frame ends its stream, not the session', async () => {
    const seen = recorder();
    const pair = await createWebSocketPair({ observe: seen.observe });
    pairs.push(pair);
    const errors: MuxProtocolError[] = [];
    pair.hub.on('protocol-error', (e) => errors.push(e));
    const accepted = new Promise<MuxStream>((resolve) => pair.backend.once('stream', resolve));
    const hubSide = pair.hub.openStream(OPEN);
    const backendSide = await accepted;
    const down = randomBytes(2 * MiB);
    const up = randomBytes(2 * MiB);
    const [gotDown, gotUp] = await Promise.all([
      readExactly(hubSide, down.length),
      readExactly(backendSide, up.length),
      writeAll(backendSide, down),
      writeAll(hubSide, up),
    ]);
    expect(sha256(gotDown)).toBe(sha256(down));
    expect(sha256(gotUp)).toBe(sha256(up));
    for (const side of ['hub', 'backend'] as const)
      expect(Math.max(...seen.sizes[side])).toBe(MAX_DATA_PAYLOAD);
    expect(seen.grants.slice(0, 2)).toEqual([64, 64]);
    // One byte over the hub's 32 785-byte limit: that stream ends (protocol_error), the session stays.
    hubSide.on('error', () => {});
    pair.inject('backend', encodeDataFrameUnchecked(hubSide.id, MAX_DATA_PAYLOAD + 1));
    await waitFor(() => errors.some((e) => e.code === 'MUX_ERR_FRAME_TOO_LARGE'), 5000, 'the error');
    await waitFor(() => hubSide.destroyed, 5000, 'the stream to end');
    expect(hubSide.closeReason).toBe('protocol_error');
    expect(pair.hub.closed).toBe(false);
  });
});

/** A DATA frame of `length` payload bytes, however large (the encoder refuses over 32 768). */
function encodeDataFrameUnchecked(id: string, length: number): Buffer {
  const header = encodeDataFrame(id, new Uint8Array(0));
  return Buffer.concat([header, Buffer.alloc(length, 7)]);
}
