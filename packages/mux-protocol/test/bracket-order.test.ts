/**
 * `connect` and `disconnect` bracket the DATA of their stream on the wire (docs/protocol.md §1.4, the
 * delivery rules of §1.7): a stream's `connect` goes before its first DATA (the prelude) and its
 * `disconnect` after its last, however long that DATA is held — by transport backpressure, by missing
 * credits, or by the peer's pause. The current reference era relies on this too (its hub sends both on its
 * data lane). Driven by hand over a recording transport, then over a real WebSocket whose reader stalls.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeBackendMessage, type MuxSession, type MuxStream, streamIdFromBytes } from '../src/index.js';
import { createFakeSession } from './suites/fake-transport.js';
import { type PairOptions, readAll, type Side, sha256, waitFor } from './suites/session.suite.js';
import { createWebSocketPair, type WebSocketPair } from './suites/ws-pair.js';

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };
const FRAME = 32_768;

/** What one sent message was, for one stream: `connect`, `data` (with its size) or another event. */
type WireItem = { kind: 'data'; id: string; bytes: number } | { kind: string; id: string };

function itemOf(message: Uint8Array): WireItem | undefined {
  if (message[0] === 0x01)
    return { kind: 'data', id: streamIdFromBytes(message, 1), bytes: message.length - 17 };
  const decoded = decodeBackendMessage(message);
  if (!decoded.ok || decoded.value.type !== 'control') return undefined;
  return { kind: decoded.value.message.event, id: decoded.value.message.client_id };
}

/** The kinds of the items of stream `id`, in wire order, DATA runs collapsed to one `data`. */
function sequence(items: WireItem[], id: string, keep: (kind: string) => boolean = () => true): string[] {
  const out: string[] = [];
  for (const item of items) {
    if (item.id !== id || !keep(item.kind)) continue;
    if (item.kind === 'data' && out[out.length - 1] === 'data') continue;
    out.push(item.kind);
  }
  return out;
}

const bracket = (kind: string): boolean => kind === 'connect' || kind === 'data' || kind === 'disconnect';

describe('connect and disconnect bracket their DATA (recording transport)', () => {
  it('hub: connect goes first and disconnect waits behind DATA held by transport backpressure', () => {
    const { session, sent, setBuffered, controls, dataFrames } = createFakeSession({
      role: 'hub',
      highWaterMark: 1024,
    });
    setBuffered(10_000); // the WebSocket is already over its high-water mark
    const stream = session.openStream(OPEN);
    stream.write(randomBytes(3 * FRAME + 5)); // the prelude
    stream.disconnect('normal'); // the end user left at once
    expect(controls().map((c) => c.event)).toEqual(['connect']);
    expect(dataFrames()).toHaveLength(0);
    setBuffered(0);
    session.transportDrained();
    const items = sent.map(itemOf).filter((x) => x !== undefined);
    expect(sequence(items, stream.id)).toEqual(['connect', 'data', 'disconnect']);
    expect(dataFrames().reduce((n, f) => n + f.payload.length, 0)).toBe(3 * FRAME + 5);
  });

  it('hub: disconnect waits behind DATA held for credits until the grant arrives', () => {
    const { session, sent, control, dataFrames } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    control({ event: 'resume_stream', client_id: stream.id, credits: 2 }); // the backend meters: 2 frames
    stream.write(randomBytes(5 * FRAME));
    stream.disconnect('normal');
    expect(dataFrames()).toHaveLength(2);
    expect(
      sequence(
        sent.map(itemOf).filter((x) => x !== undefined),
        stream.id,
        bracket,
      ),
    ).toEqual(['connect', 'data']);
    control({ event: 'resume_stream', client_id: stream.id, credits: 8 });
    expect(dataFrames()).toHaveLength(5);
    const items = sent.map(itemOf).filter((x) => x !== undefined);
    expect(sequence(items, stream.id, bracket)).toEqual(['connect', 'data', 'disconnect']);
  });

  it('hub: disconnect waits behind DATA held by the backend’s pause_stream', () => {
    const { session, sent, control, dataFrames } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    control({ event: 'pause_stream', client_id: stream.id, reason: 'buffer_full' });
    stream.write(Buffer.from('last request bytes'));
    stream.disconnect('normal');
    expect(dataFrames()).toHaveLength(0);
    expect(
      sequence(
        sent.map(itemOf).filter((x) => x !== undefined),
        stream.id,
      ),
    ).toEqual(['connect']);
    control({ event: 'resume_stream', client_id: stream.id });
    expect(
      sequence(
        sent.map(itemOf).filter((x) => x !== undefined),
        stream.id,
        bracket,
      ),
    ).toEqual(['connect', 'data', 'disconnect']);
  });

  it('backend: the close after the local service’s last bytes waits behind held DATA', () => {
    const { session, sent, setBuffered, control, dataFrames } = createFakeSession({
      role: 'backend',
      highWaterMark: 1024,
    });
    let remote: MuxStream | undefined;
    session.on('stream', (s) => {
      remote = s;
    });
    const id = '6f1c2b9a-3d4e-4f50-8a61-7b8c9d0e1f23';
    control({
      event: 'connect',
      client_id: id,
      conn_port: 443,
      client_ip: '203.0.113.7:1',
      hostname: 'app.example.com',
      is_tls: true,
      credits: 64,
    });
    expect(remote).toBeDefined();
    setBuffered(10_000);
    remote!.end(randomBytes(2 * FRAME + 1)); // the service's response, then its FIN
    expect(dataFrames()).toHaveLength(0);
    expect(
      sequence(
        sent.map(itemOf).filter((x) => x !== undefined),
        id,
        bracket,
      ),
    ).toEqual([]);
    setBuffered(0);
    session.transportDrained();
    expect(
      sequence(
        sent.map(itemOf).filter((x) => x !== undefined),
        id,
        bracket,
      ),
    ).toEqual(['data', 'disconnect']);
    expect(dataFrames()).toHaveLength(3);
  });
});

describe('connect and disconnect bracket their DATA over a real WebSocket whose reader stalls', () => {
  let pair: WebSocketPair | undefined;
  afterEach(async () => {
    await pair?.close();
    pair = undefined;
  });

  async function open(wire: Record<Side, WireItem[]>, options: PairOptions = {}): Promise<WebSocketPair> {
    pair = await createWebSocketPair({
      ...options,
      observe: (from, message) => {
        const item = itemOf(message);
        if (item !== undefined) wire[from].push(item);
      },
    });
    return pair;
  }

  function collect(session: MuxSession, into: Map<string, Promise<Buffer>>): void {
    session.on('stream', (stream) => {
      into.set(stream.id, readAll(stream));
    });
  }

  it('hub → backend: 16 streams, each written and disconnected while the backend does not read', async () => {
    const wire: Record<Side, WireItem[]> = { hub: [], backend: [] };
    const { hub, backend, sockets } = await open(wire);
    const received = new Map<string, Promise<Buffer>>();
    collect(backend, received);
    sockets.backend.pause(); // the backend stops reading: the hub's WebSocket fills up
    const sent = new Map<string, Buffer>();
    for (let i = 0; i < 16; i++) {
      const stream = hub.openStream(OPEN);
      stream.resume();
      const body = randomBytes(512 * 1024 + i);
      sent.set(stream.id, body);
      stream.write(body);
      stream.disconnect('normal');
    }
    // Held: the disconnects must not have gone out ahead of the DATA still queued.
    await waitFor(() => hub.stats().queuedStreams > 0, 5000, 'DATA held by backpressure');
    for (const id of sent.keys()) {
      const seq = sequence(wire.hub, id, bracket);
      if (seq.includes('disconnect')) expect(seq).toEqual(['connect', 'data', 'disconnect']);
      else expect(seq[0]).toBe('connect');
    }
    sockets.backend.resume();
    for (const [id, body] of sent) {
      await waitFor(() => received.has(id), 10_000, `stream ${id}`);
      expect(sha256(await received.get(id)!)).toBe(sha256(body));
      expect(sequence(wire.hub, id, bracket)).toEqual(['connect', 'data', 'disconnect']);
    }
  });

  it('backend → hub: responses ended at once while the hub does not read arrive whole, then the close', async () => {
    const wire: Record<Side, WireItem[]> = { hub: [], backend: [] };
    const { hub, backend, sockets } = await open(wire);
    const bodies = new Map<string, Buffer>();
    let n = 0;
    backend.on('stream', (stream) => {
      const body = randomBytes(768 * 1024 + n++);
      bodies.set(stream.id, body);
      stream.end(body); // `Connection: close`: the whole response, then the service's FIN
    });
    sockets.hub.pause(); // the hub stops reading
    const streams = Array.from({ length: 8 }, () => hub.openStream(OPEN));
    const got = streams.map((s) => readAll(s));
    await waitFor(() => bodies.size === 8, 5000, 'the backend took every stream');
    await new Promise((resolve) => setTimeout(resolve, 20));
    for (const id of bodies.keys()) {
      const seq = sequence(wire.backend, id, (k) => k === 'data' || k === 'disconnect');
      if (seq.includes('disconnect')) expect(seq).toEqual(['data', 'disconnect']);
    }
    sockets.hub.resume();
    const results = await Promise.all(got);
    streams.forEach((s, i) => {
      expect(sha256(results[i]!)).toBe(sha256(bodies.get(s.id)!));
      expect(s.closeReason).toBe('normal');
      const seq = sequence(wire.backend, s.id, (k) => k === 'data' || k === 'disconnect');
      expect(seq).toEqual(['data', 'disconnect']);
    });
  });
});
