/**
 * Attack: a peer sends DATA past the window it was granted on a stream that is not metered yet (before
 * that stream's first grant reached it), hoping to be buffered without bound. The engine tolerates the
 * frames of that first round trip only up to a documented allowance from a peer that meters, and closes
 * the stream (`MUX_ERR_CREDIT_OVERRUN`, `disconnect{protocol_error}`) on the next frame. Real WebSockets.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_UNMETERED_ALLOWANCE,
  decodeBackendMessage,
  encodeControlMessage,
  encodeDataFrame,
  type MuxProtocolError,
  type MuxStream,
} from '../../src/index.js';
import { createWebSocketPair, type WebSocketPair } from '../suites/ws-pair.js';

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };

const pairs: WebSocketPair[] = [];
afterEach(async () => {
  for (const pair of pairs.splice(0)) await pair.close();
});

function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (condition()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(check, 5);
    };
    check();
  });
}

/** Control messages `side`'s session sends, decoded, as the pair's observer sees them. */
function recorder() {
  const sent: Record<'hub' | 'backend', Array<Record<string, unknown>>> = { hub: [], backend: [] };
  return {
    sent,
    observe: (from: 'hub' | 'backend', message: Uint8Array) => {
      const decoded = decodeBackendMessage(message);
      if (decoded.ok && decoded.value.type === 'control')
        sent[from].push(decoded.value.message as unknown as Record<string, unknown>);
    },
  };
}

describe('over-send before the first grant', () => {
  it('a hub that sends past window + allowance gets the stream closed (backend side, defaults)', async () => {
    const { sent, observe } = recorder();
    const pair = await createWebSocketPair({ observe });
    pairs.push(pair);
    const errors: MuxProtocolError[] = [];
    pair.backend.on('protocol-error', (error) => errors.push(error));
    let stream: MuxStream | undefined;
    pair.backend.on('stream', (s) => {
      stream = s;
      s.on('error', () => {}); // nobody reads it: the first 32 KiB frame fills it, no grant goes back
    });
    // A hostile hub: offers credits (so the backend meters), then never waits for a grant.
    const id = randomUUID();
    pair.inject(
      'hub',
      encodeControlMessage({
        event: 'connect',
        client_id: id,
        conn_port: 443,
        client_ip: '203.0.113.7:1',
        hostname: 'app.example.com',
        is_tls: true,
        credits: 64,
      }),
    );
    const window = 64;
    const frames = window + DEFAULT_UNMETERED_ALLOWANCE;
    const payload = Buffer.alloc(32_768, 0x61);
    for (let i = 0; i < frames; i++) pair.inject('hub', encodeDataFrame(id, payload));
    await until(() => stream?.bytesRead === frames * payload.length, 'the tolerated frames');
    expect(errors).toEqual([]);
    expect(stream!.closeReason).toBeUndefined();

    pair.inject('hub', encodeDataFrame(id, payload)); // one past the allowance
    await until(() => errors.length > 0, 'the overrun');
    expect(errors.map((e) => e.code)).toEqual(['MUX_ERR_CREDIT_OVERRUN']);
    expect(stream!.closeReason).toBe('protocol_error');
    await until(() => sent.backend.some((m) => m.event === 'disconnect'), 'the disconnect');
    expect(sent.backend.filter((m) => m.event === 'disconnect')).toEqual([
      { event: 'disconnect', client_id: id, reason: 'protocol_error' },
    ]);
    // Only the frames within the window and the allowance were ever buffered.
    expect(stream!.bytesRead).toBe(frames * payload.length);
  });

  it('the allowance also bounds frames past the window across all streams of the session', async () => {
    const pair = await createWebSocketPair({
      backend: { initialWindow: 4, grantBatch: 2, unmeteredAllowance: 8 },
    });
    pairs.push(pair);
    const errors: MuxProtocolError[] = [];
    pair.backend.on('protocol-error', (error) => errors.push(error));
    const streams = new Map<string, MuxStream>();
    pair.backend.on('stream', (s) => {
      streams.set(s.id, s);
      s.on('error', () => {}); // nobody reads: the first 32 KiB frame fills each stream
    });
    const connect = (id: string) =>
      encodeControlMessage({
        event: 'connect',
        client_id: id,
        conn_port: 443,
        client_ip: '203.0.113.7:1',
        hostname: 'app.example.com',
        is_tls: true,
        credits: 4,
      });
    const [a, b] = [randomUUID(), randomUUID()];
    pair.inject('hub', connect(a));
    pair.inject('hub', connect(b));
    const payload = Buffer.alloc(32_768, 0x64);
    // Stream a: its window (4) and 6 past it, within its own allowance (8).
    for (let i = 0; i < 10; i++) pair.inject('hub', encodeDataFrame(a, payload));
    await until(() => streams.get(a)?.bytesRead === 10 * payload.length, 'stream a');
    // Stream b: its window and 2 past it bring the session to 8; one more is over the session's budget.
    for (let i = 0; i < 6; i++) pair.inject('hub', encodeDataFrame(b, payload));
    await until(() => streams.get(b)?.bytesRead === 6 * payload.length, 'stream b');
    expect(errors).toEqual([]);
    pair.inject('hub', encodeDataFrame(b, payload));
    await until(() => errors.length > 0, 'the overrun');
    expect(errors.map((e) => e.code)).toEqual(['MUX_ERR_CREDIT_OVERRUN']);
    expect(streams.get(b)!.closeReason).toBe('protocol_error');
    expect(streams.get(a)!.closeReason).toBeUndefined();
  });

  it('a backend known to meter that over-sends on a new stream before granting it gets that stream closed (hub side)', async () => {
    const { sent, observe } = recorder();
    const pair = await createWebSocketPair({ observe, hub: { initialWindow: 16, grantBatch: 4 } });
    pairs.push(pair);
    const errors: MuxProtocolError[] = [];
    pair.hub.on('protocol-error', (error) => errors.push(error));
    pair.backend.on('stream', (s) => s.resume());
    // A first stream, answered honestly: the backend grants, so the hub knows it meters.
    const first = pair.hub.openStream(OPEN);
    // Sent by the backend, then read by the hub (on a loaded machine the second can come a turn later).
    await until(() => sent.backend.some((m) => m.event === 'resume_stream'), 'the first grant');
    await until(() => first.sendMetered, 'the hub reading the first grant');
    // A second stream: the backend (hostile now) sends more than the hub's window without any grant.
    // The backend session stops reading, so it neither grants nor answers the second stream.
    pair.sockets.backend.pause();
    const second = pair.hub.openStream(OPEN);
    second.on('error', () => {}); // nobody reads it: the first 32 KiB frame fills it, no grant goes back
    const payload = Buffer.alloc(32_768, 0x62);
    for (let i = 0; i < 17; i++) pair.inject('backend', encodeDataFrame(second.id, payload));
    await until(() => errors.length > 0, 'the overrun');
    expect(errors.map((e) => e.code)).toEqual(['MUX_ERR_CREDIT_OVERRUN']);
    expect(second.closeReason).toBe('protocol_error');
    expect(second.bytesRead).toBe(16 * payload.length);
    expect(sent.hub.filter((m) => m.event === 'disconnect')).toEqual([
      { event: 'disconnect', client_id: second.id, reason: 'protocol_error' },
    ]);
    // The first stream is untouched.
    expect(first.closeReason).toBeUndefined();
    expect(pair.hub.getStream(first.id)).toBe(first);
  });

  it('a v1 backend (never grants) is still served unmetered, bounded by pausing the transport', async () => {
    const pair = await createWebSocketPair();
    pairs.push(pair);
    const errors: MuxProtocolError[] = [];
    pair.hub.on('protocol-error', (error) => errors.push(error));
    // The backend plays v1 by hand: its session never sees the connect, so nothing is granted.
    pair.sockets.backend.pause();
    const stream = pair.hub.openStream(OPEN);
    const payload = Buffer.alloc(32_768, 0x63);
    for (let i = 0; i < 80; i++) pair.inject('backend', encodeDataFrame(stream.id, payload));
    await until(() => pair.pauses.hub > 0, 'the transport pause');
    expect(errors).toEqual([]);
    stream.resume();
    await until(() => stream.bytesRead === 80 * payload.length, 'every frame');
    expect(stream.closeReason).toBeUndefined();
  });
});
