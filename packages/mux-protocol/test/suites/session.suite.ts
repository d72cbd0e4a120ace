/**
 * Behaviour of a hub `MuxSession` talking to a backend `MuxSession`, run over any transport pair
 * (docs/testing.md, "Shared suites"): an in-memory link (test/session.test.ts) and a real WebSocket on loopback
 * (test/integration/session-ws.test.ts).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { MuxSession, MuxSessionOptions, MuxStream } from '../../src/index.js';
import {
  decodeBackendMessage,
  encodeControlMessage,
  encodeDataFrame,
  type MuxProtocolError,
} from '../../src/index.js';

export type Side = 'hub' | 'backend';

export interface PairOptions {
  hub?: Partial<MuxSessionOptions>;
  backend?: Partial<MuxSessionOptions>;
  /** Called with every message a session sends, before it reaches the transport. */
  observe?: (from: Side, message: Uint8Array) => void;
  /** Real WebSocket pairs: a delay line holds every chunk this long each way (a round trip of twice it). */
  delayMs?: number;
}

export interface SessionPair {
  hub: MuxSession;
  backend: MuxSession;
  /** Sends a raw message on `from`'s transport, bypassing its session (to play a v1 or hostile peer). */
  inject(from: Side, message: Uint8Array): void;
  /** Resolves once `from`'s transport has less than 1 MiB queued. */
  injectDrained(from: Side): Promise<void>;
  /** How many times each side's session paused reading its transport. */
  pauses: Record<Side, number>;
  close(): Promise<void>;
}

export type CreatePair = (options?: PairOptions) => Promise<SessionPair>;

// ───────────────────────────── in-memory pair ─────────────────────────────

/** One direction of an in-memory link: messages are delivered asynchronously, in order, in batches. */
class MemoryLink {
  #queue: Uint8Array[] = [];
  #head = 0;
  #scheduled: NodeJS.Immediate | undefined;
  #paused = false;
  #closed = false;
  bufferedAmount = 0;
  deliver: (message: Uint8Array) => void = () => {};
  drained: () => void = () => {};
  readonly #waiters: Array<() => void> = [];

  send(message: Uint8Array): void {
    if (this.#closed) return;
    this.#queue.push(message);
    this.bufferedAmount += message.length;
    this.#schedule();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#schedule();
  }

  whenBelow(bytes: number): Promise<void> {
    if (this.bufferedAmount < bytes || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  close(): void {
    this.#closed = true;
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    this.#queue = [];
    this.bufferedAmount = 0;
    for (const w of this.#waiters.splice(0)) w();
  }

  #schedule(): void {
    if (this.#scheduled || this.#paused || this.#closed) return;
    this.#scheduled = setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduled = undefined;
    // About 2 MiB per event-loop turn: a "network" that is fast but not infinitely so.
    for (let n = 0; n < 64 && this.#head < this.#queue.length && !this.#paused && !this.#closed; n++) {
      const message = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as unknown as Uint8Array;
      this.bufferedAmount -= message.length;
      this.deliver(message);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
      this.drained();
    } else {
      this.#schedule();
    }
    if (this.bufferedAmount < 1024 * 1024) for (const w of this.#waiters.splice(0)) w();
  };
}

/** A hub and a backend session joined by two {@link MemoryLink}s. */
export const createMemoryPair: CreatePair = async (options = {}) => {
  const { MuxSession } = await import('../../src/index.js');
  const toBackend = new MemoryLink();
  const toHub = new MemoryLink();
  const pauses: Record<Side, number> = { hub: 0, backend: 0 };
  const observe = options.observe;
  const make = (role: Side, out: MemoryLink, incoming: MemoryLink, extra?: Partial<MuxSessionOptions>) =>
    new MuxSession({
      role,
      transport: {
        send(message) {
          observe?.(role, message);
          out.send(message);
        },
        get bufferedAmount() {
          return out.bufferedAmount;
        },
      },
      pauseTransport() {
        pauses[role]++;
        incoming.pause();
      },
      resumeTransport() {
        incoming.resume();
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
    inject: (from, message) => (from === 'hub' ? toBackend : toHub).send(message),
    injectDrained: (from) => (from === 'hub' ? toBackend : toHub).whenBelow(1024 * 1024),
    async close() {
      hub.close('test_end');
      backend.close('test_end');
      toBackend.close();
      toHub.close();
    },
  };
};

// ───────────────────────────── helpers ─────────────────────────────

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Reads a stream to its end. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Reads exactly `length` bytes without ending or destroying the stream (v1 `disconnect` closes both
 * directions, so a reader must not close before the other direction is done). `slow` pauses the
 * reader for a millisecond every 16 chunks.
 */
export function readExactly(stream: MuxStream, length: number, slow = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    let n = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= length) {
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.pause();
        resolve(Buffer.concat(chunks));
      } else if (slow && ++n % 16 === 0) {
        stream.pause();
        setTimeout(() => stream.resume(), 1);
      }
    };
    const onEnd = () => reject(new Error(`stream ended after ${got} of ${length} bytes`));
    stream.on('data', onData);
    stream.once('end', onEnd);
  });
}

/**
 * Writes `data` in `chunkSize` pieces, honouring backpressure; resolves when the last write is sent.
 * Rejects if the stream closes first.
 */
export async function writeAll(stream: MuxStream, data: Uint8Array, chunkSize = 64 * 1024): Promise<void> {
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    const ok = stream.write(data.subarray(offset, offset + chunkSize));
    if (!ok) {
      await new Promise<void>((resolve, reject) => {
        const onClose = () => reject(new Error('stream closed while writing'));
        stream.once('close', onClose);
        stream.once('drain', () => {
          stream.off('close', onClose);
          resolve();
        });
      });
    }
  }
  await new Promise<void>((resolve, reject) => {
    stream.write(Buffer.alloc(0), (error) => (error ? reject(error) : resolve()));
  });
}

/** Resolves when `predicate()` is true, polling; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

function nextStream(session: MuxSession): Promise<MuxStream> {
  return new Promise((resolve) => session.once('stream', (stream) => resolve(stream)));
}

function controlOf(message: Uint8Array) {
  if (message[0] !== 0x02) return undefined;
  const decoded = decodeBackendMessage(message);
  return decoded.ok && decoded.value.type === 'control' ? decoded.value.message : undefined;
}

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };

// ───────────────────────────── the suite ─────────────────────────────

export function runSessionSuite(name: string, createPair: CreatePair): void {
  describe(`MuxSession pair over ${name}`, () => {
    let pair: SessionPair | undefined;
    const open = async (options?: PairOptions): Promise<SessionPair> => {
      pair = await createPair(options);
      return pair;
    };
    afterEach(async () => {
      await pair?.close();
      pair = undefined;
    });

    it('opens a stream whose connect carries the hub window and echoes bytes back', async () => {
      const { hub, backend } = await open();
      const accepted = nextStream(backend);
      const stream = hub.openStream(OPEN);
      const remote = await accepted;
      expect(remote.id).toBe(stream.id);
      expect(remote.connect).toMatchObject({
        hostname: 'app.example.com',
        conn_port: 443,
        is_tls: true,
        credits: 64,
      });
      expect(remote.sendWindow).toBe(64);
      remote.pipe(remote);
      stream.end('hello through the mux');
      const echoed: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => echoed.push(chunk));
      await waitFor(() => Buffer.concat(echoed).toString() === 'hello through the mux', 5000, 'echo');
      await waitFor(() => stream.sendMetered, 5000, 'first grant');
      expect(stream.sendWindow).toBeLessThanOrEqual(64);
    });

    it('carries 10 MB in both directions at once without losing or reordering a byte', async () => {
      const { hub, backend } = await open();
      const up = randomBytes(10 * 1024 * 1024);
      const down = randomBytes(10 * 1024 * 1024);
      const accepted = nextStream(backend);
      const stream = hub.openStream(OPEN);
      const remote = await accepted;
      // v1 has no half-close: the backend ends (disconnect) once both directions are done.
      const backendSide = Promise.all([readExactly(remote, up.length), writeAll(remote, down, 70_000)]).then(
        ([got]) => {
          remote.end();
          return got;
        },
      );
      const [receivedUp, receivedDown] = await Promise.all([
        backendSide,
        readAll(stream),
        writeAll(stream, up, 100_000).then(() => stream.end()),
      ]);
      expect(sha256(receivedUp as Buffer)).toBe(sha256(up));
      expect(sha256(receivedDown as Buffer)).toBe(sha256(down));
      expect(stream.bytesWritten).toBe(up.length);
      expect(stream.bytesRead).toBe(down.length);
      expect(remote.bytesRead).toBe(up.length);
      // Every DATA frame respected the 32 768-byte limit.
      expect(hub.stats().dataFramesSent).toBeGreaterThanOrEqual(Math.ceil(up.length / 32_768));
    });

    it('completes a long transfer through a 2-frame window (no grant is lost)', async () => {
      const windowed = { initialWindow: 2, grantBatch: 2 };
      const { hub, backend } = await open({ hub: windowed, backend: windowed });
      const up = randomBytes(3 * 1024 * 1024 + 5);
      const down = randomBytes(3 * 1024 * 1024 + 7);
      const accepted = nextStream(backend);
      const stream = hub.openStream(OPEN);
      const remote = await accepted;
      await waitFor(() => stream.sendMetered, 5000, 'first grant');
      const backendSide = Promise.all([readExactly(remote, up.length), writeAll(remote, down)]).then(
        ([got]) => {
          remote.end();
          return got;
        },
      );
      const [receivedUp, receivedDown] = await Promise.all([
        backendSide,
        readAll(stream),
        writeAll(stream, up),
      ]);
      expect(sha256(receivedUp as Buffer)).toBe(sha256(up));
      expect(sha256(receivedDown as Buffer)).toBe(sha256(down));
    });

    it('never receives more frames than it granted while the reader is slow (no credit over-send)', async () => {
      const W = 4;
      const granted = { hub: new Map<string, number>(), backend: new Map<string, number>() };
      const received = { hub: new Map<string, number>(), backend: new Map<string, number>() };
      const violations: string[] = [];
      const observe = (from: Side, message: Uint8Array) => {
        const control = controlOf(message);
        if (
          control &&
          (control.event === 'connect' || control.event === 'resume_stream') &&
          control.credits
        ) {
          granted[from].set(control.client_id, (granted[from].get(control.client_id) ?? 0) + control.credits);
        }
      };
      const { hub, backend } = await open({
        hub: { initialWindow: W, grantBatch: 2 },
        backend: { initialWindow: W, grantBatch: 2 },
        observe,
      });
      const errors: MuxProtocolError[] = [];
      for (const [side, session] of [
        ['hub', hub],
        ['backend', backend],
      ] as const) {
        session.on('protocol-error', (e) => errors.push(e));
        const receive = session.receive.bind(session);
        session.receive = (message: Uint8Array) => {
          if (message[0] === 0x01) {
            const id = decodeBackendMessage(message);
            if (id.ok && id.value.type === 'data') {
              const n = (received[side].get(id.value.streamId) ?? 0) + 1;
              received[side].set(id.value.streamId, n);
              const allowed = granted[side].get(id.value.streamId) ?? 0;
              if (n > allowed) violations.push(`${side} got frame ${n} with ${allowed} granted`);
            }
          }
          receive(message);
        };
      }
      const accepted = nextStream(backend);
      const stream = hub.openStream(OPEN);
      const remote = await accepted;
      // The hub meters only from the backend's first grant; write nothing unmetered in this test.
      await waitFor(() => stream.sendMetered, 5000, 'first grant');
      const up = randomBytes(2 * 1024 * 1024);
      const down = randomBytes(2 * 1024 * 1024);
      const writes = Promise.all([writeAll(stream, up), writeAll(remote, down)]);
      // Nobody reads yet: both senders must stall at the window.
      await sleep(150);
      const bound = remote.readableHighWaterMark + W * 32_768;
      expect(remote.readableLength).toBeLessThanOrEqual(bound);
      expect(stream.readableLength).toBeLessThanOrEqual(bound);
      expect(stream.writableLength + remote.writableLength).toBeGreaterThan(0);
      expect(stream.bytesWritten).toBeLessThan(up.length);
      // Now read, slowly.
      const [gotUp, gotDown] = await Promise.all([
        readExactly(remote, up.length, true),
        readExactly(stream, down.length, true),
        writes,
      ]);
      expect(sha256(gotUp)).toBe(sha256(up));
      expect(sha256(gotDown)).toBe(sha256(down));
      expect(violations).toEqual([]);
      expect(errors).toEqual([]);
    });

    it('delivers the last bytes and then EOF when the backend writes and ends at once', async () => {
      const { hub, backend } = await open();
      const response = randomBytes(1024 * 1024 + 3);
      backend.once('stream', (remote) => {
        remote.end(response); // `Connection: close` style: last bytes, then close immediately
      });
      const stream = hub.openStream(OPEN);
      const got = await readAll(stream);
      expect(sha256(got)).toBe(sha256(response));
      expect(stream.closeReason).toBe('normal');
      await waitFor(() => hub.streamCount === 0 && backend.streamCount === 0, 5000, 'ids released');
    });

    it('delivers the last bytes and then EOF when the hub writes and disconnects at once', async () => {
      const { hub, backend } = await open();
      const request = randomBytes(1024 * 1024 + 9);
      const accepted = nextStream(backend);
      const stream = hub.openStream(OPEN);
      stream.write(request);
      stream.disconnect(); // end user closed completely: flush, then disconnect
      const remote = await accepted;
      const got = await readAll(remote);
      expect(sha256(got)).toBe(sha256(request));
      expect(remote.closeReason).toBe('normal');
    });

    it('keeps a stream alive across an end-user half-close until the response is complete', async () => {
      const { hub, backend } = await open();
      const request = Buffer.from('GET / HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n');
      const response = randomBytes(3 * 1024 * 1024);
      backend.once('stream', (remote) => {
        let got = 0;
        remote.on('data', (chunk: Buffer) => {
          got += chunk.length;
          // The full request arrived (the backend never sees the half-close): answer, then close.
          if (got === request.length) remote.end(response);
        });
      });
      const stream = hub.openStream(OPEN);
      stream.end(request); // the end user's FIN right after its request
      await new Promise((resolve) => stream.once('finish', resolve));
      expect(stream.closeReason).toBeUndefined();
      const got = await readAll(stream);
      expect(sha256(got)).toBe(sha256(response));
    });

    it('survives a disconnect in the middle of a large write on both sides', async () => {
      const disconnectsFromBackend: string[] = [];
      const { hub, backend } = await open({
        observe: (from, m) => {
          const c = controlOf(m);
          if (from === 'backend' && c?.event === 'disconnect') disconnectsFromBackend.push(c.client_id);
        },
      });
      backend.once('stream', (remote) => {
        let got = 0;
        remote.on('data', (chunk: Buffer) => {
          got += chunk.length;
          if (got >= 1024 * 1024 && !remote.destroyed) remote.destroy();
        });
      });
      const stream = hub.openStream(OPEN);
      const closed = new Promise((resolve) => stream.once('close', resolve));
      const errors: Error[] = [];
      stream.on('error', (e) => errors.push(e));
      stream.resume();
      const big = randomBytes(8 * 1024 * 1024);
      await writeAll(stream, big); // every write callback is released, none errors
      if (!stream.readableEnded) await new Promise((resolve) => stream.once('end', resolve));
      stream.end(); // the owner ends its side, as it would for a socket whose peer closed
      await closed;
      expect(errors).toEqual([]);
      expect(stream.closeReason).toBe('normal');
      expect(stream.bytesWritten).toBeLessThanOrEqual(big.length);
      await waitFor(() => hub.streamCount === 0 && backend.streamCount === 0, 5000, 'ids released');
      await sleep(50);
      // The hub's in-flight frames after the disconnect were dropped without a second disconnect.
      expect(disconnectsFromBackend).toEqual([stream.id]);
    });

    it('answers DATA for an unknown stream id with one disconnect for that id', async () => {
      const disconnects: Array<{ from: Side; id: string; reason?: string }> = [];
      const { hub, backend } = await open({
        observe: (from, m) => {
          const c = controlOf(m);
          if (c?.event === 'disconnect') disconnects.push({ from, id: c.client_id, reason: c.reason });
        },
      });
      const ghost = randomUUID();
      for (let i = 0; i < 5; i++) pair!.inject('hub', encodeDataFrame(ghost, Buffer.from(`frame ${i}`)));
      const ghost2 = randomUUID();
      pair!.inject('backend', encodeDataFrame(ghost2, Buffer.from('x')));
      await waitFor(() => disconnects.length >= 2, 5000, 'disconnect answers');
      await sleep(30);
      expect(disconnects).toEqual(
        expect.arrayContaining([
          { from: 'backend', id: ghost, reason: 'unknown' },
          { from: 'hub', id: ghost2, reason: 'unknown' },
        ]),
      );
      expect(disconnects).toHaveLength(2);
      expect(backend.stats().unknownStreamFrames).toBe(5);
      expect(hub.closed || backend.closed).toBe(false);
    });

    it('serves a v1 hub (connect without credits) to a slow reader without dropping data', async () => {
      const sentByBackend: string[] = [];
      const { backend, pauses } = await open({
        observe: (from, m) => {
          const c = controlOf(m);
          if (from === 'backend' && c) sentByBackend.push(c.event);
        },
      });
      const id = randomUUID();
      const data = randomBytes(6 * 1024 * 1024 + 11);
      const accepted = nextStream(backend);
      pair!.inject(
        'hub',
        encodeControlMessage({
          event: 'connect',
          client_id: id,
          conn_port: 80,
          client_ip: '198.51.100.1:1234',
          hostname: 'legacy.example.com',
          is_tls: false,
        }),
      );
      const remote = await accepted;
      expect(remote.sendWindow).toBe(Number.POSITIVE_INFINITY);
      expect(remote.receiveWindow).toBeUndefined();
      const reading = (async () => {
        await sleep(100); // a reader that does not read at first, then slowly
        const chunks: Buffer[] = [];
        let n = 0;
        for await (const chunk of remote) {
          chunks.push(chunk as Buffer);
          if (++n % 32 === 0) await sleep(1);
        }
        return Buffer.concat(chunks);
      })();
      for (let offset = 0; offset < data.length; offset += 32_768) {
        pair!.inject('hub', encodeDataFrame(id, data.subarray(offset, offset + 32_768)));
        await pair!.injectDrained('hub');
      }
      pair!.inject('hub', encodeControlMessage({ event: 'disconnect', client_id: id }));
      const got = await reading;
      expect(sha256(got)).toBe(sha256(data));
      expect(pauses.backend).toBeGreaterThan(0);
      expect(backend.stats().transportPaused).toBe(false);
      // A backend never sends credits on a stream whose connect had none.
      expect(sentByBackend).not.toContain('resume_stream');
    });

    it('keeps 19 streams and ping/pong flowing while one stream is stalled (no head-of-line)', async () => {
      const { hub, backend } = await open();
      const remotes = new Map<string, MuxStream>();
      backend.on('stream', (remote) => {
        remotes.set(remote.id, remote);
        if (remote.hostname !== 'stalled.example.com') remote.pipe(remote); // echo
      });
      // A first stream teaches the hub that this backend grants credits; from then on a new stream is
      // held to the backend's window from its first frame (before its own grant arrives).
      const warmUp = hub.openStream(OPEN);
      await waitFor(() => warmUp.sendMetered, 5000, 'first grant');
      warmUp.destroy();
      const stalled = hub.openStream({ ...OPEN, hostname: 'stalled.example.com' });
      stalled.on('error', () => {});
      const stalledWrite = writeAll(stalled, randomBytes(16 * 1024 * 1024)).catch(() => {});
      await sleep(50);
      const results = await Promise.all(
        Array.from({ length: 19 }, async () => {
          const s = hub.openStream(OPEN);
          const data = randomBytes(512 * 1024);
          const [echo] = await Promise.all([readExactly(s, data.length), writeAll(s, data)]);
          s.destroy();
          return sha256(echo) === sha256(data);
        }),
      );
      expect(results.every(Boolean)).toBe(true);
      // The stalled stream is held by its own credits, not by the transport.
      const stalledRemote = remotes.get(stalled.id)!;
      // On a loaded machine the stalled stream may still be spending its window: wait for it to be spent,
      // then it must stay at exactly the window.
      await waitFor(() => stalled.bytesWritten >= 64 * 32_768, 10_000, 'stalled window spent');
      await sleep(50);
      expect(stalled.bytesWritten).toBe(64 * 32_768);
      expect(stalledRemote.readableLength).toBeLessThanOrEqual(
        stalledRemote.readableHighWaterMark + 64 * 32_768,
      );
      // Stream-level ping/pong still answers on the stalled stream (control frames are not held by credits).
      const ponged = new Promise<void>((resolve) => stalledRemote.once('pong', () => resolve()));
      stalledRemote.ping();
      await ponged;
      stalled.destroy();
      await stalledWrite;
    });

    it('close() ends every stream with its reason and leaves no timer behind', async () => {
      const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      const { hub, backend } = await open();
      const remotes: MuxStream[] = [];
      backend.on('stream', (remote) => {
        remotes.push(remote);
        remote.write(Buffer.alloc(100_000, 7));
      });
      const streams = Array.from({ length: 5 }, () => hub.openStream(OPEN));
      await waitFor(() => streams.every((s) => s.readableLength === 100_000), 5000, 'data buffered');
      // A write that cannot complete: the backend never reads and the window is 64 frames.
      let writeCallbackCalled = false;
      streams[0]!.write(randomBytes(4 * 1024 * 1024), () => {
        writeCallbackCalled = true;
      });
      await sleep(50);
      const closeEvents: string[] = [];
      hub.on('close', (reason) => closeEvents.push(reason));
      hub.close('shutdown');
      hub.close('again');
      expect(closeEvents).toEqual(['shutdown']);
      expect(hub.streamCount).toBe(0);
      expect(() => hub.openStream(OPEN)).toThrow(expect.objectContaining({ code: 'MUX_ERR_CLOSED' }));
      const got = await Promise.all(streams.map((s) => readAll(s)));
      for (const buffer of got) expect(buffer.length).toBe(100_000);
      for (const s of streams) s.end();
      await Promise.all(streams.map((s) => (s.closed ? undefined : new Promise((r) => s.once('close', r)))));
      for (const s of streams) expect(s.closeReason).toBe('shutdown');
      expect(writeCallbackCalled).toBe(true);
      expect(hub.stats()).toMatchObject({
        closed: true,
        streams: 0,
        queuedStreams: 0,
        transportPaused: false,
      });
      backend.close('shutdown');
      for (const remote of remotes) expect(remote.closeReason).toBe('shutdown');
      expect(hub.listenerCount('close')).toBe(1);
      const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      expect(after).toBeLessThanOrEqual(before);
    });
  });
}
