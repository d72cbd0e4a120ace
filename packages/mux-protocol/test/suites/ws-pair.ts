/**
 * A hub `MuxSession` and a backend `MuxSession` over a real `ws` WebSocket on 127.0.0.1, adapted the way
 * the hub and the backend client adapt theirs (for the session suite and the adversarial
 * tests).
 */
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { MuxSession } from '../../src/index.js';
// The harness's delay line imports only Node's own modules, so this package's tests take it without a cycle.
import { startDelayLine } from '../../../test-harness/src/delay-line.mjs';
import type { PairOptions, SessionPair, Side } from './session.suite.js';

/** The underlying TCP socket of a ws WebSocket (ws keeps it private; the adapter needs its 'drain'). */
export function socketOf(ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket;
}

/**
 * Adapts one WebSocket to a session the way the hub and the backend client do: binary messages to
 * `receive`, socket 'drain' to `transportDrained`, pause/resume to `ws.pause()`/`ws.resume()`, and the
 * WebSocket closing to `close()`.
 */
function attach(
  ws: WebSocket,
  role: Side,
  pauses: Record<Side, number>,
  options: PairOptions = {},
): MuxSession {
  const observe = options.observe;
  const session = new MuxSession({
    role,
    transport: {
      send(message) {
        observe?.(role, message);
        ws.send(message);
      },
      get bufferedAmount() {
        return ws.bufferedAmount;
      },
    },
    pauseTransport() {
      pauses[role]++;
      ws.pause();
    },
    resumeTransport() {
      ws.resume();
    },
    ...(role === 'hub' ? options.hub : options.backend),
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) session.receive(data as Buffer);
  });
  socketOf(ws).on('drain', () => session.transportDrained());
  ws.on('close', () => session.close('transport_closed'));
  return session;
}

/** A session pair whose WebSockets are reachable (to pause one side's reading, as a hostile peer). */
export interface WebSocketPair extends SessionPair {
  sockets: Record<Side, WebSocket>;
}

export const createWebSocketPair = async (options: PairOptions = {}): Promise<WebSocketPair> => {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  const line = options.delayMs === undefined ? undefined : await startDelayLine(port, options.delayMs);
  const accepted = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${line?.port ?? port}/connect`, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    client.once('open', resolve);
    client.once('error', reject);
  });
  const serverSide = await accepted;
  const pauses: Record<Side, number> = { hub: 0, backend: 0 };
  // The hub is the WebSocket server, the backend dials it (docs/protocol.md §1.1).
  const hub = attach(serverSide, 'hub', pauses, options);
  const backend = attach(client, 'backend', pauses, options);
  const socketFor = (from: Side) => (from === 'hub' ? serverSide : client);
  return {
    hub,
    backend,
    sockets: { hub: serverSide, backend: client },
    pauses,
    inject: (from, message) => socketFor(from).send(message),
    injectDrained: async (from) => {
      const ws = socketFor(from);
      while (ws.bufferedAmount >= 1024 * 1024 && ws.readyState === WebSocket.OPEN) {
        await new Promise((resolve) => socketOf(ws).once('drain', resolve));
      }
    },
    async close() {
      hub.close('test_end');
      backend.close('test_end');
      const closed = Promise.all(
        [client, serverSide].map((ws) =>
          ws.readyState === WebSocket.CLOSED
            ? undefined
            : new Promise((resolve) => ws.once('close', resolve)),
        ),
      );
      client.terminate();
      serverSide.terminate();
      await closed;
      await line?.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};
