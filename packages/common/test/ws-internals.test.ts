/**
 * The frame writer reads private fields of `ws`. This test fails, naming the field, when a `ws` release
 * changes them: then read the new release's `lib/websocket.js` and `lib/sender.js`, update
 * src/ws-internals.ts and the writer, and move the `ws` pin (every package.json that depends on ws).
 */
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { type AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import {
  checkWsInternals,
  checkWsReceiverInternals,
  WS_INTERNALS_VERSION,
  WS_RECEIVER_GET_INFO,
  WS_SENDER_IDLE,
  type WsReceiver,
  wsInternals,
} from '../src/ws-internals.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function openPair(): Promise<{ client: WebSocket; server: WebSocket }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(wss, 'listening');
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  await once(client, 'open');
  const [server] = await accepted;
  closers.push(async () => {
    client.terminate();
    server.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  return { client, server };
}

describe('ws private fields read by the frame writer', () => {
  it(`come from the pinned ws ${WS_INTERNALS_VERSION}.x`, () => {
    const { version } = createRequire(import.meta.url)('ws/package.json') as { version: string };
    expect(
      version.startsWith(`${WS_INTERNALS_VERSION}.`),
      `ws ${version} is installed, but its private fields were read from ${WS_INTERNALS_VERSION}.x: check them and move the pin`,
    ).toBe(true);
  });

  it.each(['client', 'server'] as const)('have the expected shape on the %s side', async (side) => {
    const pair = await openPair();
    const ws = pair[side];
    const problem = checkWsInternals(ws);
    if (problem !== undefined) throw new Error(problem);
    const internals = wsInternals(ws);
    expect(internals._isServer, 'WebSocket._isServer').toBe(side === 'server');
    expect(internals._socket, 'WebSocket._socket').toBeInstanceOf(Socket);
    expect(internals._sender?._state, 'WebSocket._sender._state when idle').toBe(WS_SENDER_IDLE);
    expect(internals._sender?._firstFragment, 'WebSocket._sender._firstFragment between messages').toBe(true);
  });

  it('track a fragmented message and a Blob read, the states the writer must not write in', async () => {
    const { client } = await openPair();
    const sender = wsInternals(client)._sender!;
    client.send(Buffer.from('a'), { fin: false });
    expect(sender._firstFragment, 'WebSocket._sender._firstFragment inside a fragmented message').toBe(false);
    client.send(Buffer.from('b'), { fin: true });
    expect(sender._firstFragment, 'WebSocket._sender._firstFragment after the last fragment').toBe(true);
    client.send(new Blob([Buffer.from('c')]));
    expect(sender._state, 'WebSocket._sender._state while a Blob is read').not.toBe(WS_SENDER_IDLE);
  });

  it('name the field that does not match', () => {
    const fake = (fields: object) => fields as unknown as WebSocket;
    const socket = { write() {}, cork() {}, uncork() {} };
    expect(checkWsInternals(fake({}))).toMatch(/WebSocket\._socket is undefined/);
    expect(checkWsInternals(fake({ _socket: { write() {} } }))).toMatch(
      /WebSocket\._socket\.cork is undefined/,
    );
    expect(checkWsInternals(fake({ _socket: socket }))).toMatch(/WebSocket\._isServer is undefined/);
    expect(checkWsInternals(fake({ _socket: socket, _isServer: true, _sender: null }))).toMatch(
      /WebSocket\._sender is null/,
    );
    expect(checkWsInternals(fake({ _socket: socket, _isServer: true, _sender: { _state: 'idle' } }))).toMatch(
      /WebSocket\._sender\._state is idle, expected a number/,
    );
    expect(
      checkWsInternals(
        fake({ _socket: socket, _isServer: false, _sender: { _state: 0, _firstFragment: 1 } }),
      ),
    ).toMatch(/WebSocket\._sender\._firstFragment is 1, expected a boolean/);
  });

  it.each(['client', 'server'] as const)(
    "have ws's Receiver as the splitter reads it on the %s side (ws-data-frames.ts)",
    async (side) => {
      const pair = await openPair();
      const ws = pair[side];
      const problem = checkWsReceiverInternals(ws);
      if (problem !== undefined) throw new Error(problem);
      const receiver = wsInternals(ws)._receiver as WsReceiver;
      expect(receiver._maxPayload, 'WebSocket._receiver._maxPayload (the default limit)').toBe(
        100 * 1024 * 1024,
      );
      expect(receiver._state, 'WebSocket._receiver._state between frames').toBe(WS_RECEIVER_GET_INFO);
      expect(receiver._bufferedBytes, 'WebSocket._receiver._bufferedBytes between frames').toBe(0);
      expect(receiver._fragmented, 'WebSocket._receiver._fragmented outside a fragmented message').toBe(0);
      // ws feeds its Receiver through `_receiver.write` (socketOnData): a socket read reaches it.
      const other = pair[side === 'client' ? 'server' : 'client'];
      const write = receiver.write;
      const seen: number[] = [];
      receiver.write = (chunk: Buffer) => {
        seen.push(chunk.length);
        return write.call(receiver, chunk);
      };
      other.send(Buffer.alloc(10));
      await once(ws, 'message');
      expect(seen.length, 'socket reads passed to WebSocket._receiver.write').toBeGreaterThan(0);
      // In the middle of a fragmented message, and of a frame.
      other.send(Buffer.alloc(10), { fin: false });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(receiver._fragmented, 'WebSocket._receiver._fragmented inside a fragmented message').toBe(2);
    },
  );

  it('name the Receiver field that does not match', () => {
    const fake = (fields: object) => fields as unknown as WebSocket;
    const receiver = {
      write() {},
      _maxPayload: 0,
      _bufferedBytes: 0,
      _state: 0,
      _fragmented: 0,
      writableLength: 0,
    };
    expect(checkWsReceiverInternals(fake({ _isServer: true }))).toMatch(/WebSocket\._receiver is undefined/);
    expect(checkWsReceiverInternals(fake({ _isServer: true, _receiver: { ...receiver, write: 1 } }))).toMatch(
      /WebSocket\._receiver\.write is 1, expected a function/,
    );
    expect(
      checkWsReceiverInternals(fake({ _isServer: true, _receiver: { ...receiver, _state: 'x' } })),
    ).toMatch(/WebSocket\._receiver\._state is x, expected a number/);
    expect(checkWsReceiverInternals(fake({ _isServer: true, _receiver: receiver }))).toBeUndefined();
  });
});
