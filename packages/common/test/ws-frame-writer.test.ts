import { once } from 'node:events';
import fc from 'fast-check';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { createWsBinarySender, DATA_HIGH_WATER_MARK } from '../src/ws-binary-sender.js';
import { FRAME_ROOM, lendFrameRoom } from '../src/frame-room.js';
import { createWsFrameWriter, SMALL_MESSAGE_MAX } from '../src/ws-frame-writer.js';

/** One side of a loopback WebSocket pair, with what it wrote to its socket and what the other side got. */
interface End {
  ws: WebSocket;
  /** Messages the other end received from this one. */
  received: Buffer[];
  /** Raw bytes this end wrote to its socket. */
  wire: Buffer[];
}

interface Pair {
  client: End;
  server: End;
  close(): Promise<void>;
}

const opened: Pair[] = [];

function capture(ws: WebSocket): Buffer[] {
  const socket = (ws as unknown as { _socket: { write: (...args: unknown[]) => boolean } })._socket;
  const wire: Buffer[] = [];
  const write = socket.write.bind(socket);
  socket.write = (chunk: unknown, ...rest: unknown[]) => {
    wire.push(Buffer.from(chunk as Uint8Array));
    return write(chunk, ...rest);
  };
  return wire;
}

async function openPair(): Promise<Pair> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
  });
  await once(wss, 'listening');
  const fromClient: Buffer[] = [];
  const fromServer: Buffer[] = [];
  const accepted = new Promise<WebSocket>((resolve) =>
    wss.once('connection', (ws) => {
      ws.on('message', (data) => fromClient.push(data as Buffer));
      resolve(ws);
    }),
  );
  const { port } = wss.address() as AddressInfo;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, {
    perMessageDeflate: false,
  });
  client.on('message', (data) => fromServer.push(data as Buffer));
  await once(client, 'open');
  const server = await accepted;
  const pair: Pair = {
    client: { ws: client, received: fromClient, wire: capture(client) },
    server: { ws: server, received: fromServer, wire: capture(server) },
    async close() {
      client.terminate();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
  opened.push(pair);
  return pair;
}

afterEach(async () => {
  for (const pair of opened.splice(0)) await pair.close();
});

async function waitForMessages(end: End, count: number): Promise<void> {
  const started = Date.now();
  while (end.received.length < count) {
    if (Date.now() - started > 5_000) throw new Error(`got ${end.received.length} of ${count} messages`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function bytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** ws's own frame builder (its `Sender`, which @types/ws does not describe). */
const wsSender = createRequire(import.meta.url)('ws').Sender as {
  frame(data: Buffer, options: Record<string, unknown>): Buffer[];
};

/** What ws's own sender writes for `message`, with the masking key `key` on a client. */
function wsFrame(message: Buffer, key: Buffer | undefined): Buffer {
  const parts = wsSender.frame(Buffer.from(message), {
    fin: true,
    opcode: 2,
    mask: key !== undefined,
    ...(key !== undefined ? { maskBuffer: Buffer.from(key), generateMask: () => {} } : {}),
    readOnly: false,
    rsv1: false,
  });
  return Buffer.concat(parts);
}

/** The masking key of a client frame on the wire (after its 2, 4 or 10 header bytes). */
function keyOf(frame: Uint8Array): Buffer {
  const len7 = frame[1]! & 0x7f;
  const at = len7 === 127 ? 10 : len7 === 126 ? 4 : 2;
  return Buffer.from(frame.subarray(at, at + 4));
}

const join = (header: Uint8Array, parts: readonly Uint8Array[], length: number): Buffer =>
  Buffer.concat([header, ...parts], header.length + length);

describe.each(['client', 'server'] as const)('createWsFrameWriter (%s side)', (side) => {
  const endOf = (pair: Pair): End => pair[side];

  it('delivers header and parts of any length as one message, in order with ws.send', async () => {
    const pair = await openPair();
    const end = endOf(pair);
    const writer = createWsFrameWriter(end.ws);
    expect(writer.writesData).toBe(true);
    const header = bytes(17, 1);
    const cases: Buffer[][] = [
      [bytes(32_768, 2)],
      [bytes(1, 3), bytes(5, 4), bytes(47, 5), bytes(48, 6), bytes(1000, 7), bytes(3, 8)],
      [bytes(16_383, 9), bytes(16_385, 10)],
      [],
      [bytes(90, 11)],
      [bytes(70_000, 12)],
    ];
    const expected: Buffer[] = [];
    let written = 0;
    for (const parts of cases) {
      const length = parts.reduce((n, p) => n + p.length, 0);
      expect(writer.writeData(header, parts, length, () => written++)).toBe(true);
      expected.push(join(header, parts, length));
      const between = bytes(200, 13);
      end.ws.send(between, { binary: true });
      expected.push(between);
    }
    await waitForMessages(end, expected.length);
    expect(end.received).toEqual(expected);
    expect(written).toBe(cases.length);
  });

  it('writes a short message with a 7-bit length', async () => {
    const pair = await openPair();
    const end = endOf(pair);
    const writer = createWsFrameWriter(end.ws);
    end.wire.length = 0;
    writer.writeData(bytes(17, 1), [bytes(10, 2)], 10, () => {});
    const frame = Buffer.concat(end.wire);
    expect(frame[0]).toBe(0x82);
    expect(frame[1]).toBe((side === 'client' ? 0x80 : 0) | 27);
    expect(frame.length).toBe(2 + (side === 'client' ? 4 : 0) + 27);
    await waitForMessages(end, 1);
    expect(end.received[0]).toEqual(join(bytes(17, 1), [bytes(10, 2)], 10));
  });

  it('declines, writing nothing, once the WebSocket is no longer open', async () => {
    const pair = await openPair();
    const end = endOf(pair);
    const writer = createWsFrameWriter(end.ws);
    end.ws.close();
    end.wire.length = 0;
    expect(writer.writeData(bytes(17, 1), [bytes(10, 2)], 10, () => {})).toBe(false);
    expect(end.wire).toEqual([]);
  });

  it('declines while ws is in the middle of a fragmented message, then writes after it', async () => {
    const pair = await openPair();
    const end = endOf(pair);
    const writer = createWsFrameWriter(end.ws);
    end.ws.send(bytes(5, 1), { binary: true, fin: false });
    expect(writer.writeData(bytes(17, 1), [bytes(10, 2)], 10, () => {})).toBe(false);
    end.ws.send(bytes(5, 3), { binary: true, fin: true });
    expect(writer.writeData(bytes(17, 4), [bytes(10, 5)], 10, () => {})).toBe(true);
    await waitForMessages(end, 2);
    expect(end.received).toEqual([
      Buffer.concat([bytes(5, 1), bytes(5, 3)]),
      join(bytes(17, 4), [bytes(10, 5)], 10),
    ]);
  });

  it('declines while ws reads a Blob it was given (its sender is not idle)', async () => {
    const pair = await openPair();
    const end = endOf(pair);
    const writer = createWsFrameWriter(end.ws);
    end.ws.send(new Blob([bytes(30, 1)]));
    expect(writer.writeData(bytes(17, 2), [bytes(10, 3)], 10, () => {})).toBe(false);
    end.ws.send(join(bytes(17, 2), [bytes(10, 3)], 10), { binary: true });
    await waitForMessages(end, 2);
    expect(end.received).toEqual([bytes(30, 1), join(bytes(17, 2), [bytes(10, 3)], 10)]);
  });

  it('corks small messages for one tick; DATA uncorks and leaves in a write of its own', async () => {
    const pair = await openPair();
    const end = endOf(pair);
    const writer = createWsFrameWriter(end.ws);
    const socket = (end.ws as unknown as { _socket: { writableCorked: number } })._socket;
    writer.corkForTick();
    writer.corkForTick();
    expect(socket.writableCorked).toBe(1);
    end.ws.send(bytes(10, 3), { binary: true });
    const payload = lendFrameRoom(Buffer.allocUnsafeSlow(FRAME_ROOM + 100)).fill(7);
    end.wire.length = 0;
    writer.writeData(bytes(17, 1), [payload], 100, () => {});
    expect(socket.writableCorked).toBe(0);
    // The frame is one write: header, DATA header and payload together.
    expect(end.wire).toHaveLength(1);
    expect(end.wire[0]!.length).toBe(2 + (side === 'client' ? 4 : 0) + 117);
    writer.corkForTick();
    expect(socket.writableCorked).toBe(1);
    end.ws.send(bytes(10, 4), { binary: true });
    await new Promise((resolve) => process.nextTick(resolve));
    expect(socket.writableCorked).toBe(0);
    await waitForMessages(end, 3);
    expect(end.received).toEqual([
      bytes(10, 3),
      join(bytes(17, 1), [Buffer.alloc(100, 7)], 100),
      bytes(10, 4),
    ]);
  });
});

describe('createWsFrameWriter (client side)', () => {
  it('masks every frame with its own non-zero key (RFC 6455 §5.3)', async () => {
    const pair = await openPair();
    const writer = createWsFrameWriter(pair.client.ws);
    const header = Buffer.alloc(17);
    const payload = Buffer.alloc(1000);
    const keys = new Set<string>();
    for (let i = 0; i < 20; i++) {
      pair.client.wire.length = 0;
      writer.writeData(header, [payload], payload.length, () => {});
      const frame = Buffer.concat(pair.client.wire);
      expect(frame[0]).toBe(0x82);
      expect(frame[1]).toBe(0x80 | 126);
      expect(frame.readUInt16BE(2)).toBe(1017);
      const key = frame.subarray(4, 8);
      keys.add(key.toString('hex'));
      // All-zero plaintext: the wire carries the key repeated, never the plaintext.
      for (let j = 0; j < 1017; j++) expect(frame[8 + j]).toBe(key[j & 3]);
    }
    expect(keys.size).toBe(20);
    expect(keys.has('00000000')).toBe(false);
    await waitForMessages(pair.client, 20);
  });
});

describe('createWsFrameWriter (client side): reused frame buffers', () => {
  /** The `ArrayBuffer`s under the large chunks written to `ws`'s socket, in order. */
  function chunkMemory(ws: WebSocket): ArrayBufferLike[] {
    const socket = (ws as unknown as { _socket: { write: (...args: unknown[]) => boolean } })._socket;
    const seen: ArrayBufferLike[] = [];
    const write = socket.write;
    socket.write = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
      if ((chunk as Uint8Array).length >= 4096) seen.push((chunk as Uint8Array).buffer);
      return write.call(this, chunk, ...rest);
    };
    return seen;
  }

  it('masks large frames into buffers it reuses once written, every message intact', async () => {
    const pair = await openPair();
    const memory = chunkMemory(pair.client.ws);
    const writer = createWsFrameWriter(pair.client.ws);
    const header = bytes(17, 1);
    const expected: Buffer[] = [];
    let written = 0;
    for (let round = 0; round < 10; round++) {
      // 16 frames in one tick: all in flight at once, so none may be reused before its write completes.
      for (let i = 0; i < 16; i++) {
        const payload = bytes(32_768, round * 16 + i);
        expect(writer.writeData(header, [payload], payload.length, () => written++)).toBe(true);
        expected.push(join(header, [payload], payload.length));
      }
      while (written < expected.length) await new Promise((resolve) => setImmediate(resolve));
    }
    await waitForMessages(pair.client, expected.length);
    // Buffer.equals: a deep comparison of 200 × 32 KiB would take seconds.
    const intact = pair.client.received.filter((message, i) => message.equals(expected[i]!)).length;
    expect(intact).toBe(expected.length);
    expect(memory.length).toBe(160);
    expect(new Set(memory).size).toBeLessThanOrEqual(16);
  });

  it('calls back every frame once when the socket fails under them, and reuses nothing after', async () => {
    const pair = await openPair();
    const memory = chunkMemory(pair.client.ws);
    const writer = createWsFrameWriter(pair.client.ws);
    const errors: (Error | null | undefined)[] = [];
    // Held in the socket's buffer (corked by the test, not by the writer), so none is written.
    (pair.client.ws as unknown as { _socket: { cork(): void } })._socket.cork();
    for (let i = 0; i < 8; i++) {
      writer.writeData(bytes(17, 1), [bytes(32_768, i)], 32_768, (err) => errors.push(err));
    }
    const socket = (pair.client.ws as unknown as { _socket: { destroy(err: Error): void } })._socket;
    socket.destroy(new Error('cut'));
    const started = Date.now();
    while (errors.length < 8 && Date.now() - started < 5_000) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(errors).toHaveLength(8);
    expect(errors.every((err) => err instanceof Error)).toBe(true);
    expect(new Set(memory).size).toBe(8);
  });
});

describe('createWsFrameWriter (server side)', () => {
  it('writes the parts themselves, unmasked, after one frame header', async () => {
    const pair = await openPair();
    const writer = createWsFrameWriter(pair.server.ws);
    const header = bytes(17, 1);
    const parts = [bytes(300, 2), bytes(700, 3)];
    pair.server.wire.length = 0;
    const written: (Error | null | undefined)[] = [];
    writer.writeData(header, parts, 1000, (err) => written.push(err));
    await new Promise((resolve) => process.nextTick(resolve));
    const frame = Buffer.concat(pair.server.wire);
    expect(frame[0]).toBe(0x82);
    expect(frame[1]).toBe(126);
    expect(frame.readUInt16BE(2)).toBe(1017);
    expect(frame.subarray(4)).toEqual(join(header, parts, 1000));
    await waitForMessages(pair.server, 1);
    expect(written).toEqual([null]);
  });
});

describe.each(['client', 'server'] as const)('createWsBinarySender (%s side)', (side) => {
  it('sends messages and DATA in order, releasing the parts once the socket wrote them', async () => {
    const pair = await openPair();
    const end = pair[side];
    let sent = 0;
    const sender = createWsBinarySender(end.ws, { onSent: () => sent++ });
    const header = bytes(17, 1);
    const parts = [bytes(100, 2), bytes(5000, 3)];
    const released: string[] = [];
    sender.send(bytes(9, 4));
    sender.sendData(header, parts, 5100, () => released.push('data'));
    sender.send(bytes(7, 5));
    expect(released).toEqual([]); // never synchronously
    await waitForMessages(end, 3);
    expect(end.received).toEqual([bytes(9, 4), join(header, parts, 5100), bytes(7, 5)]);
    expect(released).toEqual(['data']);
    expect(sent).toBe(3);
  });

  it('sends nothing once the WebSocket is no longer open, and still releases the parts', async () => {
    const pair = await openPair();
    const end = pair[side];
    const sender = createWsBinarySender(end.ws);
    end.ws.close();
    end.wire.length = 0;
    let released = 0;
    sender.send(bytes(9, 4));
    sender.sendData(bytes(17, 1), [bytes(10, 2)], 10, () => released++);
    expect(released).toBe(0);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(released).toBe(1);
    expect(end.wire).toEqual([]);
  });
});

describe.each(['client', 'server'] as const)(
  'createWsFrameWriter (%s side): frames built in place',
  (side) => {
    /** Every chunk written to `ws`'s socket as it was handed over (not copied). */
    function rawWrites(ws: WebSocket): Uint8Array[] {
      const socket = (ws as unknown as { _socket: { write: (...args: unknown[]) => boolean } })._socket;
      const seen: Uint8Array[] = [];
      const write = socket.write;
      socket.write = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
        seen.push(chunk as Uint8Array);
        return write.call(this, chunk, ...rest);
      };
      return seen;
    }

    it('writes a payload read into a lent buffer as one frame in place, byte-identical to ws, a remainder as usual', async () => {
      const pair = await openPair();
      const end = pair[side];
      const writes = rawWrites(end.ws);
      const writer = createWsFrameWriter(end.ws);
      const header = bytes(17, 9);
      const lengths = fc.constantFrom(1, 47, 48, 108, 109, 200, 65_518, 65_519, 70_000, 131_072);
      await fc.assert(
        fc.asyncProperty(lengths, fc.nat(), fc.boolean(), async (length, cutAt, lent) => {
          const memory = Buffer.allocUnsafeSlow(FRAME_ROOM + length);
          const area = lent ? lendFrameRoom(memory) : memory.subarray(FRAME_ROOM);
          const content = bytes(length, length + cutAt);
          area.set(content);
          // The stream cuts a frame from the front of the chunk, and maybe a second one from the rest.
          const first = 1 + (cutAt % length);
          const before = end.received.length;
          writes.length = 0;
          let written = 0;
          expect(writer.writeData(header, [area.subarray(0, first)], first, () => written++)).toBe(true);
          if (first < length) {
            expect(
              writer.writeData(header, [area.subarray(first, length)], length - first, () => written++),
            ).toBe(true);
          }
          const frame = writes[0]!;
          if (lent) {
            // One write, in the lent memory itself, right in front of the payload.
            expect(frame.buffer).toBe(memory.buffer);
            const message = Buffer.concat([header, content.subarray(0, first)]);
            expect(Buffer.from(frame)).toEqual(
              wsFrame(message, side === 'client' ? keyOf(frame) : undefined),
            );
          }
          const messages = first < length ? [content.subarray(0, first), content.subarray(first)] : [content];
          await waitForMessages(end, before + messages.length);
          const got = end.received.slice(before);
          const intact = messages.map((m, i) => got[i]!.equals(Buffer.concat([header, m])));
          expect(intact).toEqual(messages.map(() => true));
          while (written < messages.length) await new Promise((resolve) => setImmediate(resolve));
        }),
        { numRuns: 40, endOnFailure: true },
      );
    });

    it('leaves memory it was not lent untouched, and frames a payload of several parts as one write', async () => {
      const pair = await openPair();
      const end = pair[side];
      const writes = rawWrites(end.ws);
      const writer = createWsFrameWriter(end.ws);
      const header = bytes(17, 3);
      // Room in front, but not lent: a view of someone else's memory at the same offset.
      const memory = Buffer.allocUnsafeSlow(FRAME_ROOM + 40_000).fill(0xab);
      const view = memory.subarray(FRAME_ROOM);
      const parts = [view.subarray(0, 20_000), bytes(30_000, 4)];
      writer.writeData(header, parts, 50_000, () => {});
      expect(memory.every((b) => b === 0xab)).toBe(true);
      // Several parts are copied (a client: masked) into one buffer, written on its own.
      expect(writes).toHaveLength(1);
      expect(writes[0]!.length).toBe(4 + (side === 'client' ? 4 : 0) + 50_017);
      await waitForMessages(end, 1);
      expect(end.received[0]!.equals(join(header, parts, 50_000))).toBe(true);
    });
  },
);

describe.each(['client', 'server'] as const)(
  'createWsBinarySender (%s side): DATA held back above DATA_HIGH_WATER_MARK',
  (side) => {
    it('never lets a large frame share a socket write, while the far end reads slowly', async () => {
      const pair = await openPair();
      const end = pair[side];
      const far = pair[side === 'client' ? 'server' : 'client'];
      const socket = (
        end.ws as unknown as {
          _socket: { _writev: (...args: unknown[]) => void };
        }
      )._socket;
      // What Node's Writable hands the socket several at once (TLS copies such a batch into one buffer).
      const batches: number[][] = [];
      const writev = socket._writev;
      socket._writev = function (this: unknown, chunks: unknown, ...rest: unknown[]) {
        batches.push((chunks as { chunk: Uint8Array }[]).map((c) => c.chunk.length));
        return writev.call(this, chunks, ...rest);
      };
      const header = bytes(17, 1);
      const frames = 48;
      let sent = 0;
      let queuedBehind = 0;
      const sender = createWsBinarySender(end.ws, { onSent: () => pump() });
      const pump = (): void => {
        while (sent < frames && end.ws.bufferedAmount <= DATA_HIGH_WATER_MARK) {
          if (end.ws.bufferedAmount > 0) queuedBehind++;
          const payload = lendFrameRoom(Buffer.allocUnsafeSlow(FRAME_ROOM + 131_072));
          payload.fill(sent & 0xff);
          sender.sendData(header, [payload], payload.length, () => {});
          // A small message after it (a grant): the next frame is queued behind it, never joined with it.
          sender.send(bytes(40, sent));
          sent++;
        }
      };
      // The far end stops reading: the kernel's buffers fill and the socket's writes complete later.
      const farSocket = (far.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      farSocket.pause();
      pump();
      await new Promise((resolve) => setTimeout(resolve, 50));
      farSocket.resume();
      await waitForMessages(end, 2 * frames);
      const data = end.received.filter((m) => m.length === 17 + 131_072);
      const intact = data.filter((m, i) => m[17] === (i & 0xff) && m[m.length - 1] === (i & 0xff)).length;
      expect(intact).toBe(frames);
      expect(end.received.filter((m) => m.length === 40)).toHaveLength(frames);
      expect(queuedBehind).toBeGreaterThan(0);
      expect(batches.filter((batch) => batch.some((length) => length >= 65_536))).toEqual([]);
    });
  },
);

describe.each(['client', 'server'] as const)('createWsFrameWriter (%s side): small messages', (side) => {
  it('writes each message byte-identical to ws.send, a fresh key per client frame', async () => {
    const pair = await openPair();
    const end = pair[side];
    const writer = createWsFrameWriter(end.ws);
    const lengths = [0, 1, 9, 17, 47, 48, 125, 126, 200, 4095];
    const keys = new Set<string>();
    for (const length of lengths) {
      const message = bytes(length, length);
      end.wire.length = 0;
      expect(writer.writeMessage(message)).toBe(true);
      expect(end.wire).toHaveLength(1);
      const frame = end.wire[0]!;
      const key = side === 'client' ? keyOf(frame) : undefined;
      if (key !== undefined) keys.add(key.toString('hex'));
      expect(frame).toEqual(wsFrame(message, key));
      // The message itself is left as it was (a client masks into the frame, not in place).
      expect(message).toEqual(bytes(length, length));
    }
    if (side === 'client') expect(keys.size).toBe(lengths.length);
    await waitForMessages(end, lengths.length);
    expect(end.received).toEqual(lengths.map((length) => bytes(length, length)));
  });

  it("keeps the order with ws's own frames and DATA, the tick's small messages in one socket write", async () => {
    const pair = await openPair();
    const end = pair[side];
    const writer = createWsFrameWriter(end.ws);
    const socket = (
      end.ws as unknown as {
        _socket: {
          writableCorked: number;
          _writev: unknown;
          _write: unknown;
        };
      }
    )._socket;
    const writes: number[] = [];
    const writev = socket._writev as (...args: unknown[]) => unknown;
    const write = socket._write as (...args: unknown[]) => unknown;
    socket._writev = function (this: unknown, chunks: unknown[], ...rest: unknown[]) {
      writes.push(chunks.length);
      return writev.call(this, chunks, ...rest);
    };
    socket._write = function (this: unknown, ...args: unknown[]) {
      writes.push(1);
      return write.call(this, ...args);
    };
    const done: string[] = [];
    expect(writer.writeMessage(bytes(9, 1), () => done.push('a'))).toBe(true);
    expect(socket.writableCorked).toBe(1);
    end.ws.send(bytes(30, 2), { binary: true });
    expect(writer.writeMessage(bytes(12, 3), () => done.push('c'))).toBe(true);
    expect(writes).toEqual([]);
    // DATA uncorks: the three messages before it go out in one write, the frame in one of its own.
    const payload = lendFrameRoom(Buffer.allocUnsafeSlow(FRAME_ROOM + 100)).fill(7);
    writer.writeData(bytes(17, 4), [payload], 100, () => done.push('data'));
    expect(socket.writableCorked).toBe(0);
    expect(writer.writeMessage(bytes(5, 5), () => done.push('e'))).toBe(true);
    end.ws.send('text');
    expect(writer.writeMessage(bytes(6, 6))).toBe(true);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(socket.writableCorked).toBe(0);
    await waitForMessages(end, 7);
    expect(end.received.map((m) => Buffer.from(m))).toEqual([
      bytes(9, 1),
      bytes(30, 2),
      bytes(12, 3),
      join(bytes(17, 4), [Buffer.alloc(100, 7)], 100),
      bytes(5, 5),
      Buffer.from('text'),
      bytes(6, 6),
    ]);
    // Three socket writes (ws writes some of its frames as a head and a payload, two chunks).
    expect(writes).toHaveLength(3);
    expect(writes[0]).toBeGreaterThanOrEqual(3);
    expect(writes[1]).toBe(1);
    expect(writes[2]).toBeGreaterThanOrEqual(3);
    expect(done.sort()).toEqual(['a', 'c', 'data', 'e']);
    // ws's sender was never bypassed mid-message: it still sends (and fragments) as before.
    end.ws.send(bytes(3, 8), { binary: true, fin: false });
    expect(writer.writeMessage(bytes(4, 9))).toBe(false);
    end.ws.send(bytes(3, 10), { binary: true, fin: true });
    expect(writer.writeMessage(bytes(4, 11))).toBe(true);
    await waitForMessages(end, 9);
    expect(end.received.slice(7)).toEqual([Buffer.concat([bytes(3, 8), bytes(3, 10)]), bytes(4, 11)]);
  });

  it('declines, writing nothing, a message too large for it or a WebSocket no longer open', async () => {
    const pair = await openPair();
    const end = pair[side];
    const writer = createWsFrameWriter(end.ws);
    end.wire.length = 0;
    expect(writer.writeMessage(bytes(SMALL_MESSAGE_MAX, 1))).toBe(false);
    expect(writer.writeMessage(bytes(SMALL_MESSAGE_MAX - 1, 1))).toBe(true);
    expect(end.wire).toHaveLength(1);
    end.ws.close();
    end.wire.length = 0;
    expect(writer.writeMessage(bytes(9, 2))).toBe(false);
    expect(end.wire).toEqual([]);
  });
});
