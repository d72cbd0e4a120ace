import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_INITIAL_WINDOW,
  MAX_DATA_PAYLOAD,
  type MuxStream,
  RECEIVE_BUDGET_FLOOR,
  RECEIVE_BUDGET_RELAXED,
  RECEIVE_BUDGET_START,
  ReceiveBudget,
  type ReceiveBudgetShare,
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

  it('splits the budget evenly, always allows a share its floor, and calls waiting shares back in turn as room returns', () => {
    const budget = new ReceiveBudget(4 * MAX_DATA_PAYLOAD);
    const woken: string[] = [];
    // A woken share asks for one frame more, as a stream granting what it deferred does.
    const open = (name: string): ReceiveBudgetShare => {
      const share = budget.share(() => {
        woken.push(name);
        share.afford(RECEIVE_BUDGET_FLOOR, 1);
      });
      return share;
    };
    const a = open('a');
    const b = open('b');
    const c = open('c');
    // 4 frames over 3 shares: 1 each beyond the floor, however much each wants.
    expect(budget.shareLimit).toBe(1);
    expect(a.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR + 1);
    expect(b.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR + 1);
    expect(c.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR + 1);
    expect(budget.used).toBe(3);
    // Held at their limit, not waiting for room: no one is called back for nothing.
    expect(budget.waiting).toBe(0);
    const d = open('d');
    expect(d.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR + 1);
    const e = open('e');
    const f = open('f');
    // The budget is full: e and f get their floor and wait for room, in arrival order.
    expect(e.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR);
    expect(f.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR);
    expect(budget.used).toBe(4);
    expect(budget.waiting).toBe(2);
    // a delivers everything: it keeps its part for its next grants (no give and take per frame).
    a.settle(0);
    expect(a.taken).toBe(1);
    expect(woken).toEqual([]);
    // a closes: its frame goes to the first share waiting; the one that takes it stops the pass.
    a.close();
    expect(woken).toEqual(['e']);
    expect(e.taken).toBe(1);
    expect(budget.used).toBe(4);
    expect(budget.waiting).toBe(1);
    // b closes: its frame goes to f.
    b.close();
    expect(woken).toEqual(['e', 'f']);
    // c and d close: two shares left, the limit rises to 2 and both are called back.
    c.close();
    d.close();
    expect(woken).toEqual(['e', 'f', 'e', 'f']);
    // A closed share gives everything back; later asks are free.
    e.close();
    f.close();
    expect(budget.used).toBe(0);
    expect(a.afford(0, 5)).toBe(5);
  });

  it('gives a stream its whole window at once while the budget is little used, and grows from the start once it fills', () => {
    // 256 frames: a quarter is 64, the full window of one stream.
    const budget = new ReceiveBudget(256 * MAX_DATA_PAYLOAD);
    const quiet = budget.share(() => {});
    expect(quiet.afford(0, DEFAULT_INITIAL_WINDOW)).toBe(DEFAULT_INITIAL_WINDOW);
    expect(budget.used).toBe(DEFAULT_INITIAL_WINDOW - RECEIVE_BUDGET_FLOOR);
    expect(budget.used).toBeLessThanOrEqual(budget.capacity * RECEIVE_BUDGET_RELAXED);
    // The next whole window would take the budget past a quarter: this stream starts small and doubles.
    const busy = budget.share(() => {});
    expect(busy.afford(0, DEFAULT_INITIAL_WINDOW)).toBe(RECEIVE_BUDGET_FLOOR + RECEIVE_BUDGET_START);
    expect(busy.afford(RECEIVE_BUDGET_FLOOR + RECEIVE_BUDGET_START, DEFAULT_INITIAL_WINDOW)).toBe(
      RECEIVE_BUDGET_START,
    );
    expect(busy.taken).toBe(2 * RECEIVE_BUDGET_START);
  });

  it('a share above its part after others opened gives the excess back as it delivers', () => {
    const budget = new ReceiveBudget(8 * MAX_DATA_PAYLOAD);
    const first = budget.share(() => {});
    // Alone, a share may take the whole budget.
    expect(first.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR + 8);
    let woken = 0;
    const second = budget.share(() => {
      woken++;
      second.afford(RECEIVE_BUDGET_FLOOR, 62);
    });
    expect(second.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR);
    expect(budget.shareLimit).toBe(4);
    // Still committed: nothing to give back.
    first.settle(RECEIVE_BUDGET_FLOOR + 8);
    expect(first.taken).toBe(8);
    // Delivered: it keeps its part (4) and the rest goes to the share waiting.
    first.settle(RECEIVE_BUDGET_FLOOR);
    expect(first.taken).toBe(4);
    expect(woken).toBe(1);
    expect(second.taken).toBe(4);
    expect(budget.used).toBe(8);
  });

  it('calls shares held at their limit back when shares close and the limit rises, once per rise', () => {
    const budget = new ReceiveBudget(8 * MAX_DATA_PAYLOAD);
    const woken: string[] = [];
    const shares: ReceiveBudgetShare[] = [];
    for (let i = 0; i < 4; i++) {
      const share = budget.share(() => woken.push(`s${i}`));
      shares.push(share);
      // 8 frames over 4 shares once all are open; the first ones take more while they are fewer.
    }
    for (const share of shares) expect(share.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR + 2);
    expect(budget.used).toBe(8);
    // One closes: 8 over 3 is still 2 each, so no one is called back.
    shares[3]!.close();
    expect(woken).toEqual([]);
    // Another closes: 4 each now, and the two still wanting more are called back.
    shares[2]!.close();
    expect(woken).toEqual(['s0', 's1']);
  });

  it('takes whole frames of a stream with larger frames: a part smaller than one frame stays in the budget', () => {
    // 3 units of 32 768 bytes, one share whose frames take 4: its part cannot hold one frame.
    const budget = new ReceiveBudget(3 * MAX_DATA_PAYLOAD);
    const large = budget.share(() => {}, 4);
    // Its floor: one frame (the floor's 64 KiB, at least one frame of the stream's size).
    expect(large.afford(0, 16)).toBe(1);
    expect(large.taken).toBe(0);
    expect(budget.used).toBe(0);
    // With frames of 32 768 bytes a unit is a frame: 3 units over two shares, 1 each.
    const small = budget.share(() => {}, 1);
    expect(small.afford(0, 64)).toBe(RECEIVE_BUDGET_FLOOR + 1);
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
