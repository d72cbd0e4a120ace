import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_INITIAL_WINDOW,
  MAX_DATA_PAYLOAD,
  type MuxStream,
  RECEIVE_BUDGET_FLOOR,
  ReceiveBudget,
} from '../src/index.js';
import { readExactly, type SessionPair, sha256, waitFor, writeAll } from './suites/session.suite.js';
import { createWebSocketPair } from './suites/ws-pair.js';

const MiB = 1024 * 1024;
const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };

describe('ReceiveBudget', () => {
  it('counts whole frames and never hands out more than its capacity', () => {
    const budget = new ReceiveBudget(MiB);
    expect(budget.capacity).toBe(MiB / MAX_DATA_PAYLOAD);
    expect(budget.take(20)).toBe(20);
    expect(budget.take(20)).toBe(12);
    expect(budget.take(1)).toBe(0);
    budget.give(32);
    expect(budget.used).toBe(0);
    expect(() => new ReceiveBudget(0)).toThrow(RangeError);
  });

  it('always allows a share its floor, and calls waiting shares back in turn as room returns', () => {
    const budget = new ReceiveBudget(4 * MAX_DATA_PAYLOAD);
    const woken: string[] = [];
    const a = budget.share(() => woken.push('a'));
    const b = budget.share(() => woken.push('b'));
    const c = budget.share(() => woken.push('c'));
    expect(a.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR + 4);
    expect(b.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR);
    expect(c.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR);
    expect(budget.used).toBe(4);
    expect(budget.waiting).toBe(3);
    // a delivers two of its frames: room for two. Waiting shares are called in arrival order, each once
    // per pass; one that takes the room stops the pass.
    let takes = true;
    const d = budget.share(() => {
      woken.push('d');
      if (takes) d.afford(RECEIVE_BUDGET_FLOOR, 2);
    });
    expect(d.afford(0, RECEIVE_BUDGET_FLOOR + 2)).toBe(RECEIVE_BUDGET_FLOOR);
    a.settle(RECEIVE_BUDGET_FLOOR + 2);
    expect(woken).toEqual(['a', 'b', 'c', 'd']);
    expect(budget.used).toBe(4);
    expect(d.taken).toBe(2);
    takes = false;
    // A closed share gives everything back.
    a.close();
    expect(budget.used).toBe(2);
    d.close();
    expect(budget.used).toBe(0);
    expect(a.afford(0, 5)).toBe(5);
  });

  it('a larger budget after a reload calls waiting shares back at once', () => {
    const budget = new ReceiveBudget(MAX_DATA_PAYLOAD);
    let woken = 0;
    const share = budget.share(() => woken++);
    expect(share.afford(0, 10)).toBe(RECEIVE_BUDGET_FLOOR + 1);
    budget.resize(8 * MAX_DATA_PAYLOAD);
    expect(woken).toBe(1);
    expect(budget.capacity).toBe(8);
  });
});

describe('a budget shared by hub sessions whose consumers do not read', () => {
  const pairs: SessionPair[] = [];
  afterEach(async () => {
    await Promise.all(pairs.splice(0).map((pair) => pair.close()));
  });

  it('keeps what they buffer under budget + streams × floor, lets a fast stream flow, then delivers every byte', async () => {
    const budgetBytes = MiB;
    const budget = new ReceiveBudget(budgetBytes);
    const streamHighWaterMark = 64 * 1024;
    for (let i = 0; i < 2; i++) {
      pairs.push(await createWebSocketPair({ hub: { receiveBudget: budget, streamHighWaterMark } }));
    }
    const streamsPerPair = 12;
    const perStream = 2 * MiB;
    const slow: { hubSide: MuxStream; backendSide: MuxStream; data: Buffer; sent: Promise<void> }[] = [];
    for (const pair of pairs) {
      for (let i = 0; i < streamsPerPair; i++) {
        const accepted = new Promise<MuxStream>((resolve) => pair.backend.once('stream', resolve));
        const hubSide = pair.hub.openStream(OPEN);
        const backendSide = await accepted;
        const data = randomBytes(perStream);
        slow.push({ hubSide, backendSide, data, sent: writeAll(backendSide, data) });
      }
    }
    const streams = slow.length;
    const floorBytes = RECEIVE_BUDGET_FLOOR * MAX_DATA_PAYLOAD;
    // What a stream holds beside its budget: its floor, and the frames it already counted as delivered
    // (up to its high-water mark, plus the frame that crossed it).
    const bound = budgetBytes + streams * (floorBytes + streamHighWaterMark + MAX_DATA_PAYLOAD);
    let largest = 0;
    const sample = () => {
      let held = 0;
      for (const s of slow) held += s.hubSide.readableLength;
      largest = Math.max(largest, held);
      expect(budget.used).toBeLessThanOrEqual(budget.capacity);
    };
    const timer = setInterval(sample, 5);
    try {
      // Everything the budget allows has arrived and nothing more moves.
      await waitFor(() => budget.used === budget.capacity, 10_000, 'the budget to fill');
      await new Promise((resolve) => setTimeout(resolve, 300));
      sample();
      expect(largest).toBeLessThanOrEqual(bound);
      // Without the budget each stream could buffer its whole window.
      expect(largest).toBeLessThan(streams * DEFAULT_INITIAL_WINDOW * MAX_DATA_PAYLOAD);

      // A fast stream beside the slow ones still flows.
      const pair = pairs[0] as SessionPair;
      const accepted = new Promise<MuxStream>((resolve) => pair.backend.once('stream', resolve));
      const fastHub = pair.hub.openStream(OPEN);
      const fastBackend = await accepted;
      const fastData = randomBytes(4 * MiB);
      const [fastGot] = await Promise.all([
        readExactly(fastHub, fastData.length),
        writeAll(fastBackend, fastData),
      ]);
      expect(sha256(fastGot)).toBe(sha256(fastData));
      sample();
      expect(largest).toBeLessThanOrEqual(bound);

      // The readers resume: every byte arrives, nothing lost, no stream stalls.
      const got = await Promise.all(slow.map((s) => readExactly(s.hubSide, perStream)));
      await Promise.all(slow.map((s) => s.sent));
      for (const [i, s] of slow.entries()) expect(sha256(got[i] as Buffer)).toBe(sha256(s.data));
      // Streams that end give their part back.
      for (const s of slow) s.backendSide.end();
      fastBackend.end();
      await waitFor(() => budget.used === 0, 5000, 'the budget to empty');
    } finally {
      clearInterval(timer);
    }
    console.log(
      `receive budget: ${streams} non-reading streams held at most ${(largest / MiB).toFixed(2)} MiB ` +
        `(budget 1 MiB, bound ${(bound / MiB).toFixed(2)} MiB)`,
    );
  }, 60_000);
});
