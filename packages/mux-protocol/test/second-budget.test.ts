import { describe, expect, it } from 'vitest';
import { SecondBudget } from '../src/second-budget.js';

describe('SecondBudget', () => {
  it('allows `limit` events per second, takes nothing once spent, and starts again a second later', () => {
    let now = 10_000;
    const budget = new SecondBudget(3, () => now);
    expect([budget.take(), budget.take(), budget.take(), budget.take(), budget.take()]).toEqual([
      true,
      true,
      true,
      false,
      false,
    ]);
    now += 999;
    expect(budget.take()).toBe(false);
    now += 1;
    expect([budget.take(), budget.take(), budget.take(), budget.take()]).toEqual([true, true, true, false]);
  });

  it('with a limit of 0 allows nothing', () => {
    const budget = new SecondBudget(0, () => 0);
    expect(budget.take()).toBe(false);
  });
});
