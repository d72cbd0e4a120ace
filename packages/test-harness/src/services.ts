/** Local services on 127.0.0.1:0 that stand in for what a backend exposes (TCP, TLS, HTTP-ish). */
import { once } from 'node:events';
import {
  type AddressInfo,
  createServer as createNetServer,
  connect as netConnect,
  type Server,
  type Socket,
} from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { CertificateAndKey } from '@nexus-proxy/core';
import { HashingReader, pump, RandomSource } from './bytes.js';

/** A local TCP or TLS service on 127.0.0.1:0 that tracks its sockets. */
export interface TestService {
  port: number;
  server: Server;
  /** Sockets accepted so far (open or not). */
  accepted: Socket[];
  close(): Promise<void>;
}

/**
 * Starts a service. `tls` makes it terminate TLS with that certificate (the end user's TLS session ends
 * here, never at the node). Sockets are created with `allowHalfOpen: true`.
 */
export async function startService(
  onConnection: (socket: Socket) => void,
  options: { tls?: CertificateAndKey } = {},
): Promise<TestService> {
  const accepted: Socket[] = [];
  const track = (socket: Socket) => {
    accepted.push(socket);
    socket.on('error', () => {});
    onConnection(socket);
  };
  const server: Server =
    options.tls !== undefined
      ? createTlsServer({ cert: options.tls.certPem, key: options.tls.keyPem, allowHalfOpen: true }, track)
      : createNetServer({ allowHalfOpen: true }, track);
  // Raw TCP sockets too: a TLS server reports a socket only after its handshake.
  const raw = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    raw.add(socket);
    socket.once('close', () => raw.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    server,
    accepted,
    async close() {
      for (const s of accepted) s.destroy();
      for (const s of raw) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Reads the HTTP request head from `socket` (paused afterwards), then calls `respond` with it and the rest. */
export function onHttpRequest(socket: Socket, respond: (head: string, rest: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end === -1) return;
    socket.off('data', onData);
    socket.pause();
    respond(buf.subarray(0, end + 4).toString('latin1'), buf.subarray(end + 4));
  };
  socket.on('data', onData);
}

/**
 * A service that answers each HTTP request (read up to the blank line) with `200` and a body naming
 * `label`, then closes; anything that is not HTTP gets nothing until the peer ends.
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

/** An HTTP-ish connection handler: answers `GET /<n>` with n bytes of `x` after the request head, then ends. */
export function echoSizeService(socket: Socket): void {
  let head = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    head += chunk;
    if (!head.includes('\r\n\r\n')) return;
    const size = Number(/^GET \/(\d+)/.exec(head)?.[1] ?? 0);
    socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\nconnection: close\r\n\r\n${'x'.repeat(size)}`);
    head = '';
  });
}

/** What {@link startExchangeService} answered and heard on its first connection. */
export interface ExchangeService extends TestService {
  /** SHA-256 of what the service sent (once a connection came). */
  sentDigest(): string;
  /** SHA-256 of what the service received: the prelude and `bytes` more. */
  receivedDigest: Promise<string>;
}

/**
 * A service that sends `bytes` random bytes to the first connection while reading the end user's
 * `preludeLength` + `bytes` bytes, then ends: a transfer both ways at once, checked by digests.
 */
export async function startExchangeService(bytes: number, preludeLength: number): Promise<ExchangeService> {
  let source: RandomSource | undefined;
  let received: (digest: string) => void = () => {};
  const receivedDigest = new Promise<string>((resolve) => {
    received = resolve;
  });
  const service = await startService((socket) => {
    const reader = new HashingReader(socket);
    source = new RandomSource(bytes);
    void Promise.all([pump(source, socket), reader.untilBytes(preludeLength + bytes)]).then(
      ([, digest]) => {
        received(digest);
        socket.end();
      },
      () => {},
    );
  });
  const sentDigest = () => {
    if (source === undefined) throw new Error('the exchange service has had no connection');
    return source.digest();
  };
  return { ...service, sentDigest, receivedDigest };
}

/**
 * An end user on 127.0.0.1:`port` that sends `prelude` and `bytes` random bytes while reading until the
 * service ends: the digests of what it sent and of what it received.
 */
export async function exchangeThrough(
  port: number,
  prelude: Buffer,
  bytes: number,
): Promise<{ sent: string; received: string }> {
  const socket = netConnect({ host: '127.0.0.1', port });
  try {
    await once(socket, 'connect');
    const reader = new HashingReader(socket);
    const source = new RandomSource(bytes, { prefix: prelude });
    const [, received] = await Promise.all([pump(source, socket), reader.ended]);
    return { sent: source.digest(), received };
  } finally {
    socket.destroy();
  }
}
