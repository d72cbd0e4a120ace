/** The UDP flow table (docs/edge.md "UDP relay"): LRU eviction, one reaper, per-group timeouts. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type FlowEndReason, FlowTable } from '../src/flow-table.js';

interface TestFlow {
  name: string;
  group: number;
  lastActive: number;
  lastMoved: number;
}

function flow(name: string, group = 1): TestFlow {
  return { name, group, lastActive: 0, lastMoved: 0 };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

function table(maxFlows: number, timeouts: Record<number, number> = { 1: 5_000 }, minTimeoutMs = 0) {
  const ended: Array<[string, FlowEndReason]> = [];
  const asked: number[] = [];
  const t = new FlowTable<TestFlow>({
    maxFlows,
    timeoutMs: (f) => {
      asked.push(f.group);
      return timeouts[f.group]!;
    },
    timeoutKey: (f) => f.group,
    minTimeoutMs,
    onEnd: (f, reason) => ended.push([f.name, reason]),
  });
  return { t, ended, asked };
}

describe('FlowTable', () => {
  it('evicts the least recently used flow when full, reordering at most once a second', () => {
    const { t, ended } = table(2);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => flow(n));
    t.add('a', a!);
    t.add('b', b!);
    vi.advanceTimersByTime(500);
    // Within a second of its last move a touch updates lastActive but not the order: a is still first.
    t.touch('a', a!);
    expect(a!.lastActive).toBe(Date.now());
    t.add('c', c!);
    expect(ended).toEqual([['a', 'evicted']]);
    vi.advanceTimersByTime(1_000);
    t.touch('b', b!); // moved: now the most recent
    t.add('d', d!);
    expect(ended).toEqual([
      ['a', 'evicted'],
      ['c', 'evicted'],
    ]);
    expect([...t.values()].map((f) => f.name)).toEqual(['b', 'd']);
  });

  it('ends flows idle past their group timeout with one interval timer, and stops it when empty', () => {
    const { t, ended, asked } = table(10, { 1: 5_000, 2: 20_000 });
    const short = flow('short', 1);
    const long = flow('long', 2);
    const busy = flow('busy', 1);
    expect(vi.getTimerCount()).toBe(0);
    t.add('short', short);
    t.add('long', long);
    t.add('busy', busy);
    expect(vi.getTimerCount()).toBe(1);
    for (let i = 0; i < 6; i++) {
      vi.advanceTimersByTime(1_000);
      t.touch('busy', busy);
    }
    expect(ended).toEqual([['short', 'expired']]);
    // One timeout lookup per group per sweep, not one per flow.
    expect(asked.length).toBeLessThanOrEqual(2 * 6);
    vi.advanceTimersByTime(15_000);
    expect(ended).toEqual([
      ['short', 'expired'],
      ['busy', 'expired'],
      ['long', 'expired'],
    ]);
    expect(t.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stops sweeping at the first flow younger than the shortest timeout', () => {
    const { t, ended, asked } = table(1_000, { 1: 10_000 }, 10_000);
    for (let i = 0; i < 100; i++) t.add(`f${i}`, flow(`f${i}`));
    vi.advanceTimersByTime(5_000);
    // Every flow is 5 s old: the sweep looked at the first one only.
    expect(asked.length).toBeLessThanOrEqual(5);
    expect(ended).toEqual([]);
  });

  it('delete() removes without onEnd, only the flow given; close() ends the rest', () => {
    const { t, ended } = table(10);
    const a = flow('a');
    t.add('a', a);
    t.add('b', flow('b'));
    expect(t.delete('a', flow('other'))).toBe(false);
    expect(t.delete('a', a)).toBe(true);
    t.close();
    expect(ended).toEqual([['b', 'closed']]);
    expect(vi.getTimerCount()).toBe(0);
    expect(() => new FlowTable({ maxFlows: 0, timeoutMs: () => 1, onEnd: () => {} })).toThrow(RangeError);
  });
});
