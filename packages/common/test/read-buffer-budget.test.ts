import { describe, expect, it, vi } from 'vitest';
import {
  BurstReads,
  HELD_READ_TRICKLE_MS,
  HeldReadBudget,
  ReadBufferBudget,
} from '../src/read-buffer-budget.js';

describe('BurstReads', () => {
  it('installs a buffer of its own only during a burst, under the bound, and when the caller may', () => {
    const budget = new ReadBufferBudget(2, 1024);
    const [a, b, c] = [0, 1, 2].map(() => new BurstReads(budget, 100));
    expect(a!.ownNext(true)).toBe(false); // no burst yet
    for (const s of [a!, b!, c!]) expect(s.read(100)).toBe(true);
    expect(a!.ownNext(false)).toBe(false); // stopped: the landing buffer
    expect(a!.ownNext(true)).toBe(true);
    expect(b!.ownNext(true)).toBe(true);
    expect(c!.ownNext(true)).toBe(false); // past the bound
    expect(budget.installed).toBe(2);
    expect(a!.ownNext(true)).toBe(true); // asked again: replaces, not adds
    expect(budget.installed).toBe(2);
    expect(a!.read(99)).toBe(false); // a short read ends the burst and gives the buffer back
    expect(budget.installed).toBe(1);
    expect(a!.ownNext(true)).toBe(false);
    b!.release();
    b!.release(); // given back once
    expect(budget.installed).toBe(0);
    expect(b!.bursting).toBe(false);
    expect(c!.ownNext(true)).toBe(true);
    expect(budget.landing()).toBe(budget.landing());
    expect(budget.landing().length).toBe(1024);
  });
});

describe('HeldReadBudget', () => {
  it('resumes waiters in arrival order, as many as the room takes, skipping those that stopped waiting', () => {
    vi.useFakeTimers();
    try {
      const budget = new HeldReadBudget(100, 10);
      budget.hold(100);
      expect(budget.full).toBe(true);
      const woken: number[] = [];
      const stillWaiting = new Set([0, 1, 2, 3, 4, 5]);
      for (let i = 0; i < 6; i++) {
        budget.wait(() => {
          if (!stillWaiting.has(i)) return false;
          woken.push(i);
          return true;
        });
      }
      expect(budget.waiting).toBe(6);
      stillWaiting.delete(1); // closed while it waited
      budget.release(25); // room for three reads of 10
      expect(woken).toEqual([]); // on the next turn of the event loop, not inside release
      vi.advanceTimersToNextTimer();
      expect(woken).toEqual([0, 2, 3]);
      expect(budget.waiting).toBe(2);
      budget.release(75);
      vi.advanceTimersToNextTimer();
      expect(woken).toEqual([0, 2, 3, 4, 5]);
      expect(budget.waiting).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('lets the oldest waiter whose stream holds nothing read while the budget stays used up', () => {
    vi.useFakeTimers();
    try {
      const budget = new HeldReadBudget(100, 10);
      budget.hold(100); // held by streams that never send
      const woken: string[] = [];
      const holding = new Set(['stuck-1', 'stuck-2']);
      const waiter = (name: string) => {
        const wake = (trickle: boolean): boolean => {
          if (trickle && holding.has(name)) {
            budget.wait(wake); // its stream holds something: not its turn, queued again
            return false;
          }
          woken.push(name);
          return true;
        };
        return wake;
      };
      for (const name of ['stuck-1', 'stuck-2', 'fresh-1', 'fresh-2']) budget.wait(waiter(name));
      vi.advanceTimersByTime(HELD_READ_TRICKLE_MS - 1);
      expect(woken).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(woken).toEqual(['fresh-1']); // past the two that hold, one per trickle
      vi.advanceTimersByTime(HELD_READ_TRICKLE_MS);
      expect(woken).toEqual(['fresh-1', 'fresh-2']);
      vi.advanceTimersByTime(10 * HELD_READ_TRICKLE_MS);
      expect(woken).toEqual(['fresh-1', 'fresh-2']); // the stuck ones wait for room
      expect(budget.waiting).toBe(2);
      holding.delete('stuck-1'); // it sent what it held
      budget.release(100); // room: both in their turn
      vi.advanceTimersToNextTimer();
      expect(woken).toEqual(['fresh-1', 'fresh-2', 'stuck-1', 'stuck-2']);
      vi.advanceTimersByTime(2 * HELD_READ_TRICKLE_MS);
      expect(vi.getTimerCount()).toBe(0); // nobody waits: no timer left
    } finally {
      vi.useRealTimers();
    }
  });

  it('has a socket yield its turn at its even share while others wait, and at the bound in any case', () => {
    const budget = new HeldReadBudget(100, 10);
    for (let i = 0; i < 4; i++) budget.join(); // four sockets share it: 25 each
    expect(budget.yields(60)).toBe(false); // nobody waits: a socket may read on under the bound
    budget.hold(60);
    budget.wait(() => true);
    expect(budget.yields(24)).toBe(false);
    expect(budget.yields(25)).toBe(true); // someone waits and it holds its share
    budget.leave();
    budget.leave(); // two left: 50 each
    expect(budget.yields(25)).toBe(false);
    budget.hold(40);
    expect(budget.yields(0)).toBe(true); // used up
  });
});
