import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type RelayStats, relayConnection } from '../src/relay.js';

/** Two in-memory Duplex ends: what one writes the other reads. */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (other: () => Duplex) =>
    new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk, _enc, cb) {
        other().push(chunk);
        cb();
      },
      final(cb) {
        other().push(null);
        cb();
      },
    });
  ends.push(
    make(() => ends[1]!),
    make(() => ends[0]!),
  );
  return [ends[0]!, ends[1]!];
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('relayConnection idle timeout (fake timers)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('does not close a long download without upload; closes once traffic stops', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const [userSide, userPeer] = duplexPair();
    const [streamSide, servicePeer] = duplexPair();
    let stats: RelayStats | undefined;
    relayConnection(userSide, streamSide, { idleTimeoutMs: 60_000, onClose: (s) => (stats = s) });
    let got = 0;
    userPeer.on('data', (c: Buffer) => (got += c.length));

    // Ten minutes of download, one chunk every 30 s, nothing uploaded.
    for (let i = 0; i < 20; i++) {
      servicePeer.write(Buffer.alloc(1000));
      await tick();
      await vi.advanceTimersByTimeAsync(30_000);
    }
    expect(stats).toBeUndefined();
    expect(got).toBe(20_000);

    await vi.advanceTimersByTimeAsync(30_000);
    await tick();
    expect(stats).toMatchObject({ reason: 'idle-timeout', bytesDown: 20_000, bytesUp: 0 });
    expect(userSide.destroyed && streamSide.destroyed).toBe(true);
  });

  it('counts upload traffic as activity too', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const [userSide, userPeer] = duplexPair();
    const [streamSide, servicePeer] = duplexPair();
    let stats: RelayStats | undefined;
    relayConnection(userSide, streamSide, { idleTimeoutMs: 1_000, onClose: (s) => (stats = s) });
    servicePeer.resume();
    for (let i = 0; i < 10; i++) {
      userPeer.write('u');
      await tick();
      await vi.advanceTimersByTimeAsync(900);
    }
    expect(stats).toBeUndefined();
    await vi.advanceTimersByTimeAsync(200);
    await tick();
    expect(stats).toMatchObject({ reason: 'idle-timeout', bytesUp: 10 });
  });

  it('leaves no timer and no listener behind after the relay ends', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const [userSide, userPeer] = duplexPair();
    const [streamSide, servicePeer] = duplexPair();
    const handle = relayConnection(userSide, streamSide, { idleTimeoutMs: 5_000 });
    userPeer.end('req');
    servicePeer.resume();
    servicePeer.end('res');
    userPeer.resume();
    const stats = await handle.done;
    expect(stats.reason).toBe('completed');
    expect(vi.getTimerCount()).toBe(0);
    for (const s of [userSide, streamSide]) {
      expect(s.listenerCount('data')).toBe(0);
      expect(s.listenerCount('close')).toBe(0);
    }
  });

  it('reports stream-aborted and destroys the user side when the stream dies before EOF', async () => {
    const [userSide, userPeer] = duplexPair();
    const [streamSide] = duplexPair();
    userPeer.resume();
    const handle = relayConnection(userSide, streamSide);
    streamSide.destroy();
    const stats = await handle.done;
    expect(stats.reason).toBe('stream-aborted');
    expect(userSide.destroyed).toBe(true);
  });

  it('reports stream-error with the error', async () => {
    const [userSide] = duplexPair();
    const [streamSide] = duplexPair();
    const handle = relayConnection(userSide, streamSide);
    streamSide.destroy(new Error('boom'));
    const stats = await handle.done;
    expect(stats.reason).toBe('stream-error');
    expect(stats.error?.message).toBe('boom');
  });
});

describe('relayConnection client-FIN timeout (fake timers)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('closes a half-closed relay whose service never ends, once both directions are quiet', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const [userSide, userPeer] = duplexPair();
    const [streamSide, servicePeer] = duplexPair();
    let stats: RelayStats | undefined;
    relayConnection(userSide, streamSide, { clientFinTimeoutMs: 30_000, onClose: (s) => (stats = s) });
    servicePeer.resume();
    userPeer.write('request');
    userPeer.end(); // the end user's FIN
    await tick();
    // The response keeps flowing after the FIN: activity resets the clock.
    let got = 0;
    userPeer.on('data', (c: Buffer) => (got += c.length));
    for (let i = 0; i < 5; i++) {
      servicePeer.write(Buffer.alloc(100));
      await tick();
      await vi.advanceTimersByTimeAsync(20_000);
    }
    expect(stats).toBeUndefined();
    expect(got).toBe(500);
    // Then the service goes quiet without ending: closed 30 s after the last byte.
    await vi.advanceTimersByTimeAsync(10_000);
    await tick();
    expect(stats).toMatchObject({ reason: 'client-fin-timeout', bytesDown: 500 });
    expect(userSide.destroyed && streamSide.destroyed).toBe(true);
  });

  it('does not apply before the end user half-closes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const [userSide] = duplexPair();
    const [streamSide, servicePeer] = duplexPair();
    servicePeer.resume();
    let stats: RelayStats | undefined;
    relayConnection(userSide, streamSide, { clientFinTimeoutMs: 1_000, onClose: (s) => (stats = s) });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(stats).toBeUndefined();
    userSide.destroy();
    await tick();
    expect(stats?.reason).toBe('client-closed');
  });

  it('lets the shorter idle timeout win, and reports it as idle-timeout', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const [userSide, userPeer] = duplexPair();
    const [streamSide, servicePeer] = duplexPair();
    servicePeer.resume();
    let stats: RelayStats | undefined;
    relayConnection(userSide, streamSide, {
      idleTimeoutMs: 5_000,
      clientFinTimeoutMs: 30_000,
      onClose: (s) => (stats = s),
    });
    userPeer.end();
    await tick();
    await vi.advanceTimersByTimeAsync(5_000);
    await tick();
    expect(stats?.reason).toBe('idle-timeout');
  });

  it('a completed exchange after the FIN ends normally, leaving no timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const [userSide, userPeer] = duplexPair();
    const [streamSide, servicePeer] = duplexPair();
    servicePeer.resume();
    userPeer.resume();
    let stats: RelayStats | undefined;
    relayConnection(userSide, streamSide, { clientFinTimeoutMs: 30_000, onClose: (s) => (stats = s) });
    userPeer.end('GET / HTTP/1.0\r\n\r\n');
    await tick();
    servicePeer.end('HTTP/1.0 200 OK\r\n\r\nbye');
    await vi.advanceTimersByTimeAsync(10);
    await tick();
    expect(stats?.reason).toBe('completed');
    expect(vi.getTimerCount()).toBe(0);
  });
});
