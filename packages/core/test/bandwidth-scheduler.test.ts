import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type BandwidthAccount,
  BandwidthScheduler,
  type BandwidthWaiter,
  mbpsToBytesPerMs,
} from '../src/bandwidth-scheduler.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function scheduler(mbps: number, extra: { tickMs?: number; burstMs?: number } = {}): BandwidthScheduler {
  return new BandwidthScheduler({ totalBandwidthMbps: mbps, now: () => Date.now(), ...extra });
}

/** A greedy sender: sends `chunk` bytes at a time whenever it is not paused, as a relay's source would. */
class Source implements BandwidthWaiter {
  paused = false;
  busy = true;
  sent = 0;
  resumes = 0;
  next: BandwidthWaiter | undefined;
  prev: BandwidthWaiter | undefined;
  queuedOn: BandwidthAccount | undefined;
  constructor(
    readonly account: BandwidthAccount,
    readonly chunk: number,
  ) {}
  resume(): void {
    this.paused = false;
    this.resumes++;
  }
  /** Sends until paused (at most `max` chunks: a line rate). */
  run(max = 10_000): void {
    for (let i = 0; i < max && this.busy && !this.paused; i++) {
      this.sent += this.chunk;
      if (!this.account.charge(this.chunk)) {
        this.paused = true;
        this.account.wait(this);
      }
    }
  }
}

/** Advances `ms` in steps of `step`, letting every source send after each step. */
function run(sources: Source[], ms: number, step = 1): void {
  for (let t = 0; t < ms; t += step) {
    for (const s of sources) s.run();
    vi.advanceTimersByTime(step);
  }
  for (const s of sources) s.run();
}

function jain(xs: number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const squares = xs.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (xs.length * squares);
}

/** Bytes each account sent over `ms` (after the sources already ran for a warm-up). */
function measure(accounts: BandwidthAccount[], sources: Source[], ms: number, step = 1): number[] {
  const before = accounts.map((a) => a.bytesSent);
  run(sources, ms, step);
  return accounts.map((a, i) => a.bytesSent - before[i]!);
}

describe('BandwidthScheduler', () => {
  it('unlimited (0): charges count nothing, nobody waits, no timer', () => {
    const s = scheduler(0);
    const a = s.account('a');
    expect(s.enabled).toBe(false);
    for (let i = 0; i < 1_000; i++) expect(a.charge(65_536)).toBe(true);
    expect(a.tryCharge(65_536)).toBe(true);
    let resumed = 0;
    a.wait({ resume: () => resumed++ });
    expect(resumed).toBe(1);
    expect(a.bytesSent).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('holds the cap with one greedy sender, to within the burst and one chunk', () => {
    const s = scheduler(40); // 5 000 bytes per ms
    const a = s.account('a');
    const src = new Source(a, 16_384);
    run([src], 2_000);
    const expected = mbpsToBytesPerMs(40) * 2_000;
    expect(a.bytesSent).toBeLessThanOrEqual(expected + s.burst + s.quantum + 16_384);
    expect(a.bytesSent).toBeGreaterThanOrEqual(expected * 0.98);
  });

  it('shares the cap equally across busy backends whatever their streams and chunk sizes (Jain ≥ 0.95)', () => {
    const s = scheduler(40);
    const greedy = s.account('greedy');
    const b = s.account('b');
    const c = s.account('c');
    const sources = [
      ...Array.from({ length: 8 }, () => new Source(greedy, 65_536)),
      new Source(b, 16_384),
      new Source(c, 1_000),
    ];
    run(sources, 1_000);
    const sent = measure([greedy, b, c], sources, 5_000);
    const total = sent.reduce((x, y) => x + y, 0);
    expect(total / (mbpsToBytesPerMs(40) * 5_000)).toBeGreaterThan(0.95);
    expect(total / (mbpsToBytesPerMs(40) * 5_000)).toBeLessThan(1.05);
    expect(jain(sent)).toBeGreaterThanOrEqual(0.95);
  });

  it('gives an idle backend’s share to the busy ones, and takes it back when it gets busy', () => {
    const s = scheduler(80); // 10 000 bytes per ms
    const a = s.account('a');
    const b = s.account('b');
    const sa = new Source(a, 8_192);
    const sb = new Source(b, 8_192);
    sb.busy = false;
    run([sa, sb], 500);
    const alone = measure([a, b], [sa, sb], 2_000);
    expect(alone[1]).toBe(0);
    expect(alone[0]! / (mbpsToBytesPerMs(80) * 2_000)).toBeGreaterThan(0.97);
    sb.busy = true;
    run([sa, sb], 500);
    const both = measure([a, b], [sa, sb], 2_000);
    expect(jain(both)).toBeGreaterThan(0.99);
    expect((both[0]! + both[1]!) / (mbpsToBytesPerMs(80) * 2_000)).toBeGreaterThan(0.97);
  });

  it('bounds the burst after idle: the saved-up tokens and what was left of its last share, plus the chunk that went over', () => {
    const s = scheduler(100, { burstMs: 20 });
    const a = s.account('a');
    const src = new Source(a, 4_096);
    run([src], 200);
    src.busy = false;
    run([src], 10_000, 10);
    src.busy = true;
    const before = a.bytesSent;
    src.run(); // no time passes: only what was saved up can go
    const burst = a.bytesSent - before;
    expect(burst).toBeGreaterThan(0);
    // 20 ms of the cap saved up, at most one period (5 ms) of the cap left over, one chunk past zero.
    expect(burst).toBeLessThanOrEqual(mbpsToBytesPerMs(100) * (20 + 5) + 4_096);
    expect(s.burst).toBe(mbpsToBytesPerMs(100) * 20);
  });

  it('keeps one timer however many backends wait, and none once nobody does', () => {
    const s = scheduler(10);
    const sources = Array.from({ length: 100 }, (_, i) => new Source(s.account(`b${i}`), 4_096));
    for (const src of sources) src.run();
    expect(s.stats().throttledAccounts).toBeGreaterThan(90);
    expect(vi.getTimerCount()).toBe(1);
    for (const src of sources) src.busy = false;
    run(sources, 2_000, 5);
    expect(s.stats().throttledAccounts).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('membership: a released account repays its debt and ends; a cancelled waiter is never resumed', () => {
    const s = scheduler(8); // 1 000 bytes per ms
    const a = s.account('a', 'app.test');
    const src = new Source(a, 50_000);
    src.run();
    expect(src.paused).toBe(true);
    expect(a.balance).toBeLessThan(0);
    a.cancel(src);
    a.release();
    // Still there: the bytes were sent, the debt is repaid before the account goes.
    expect(s.accountCount).toBe(1);
    vi.advanceTimersByTime(60);
    expect(s.accountCount).toBe(0);
    expect(src.resumes).toBe(0);
    const stats = s.stats();
    expect(stats.groups).toEqual([{ group: 'app.test', bytesSent: 50_000, throttledMs: expect.any(Number) }]);
    expect(stats.groups[0]!.throttledMs).toBeGreaterThan(0);
    expect(stats.bytesSent).toBe(50_000);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a new backend joins the round: the others’ shares shrink to make room at once', () => {
    const s = scheduler(40);
    const accounts = [s.account('a'), s.account('b')];
    const sources = accounts.map((a) => new Source(a, 16_384));
    run(sources, 1_000);
    const late = s.account('c');
    accounts.push(late);
    sources.push(new Source(late, 16_384));
    run(sources, 500);
    const sent = measure(accounts, sources, 3_000);
    expect(jain(sent)).toBeGreaterThanOrEqual(0.95);
  });

  it('lifting the cap resumes every waiter, forgives debts and stops the timer; setting it again meters', () => {
    const s = scheduler(1);
    const a = s.account('a');
    const src = new Source(a, 65_536);
    src.run();
    expect(src.paused).toBe(true);
    s.setCap(0);
    expect(src.paused).toBe(false);
    expect(a.balance).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    s.setCap(1);
    src.run();
    expect(src.paused).toBe(true);
    expect(s.stats().totalBandwidthMbps).toBe(1);
    expect(s.stats().capBytesPerSecond).toBe(125_000);
  });

  it('tryCharge (datagrams) drops instead of waiting while the account is in debt', () => {
    const s = scheduler(8);
    const a = s.account('udp');
    let accepted = 0;
    for (let i = 0; i < 1_000; i++) if (a.tryCharge(1_200)) accepted++;
    expect(accepted).toBeGreaterThan(0);
    expect(accepted * 1_200).toBeLessThanOrEqual(s.burst + s.quantum + 1_200);
    vi.advanceTimersByTime(1_000);
    let later = 0;
    for (let i = 0; i < 2_000; i++) {
      if (a.tryCharge(1_200)) later++;
      if (i % 10 === 0) vi.advanceTimersByTime(1);
    }
    // ~200 ms at 1 000 bytes per ms.
    expect(later * 1_200).toBeGreaterThan(150_000);
    expect(later * 1_200).toBeLessThan(260_000);
  });

  it('stats: bytes, throttled time and rate per account', () => {
    const s = scheduler(8);
    const a = s.account('a', 'app.test');
    const src = new Source(a, 2_000);
    s.stats();
    run([src], 1_000);
    const stats = s.stats();
    const account = stats.accounts.find((x) => x.id === 'a')!;
    expect(account.group).toBe('app.test');
    expect(account.bytesSent).toBe(a.bytesSent);
    expect(account.throttledMs).toBeGreaterThan(500);
    expect(account.bytesPerSecond).toBeGreaterThan(900_000);
    expect(account.bytesPerSecond).toBeLessThan(1_100_000);
    expect(account.users).toBe(1);
  });

  it('property: the cap holds and busy backends share it fairly, for any caps, chunk sizes and streams', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10, max: 400 }),
        fc.array(
          fc.record({
            streams: fc.integer({ min: 1, max: 4 }),
            chunk: fc.integer({ min: 200, max: 65_536 }),
          }),
          { minLength: 2, maxLength: 4 },
        ),
        (mbps, backends) => {
          vi.clearAllTimers();
          const s = scheduler(mbps);
          const accounts = backends.map((_, i) => s.account(`b${i}`));
          const sources = backends.flatMap((b, i) =>
            Array.from({ length: b.streams }, () => new Source(accounts[i]!, b.chunk)),
          );
          const rate = mbpsToBytesPerMs(mbps);
          // Long enough that each backend's largest debt (a chunk per stream) is repaid many times over.
          const worstDebt = Math.max(...backends.map((b) => b.streams * b.chunk));
          const ms = Math.min(60_000, Math.max(2_000, Math.ceil((40 * worstDebt * backends.length) / rate)));
          run(sources, 500, 5);
          const sent = measure(accounts, sources, ms, 5);
          const total = sent.reduce((x, y) => x + y, 0);
          const slack =
            s.burst + backends.length * s.quantum + backends.reduce((x, b) => x + b.streams * b.chunk, 0);
          expect(total).toBeLessThanOrEqual(rate * ms + slack);
          expect(total).toBeGreaterThanOrEqual(rate * ms * 0.95 - slack);
          expect(jain(sent)).toBeGreaterThanOrEqual(0.95);
          s.close();
        },
      ),
      { numRuns: 25 },
    );
  });

  it('property: an account never holds more than the saved-up burst and one period of the cap', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000 }),
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 3 }),
            fc.integer({ min: 1, max: 70_000 }),
            fc.integer({ min: 0, max: 50 }),
          ),
          {
            minLength: 1,
            maxLength: 300,
          },
        ),
        (mbps, steps) => {
          vi.clearAllTimers();
          const s = scheduler(mbps);
          const accounts = [0, 1, 2, 3].map((i) => s.account(`b${i}`));
          const waiter = (): BandwidthWaiter => ({ resume() {} });
          for (const [who, bytes, ms] of steps) {
            const a = accounts[who]!;
            if (!a.charge(bytes)) a.wait(waiter());
            vi.advanceTimersByTime(ms);
            for (const x of accounts)
              expect(x.balance).toBeLessThanOrEqual(
                s.burst + Math.max(s.quantum, mbpsToBytesPerMs(mbps) * 5),
              );
          }
          s.close();
          expect(vi.getTimerCount()).toBe(0);
        },
      ),
      { numRuns: 50 },
    );
  });
});
