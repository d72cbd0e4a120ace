import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { REJECT_UPGRADE_GRACE_MS, rejectUpgrade } from '../src/reject-upgrade.js';

const servers: Server[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

async function refusingServer(status: number, reason?: string): Promise<number> {
  const server = createServer();
  server.on('upgrade', (_req, socket) => rejectUpgrade(socket, status, reason));
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

describe('rejectUpgrade', () => {
  it('answers a WebSocket handshake with the status and its standard reason phrase', async () => {
    const port = await refusingServer(503);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/connect`);
    ws.on('error', () => {});
    const [, res] = (await once(ws, 'unexpected-response')) as [
      unknown,
      { statusCode: number; statusMessage: string },
    ];
    expect(res.statusCode).toBe(503);
    expect(res.statusMessage).toBe('Service Unavailable');
    ws.terminate();
  });

  it('writes the whole answer, then closes the connection without waiting for the client', async () => {
    const port = await refusingServer(403);
    const socket = connect(port, '127.0.0.1');
    socket.write(
      'GET /mesh HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'close');
    expect(Buffer.concat(chunks).toString()).toBe(
      'HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
    );
  });

  it('uses a given reason phrase', async () => {
    const port = await refusingServer(404, 'Nothing Here');
    const ws = new WebSocket(`ws://127.0.0.1:${port}/elsewhere`);
    ws.on('error', () => {});
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusMessage: string }];
    expect(res.statusMessage).toBe('Nothing Here');
    ws.terminate();
  });

  it('destroys a socket it cannot write to at once', () => {
    const socket = new Duplex({
      read() {},
      write(_c, _e, cb) {
        cb();
      },
    });
    socket.end();
    expect(socket.writable).toBe(false);
    rejectUpgrade(socket, 403);
    expect(socket.destroyed).toBe(true);
  });

  it('destroys the socket after the grace period when the answer is never written', () => {
    vi.useFakeTimers();
    // A peer that never reads: the write never completes.
    const socket = new Duplex({ read() {}, write() {} });
    rejectUpgrade(socket, 503);
    vi.advanceTimersByTime(REJECT_UPGRADE_GRACE_MS - 1);
    expect(socket.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(socket.destroyed).toBe(true);
  });

  it('swallows a late socket error', () => {
    const socket = new Duplex({ read() {}, write() {} });
    rejectUpgrade(socket, 503);
    expect(() => socket.destroy(new Error('ECONNRESET'))).not.toThrow();
    expect(socket.listenerCount('error')).toBeGreaterThan(0);
  });
});
