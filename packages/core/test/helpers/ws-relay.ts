/**
 * A WebSocket relay between backend clients and a hub, for tests that must see or inject the messages of
 * one backend session: it terminates TLS with a certificate the clients trust (the harness's hub
 * certificate, issued for 127.0.0.1), dials the hub for each client that connects, and forwards every
 * message (text stays text, binary stays binary), ping and pong both ways unchanged. Each client
 * connection is one {@link RelayLink}, recording what passed in each direction; `injectToHub` and
 * `injectToBackend` put extra messages on that session's wire.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';

/** One message as it crossed the relay. */
export interface RelayedMessage {
  data: Buffer;
  isBinary: boolean;
}

/** One backend session through the relay: the client's WebSocket and the relay's own to the hub. */
export interface RelayLink {
  /** Messages from the backend client to the hub, in order. */
  readonly fromBackend: RelayedMessage[];
  /** Messages from the hub to the backend client, in order. */
  readonly fromHub: RelayedMessage[];
  /** Whether both WebSockets are open. */
  readonly open: boolean;
  /** Sends `data` to the hub as if the backend client had sent it. */
  injectToHub(data: Uint8Array): void;
  /** Sends `data` to the backend client as if the hub had sent it. */
  injectToBackend(data: Uint8Array): void;
}

export interface WsRelay {
  /** `wss://127.0.0.1:port/connect`, to give backend clients. */
  url: string;
  port: number;
  /** Every client connection so far, in order. */
  links: RelayLink[];
  close(): Promise<void>;
}

export interface WsRelayOptions {
  /** The hub's `wss://…/connect` URL. */
  hubUrl: string;
  /** Certificate and key the relay presents to backend clients. */
  certPem: string;
  keyPem: string;
  /** CA that signed the hub's certificate. */
  caPem: string;
}

/** A close code that may be sent in a close frame (1005 and 1006 only ever describe one). */
function sendable(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

export async function startWsRelay(options: WsRelayOptions): Promise<WsRelay> {
  const server: Server = createServer({ cert: options.certPem, key: options.keyPem });
  const wss = new WebSocketServer({ server, autoPong: false, perMessageDeflate: false });
  const links: RelayLink[] = [];
  const sockets = new Set<WebSocket>();

  wss.on('connection', (backend) => {
    const hub = new WebSocket(options.hubUrl, {
      ca: options.caPem,
      autoPong: false,
      perMessageDeflate: false,
    });
    sockets.add(backend);
    sockets.add(hub);
    const fromBackend: RelayedMessage[] = [];
    const fromHub: RelayedMessage[] = [];
    // What the client sends before the relay's own link to the hub is open waits here.
    const early: RelayedMessage[] = [];
    const copy = (data: Buffer | ArrayBuffer | Buffer[]): Buffer =>
      Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
    backend.on('message', (raw, isBinary) => {
      const message = { data: copy(raw), isBinary };
      fromBackend.push(message);
      if (hub.readyState === WebSocket.OPEN) hub.send(message.data, { binary: isBinary });
      else early.push(message);
    });
    hub.on('open', () => {
      for (const m of early.splice(0)) hub.send(m.data, { binary: m.isBinary });
    });
    hub.on('message', (raw, isBinary) => {
      const message = { data: copy(raw), isBinary };
      fromHub.push(message);
      if (backend.readyState === WebSocket.OPEN) backend.send(message.data, { binary: isBinary });
    });
    backend.on('ping', (d) => hub.readyState === WebSocket.OPEN && hub.ping(d));
    backend.on('pong', (d) => hub.readyState === WebSocket.OPEN && hub.pong(d));
    hub.on('ping', (d) => backend.readyState === WebSocket.OPEN && backend.ping(d));
    hub.on('pong', (d) => backend.readyState === WebSocket.OPEN && backend.pong(d));
    // One side gone: the other goes the same way (a close frame when there was one, else cut).
    const follow = (other: WebSocket) => (code: number, reason: Buffer) => {
      if (other.readyState === WebSocket.OPEN && sendable(code)) other.close(code, reason);
      else other.terminate();
    };
    backend.on('close', follow(hub));
    hub.on('close', follow(backend));
    backend.on('close', () => sockets.delete(backend));
    hub.on('close', () => sockets.delete(hub));
    backend.on('error', () => {});
    hub.on('error', () => {});
    links.push({
      fromBackend,
      fromHub,
      get open() {
        return backend.readyState === WebSocket.OPEN && hub.readyState === WebSocket.OPEN;
      },
      injectToHub: (data) => hub.send(data, { binary: true }),
      injectToBackend: (data) => backend.send(data, { binary: true }),
    });
  });

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `wss://127.0.0.1:${port}/connect`,
    port,
    links,
    async close() {
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
