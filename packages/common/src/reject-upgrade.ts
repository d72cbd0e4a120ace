/**
 * Refusing an HTTP upgrade (a WebSocket handshake) before any WebSocket exists, the same way on every
 * endpoint: the hub's `/connect` and the mesh's `/mesh`.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/** Longest wait for the refusal to be written before the socket is destroyed anyway, ms. */
export const REJECT_UPGRADE_GRACE_MS = 1_000;

/**
 * Answers an upgrade request with `HTTP/1.1 <status> <reason>` (the standard reason phrase unless one
 * is given; no body, `Connection: close`) and closes the socket: destroyed once the answer is written
 * (as ws does when it refuses a handshake), at once when it cannot be written, and at the latest after
 * {@link REJECT_UPGRADE_GRACE_MS} when a peer that does not read holds the write. A late socket error
 * is swallowed: the connection is being dropped anyway.
 */
export function rejectUpgrade(socket: Duplex, status: number, reason = STATUS_CODES[status] ?? ''): void {
  socket.on('error', noop);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const timer = setTimeout(() => socket.destroy(), REJECT_UPGRADE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function noop(): void {}
