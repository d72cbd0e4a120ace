import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_WEIGHT, normalizeWeight, WeightedRoundRobin } from '../src/weighted-round-robin.js';

function pool(weights: Record<string, number>): WeightedRoundRobin<string> {
  return new WeightedRoundRobin(Object.entries(weights));
}

function take<T>(wrr: WeightedRoundRobin<T>, n: number): (T | undefined)[] {
  return Array.from({ length: n }, () => wrr.pick());
}

function counts(picks: readonly (string | undefined)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picks) if (p !== undefined) out[p] = (out[p] ?? 0) + 1;
  return out;
}

describe('WeightedRoundRobin', () => {
  // Sequences are nginx's smooth weighted round robin output (ties go to the earlier member);
  // { a: 5, b: 1, c: 1 } is the example from nginx's ngx_http_upstream_round_robin.c comment.
  const cases: { name: string; weights: Record<string, number>; picks: number; expected: string }[] = [
    { name: 'a single member', weights: { a: 3 }, picks: 4, expected: 'aaaa' },
    { name: 'equal weights', weights: { a: 1, b: 1, c: 1 }, picks: 6, expected: 'abcabc' },
    { name: '5:1', weights: { a: 5, b: 1 }, picks: 12, expected: 'aaabaaaaabaa' },
    { name: '5:1:1 (nginx example)', weights: { a: 5, b: 1, c: 1 }, picks: 7, expected: 'aabacaa' },
    {
      name: '1:5 (order does not matter for the share)',
      weights: { a: 1, b: 5 },
      picks: 6,
      expected: 'bbabbb',
    },
    { name: '2:1', weights: { a: 2, b: 1 }, picks: 6, expected: 'abaaba' },
    { name: '3:2', weights: { a: 3, b: 2 }, picks: 5, expected: 'ababa' },
    { name: 'weight 0 and negative count as 1', weights: { a: 0, b: -5 }, picks: 4, expected: 'abab' },
  ];

  it.each(cases)('picks $name as $expected', ({ weights, picks, expected }) => {
    expect(take(pool(weights), picks).join('')).toBe(expected);
  });

  it('gives exactly 500 and 100 picks over 600 picks for weights 500:100', () => {
    const wrr = pool({ a: 500, b: 100 });
    expect(counts(take(wrr, 600))).toEqual({ a: 500, b: 100 });
    // …and again for the next cycle.
    expect(counts(take(wrr, 600))).toEqual({ a: 500, b: 100 });
  });

  it('interleaves 500:100 instead of bunching (b every 6 picks)', () => {
    const picks = take(pool({ a: 500, b: 100 }), 600);
    const bIndexes = picks.flatMap((p, i) => (p === 'b' ? [i] : []));
    for (let i = 1; i < bIndexes.length; i++) expect(bIndexes[i]! - bIndexes[i - 1]!).toBe(6);
  });

  it('returns undefined when empty and after the last member leaves', () => {
    const wrr = new WeightedRoundRobin<string>();
    expect(wrr.pick()).toBeUndefined();
    wrr.add('a');
    expect(wrr.pick()).toBe('a');
    expect(wrr.remove('a')).toBe(true);
    expect(wrr.pick()).toBeUndefined();
    expect(wrr.size).toBe(0);
    expect(wrr.totalWeight).toBe(0);
  });

  it('remove() of a non-member returns false', () => {
    const wrr = pool({ a: 1 });
    expect(wrr.remove('zzz')).toBe(false);
    expect(wrr.size).toBe(1);
  });

  it('add() of an existing member updates its weight without duplicating it', () => {
    const wrr = pool({ a: 1, b: 1 });
    wrr.add('a', 3);
    expect(wrr.size).toBe(2);
    expect(wrr.totalWeight).toBe(4);
    expect(counts(take(wrr, 8))).toEqual({ a: 6, b: 2 });
  });

  it('serves a member that joins mid-rotation in its share from then on', () => {
    const wrr = pool({ a: 2, b: 1 });
    take(wrr, 2);
    wrr.add('c', 3);
    expect(counts(take(wrr, 6 * 10))).toEqual({ a: 20, b: 10, c: 30 });
  });

  it('keeps exact shares after a member with a large debt leaves mid-rotation', () => {
    const wrr = pool({ a: 10, b: 1, c: 1 });
    take(wrr, 1); // a now owes 12
    wrr.remove('a');
    expect(counts(take(wrr, 2 * 5))).toEqual({ b: 5, c: 5 });
  });

  it.each([1, 3, 10])(
    'gives a light member its share while another member joins and leaves every %i picks',
    (every) => {
      const wrr = pool({ heavy: 50, light: 1 });
      let light = 0;
      const rounds = 2000;
      for (let i = 0; i < rounds; i++) {
        wrr.add('churn', 50);
        for (let k = 0; k < every; k++) if (wrr.pick() === 'light') light++;
        wrr.remove('churn');
      }
      // Fair share: 1/101 of the picks.
      expect(light).toBeGreaterThanOrEqual(Math.floor((rounds * every) / 101) - 1);
    },
  );

  it.each([
    { name: 'a heavy member leaves right after the light one was picked', steps: 'a6 c1 p4 b12 p68 -b' },
    { name: 'a member with a big credit is reweighted', steps: 'a8 c1 p5 a1' },
    { name: 'a lone member with credit meets a newcomer', steps: 'a1 b10 e1 p16 -e -b b1' },
    { name: 'a pool shrinks, then a newcomer joins', steps: 'a11 b4 p2 -a b1 c1' },
  ])('serves every member within two windows after $name', ({ steps }) => {
    const wrr = new WeightedRoundRobin<string>();
    for (const step of steps.split(' ')) {
      if (step.startsWith('p')) take(wrr, Number(step.slice(1)));
      else if (step.startsWith('-')) wrr.remove(step.slice(1));
      else wrr.add(step[0]!, Number(step.slice(1)));
    }
    const got = counts(take(wrr, 2 * wrr.totalWeight));
    for (const t of wrr.targets()) expect(got[t] ?? 0).toBeGreaterThanOrEqual(1);
  });

  it('stats() reports weights, totals and per-member picks', () => {
    const wrr = pool({ a: 2, b: 1 });
    take(wrr, 3);
    expect(wrr.stats()).toEqual({
      size: 2,
      totalWeight: 3,
      picks: 3,
      members: [
        { target: 'a', weight: 2, picks: 2 },
        { target: 'b', weight: 1, picks: 1 },
      ],
    });
  });

  it('works with object targets (identity)', () => {
    const s1 = { id: 1 };
    const s2 = { id: 1 };
    const wrr = new WeightedRoundRobin<object>([[s1], [s2]]);
    expect(wrr.size).toBe(2);
    expect(wrr.has(s2)).toBe(true);
    expect([...wrr.targets()]).toEqual([s1, s2]);
  });

  it('picks every member exactly weight times in every window of totalWeight picks (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 8 }), (weights) => {
        const wrr = new WeightedRoundRobin(weights.map((w, i) => [i, w] as const));
        const total = weights.reduce((a, b) => a + b, 0);
        for (let round = 0; round < 3; round++) {
          const got = new Array<number>(weights.length).fill(0);
          for (let k = 0; k < total; k++) got[wrr.pick()!]!++;
          expect(got).toEqual(weights);
        }
      }),
    );
  });

  it('survives arbitrary joins, leaves and picks, then serves exact shares (property)', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('add' as const),
        id: fc.integer({ min: 0, max: 5 }),
        w: fc.integer({ min: -3, max: 12 }),
      }),
      fc.record({ kind: fc.constant('remove' as const), id: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant('pick' as const), n: fc.integer({ min: 1, max: 30 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const wrr = new WeightedRoundRobin<number>();
        const model = new Map<number, number>();
        for (const o of ops) {
          if (o.kind === 'add') {
            wrr.add(o.id, o.w);
            model.set(o.id, normalizeWeight(o.w));
          } else if (o.kind === 'remove') {
            expect(wrr.remove(o.id)).toBe(model.delete(o.id));
          } else {
            for (let i = 0; i < o.n; i++) {
              const p = wrr.pick();
              if (model.size === 0) expect(p).toBeUndefined();
              else expect(model.has(p!)).toBe(true);
            }
          }
        }
        expect(wrr.size).toBe(model.size);
        const total = [...model.values()].reduce((a, b) => a + b, 0);
        expect(wrr.totalWeight).toBe(total);
        if (model.size === 0) return;
        // Stable membership from here on: two full windows serve every member its exact share in total,
        // and nobody is starved within a single window.
        const got = new Map<number, number>();
        for (let k = 0; k < 2 * total; k++) {
          const p = wrr.pick()!;
          got.set(p, (got.get(p) ?? 0) + 1);
        }
        for (const [id, w] of model) {
          expect(got.get(id) ?? 0).toBeGreaterThanOrEqual(2 * w - model.size);
          expect(got.get(id) ?? 0).toBeGreaterThanOrEqual(1);
        }
      }),
    );
  });
});

describe('normalizeWeight', () => {
  it.each([
    { input: undefined, expected: 1 },
    { input: 0, expected: 1 },
    { input: -7, expected: 1 },
    { input: Number.NaN, expected: 1 },
    { input: Number.POSITIVE_INFINITY, expected: 1 },
    { input: 0.5, expected: 1 },
    { input: 2.9, expected: 2 },
    { input: 7, expected: 7 },
    { input: 1e12, expected: MAX_WEIGHT },
  ])('normalizeWeight($input) = $expected', ({ input, expected }) => {
    expect(normalizeWeight(input)).toBe(expected);
  });
});
