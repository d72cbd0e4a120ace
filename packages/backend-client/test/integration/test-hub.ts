/**
 * A minimal hub for tests: TLS WebSocket server on loopback that speaks the backend-session wire format
 * byte by byte (docs/protocol.md §1), so tests assert what the client puts on the wire without trusting the
 * client's own multiplexer.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MuxSession } from '@nexus-proxy/mux-protocol';
import { type WebSocket, WebSocketServer } from 'ws';

/** A self-signed certificate for `localhost` / `127.0.0.1`, made with openssl. */
export function makeCertificate(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-bc-test-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return {
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export type ControlJson = {
  event: string;
  client_id: string;
  reason?: string;
  credits?: number;
  [k: string]: unknown;
};

function idToBytes(id: string): Buffer {
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

function idFromBytes(bytes: Buffer): string {
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** What the hub saw of one stream. */
export class HubStream {
  readonly id: string;
  readonly chunks: Buffer[] = [];
  /** Every control message for this stream, in arrival order (data frames are in `chunks`). */
  readonly controls: ControlJson[] = [];
  /** Order of arrival, `'data'` or the control event name. */
  readonly timeline: string[] = [];
  readonly #conn: HubConnection;
  #disconnected: Promise<ControlJson>;
  #resolveDisconnect!: (m: ControlJson) => void;

  constructor(id: string, conn: HubConnection) {
    this.id = id;
    this.#conn = conn;
    this.#disconnected = new Promise((resolve) => {
      this.#resolveDisconnect = resolve;
    });
  }

  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Resolves with the backend's `disconnect` message. */
  disconnected(): Promise<ControlJson> {
    return this.#disconnected;
  }

  /** Resolves once `n` bytes arrived. */
  async waitBytes(n: number): Promise<Buffer> {
    while (this.data.length < n) await once(this.#conn, `data:${this.id}`);
    return this.data;
  }

  write(payload: Buffer | string): void {
    this.#conn.sendData(this.id, Buffer.from(payload));
  }

  disconnect(reason?: string): void {
    this.#conn.sendControl({ event: 'disconnect', client_id: this.id, ...(reason ? { reason } : {}) });
  }

  /** @internal */
  onData(payload: Buffer): void {
    this.chunks.push(payload);
    this.timeline.push('data');
  }

  /** @internal */
  onControl(message: ControlJson): void {
    this.controls.push(message);
    this.timeline.push(message.event);
    if (message.event === 'disconnect') this.#resolveDisconnect(message);
  }
}

/** One backend session as the hub sees it. */
export class HubConnection extends EventEmitter {
  readonly ws: WebSocket;
  readonly token: Promise<{ text: string; binary: boolean }>;
  readonly streams = new Map<string, HubStream>();
  /** Control messages for ids the hub never opened. */
  readonly strayControls: ControlJson[] = [];
  /** Answer `ping_client` with `pong_client`. */
  answerPings = true;
  closed: Promise<void>;

  constructor(ws: WebSocket) {
    super();
    this.ws = ws;
    this.closed = once(ws, 'close').then(() => undefined);
    let first = true;
    this.token = new Promise((resolve) => {
      ws.on('message', (data: Buffer, isBinary) => {
        if (first) {
          first = false;
          resolve({ text: data.toString('utf8'), binary: isBinary });
          return;
        }
        this.#onMessage(data);
      });
    });
  }

  openStream(
    init: { connPort?: number; hostname?: string; clientIp?: string; isTls?: boolean; credits?: number } = {},
  ): HubStream {
    const id = randomUUID();
    const stream = new HubStream(id, this);
    this.streams.set(id, stream);
    this.sendControl({
      event: 'connect',
      client_id: id,
      conn_port: init.connPort ?? 443,
      client_ip: init.clientIp ?? '203.0.113.7:51234',
      hostname: init.hostname ?? 'app.example.com',
      ...(init.isTls === false ? {} : { is_tls: true }),
      ...(init.credits !== undefined ? { credits: init.credits } : {}),
    });
    return stream;
  }

  sendData(id: string, payload: Buffer): void {
    this.ws.send(Buffer.concat([Buffer.from([0x01]), idToBytes(id), payload]), { binary: true });
  }

  sendControl(message: ControlJson): void {
    this.ws.send(Buffer.concat([Buffer.from([0x02]), Buffer.from(JSON.stringify(message))]), {
      binary: true,
    });
  }

  #onMessage(data: Buffer): void {
    if (data[0] === 0x01) {
      const id = idFromBytes(data.subarray(1, 17));
      this.streams.get(id)?.onData(Buffer.from(data.subarray(17)));
      this.emit(`data:${id}`);
    } else if (data[0] === 0x02) {
      const message = JSON.parse(data.subarray(1).toString('utf8')) as ControlJson;
      const stream = this.streams.get(message.client_id);
      if (stream === undefined) this.strayControls.push(message);
      else stream.onControl(message);
      if (message.event === 'ping_client' && this.answerPings && stream !== undefined) {
        this.sendControl({ event: 'pong_client', client_id: message.client_id });
      }
      this.emit('control', message);
    }
  }
}

/** TLS WebSocket server on 127.0.0.1:0 with path `/connect`. */
export class TestHub extends EventEmitter {
  readonly connections: HubConnection[] = [];
  readonly server: https.Server;
  readonly wss: WebSocketServer;
  readonly ca: string;
  #url = '';

  private constructor(cert: { cert: string; key: string }, options: { autoPong: boolean }) {
    super();
    this.ca = cert.cert;
    this.server = https.createServer({ cert: cert.cert, key: cert.key });
    this.wss = new WebSocketServer({
      server: this.server,
      path: '/connect',
      perMessageDeflate: false,
      autoPong: options.autoPong,
    });
    this.wss.on('connection', (ws, req) => {
      const conn = new HubConnection(ws);
      conn.once('close', () => {});
      this.connections.push(conn);
      this.emit('connection', conn, req);
    });
  }

  static async start(
    cert: { cert: string; key: string },
    options: { autoPong?: boolean; port?: number } = {},
  ): Promise<TestHub> {
    const hub = new TestHub(cert, { autoPong: options.autoPong ?? true });
    hub.server.listen(options.port ?? 0, '127.0.0.1');
    await once(hub.server, 'listening');
    hub.#url = `wss://127.0.0.1:${(hub.server.address() as AddressInfo).port}/connect`;
    return hub;
  }

  get url(): string {
    return this.#url;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The next connection (or the n-th, 0-based, if it already exists). */
  async connection(index = this.connections.length): Promise<HubConnection> {
    while (this.connections.length <= index) await once(this, 'connection');
    return this.connections[index]!;
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * A hub built on the real multiplexer (`MuxSession` role `hub`): each backend connection gets a session
 * once its token arrived. Used to run the client against the engine with credit flow control on.
 */
export class MuxHub {
  readonly hub: TestHub;
  readonly sessions: MuxSession[] = [];
  readonly tokens: string[] = [];

  private constructor(hub: TestHub) {
    this.hub = hub;
  }

  static async start(cert: { cert: string; key: string }): Promise<MuxHub> {
    const testHub = await TestHub.start(cert);
    const muxHub = new MuxHub(testHub);
    testHub.wss.removeAllListeners('connection');
    testHub.wss.on('connection', (ws) => {
      let session: MuxSession | undefined;
      ws.on('message', (data: Buffer, isBinary) => {
        if (session === undefined) {
          muxHub.tokens.push(data.toString('utf8'));
          session = new MuxSession({
            role: 'hub',
            transport: {
              send: (message) => ws.send(message, { binary: true }, () => session?.transportDrained()),
              get bufferedAmount() {
                return ws.bufferedAmount;
              },
            },
          });
          ws.once('close', () => session?.close('session_ended'));
          muxHub.sessions.push(session);
          testHub.emit('session', session);
          return;
        }
        if (isBinary) session.receive(data);
      });
    });
    return muxHub;
  }

  get url(): string {
    return this.hub.url;
  }

  async session(index = this.sessions.length): Promise<MuxSession> {
    while (this.sessions.length <= index) await once(this.hub, 'session');
    return this.sessions[index]!;
  }

  close(): Promise<void> {
    return this.hub.close();
  }
}
