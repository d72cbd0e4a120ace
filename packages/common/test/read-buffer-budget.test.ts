import { describe, expect, it } from 'vitest';
import { BurstReads, ReadBufferBudget } from '../src/read-buffer-budget.js';

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
