/**
 * Shared pieces of the `reliability-*` suites (docs/reliability.md): a whole node on loopback (`createNexus`
 * with a test CA), real backend clients, raw WebSocket backends that speak the wire protocol by hand,
 * recording end users, and a ClientHello builder for hostile sniffing input.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BackendClient,
  type BackendClientOptions,
  createBackendClient,
  resolvePortMappings,
} from '@nexus-proxy/backend-client';
import { decodeBackendMessage, encodeControlMessage, encodeDataFrame } from '@nexus-proxy/mux-protocol';
import { type ClientOptions, WebSocket } from 'ws';
import { mintBackendToken } from '../../src/auth.js';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
} from '../../src/certificates.js';
import type { NexusConfigInput } from '../../src/config.js';
import type { Logger } from '../../src/logger.js';
import type { AuthFailedEvent, BackendConnectedEvent, BackendDisconnectedEvent } from '../../src/hub.js';
import {
  createNexus,
  type Nexus,
  type RouteMissEvent,
  type SniffFailedEvent,
  type StreamCloseEvent,
} from '../../src/nexus.js';

/** JWT secret of every reliability node. */
export const SECRET = 'reliability-suite-secret-that-is-long-enough-0123456789';

/** A CA and the hub's certificate (for 127.0.0.1). */
export interface Pki {
  ca: CertificateAndKey;
  hub: CertificateAndKey;
}

export async function createPki(): Promise<Pki> {
  const ca = await createCertificateAuthority({ commonName: 'Reliability CA' });
  const hub = await issueCertificate(ca, { dnsNames: ['hub.test'], ipAddresses: ['127.0.0.1'] });
  return { ca, hub };
}

/** What a node reported. */
export interface NodeEvents {
  sniffFailed: SniffFailedEvent[];
  routeMiss: RouteMissEvent[];
  streamClose: StreamCloseEvent[];
  connected: BackendConnectedEvent[];
  disconnected: BackendDisconnectedEvent[];
  authFailed: AuthFailedEvent[];
}

/** A node on loopback. */
export interface TestNode {
  nexus: Nexus;
  hubPort: number;
  hubUrl: string;
  tlsPort: number;
  httpPort: number;
  events: NodeEvents;
  close(): Promise<void>;
}

/** Starts `createNexus` with a TLS and an HTTP listener on 127.0.0.1:0 and the hub on `hubPort` (0 = any). */
export async function startNode(
  pki: Pki,
  config: Partial<NexusConfigInput> = {},
  hubPort = 0,
  logger?: Logger,
): Promise<TestNode> {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-reliability-'));
  const certFile = join(dir, 'hub.crt');
  const keyFile = join(dir, 'hub.key');
  writeFileSync(certFile, pki.hub.certPem);
  writeFileSync(keyFile, pki.hub.keyPem);
  const nexus = createNexus(
    {
      backendListenAddress: `127.0.0.1:${hubPort}`,
      backendsJWTSecret: SECRET,
      hubTlsCertFile: certFile,
      hubTlsKeyFile: keyFile,
      listeners: [
        { port: 0, mode: 'tls', host: '127.0.0.1' },
        { port: 0, mode: 'http', host: '127.0.0.1' },
      ],
      ...config,
    },
    logger === undefined ? {} : { logger },
  );
  const events: NodeEvents = {
    sniffFailed: [],
    routeMiss: [],
    streamClose: [],
    connected: [],
    disconnected: [],
    authFailed: [],
  };
  nexus.on('sniff-failed', (e) => events.sniffFailed.push(e));
  nexus.on('route-miss', (e) => events.routeMiss.push(e));
  nexus.on('stream-close', (e) => events.streamClose.push(e));
  nexus.on('backend-connected', (e) => events.connected.push(e));
  nexus.on('backend-disconnected', (e) => events.disconnected.push(e));
  nexus.on('auth-failed', (e) => events.authFailed.push(e));
  const addresses = await nexus.listen();
  const port = (mode: 'tls' | 'http') => addresses.listeners.find((l) => l.mode === mode)?.address.port ?? -1;
  let closing: Promise<void> | undefined;
  return {
    nexus,
    hubPort: addresses.hub.port,
    hubUrl: `wss://127.0.0.1:${addresses.hub.port}/connect`,
    tlsPort: port('tls'),
    httpPort: port('http'),
    events,
    close() {
      closing ??= nexus.close({ graceMs: 0 }).then(() => rmSync(dir, { recursive: true, force: true }));
      return closing;
    },
  };
}

export const token = (hostnames: string[], weight?: number): Promise<string> =>
  mintBackendToken({ secret: SECRET, hostnames, ...(weight !== undefined ? { weight } : {}) });

/** A TCP service on 127.0.0.1:0. */
export interface TestService {
  port: number;
  server: Server;
  close(): Promise<void>;
}

export async function startService(onConnection: (socket: Socket) => void): Promise<TestService> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A service that answers each HTTP request (read up to the blank line) with `200` and a body naming
 * `label`, then closes; anything that is not HTTP is echoed back until the peer ends.
 */
export function startHttpService(label: string): Promise<TestService> {
  return startService((socket) => {
    let buf = '';
    socket.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      const body = `served-by ${label}\n`;
      socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    });
  });
}

/** A service recording what each connection sent, ended when the peer ends. */
export async function startRecordingService(): Promise<TestService & { received: Buffer[][] }> {
  const received: Buffer[][] = [];
  const service = await startService((socket) => {
    const chunks: Buffer[] = [];
    received.push(chunks);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => socket.end());
  });
  return Object.assign(service, { received });
}

/** Options of {@link attachClient}. */
export interface AttachOptions extends Partial<Omit<BackendClientOptions, 'token'>> {
  hostnames: string[];
  /** Local service port every relay port maps to. */
  service?: number;
  /** Relay ports to map. */
  relayPorts?: number[];
  weight?: number;
}

/** A backend client for `node` (not yet connected). */
export async function makeClient(pki: Pki, node: TestNode, o: AttachOptions): Promise<BackendClient> {
  const ports = o.relayPorts ?? [node.tlsPort, node.httpPort];
  const portMappings =
    o.portMappings ??
    (o.service !== undefined
      ? resolvePortMappings(Object.fromEntries(ports.map((p) => [p, `127.0.0.1:${o.service}`] as const)))
      : undefined);
  const client = createBackendClient({
    nodes: o.nodes ?? [node.hubUrl],
    token: await token(o.hostnames, o.weight),
    tls: { ca: pki.ca.certPem },
    reconnect: o.reconnect ?? { initialDelayMs: 50, maxDelayMs: 200, jitter: 0.25 },
    closeGraceMs: 0,
    ...(portMappings !== undefined ? { portMappings } : {}),
    ...(o.connectHandler !== undefined ? { connectHandler: o.connectHandler } : {}),
    ...(o.keepalive !== undefined ? { keepalive: o.keepalive } : {}),
    ...(o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: o.handshakeTimeoutMs } : {}),
    ...(o.logger !== undefined ? { logger: o.logger } : {}),
  });
  client.on('error', () => {});
  return client;
}

/** Connects a backend client and waits until the node registered a session serving `hostnames[0]`. */
export async function attachClient(pki: Pki, node: TestNode, o: AttachOptions): Promise<BackendClient> {
  const client = await makeClient(pki, node, o);
  const first = o.hostnames[0] ?? '';
  const registered = new Promise<void>((resolve) => {
    const on = (e: BackendConnectedEvent) => {
      if (!e.hostnames.includes(first)) return;
      node.nexus.off('backend-connected', on);
      resolve();
    };
    node.nexus.on('backend-connected', on);
  });
  client.connect();
  await registered;
  return client;
}

/** An end user's TCP connection that records what it receives and how it ended. */
export interface EndUser {
  socket: Socket;
  /** The local port (kept: a destroyed socket forgets it); the node reports it as `remotePort`. */
  localPort: number;
  received(): Buffer;
  /** Resolves at 'close'. */
  closed: Promise<{ fin: boolean; error: string | undefined; at: number }>;
}

export async function endUser(port: number, localAddress?: string): Promise<EndUser> {
  const socket = netConnect({
    host: '127.0.0.1',
    port,
    ...(localAddress !== undefined ? { localAddress } : {}),
  });
  const chunks: Buffer[] = [];
  let fin = false;
  let error: string | undefined;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('end', () => {
    fin = true;
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    error = err.code ?? err.message;
  });
  const closed = new Promise<{ fin: boolean; error: string | undefined; at: number }>((resolve) =>
    socket.once('close', () => resolve({ fin, error, at: Date.now() })),
  );
  await once(socket, 'connect');
  return { socket, localPort: socket.localPort ?? 0, received: () => Buffer.concat(chunks), closed };
}

/** One HTTP/1.1 request (`Connection: close`) through the node's HTTP port; the whole response as text. */
export async function httpGet(port: number, host: string): Promise<string> {
  const user = await endUser(port);
  user.socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  await user.closed;
  return user.received().toString('latin1');
}

/** Resolves once `cond()` holds (polling every 10 ms), or rejects after `timeoutMs`. */
export async function waitUntil(cond: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One line a {@link RecordingLogger} received. */
export interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** A pino-compatible logger that keeps every line (with its child bindings), for asserting log output. */
export function recordingLogger(
  lines: LogLine[] = [],
  bindings: Record<string, unknown> = {},
): Logger & {
  lines: LogLine[];
} {
  const at =
    (level: string) =>
    (a: unknown, b?: unknown): void => {
      const fields = typeof a === 'object' && a !== null ? (a as Record<string, unknown>) : {};
      const msg = typeof a === 'string' ? a : typeof b === 'string' ? b : '';
      lines.push({ level, msg, fields: { ...bindings, ...fields } });
    };
  return {
    lines,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => recordingLogger(lines, { ...bindings, ...more }),
  };
}

// ───────────────────────────── raw WebSocket backends ─────────────────────────────

/** How a WebSocket ended. */
export interface WsClosed {
  code: number;
  reason: string;
}

/** A backend speaking the wire protocol by hand (docs/protocol.md §1), for hostile-frame tests. */
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
export function openHubSocket(pki: Pki, hubPort: number, extra: ClientOptions = {}): WebSocket {
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
  pki: Pki,
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

// ───────────────────────────── ClientHello builder ─────────────────────────────

const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const u24 = (n: number) => [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];

/** One TLS extension. */
export interface Extension {
  type: number;
  data: Uint8Array;
}

/** server_name extension (RFC 6066 §3) with one host_name entry of raw bytes. */
export function sniExtension(name: Uint8Array | string): Extension {
  const bytes = typeof name === 'string' ? Buffer.from(name, 'utf8') : Buffer.from(name);
  const entry = Buffer.concat([Buffer.from([0, ...u16(bytes.length)]), bytes]);
  return { type: 0, data: Buffer.concat([Buffer.from(u16(entry.length)), entry]) };
}

/**
 * A ClientHello handshake message (type 1 · uint24 length · body) with the given extensions and
 * `cipherSuites` suites (at most 32 767: the list has a 16-bit length).
 */
export function clientHelloHandshake(extensions: Extension[], cipherSuites = 3): Buffer {
  const suites = Buffer.alloc(cipherSuites * 2);
  for (let i = 0; i < cipherSuites; i++)
    suites.writeUInt16BE([0x1301, 0x1302, 0xc02f][i] ?? 0x0a00 + i, i * 2);
  const exts = Buffer.concat(
    extensions.map((e) => Buffer.concat([Buffer.from([...u16(e.type), ...u16(e.data.length)]), e.data])),
  );
  const body = Buffer.concat([
    Buffer.from(u16(0x0303)),
    Buffer.alloc(32, 0xab), // random
    Buffer.from([32]),
    Buffer.alloc(32, 0xcd), // session id
    Buffer.from(u16(suites.length)),
    suites,
    Buffer.from([1, 0]), // compression: null
    Buffer.from(u16(exts.length)),
    exts,
  ]);
  return Buffer.concat([Buffer.from([1, ...u24(body.length)]), body]);
}

/** Wraps a handshake message into TLS records of at most `fragment` bytes each. */
export function toRecords(handshake: Buffer, fragment = 16_384): Buffer {
  const records: Buffer[] = [];
  for (let i = 0; i < handshake.length; i += fragment) {
    const part = handshake.subarray(i, Math.min(i + fragment, handshake.length));
    records.push(Buffer.concat([Buffer.from([22, 3, 1, ...u16(part.length)]), part]));
  }
  return Buffer.concat(records);
}

/** A complete ClientHello for `serverName` with `extra` extensions after the SNI. */
export function clientHello(
  serverName: string | Uint8Array | undefined,
  extra: Extension[] = [],
  cipherSuites?: number,
): Buffer {
  const exts = serverName === undefined ? extra : [sniExtension(serverName), ...extra];
  return toRecords(clientHelloHandshake(exts, cipherSuites));
}
