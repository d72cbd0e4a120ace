import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SniffBudget, type SniffResult, sniffConnection } from '../src/sniff-connection.js';

/** An in-memory stand-in for an accepted socket: what the test writes is what the sniffer reads. */
function fakeSocket(): Socket & PassThrough {
  const s = new PassThrough() as unknown as Socket & PassThrough;
  (s as unknown as { setNoDelay: () => void }).setNoDelay = () => {};
  return s;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

function track(p: Promise<SniffResult>): { result: () => SniffResult | undefined } {
  let result: SniffResult | undefined;
  void p.then((r) => {
    result = r;
  });
  return { result: () => result };
}

describe('sniffConnection deadlines (fake timers)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('closes at the first-byte deadline (15 s by default)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const socket = fakeSocket();
    const t = track(sniffConnection(socket, { mode: 'http' }));
    await vi.advanceTimersByTimeAsync(14_999);
    expect(t.result()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await tick();
    expect(t.result()).toMatchObject({ ok: false, reason: 'sniff-timeout', detail: 'no complete head' });
    expect(socket.destroyed).toBe(true);
  });

  it('extends the deadline by 5 s after each read', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const socket = fakeSocket();
    const t = track(sniffConnection(socket, { mode: 'http' }));
    await vi.advanceTimersByTimeAsync(1_000);
    socket.write('GET / HT');
    await tick();
    // The deadline is now t=6 s, earlier than the first-byte deadline.
    await vi.advanceTimersByTimeAsync(4_999);
    expect(t.result()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await tick();
    expect(t.result()).toMatchObject({ ok: false, reason: 'sniff-timeout' });
  });

  it('closes a client that keeps trickling at the absolute deadline (30 s)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const socket = fakeSocket();
    const t = track(sniffConnection(socket, { mode: 'http' }));
    socket.write('GET / HTTP/1.1\r\n');
    await tick();
    for (let elapsed = 0; elapsed < 28_000; elapsed += 4_000) {
      await vi.advanceTimersByTimeAsync(4_000);
      socket.write('X-A: b\r\n');
      await tick();
      expect(t.result()).toBeUndefined();
    }
    await vi.advanceTimersByTimeAsync(2_000);
    await tick();
    expect(t.result()).toMatchObject({ ok: false, reason: 'sniff-timeout' });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('routes and leaves the socket paused with every byte in the prelude, and no timer behind', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const socket = fakeSocket();
    const t = track(sniffConnection(socket, { mode: 'http' }));
    socket.write('GET / HTTP/1.1\r\nHo');
    await tick();
    socket.write('st: example.com\r\n\r\nbody-bytes');
    await tick();
    const r = t.result();
    expect(r?.ok).toBe(true);
    if (r?.ok) {
      expect(r.sniffed.hostname).toBe('example.com');
      expect(r.sniffed.prelude.toString()).toBe('GET / HTTP/1.1\r\nHost: example.com\r\n\r\nbody-bytes');
    }
    expect(socket.isPaused()).toBe(true);
    expect(socket.listenerCount('data')).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('sniffConnection limits', () => {
  it('refuses a connection over the budget at once and frees a slot when a sniff ends', async () => {
    const budget = new SniffBudget(1);
    const a = fakeSocket();
    const pa = sniffConnection(a, { mode: 'tls', budget });
    expect(budget.active).toBe(1);
    const b = fakeSocket();
    expect(await sniffConnection(b, { mode: 'tls', budget })).toMatchObject({
      ok: false,
      reason: 'over-budget',
    });
    expect(b.destroyed).toBe(true);
    a.write(Buffer.from([0x47, 0x45, 0x54]));
    expect(await pa).toMatchObject({ ok: false, reason: 'not-tls' });
    expect(budget.active).toBe(0);
  });

  it('closes a head over maxHttpHeadBytes as too-large', async () => {
    const socket = fakeSocket();
    const p = sniffConnection(socket, { mode: 'http', limits: { maxHttpHeadBytes: 1024 } });
    socket.write(`GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}`);
    expect(await p).toMatchObject({ ok: false, reason: 'too-large' });
  });

  it('closes with shutdown when the signal aborts', async () => {
    const socket = fakeSocket();
    const ac = new AbortController();
    const p = sniffConnection(socket, { mode: 'http', signal: ac.signal });
    ac.abort();
    expect(await p).toMatchObject({ ok: false, reason: 'shutdown' });
    expect(socket.destroyed).toBe(true);
  });
});

describe('SniffBudget', () => {
  it('rejects a limit below 1', () => {
    expect(() => new SniffBudget(0)).toThrow(RangeError);
  });

  it('never goes below zero on extra releases', () => {
    const b = new SniffBudget(2);
    const first = b.acquire('192.0.2.1', () => {});
    first?.release();
    first?.release();
    expect(b.active).toBe(0);
    expect(b.acquire('192.0.2.1', () => {})).toBeDefined();
    expect(b.acquire('192.0.2.1', () => {})).toBeDefined();
    expect(b.acquire('192.0.2.1', () => {})).toBeUndefined();
  });

  it('shares a full budget fairly: a newcomer takes the oldest slot of the address holding the most', () => {
    const b = new SniffBudget(4);
    const evicted: string[] = [];
    const take = (ip: string, name: string) => {
      const slot = b.acquire(ip, () => {
        evicted.push(name);
        slot?.release();
      });
      return slot;
    };
    for (let i = 0; i < 4; i++) expect(take('192.0.2.1', `a${i}`)).toBeDefined();
    // The same address gets nothing more; another one takes a0, the oldest.
    expect(take('192.0.2.1', 'a4')).toBeUndefined();
    expect(take('198.51.100.7', 'b0')).toBeDefined();
    expect(evicted).toEqual(['a0']);
    expect(take('198.51.100.7', 'b1')).toBeDefined();
    expect(evicted).toEqual(['a0', 'a1']);
    // 2 and 2: fair, so a third from b is refused rather than evicting a.
    expect(take('198.51.100.7', 'b2')).toBeUndefined();
    expect(b.activeFor('192.0.2.1')).toBe(2);
    expect(b.evictions).toBe(2);
  });

  it('counts IPv6 addresses by /64 and IPv4-mapped ones as IPv4', () => {
    const b = new SniffBudget(8);
    b.acquire('2001:db8:1:2::1', () => {});
    b.acquire('2001:db8:1:2:ffff::9', () => {});
    b.acquire('::ffff:192.0.2.1', () => {});
    expect(b.activeFor('2001:db8:1:2:abcd::')).toBe(2);
    expect(b.activeFor('2001:db8:1:3::1')).toBe(0);
    expect(b.activeFor('192.0.2.1')).toBe(1);
  });
});
