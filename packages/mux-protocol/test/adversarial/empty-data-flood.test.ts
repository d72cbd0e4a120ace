/**
 * Attack: empty DATA frames, which carry nothing and used to earn a grant for every 8. The engine ignores
 * them (no grant, no window spent), counts them, and closes a session that sends more than
 * `maxEmptyDataFramesPerSecond` (100) in one second — on both wires, since both run the same engine: a
 * peer link's tunnels here (the backend session is covered through a whole node in core's
 * test/adversarial/empty-data-flood.test.ts). Real WebSockets on loopback.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import {
  DEFAULT_BACKLOG_LIMIT,
  DEFAULT_MAX_EMPTY_DATA_FRAMES_PER_SECOND,
  decodeTunnelFrame,
  encodeTunnelFrame,
  newStreamId,
  TunnelSession,
} from '../../src/index.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A `TunnelSession` on the server end of a real WebSocket, and the raw client end (the attacker). */
async function tunnelLink() {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const accepted = once(server, 'connection') as Promise<[WebSocket]>;
  const attacker = new WebSocket(`ws://127.0.0.1:${port}/mesh`, { perMessageDeflate: false });
  await once(attacker, 'open');
  const [ws] = await accepted;
  const victim = new TunnelSession({
    transport: {
      sendBinary: (message) => ws.send(message),
      sendText: (text) => ws.send(text),
      get bufferedAmount() {
        return ws.bufferedAmount;
      },
      pause: () => ws.pause(),
      resume: () => ws.resume(),
    },
  });
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) victim.receive(data);
  });
  victim.on('abort', (reason) => ws.close(1008, reason));
  const received: Uint8Array[] = [];
  attacker.on('message', (data: Buffer) => received.push(data));
  cleanups.push(async () => {
    victim.close('test_end');
    attacker.terminate();
    ws.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { victim, attacker, received };
}

describe('empty DATA flood on a peer link', () => {
  it('earns no credits and closes the link with 1008 empty-data-flood past 100 in a second', async () => {
    const { victim, attacker, received } = await tunnelLink();
    // The attacker opens a tunnel the honest way (the owner accepts its request) …
    const id = newStreamId();
    const tunnel = victim.accept({
      type: 'tunnel_request',
      client_id: id,
      conn_port: 443,
      client_ip: '203.0.113.9:1',
      hostname: 'app.example.com',
      is_tls: true,
    })!;
    tunnel.resume();
    await new Promise<void>((resolve) => {
      const check = () => (received.length > 0 ? resolve() : setTimeout(check, 5));
      check();
    });
    const grants = () =>
      received.filter((m) => {
        const frame = decodeTunnelFrame(m);
        return frame.ok && frame.value.type === 'tunnel-credits';
      }).length;
    expect(grants()).toBe(1); // the window granted as the tunnel opened

    // … then sends empty TUNNEL_DATA frames: 100 are ignored, the next closes the link.
    const empty = encodeTunnelFrame({ type: 'tunnel-data', tunnelId: id, payload: new Uint8Array(0) });
    const closed = new Promise<[number, string]>((resolve) =>
      attacker.once('close', (code, reason) => resolve([code, reason.toString()])),
    );
    for (let i = 0; i < DEFAULT_MAX_EMPTY_DATA_FRAMES_PER_SECOND + 50; i++) attacker.send(empty);
    expect(await closed).toEqual([1008, 'empty-data-flood']);
    expect(victim.closed).toBe(true);
    expect(tunnel.closeReason).toBe('empty-data-flood');
    expect(grants()).toBe(1); // not one grant for an empty frame
    expect(tunnel.receiveWindow).toBe(64);
  });

  it('stops reading a link whose queue passes the backlog limit (the same engine as backend sessions)', () => {
    let buffered = 0;
    let paused = 0;
    const tunnels = new TunnelSession({
      transport: {
        sendBinary: () => {},
        sendText: () => {},
        get bufferedAmount() {
          return buffered;
        },
        pause: () => paused++,
        resume: () => {},
      },
    });
    cleanups.push(() => tunnels.close('test_end'));
    buffered = DEFAULT_BACKLOG_LIMIT + 1;
    tunnels.open({ connPort: 443, clientIp: '203.0.113.9:1', hostname: 'app.example.com', isTls: true });
    expect(paused).toBe(1);
    expect(tunnels.stats().tunnels).toBe(1);
  });
});
