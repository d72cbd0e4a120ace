import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Duplex, Writable } from 'node:stream';
import { FRAME_ROOM, frameRoom } from '@nexus-proxy/common';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BURST_MIN_READ,
  FRAME_BUFFERS_MAX,
  FRAME_READ_SIZE,
  frameReadReturn,
  freeFrameBuffers,
  installedFrameBuffers,
  keepFrameRead,
  readInFrames,
} from '../src/frame-reads.js';

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

/** A listening server and a client connected to it; resolves with both ends (the accepted one paused). */
async function pair(): Promise<{ accepted: net.Socket; client: net.Socket }> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const acceptedP = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  sockets.push(client);
  const [accepted] = await acceptedP;
  sockets.push(accepted);
  accepted.on('error', () => {});
  client.on('error', () => {});
  return { accepted, client };
}

function pattern(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + seed + (i >> 12)) & 0xff;
  return out;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('readInFrames', () => {
  it('delivers every byte in order, large reads in frame-sized chunks with frame room in front', async () => {
    const { accepted, client } = await pair();
    expect(readInFrames(accepted)).toBe(true);
    const data = pattern(8 * 1024 * 1024 + 12_345, 3);
    const received: Buffer[] = [];
    const roomy: number[] = [];
    accepted.on('data', (chunk: Buffer) => {
      // Copied at once: a consumer that writes a chunk onward may not read it again.
      received.push(Buffer.from(chunk));
      if (frameRoom(chunk) === FRAME_ROOM) roomy.push(chunk.length);
    });
    accepted.resume();
    client.end(data);
    await once(accepted, 'end');
    const all = Buffer.concat(received);
    expect(all.length).toBe(data.length);
    expect(sha(all)).toBe(sha(data));
    expect(Math.max(...received.map((c) => c.length))).toBeLessThanOrEqual(FRAME_READ_SIZE);
    // A burst reads into buffers with room for the frame's headers.
    expect(roomy.length).toBeGreaterThan(0);
    // Reads larger than Node's own 64 KiB: 8 MiB sent at once keeps the kernel's receive queue full.
    expect(Math.max(...roomy)).toBeGreaterThan(BURST_MIN_READ * 2);
  });

  it('copies small reads out of the shared buffer: each chunk keeps its bytes after later reads', async () => {
    const { accepted, client } = await pair();
    expect(readInFrames(accepted)).toBe(true);
    const received: Buffer[] = [];
    accepted.on('data', (chunk: Buffer) => received.push(chunk));
    accepted.resume();
    const parts = [Buffer.from('first message'), Buffer.from('second message'), Buffer.from('third')];
    for (const part of parts) {
      client.write(part);
      // Each small write arrives (and is read) on its own before the next is sent.
      const before = received.length;
      while (received.length === before) await new Promise((r) => setImmediate(r));
    }
    client.end();
    await once(accepted, 'end');
    expect(Buffer.concat(received).toString()).toBe('first messagesecond messagethird');
    expect(received.every((c) => frameRoom(c) === 0)).toBe(true);
  });

  it('keeps backpressure: a slow consumer pauses the socket and still gets every byte', async () => {
    const { accepted, client } = await pair();
    expect(readInFrames(accepted)).toBe(true);
    const data = pattern(4 * 1024 * 1024, 9);
    const got: Buffer[] = [];
    const handle = (accepted as unknown as { _handle: { reading: boolean } })._handle;
    let stopped = 0;
    const slow = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, cb) {
        got.push(Buffer.from(chunk));
        setImmediate(() => {
          if (!handle.reading) stopped++;
          cb();
        });
      },
    });
    accepted.pipe(slow);
    client.end(data);
    await once(slow, 'finish');
    expect(sha(Buffer.concat(got))).toBe(sha(data));
    // The full consumer stopped the socket's reads (the kernel holds the rest), and they resumed.
    expect(stopped).toBeGreaterThan(0);
    expect(accepted.readableLength).toBe(0);
  });

  it('declines, changing nothing, for anything but a socket with a handle of its own, and once installed', async () => {
    const plain = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
    expect(readInFrames(plain as unknown as net.Socket)).toBe(false);
    const { accepted, client } = await pair();
    expect(readInFrames(accepted)).toBe(true);
    expect(readInFrames(accepted)).toBe(false);
    accepted.resume();
    client.end('still read');
    const chunks: Buffer[] = [];
    accepted.on('data', (c: Buffer) => chunks.push(c));
    await once(accepted, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('still read');
    const closed = new net.Socket();
    expect(readInFrames(closed)).toBe(false);
  });

  it('holds at most FRAME_BUFFERS_MAX buffers for next reads across sockets, and none once they closed', async () => {
    const count = FRAME_BUFFERS_MAX + 16;
    const pairs = await Promise.all(Array.from({ length: count }, () => pair()));
    const data = pattern(1024 * 1024, 5);
    let most = 0;
    let bytes = 0;
    const ends = pairs.map(({ accepted, client }) => {
      expect(readInFrames(accepted)).toBe(true);
      accepted.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        most = Math.max(most, installedFrameBuffers());
      });
      accepted.resume();
      client.end(data);
      return once(accepted, 'end');
    });
    await Promise.all(ends);
    expect(bytes).toBe(count * data.length);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(FRAME_BUFFERS_MAX);
    const closed = pairs.map(({ accepted }) => once(accepted, 'close'));
    for (const { accepted } of pairs) accepted.destroy();
    await Promise.all(closed);
    expect(installedFrameBuffers()).toBe(0);
  });

  it('holds no buffer for the next read while its consumer does not take what it reads', async () => {
    const { accepted, client } = await pair();
    expect(readInFrames(accepted)).toBe(true);
    client.write(pattern(4 * 1024 * 1024, 7));
    accepted.read(0); // reads until the readable side is full, and no further
    while (accepted.readableLength < accepted.readableHighWaterMark) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(installedFrameBuffers()).toBe(0);
    const closed = once(accepted, 'close');
    accepted.destroy();
    await closed;
  });

  it('gives every installed buffer back when sockets are destroyed mid-burst', async () => {
    const count = FRAME_BUFFERS_MAX + 16;
    const pairs = await Promise.all(Array.from({ length: count }, () => pair()));
    let most = 0;
    const closed = pairs.map(({ accepted, client }, i) => {
      expect(readInFrames(accepted)).toBe(true);
      let read = 0;
      accepted.on('data', (chunk: Buffer) => {
        most = Math.max(most, installedFrameBuffers());
        read += chunk.length;
        if (read < 2 * FRAME_READ_SIZE || accepted.destroyed) return;
        if (i % 2 === 0) accepted.destroy();
        else setImmediate(() => accepted.destroy());
      });
      accepted.resume();
      const piece = pattern(1024 * 1024, 8);
      const more = (): void => {
        while (!client.destroyed && client.write(piece));
      };
      client.on('drain', more);
      more();
      return once(accepted, 'close');
    });
    await Promise.all(closed);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(FRAME_BUFFERS_MAX);
    expect(installedFrameBuffers()).toBe(0);
  });

  /**
   * Reads a burst, handing each of its first `count` large chunks to `back` (with a copy taken as it
   * arrived); resolves those chunks, their copies, and whether everything arrived intact.
   */
  async function burst(
    count: number,
    back: (chunk: Buffer, index: number) => void,
  ): Promise<{ chunks: Buffer[]; copies: Buffer[]; intact: boolean }> {
    const { accepted, client } = await pair();
    expect(readInFrames(accepted)).toBe(true);
    const data = pattern(count * FRAME_READ_SIZE * 2, 11);
    const chunks: Buffer[] = [];
    const copies: Buffer[] = [];
    const all: Buffer[] = [];
    let total = 0;
    const done = new Promise<void>((resolve) => {
      accepted.on('data', (chunk: Buffer) => {
        total += chunk.length;
        all.push(Buffer.from(chunk));
        if (frameRoom(chunk) === FRAME_ROOM && chunks.length < count) {
          chunks.push(chunk);
          copies.push(Buffer.from(chunk));
          back(chunk, chunks.length - 1);
        }
        if (total === data.length) resolve();
      });
    });
    accepted.resume();
    client.end(data);
    await done;
    return { chunks, copies, intact: sha(Buffer.concat(all)) === sha(data) };
  }

  it('reads into the buffers its chunks came in once they are given back (frameReadReturn), never into one still held', async () => {
    const { chunks, copies, intact } = await burst(24, (chunk, i) => {
      // Every other chunk is "written" at once and given back; the others stay with their consumer.
      if (i % 2 === 0) frameReadReturn.give(chunk);
    });
    expect(intact).toBe(true);
    const memory = chunks.map((c) => c.buffer);
    // Reads went into memory given back before: fewer distinct buffers than chunks.
    expect(new Set(memory).size).toBeLessThan(chunks.length);
    for (let i = 1; i < chunks.length; i += 2) {
      // No later read went into the memory of a chunk its consumer still holds, which keeps its bytes.
      expect(memory.slice(i + 1).includes(memory[i]!)).toBe(false);
      expect(chunks[i]!.equals(copies[i]!)).toBe(true);
    }
  });

  it('takes a chunk back once at most, and never one of other memory or one kept (keepFrameRead)', async () => {
    const { chunks } = await burst(3, () => {});
    const start = freeFrameBuffers();
    frameReadReturn.give(chunks[0]!);
    frameReadReturn.give(chunks[0]!);
    expect(freeFrameBuffers()).toBe(start + 1);
    keepFrameRead(chunks[1]!);
    frameReadReturn.give(chunks[1]!);
    frameReadReturn.give(Buffer.alloc(FRAME_READ_SIZE));
    frameReadReturn.give(Buffer.from(chunks[2]!));
    expect(freeFrameBuffers()).toBe(start + 1);
  });
});
