import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_GRANT_BATCH,
  DEFAULT_INITIAL_WINDOW,
  MAX_CREDITS,
  ReceiveLedger,
  SendWindow,
} from '../src/index.js';

/** Runs per property: the default below, or more with FUZZ_RUNS=100000 for a longer session. */
const fuzzRuns = (n: number): number => Math.max(n, Number(process.env.FUZZ_RUNS ?? 0));

describe('SendWindow', () => {
  it('is unmetered until the first grant (legacy v1 peers never grant)', () => {
    const window = new SendWindow();
    expect(window.metered).toBe(false);
    expect(window.available).toBe(Number.POSITIVE_INFINITY);
    for (let i = 0; i < 1000; i++) expect(window.spend()).toBe(true);
    expect(window.canSend()).toBe(true);
  });

  it('spends one credit per frame from the first grant on and stops at zero', () => {
    const window = new SendWindow();
    expect(window.grant(2)).toBe(2);
    expect(window.metered).toBe(true);
    expect(window.spend()).toBe(true);
    expect(window.spend()).toBe(true);
    expect(window.canSend()).toBe(false);
    expect(window.spend()).toBe(false);
    expect(window.available).toBe(0);
    window.grant(8);
    expect(window.spend(3)).toBe(true);
    expect(window.spend(6)).toBe(false);
    expect(window.available).toBe(5);
  });

  it('starts metered with initial credits (connect.credits)', () => {
    const window = new SendWindow({ initialCredits: DEFAULT_INITIAL_WINDOW });
    expect(window.metered).toBe(true);
    expect(window.available).toBe(64);
  });

  it('ignores zero, negative and NaN grants, which mean "no credit flow control"', () => {
    const window = new SendWindow({ initialCredits: 0 });
    window.grant(0);
    window.grant(-5);
    window.grant(Number.NaN);
    expect(window.metered).toBe(false);
  });

  it('clamps the balance at 2^20', () => {
    const window = new SendWindow();
    window.grant(1e15);
    expect(window.available).toBe(MAX_CREDITS);
    window.grant(Number.POSITIVE_INFINITY);
    expect(window.available).toBe(MAX_CREDITS);
    expect(new SendWindow({ maxCredits: 10, initialCredits: 64 }).available).toBe(10);
  });

  it('never goes negative nor above the cap (property)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('spend' as const), n: fc.integer({ min: 1, max: 10 }) }),
      fc.record({ kind: fc.constant('grant' as const), n: fc.integer({ min: -5, max: 2 ** 21 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const window = new SendWindow();
        let sent = 0;
        let granted = 0;
        for (const { kind, n } of ops) {
          if (kind === 'grant') {
            window.grant(n);
            if (n > 0) granted += n;
          } else if (window.spend(n) && window.metered) {
            sent += n;
          }
          if (window.metered) {
            expect(window.available).toBeGreaterThanOrEqual(0);
            expect(window.available).toBeLessThanOrEqual(MAX_CREDITS);
            expect(sent).toBeLessThanOrEqual(granted);
          }
        }
      }),
      { numRuns: fuzzRuns(500) },
    );
  });
});

describe('ReceiveLedger', () => {
  it('uses the reference defaults: window 64, batch 8', () => {
    const ledger = new ReceiveLedger();
    expect(ledger.initialGrant).toBe(DEFAULT_INITIAL_WINDOW);
    expect(ledger.batch).toBe(DEFAULT_GRANT_BATCH);
    expect(ledger.outstanding).toBe(64);
  });

  it('grants back in batches of 8 as frames are delivered, not as they arrive', () => {
    const ledger = new ReceiveLedger();
    for (let i = 0; i < 20; i++) expect(ledger.received()).toBe(true);
    expect(ledger.buffered).toBe(20);
    const grants: number[] = [];
    for (let i = 0; i < 20; i++) grants.push(ledger.delivered());
    expect(grants.filter((g) => g > 0)).toEqual([8, 8]);
    expect(ledger.pending).toBe(4);
    expect(ledger.flush()).toBe(4);
    expect(ledger.flush()).toBe(0);
    expect(ledger.outstanding).toBe(64);
  });

  it('reports an overrun when the sender exceeds its credits', () => {
    const ledger = new ReceiveLedger({ window: 2 });
    expect(ledger.received()).toBe(true);
    expect(ledger.received()).toBe(true);
    expect(ledger.received()).toBe(false);
    expect(ledger.outstanding).toBe(-1);
  });

  it('tolerates `slack` extra frames before reporting an overrun', () => {
    const ledger = new ReceiveLedger({ window: 1, slack: 2 });
    expect([ledger.received(), ledger.received(), ledger.received(), ledger.received()]).toEqual([
      true,
      true,
      true,
      false,
    ]);
  });

  it('clamps the batch to a window smaller than it, so a tiny window cannot deadlock', () => {
    const ledger = new ReceiveLedger({ window: 2, batch: 8 });
    expect(ledger.batch).toBe(2);
    ledger.received();
    ledger.received();
    expect(ledger.delivered()).toBe(0);
    expect(ledger.delivered()).toBe(2);
  });

  it('keeps a grant that could not be sent and includes it in the next one', () => {
    const ledger = new ReceiveLedger({ window: 16, batch: 4 });
    for (let i = 0; i < 5; i++) ledger.received();
    const grant = ledger.delivered(4);
    expect(grant).toBe(4);
    ledger.requeue(grant); // transport refused the resume_stream
    expect(ledger.pending).toBe(4);
    expect(ledger.delivered()).toBe(5);
    expect(ledger.outstanding).toBe(16);
  });

  it('counts at most the buffered frames as delivered', () => {
    const ledger = new ReceiveLedger({ window: 8, batch: 2 });
    ledger.received();
    expect(ledger.delivered(5)).toBe(0);
    expect(ledger.pending).toBe(1);
    expect(ledger.buffered).toBe(0);
  });

  it('grows and narrows its window (windows that grow), keeping the invariant and never taking credits back (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('grow' as const), n: fc.integer({ min: 0, max: 64 }) }),
            fc.record({ op: fc.constant('shrink' as const), n: fc.integer({ min: 0, max: 64 }) }),
            fc.record({ op: fc.constant('send' as const), n: fc.integer({ min: 0, max: 64 }) }),
            fc.record({ op: fc.constant('deliver' as const), n: fc.integer({ min: 0, max: 64 }) }),
          ),
          { maxLength: 200 },
        ),
        (ops) => {
          const ledger = new ReceiveLedger({ window: 16, batch: 2 });
          let granted = ledger.initialGrant;
          let sent = 0;
          for (const { op, n } of ops) {
            if (op === 'grow') ledger.grow(n);
            else if (op === 'shrink') ledger.shrink(n);
            else if (op === 'deliver') ledger.countDelivered(n);
            else {
              // The sender sends only what it holds credits for.
              const frames = Math.min(n, granted - sent);
              for (let i = 0; i < frames; i++) expect(ledger.received()).toBe(true);
              sent += frames;
            }
            granted += ledger.flush();
            expect(ledger.outstanding + ledger.buffered + ledger.pending).toBe(ledger.window);
            expect(ledger.window).toBeGreaterThanOrEqual(0);
            expect(ledger.narrowing).toBeGreaterThanOrEqual(0);
            expect(ledger.outstanding).toBe(granted - sent);
          }
          // Everything delivered: what is left to narrow has been, down to what the sender still holds.
          ledger.countDelivered(ledger.buffered);
          granted += ledger.flush();
          expect(ledger.outstanding + ledger.buffered + ledger.pending).toBe(ledger.window);
        },
      ),
      { numRuns: fuzzRuns(300) },
    );
  });

  it('rejects a window or batch that is not a positive integer', () => {
    expect(() => new ReceiveLedger({ window: 0 })).toThrowError(RangeError);
    expect(() => new ReceiveLedger({ batch: 1.5 })).toThrowError(RangeError);
  });

  it('with a sender that respects its credits: never negative, never above the window, every frame granted back (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 80 }),
        fc.integer({ min: 1, max: 16 }),
        fc.array(
          fc.oneof(fc.constant('send'), fc.constant('deliver'), fc.constant('lose'), fc.constant('flush')),
          {
            maxLength: 400,
          },
        ),
        (window, batch, ops) => {
          const ledger = new ReceiveLedger({ window, batch });
          const sender = new SendWindow({ initialCredits: ledger.initialGrant });
          let sent = 0;
          let delivered = 0;
          const transmit = (grant: number, fail: boolean) => {
            if (grant === 0) return;
            if (fail) {
              ledger.requeue(grant); // the transport refused the grant: keep it for later
            } else {
              sender.grant(grant);
            }
          };
          for (const op of ops) {
            if (op === 'send' && sender.spend()) {
              sent += 1;
              expect(ledger.received()).toBe(true);
            } else if (op === 'deliver' && ledger.buffered > 0) {
              delivered += 1;
              transmit(ledger.delivered(), false);
            } else if (op === 'lose' && ledger.buffered > 0) {
              delivered += 1;
              transmit(ledger.delivered(), true);
            } else if (op === 'flush') {
              transmit(ledger.flush(), false);
            }
            expect(ledger.outstanding).toBeGreaterThanOrEqual(0);
            expect(ledger.buffered).toBeLessThanOrEqual(window);
            expect(ledger.outstanding + ledger.buffered + ledger.pending).toBe(window);
            expect(sender.available).toBe(ledger.outstanding);
          }
          // Drain: deliver everything and flush — every delivered frame's credit comes back.
          while (ledger.buffered > 0) {
            delivered += 1;
            transmit(ledger.delivered(), false);
          }
          transmit(ledger.flush(), false);
          expect(delivered).toBe(sent);
          expect(sender.available).toBe(window);
          expect(ledger.outstanding).toBe(window);
          expect(ledger.pending).toBe(0);
        },
      ),
      { numRuns: fuzzRuns(500) },
    );
  });

  it('with a stalled sender (credits exhausted, everything delivered) always grants without a flush (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 20 }), (window, batch) => {
        const ledger = new ReceiveLedger({ window, batch });
        for (let i = 0; i < window; i++) ledger.received();
        let granted = 0;
        for (let i = 0; i < window; i++) granted += ledger.delivered();
        // The sender had 0 credits and nothing is buffered: it must have been given credit back.
        expect(granted).toBeGreaterThan(0);
        expect(granted + ledger.pending).toBe(window);
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});
