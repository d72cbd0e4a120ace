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
