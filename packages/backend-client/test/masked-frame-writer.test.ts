import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { joinDataParts } from '@nexus-proxy/mux-protocol';
import { createMaskedFrameWriter } from '../src/masked-frame-writer.js';

interface Pair {
  client: WebSocket;
  received: Buffer[];
  /** Raw bytes the client wrote to its socket. */
  wire: Buffer[];
  close(): Promise<void>;
}

const opened: Pair[] = [];

async function openPair(): Promise<Pair> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(server, 'listening');
  const received: Buffer[] = [];
  server.on('connection', (ws) => ws.on('message', (data) => received.push(data as Buffer)));
  const { port } = server.address() as AddressInfo;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
  await once(client, 'open');
  const socket = (client as unknown as { _socket: { write: (...args: unknown[]) => boolean } })._socket;
  const wire: Buffer[] = [];
  const write = socket.write.bind(socket);
  socket.write = (chunk: unknown, ...rest: unknown[]) => {
    wire.push(Buffer.from(chunk as Uint8Array));
    return write(chunk, ...rest);
  };
  const pair: Pair = {
    client,
    received,
    wire,
    async close() {
      client.terminate();
      for (const ws of server.clients) ws.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  opened.push(pair);
  return pair;
}

afterEach(async () => {
  for (const pair of opened.splice(0)) await pair.close();
});

async function waitForMessages(pair: Pair, count: number): Promise<void> {
  const started = Date.now();
  while (pair.received.length < count) {
    if (Date.now() - started > 5_000) throw new Error(`got ${pair.received.length} of ${count} messages`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function bytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

describe('createMaskedFrameWriter', () => {
  it('delivers header and parts of any length as one message, in order with ws.send', async () => {
    const pair = await openPair();
    const writer = createMaskedFrameWriter(pair.client);
    expect(writer).toBeDefined();
    const header = bytes(17, 1);
    const cases: Buffer[][] = [
      [bytes(32_768, 2)],
      [bytes(1, 3), bytes(5, 4), bytes(47, 5), bytes(48, 6), bytes(1000, 7), bytes(3, 8)],
      [bytes(16_383, 9), bytes(16_385, 10)],
      [],
      [bytes(90, 11)],
    ];
    const expected: Buffer[] = [];
    let written = 0;
    for (const parts of cases) {
      const length = parts.reduce((n, p) => n + p.length, 0);
      expect(writer!.writeData(header, parts, length, () => written++)).toBe(true);
      expected.push(joinDataParts(header, parts, length));
      const between = bytes(200, 12);
      pair.client.send(between, { binary: true });
      expected.push(between);
    }
    await waitForMessages(pair, expected.length);
    expect(pair.received).toEqual(expected);
    expect(written).toBe(cases.length);
  });

  it('masks every frame with its own non-zero key (RFC 6455 §5.3)', async () => {
    const pair = await openPair();
    const writer = createMaskedFrameWriter(pair.client)!;
    const header = Buffer.alloc(17);
    const payload = Buffer.alloc(1000);
    const keys = new Set<string>();
    for (let i = 0; i < 20; i++) {
      pair.wire.length = 0;
      writer.writeData(header, [payload], payload.length, () => {});
      const frame = Buffer.concat(pair.wire);
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
    await waitForMessages(pair, 20);
  });

  it('writes a short message with a 7-bit length', async () => {
    const pair = await openPair();
    const writer = createMaskedFrameWriter(pair.client)!;
    pair.wire.length = 0;
    writer.writeData(bytes(17, 1), [bytes(10, 2)], 10, () => {});
    const frame = Buffer.concat(pair.wire);
    expect(frame[1]).toBe(0x80 | 27);
    expect(frame.length).toBe(2 + 4 + 27);
    await waitForMessages(pair, 1);
    expect(pair.received[0]).toEqual(joinDataParts(bytes(17, 1), [bytes(10, 2)], 10));
  });

  it('declines, writing nothing, once the WebSocket is no longer open', async () => {
    const pair = await openPair();
    const writer = createMaskedFrameWriter(pair.client)!;
    pair.client.close();
    pair.wire.length = 0;
    expect(writer.writeData(bytes(17, 1), [bytes(10, 2)], 10, () => {})).toBe(false);
    expect(pair.wire).toEqual([]);
  });

  it('corks for one tick: messages of a tick leave in one socket write', async () => {
    const pair = await openPair();
    const writer = createMaskedFrameWriter(pair.client)!;
    const socket = (pair.client as unknown as { _socket: { writableCorked: number } })._socket;
    writer.corkForTick();
    writer.corkForTick();
    expect(socket.writableCorked).toBe(1);
    writer.writeData(bytes(17, 1), [bytes(100, 2)], 100, () => {});
    pair.client.send(bytes(10, 3), { binary: true });
    await new Promise((resolve) => process.nextTick(resolve));
    expect(socket.writableCorked).toBe(0);
    await waitForMessages(pair, 2);
  });
});
