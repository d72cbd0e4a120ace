/**
 * Backends below the backend client, for tests of the hub and the wire: a raw WebSocket that speaks the
 * wire protocol by hand (hostile frames), and a minimal backend on the mux engine alone.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { createWsTransport } from '@nexus-proxy/core';
import {
  type ConnectMessage,
  decodeBackendMessage,
  encodeControlMessage,
  encodeDataFrame,
  MuxSession,
  type MuxStream,
} from '@nexus-proxy/mux-protocol';
import { type ClientOptions, WebSocket } from 'ws';
import type { TestNode } from './node.js';
import type { TestPki } from './pki.js';

/** How a WebSocket ended. */
export interface WsClosed {
  code: number;
  reason: string;
}

/** A backend speaking the wire protocol by hand (docs/protocol.md), for hostile-frame tests. */
export interface RawBackend {
  ws: WebSocket;
  closed: Promise<WsClosed>;
  /** Control messages received from the hub, decoded. */
  controls: Array<Record<string, unknown>>;
  /** Answer every `connect` with one DATA frame `answer` and a `disconnect`. Default: on. */
  answer: boolean;
  send(bytes: Uint8Array | string): void;
}

/** Opens a WebSocket to the hub; resolves once open (the HTTP response is kept when refused). */
export function openHubSocket(pki: TestPki, hubPort: number, extra: ClientOptions = {}): WebSocket {
  const ws = new WebSocket(`wss://127.0.0.1:${hubPort}/connect`, {
    ca: pki.ca.certPem,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    ...extra,
  });
  ws.on('error', () => {});
  return ws;
}

export function wsClosed(ws: WebSocket): Promise<WsClosed> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve({ code: 1006, reason: '' });
    else ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

/**
 * Connects a raw backend and sends `tokenText` as its first (text) message. With `answer`, each `connect`
 * from the hub is answered with `answer:<client_id>` and a `disconnect`, so the session's health shows.
 */
export async function rawBackend(
  pki: TestPki,
  hubPort: number,
  tokenText: string | undefined,
): Promise<RawBackend> {
  const ws = openHubSocket(pki, hubPort);
  const closed = wsClosed(ws);
  await Promise.race([once(ws, 'open'), closed]);
  const backend: RawBackend = {
    ws,
    closed,
    controls: [],
    answer: true,
    send(bytes) {
      if (ws.readyState === WebSocket.OPEN) ws.send(bytes, { binary: typeof bytes !== 'string' });
    },
  };
  ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) return;
    const r = decodeBackendMessage(data);
    if (!r.ok || r.value.type !== 'control') return;
    const m = r.value.message;
    backend.controls.push(m as unknown as Record<string, unknown>);
    if (m.event === 'connect' && backend.answer) {
      backend.send(encodeDataFrame(m.client_id, Buffer.from(`answer:${m.client_id}\n`)));
      backend.send(encodeControlMessage({ event: 'disconnect', client_id: m.client_id, reason: 'normal' }));
    }
  });
  if (tokenText !== undefined && ws.readyState === WebSocket.OPEN) ws.send(tokenText);
  return backend;
}

/**
 * A backend written against the mux engine alone (no backend client): a `MuxSession` in the backend role
 * over a WebSocket to the node's hub, relaying every stream to a local TCP service and recording the
 * `connect` messages as they were on the wire.
 */
export interface MuxBackend {
  /** The `connect` messages received, in order. */
  connects: ConnectMessage[];
  ws: WebSocket;
  close(): Promise<void>;
}

export async function attachMuxBackend(
  pki: TestPki,
  node: TestNode,
  hostnames: string[],
  servicePort: number,
): Promise<MuxBackend> {
  const ws = new WebSocket(`wss://127.0.0.1:${node.hubPort}/connect`, { ca: pki.ca.certPem });
  ws.on('error', () => {});
  await once(ws, 'open');
  const connected = once(node.hub, 'backend-connected');
  ws.send(await node.token(hostnames));
  const transport = createWsTransport(ws);
  const mux = new MuxSession({
    role: 'backend',
    transport,
    pauseTransport: () => transport.pause(),
    resumeTransport: () => transport.resume(),
  });
  transport.onDrain(() => mux.transportDrained());
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) mux.receive(data);
  });
  ws.on('close', () => mux.close('transport_closed'));
  const connects: ConnectMessage[] = [];
  mux.on('stream', (stream: MuxStream, connect: ConnectMessage) => {
    connects.push(connect);
    const socket = netConnect(servicePort, '127.0.0.1');
    socket.on('error', () => stream.destroy());
    stream.on('error', () => socket.destroy());
    stream.pipe(socket);
    socket.pipe(stream);
  });
  await connected;
  return {
    connects,
    ws,
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      const closed = once(ws, 'close');
      ws.close();
      await closed;
    },
  };
}
