import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DialError } from '../src/errors.js';
import { awaitConnect, dialLocal, formatTarget } from '../src/local-dial.js';

const servers: net.Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

async function listen(onSocket: (s: net.Socket) => void = () => {}): Promise<number> {
  const server = net.createServer(onSocket);
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

describe('dialLocal', () => {
  it('resolves with a connected, half-open socket', async () => {
    const port = await listen((s) => s.end());
    const socket = await dialLocal({ host: '127.0.0.1', port }, { timeoutMs: 1_000 });
    expect(socket.connecting).toBe(false);
    expect(socket.allowHalfOpen).toBe(true);
    socket.destroy();
  });

  it('rejects with DialError when the port refuses', async () => {
    const port = await listen();
    await new Promise((resolve) => servers.pop()!.close(resolve));
    await expect(dialLocal({ host: '127.0.0.1', port }, { timeoutMs: 1_000 })).rejects.toBeInstanceOf(
      DialError,
    );
  });

  it('destroys the socket and clears its timer when aborted mid-dial', async () => {
    const port = await listen();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const sockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
      const socketsBefore = sockets();
      const controller = new AbortController();
      const dial = dialLocal({ host: '127.0.0.1', port }, { timeoutMs: 60_000, signal: controller.signal });
      expect(vi.getTimerCount()).toBe(1);
      controller.abort();
      await expect(dial).rejects.toThrow(/aborted/);
      expect(vi.getTimerCount()).toBe(0);
      for (let i = 0; i < 100 && sockets() > socketsBefore; i++) await new Promise((r) => setImmediate(r));
      expect(sockets()).toBeLessThanOrEqual(socketsBefore);
    } finally {
      vi.useRealTimers();
    }
  });

  it('rejects with DialError after the dial timeout', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      // A connecting socket that never completes: the timer is the only way out.
      const socket = new net.Socket();
      Object.defineProperty(socket, 'connecting', { value: true });
      const dial = awaitConnect(socket, 'dial test', { timeoutMs: 5_000 });
      vi.advanceTimersByTime(4_999);
      expect(socket.destroyed).toBe(false);
      vi.advanceTimersByTime(1);
      await expect(dial).rejects.toThrow(/timed out after 5000 ms/);
      expect(socket.destroyed).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('rejects at once for an already aborted signal', async () => {
    await expect(
      dialLocal({ host: '127.0.0.1', port: 1 }, { timeoutMs: 1_000, signal: AbortSignal.abort() }),
    ).rejects.toBeInstanceOf(DialError);
  });
});

describe('formatTarget', () => {
  it('brackets IPv6 literals', () => {
    expect(formatTarget({ host: '::1', port: 8443 })).toBe('[::1]:8443');
    expect(formatTarget({ host: 'localhost', port: 80 })).toBe('localhost:80');
  });
});
