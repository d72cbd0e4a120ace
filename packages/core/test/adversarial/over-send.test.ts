/**
 * Attack, through a whole node with default settings: a token holder that has shown it meters (it granted
 * on its first stream) opens a second stream and, before granting anything on it, sends past the window
 * the hub granted in that stream's `connect` — hoping the hub buffers whatever it sends while the stream
 * is not metered yet. The hub holds such a backend to the window exactly (docs/protocol.md §1.5): the
 * frame past the credit it gave closes that stream (`protocol_error` to the backend), its end user gets a
 * prefix of the credited frames and then its close, and the session and its other stream carry on.
 */
import { createHash } from 'node:crypto';
import { DEFAULT_INITIAL_WINDOW, encodeControlMessage, encodeDataFrame } from '@nexus-proxy/mux-protocol';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  createTestPki,
  rawBackend,
  rawConnect,
  startNode,
  type TestPki,
  token,
  waitUntil,
} from '@nexus-proxy/test-harness';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const FRAME = 32_768;

describe('credit over-send on a stream not yet metered', () => {
  it('closes the over-sent stream once it runs past the credit the hub gave; the session and its other stream carry on', async () => {
    const node = await startNode({ pki });
    cleanups.push(() => node.close());
    const attacker = await rawBackend(pki, node.hubPort, await token(['app.example.com']));
    attacker.answer = false;
    cleanups.push(() => {
      if (attacker.ws.readyState !== WebSocket.CLOSED) attacker.ws.terminate();
    });
    await waitUntil(() => node.events.backendConnected.length === 1, 3_000, 'attacker registered');
    const connects = () => attacker.controls.filter((c) => c.event === 'connect');

    // Stream 1, answered honestly: the backend grants, so the hub knows this backend meters.
    const first = await rawConnect(node.httpPort);
    cleanups.push(() => {
      first.socket.destroy();
    });
    first.socket.write('GET /first HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
    await waitUntil(() => connects().length === 1, 3_000, 'first connect');
    const firstId = connects()[0]!.client_id as string;
    attacker.send(encodeControlMessage({ event: 'resume_stream', client_id: firstId, credits: 8 }));
    attacker.send(encodeDataFrame(firstId, Buffer.from('first-1\n')));
    await waitUntil(() => first.received().toString() === 'first-1\n', 3_000, 'first answer');

    // Stream 2: its end user stops reading, so the hub grants only as far as the end user's socket
    // buffers take the data. The backend never grants on it and never waits for the hub's grants: it
    // sends until the hub stops it.
    const second = await rawConnect(node.httpPort);
    cleanups.push(() => {
      second.socket.destroy();
    });
    second.socket.pause();
    second.socket.write('GET /second HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
    await waitUntil(() => connects().length === 2, 3_000, 'second connect');
    const connect = connects()[1]!;
    const secondId = connect.client_id as string;
    // On a quiet node the hub's receive budget opens the stream with its whole window (64 frames).
    const initial = connect.credits as number;
    expect(initial).toBe(DEFAULT_INITIAL_WINDOW);
    const disconnected = () =>
      attacker.controls.some((c) => c.event === 'disconnect' && c.client_id === secondId);
    const frame = (i: number) => Buffer.alloc(FRAME, i % 251);
    let sent = 0;
    while (!disconnected() && sent < DEFAULT_INITIAL_WINDOW + 4_096) {
      while (attacker.ws.bufferedAmount < 256 * 1024 && !disconnected()) {
        attacker.send(encodeDataFrame(secondId, frame(sent)));
        sent++;
      }
      await new Promise((r) => setTimeout(r, 1));
    }

    // The hub closed that stream and said so to the backend once, after the grants it had sent for it
    // (in order on the wire, so all of them came before the disconnect).
    expect(disconnected()).toBe(true);
    expect(attacker.controls.filter((c) => c.event === 'disconnect')).toEqual([
      { event: 'disconnect', client_id: secondId, reason: 'protocol_error' },
    ]);
    const granted = attacker.controls
      .filter((c) => c.event === 'resume_stream' && c.client_id === secondId)
      .reduce((n, c) => n + ((c.credits as number | undefined) ?? 0), 0);
    const allowed = initial + granted;
    expect(sent).toBeGreaterThan(allowed);
    await waitUntil(() => node.events.streamClose.length === 1, 3_000, 'stream-close');
    expect(node.events.streamClose[0]!.reason).toBe('stream-error'); // the overrun failed the stream
    // Its end user gets a prefix of the frames the hub had credited, then its close (the stream failed,
    // so what the hub still held for it is dropped): never a byte of the frames past the credit.
    second.socket.resume();
    await second.closed;
    const within = Buffer.concat(Array.from({ length: allowed }, (_, i) => frame(i)));
    const got = second.received();
    console.log(
      `over-send: window ${initial} + ${granted} granted; ${sent} frames sent, ` +
        `${(got.length / FRAME).toFixed(1)} frames reached the end user`,
    );
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThanOrEqual(within.length);
    expect(sha(got)).toBe(sha(within.subarray(0, got.length)));

    // The session and the first stream are untouched.
    expect(node.events.backendDisconnected).toEqual([]);
    attacker.send(encodeDataFrame(firstId, Buffer.from('first-2\n')));
    await waitUntil(() => first.received().toString() === 'first-1\nfirst-2\n', 3_000, 'first still served');
    expect(node.nexus.hub.stats().streams).toBe(1);
  });
});
