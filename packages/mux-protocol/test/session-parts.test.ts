/**
 * A hub whose transport takes DATA as header + payload parts (`MuxTransport.sendData`, the zero-copy
 * path of a WebSocket server): the whole pair suite over it, plus the contract that a write completes
 * only once the transport no longer holds the writer's buffers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  encodeControlMessage,
  MuxSession,
  type MuxSessionOptions,
  type MuxStream,
  type MuxTransport,
} from '../src/index.js';
import { type CreatePair, runSessionSuite, type Side } from './suites/session.suite.js';

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };

/**
 * One direction of a link that, like a socket, holds what it was given (views included) until it
 * "writes" it on a later turn of the event loop; parts are joined only then.
 */
class PartsLink {
  queue: { parts: Uint8Array[]; length: number; onWritten?: () => void }[] = [];
  bufferedAmount = 0;
  paused = false;
  closed = false;
  partsMessages = 0;
  #scheduled: NodeJS.Immediate | undefined;
  deliver: (message: Uint8Array) => void = () => {};
  drained: () => void = () => {};
  waiters: (() => void)[] = [];

  push(parts: Uint8Array[], length: number, onWritten?: () => void): void {
    if (this.closed) {
      if (onWritten) process.nextTick(onWritten);
      return;
    }
    this.queue.push({ parts, length, onWritten });
    this.bufferedAmount += length;
    this.schedule();
  }

  schedule(): void {
    if (this.#scheduled || this.paused || this.closed) return;
    this.#scheduled = setImmediate(() => {
      this.#scheduled = undefined;
      for (let n = 0; n < 64 && this.queue.length > 0 && !this.paused && !this.closed; n++) {
        const item = this.queue.shift()!;
        this.bufferedAmount -= item.length;
        const message = Buffer.concat(item.parts, item.length);
        item.onWritten?.();
        this.deliver(message);
      }
      if (this.queue.length === 0) this.drained();
      else this.schedule();
      if (this.bufferedAmount < 1024 * 1024) for (const w of this.waiters.splice(0)) w();
    });
  }

  close(): void {
    this.closed = true;
    if (this.#scheduled) clearImmediate(this.#scheduled);
    const pending = this.queue.splice(0);
    this.bufferedAmount = 0;
    for (const item of pending) item.onWritten?.();
    for (const w of this.waiters.splice(0)) w();
  }
}

function transportOf(link: PartsLink, withParts: boolean, observe?: (m: Uint8Array) => void): MuxTransport {
  const transport: MuxTransport = {
    send(message) {
      observe?.(message);
      link.push([message], message.length);
    },
    get bufferedAmount() {
      return link.bufferedAmount;
    },
  };
  if (withParts) {
    transport.sendData = (header, payload, payloadLength, onWritten) => {
      link.partsMessages++;
      if (observe) observe(Buffer.concat([header, ...payload]));
      link.push([header, ...payload], header.length + payloadLength, onWritten);
    };
  }
  return transport;
}

const createPartsPair: CreatePair = async (options = {}) => {
  const toBackend = new PartsLink();
  const toHub = new PartsLink();
  const pauses: Record<Side, number> = { hub: 0, backend: 0 };
  const make = (role: Side, out: PartsLink, incoming: PartsLink, extra?: Partial<MuxSessionOptions>) =>
    new MuxSession({
      role,
      // The hub sends DATA as parts; the backend (a WebSocket client, which masks) as one buffer.
      transport: transportOf(out, role === 'hub', (m) => options.observe?.(role, m)),
      pauseTransport() {
        pauses[role]++;
        incoming.paused = true;
      },
      resumeTransport() {
        incoming.paused = false;
        incoming.schedule();
      },
      ...extra,
    });
  const hub = make('hub', toBackend, toHub, options.hub);
  const backend = make('backend', toHub, toBackend, options.backend);
  toBackend.deliver = (m) => backend.receive(m);
  toHub.deliver = (m) => hub.receive(m);
  toBackend.drained = () => hub.transportDrained();
  toHub.drained = () => backend.transportDrained();
  return {
    hub,
    backend,
    pauses,
    inject: (from, message) => (from === 'hub' ? toBackend : toHub).push([message], message.length),
    injectDrained: (from) => {
      const link = from === 'hub' ? toBackend : toHub;
      if (link.bufferedAmount < 1024 * 1024 || link.closed) return Promise.resolve();
      return new Promise((resolve) => link.waiters.push(resolve));
    },
    async close() {
      hub.close('test_end');
      backend.close('test_end');
      toBackend.close();
      toHub.close();
    },
  };
};

runSessionSuite('a transport that takes DATA as parts', createPartsPair);

describe('MuxSession DATA as parts', () => {
  function pair() {
    const link = new PartsLink();
    const received: Buffer[] = [];
    const hub = new MuxSession({ role: 'hub', transport: transportOf(link, true) });
    link.deliver = (m) => received.push(Buffer.from(m));
    link.drained = () => hub.transportDrained();
    return { link, hub, received };
  }

  it('sends the 17-byte header and views of the written chunks, byte-identical to one joined frame', async () => {
    const { link, hub, received } = pair();
    const stream = hub.openStream(OPEN);
    const data = randomBytes(3 * 32_768 + 100);
    await new Promise<void>((resolve) => stream.write(data, () => resolve()));
    expect(link.partsMessages).toBe(4);
    const frames = received.filter((m) => m[0] === 0x01);
    expect(frames.map((f) => f.length)).toEqual([32_785, 32_785, 32_785, 117]);
    const id = Buffer.from(stream.id.replaceAll('-', ''), 'hex');
    for (const f of frames) expect(f.subarray(1, 17).equals(id)).toBe(true);
    expect(Buffer.concat(frames.map((f) => f.subarray(17))).equals(data)).toBe(true);
    hub.close();
    link.close();
  });

  it('completes a write only once the transport has written its last part, so a writer may then reuse its buffer', async () => {
    const { link, hub, received } = pair();
    const stream = hub.openStream(OPEN);
    const buffer = Buffer.alloc(40_000);
    const expected: Buffer[] = [];
    for (let round = 0; round < 5; round++) {
      buffer.fill(0x41 + round);
      expected.push(Buffer.from(buffer));
      let done = false;
      const written = new Promise<void>((resolve) =>
        stream.write(buffer, () => {
          done = true;
          resolve();
        }),
      );
      // Handed to the transport, not yet written by it: the write is still in progress.
      expect(link.queue.length).toBeGreaterThan(0);
      await new Promise((r) => process.nextTick(r));
      expect(done).toBe(false);
      await written;
      expect(link.queue.length).toBe(0);
    }
    const payload = Buffer.concat(received.filter((m) => m[0] === 0x01).map((f) => f.subarray(17)));
    const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(digest(payload)).toBe(digest(Buffer.concat(expected)));
    hub.close();
    link.close();
  });

  it('releases a write held by the transport when the session closes', async () => {
    const { link, hub } = pair();
    link.paused = true; // the "socket" never writes
    const stream: MuxStream = hub.openStream(OPEN);
    stream.on('error', () => {});
    const written = new Promise<void>((resolve) => stream.write(Buffer.alloc(1000, 1), () => resolve()));
    await new Promise((r) => setImmediate(r));
    hub.close('gone');
    link.close();
    await written;
    expect(stream.closeReason).toBe('gone');
  });

  /**
   * A writer that reuses its buffer once the write calls back (as the relays' pooled reads do) while the
   * transport still holds views of it: the peer's disconnect (or the stream's destruction) must not call
   * the write back before the transport let go, or the transport would write what the buffer holds by
   * then (another stream's frame, framed in place) on the session's wire.
   */
  for (const [name, end] of [
    ['the peer disconnects the stream', 'remote'],
    ['the stream is destroyed', 'destroy'],
  ] as const) {
    for (const size of [20_000, 3 * 32_768 + 100]) {
      it(`holds a write's callback while the transport holds its parts, when ${name} (${size} bytes)`, async () => {
        const { link, hub, received } = pair();
        const stream = hub.openStream(OPEN);
        stream.on('error', () => {});
        const buffer = Buffer.alloc(size, 0x41);
        link.paused = true; // the "socket" is busy: it holds the frames
        let calledBack = false;
        const written = new Promise<void>((resolve) =>
          stream.write(buffer, () => {
            calledBack = true;
            // The writer takes its buffer back at once and fills it with the next read.
            buffer.fill(0xee);
            resolve();
          }),
        );
        await new Promise((r) => setImmediate(r));
        expect(link.queue.length).toBeGreaterThan(0);
        if (end === 'remote') {
          hub.receive(encodeControlMessage({ event: 'disconnect', client_id: stream.id, reason: 'normal' }));
        } else {
          stream.destroy();
        }
        await new Promise((r) => setImmediate(r));
        expect(calledBack).toBe(false);
        link.paused = false;
        link.schedule();
        await written;
        // What left went out as written: 0x41 bytes, never the writer's next read.
        const payload = Buffer.concat(received.filter((m) => m[0] === 0x01).map((f) => f.subarray(17)));
        expect(payload.length).toBeGreaterThan(0);
        expect(payload.every((b) => b === 0x41)).toBe(true);
        hub.close();
        link.close();
      });
    }
  }
});
