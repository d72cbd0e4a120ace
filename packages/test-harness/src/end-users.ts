/**
 * End users: raw TCP connections that record what they receive and how they ended, one-shot HTTP
 * requests, TLS clients, Duplexes that split or record what a TLS client writes, and socket pairs.
 */
import { once } from 'node:events';
import { type AddressInfo, connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** How a raw connection ended. */
export interface RawClosed {
  /** A FIN was received before the close. */
  fin: boolean;
  /** The error code (ECONNRESET…), if the socket failed. */
  error: string | undefined;
}

/** A plain TCP end user that records every byte and how the connection ended. */
export interface RawClient {
  socket: Socket;
  /** The local port (kept: a destroyed socket forgets it); the node reports it as `remotePort`. */
  localPort: number;
  received(): Buffer;
  /** Resolves at the socket's `'close'`. */
  closed: Promise<RawClosed>;
  /** `Date.now()` at the socket's `'close'` (undefined while open). */
  readonly closedAt: number | undefined;
}

/** Connects to 127.0.0.1:`port` (from `localAddress` when given); resolves once connected. */
export async function rawConnect(
  port: number,
  options: { allowHalfOpen?: boolean; localAddress?: string } = {},
): Promise<RawClient> {
  const socket = netConnect({
    host: '127.0.0.1',
    port,
    allowHalfOpen: options.allowHalfOpen ?? false,
    ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
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
  let closedAt: number | undefined;
  const closed = new Promise<RawClosed>((resolve) =>
    socket.once('close', () => {
      closedAt = Date.now();
      resolve({ fin, error });
    }),
  );
  await once(socket, 'connect');
  return {
    socket,
    localPort: socket.localPort ?? 0,
    received: () => Buffer.concat(chunks),
    closed,
    get closedAt() {
      return closedAt;
    },
  };
}

/** One HTTP/1.1 exchange over a raw socket (`Connection: close`): the whole response as text. */
export async function httpGet(port: number, host: string, path = '/'): Promise<string> {
  const client = await rawConnect(port);
  client.socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  await client.closed;
  return client.received().toString('latin1');
}

/**
 * A Duplex over a TCP socket that sends every write in `pieceBytes` pieces, `gapMs` apart, with Nagle off:
 * a TLS client on top of it sends its ClientHello as many TCP segments.
 */
export class SplittingDuplex extends Duplex {
  constructor(
    readonly inner: Socket,
    readonly pieceBytes: number,
    readonly gapMs = 1,
  ) {
    super();
    inner.setNoDelay(true);
    inner.on('data', (c: Buffer) => {
      if (!this.push(c)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('close', () => this.destroy());
    inner.on('error', () => {});
  }
  override _read(): void {
    this.inner.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let offset = 0;
    const next = (): void => {
      if (offset >= chunk.length || this.inner.destroyed) {
        cb();
        return;
      }
      this.inner.write(chunk.subarray(offset, offset + this.pieceBytes));
      offset += this.pieceBytes;
      setTimeout(next, this.gapMs);
    };
    next();
  }
  override _final(cb: () => void): void {
    this.inner.end(cb);
  }
  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }
}

/** A TLS end user for `servername` trusting `ca`; resolves after the handshake. */
export async function tlsEndUser(port: number, servername: string, ca: string): Promise<TLSSocket> {
  const socket = tlsConnect({ host: '127.0.0.1', port, servername, ca });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

/**
 * A Duplex between a TLS client and a TCP socket that records the bytes in both directions, so a test can
 * compare what `tls.connect` wrote with what the listener saw.
 */
export class TapDuplex extends Duplex {
  readonly sent: Buffer[] = [];
  readonly received: Buffer[] = [];
  constructor(readonly inner: Socket) {
    super();
    inner.on('data', (c: Buffer) => {
      this.received.push(c);
      if (!this.push(c)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('close', () => this.destroy());
    inner.on('error', () => {});
  }
  override _read(): void {
    this.inner.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.sent.push(Buffer.from(chunk));
    this.inner.write(chunk, cb);
  }
  override _final(cb: () => void): void {
    this.inner.end(cb);
  }
  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }
}

/** Listen on 127.0.0.1:0. */
export async function listenLocal(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** A connected TCP pair on loopback (both ends allowHalfOpen). */
export async function socketPair(): Promise<{ client: Socket; server: Socket; close: () => Promise<void> }> {
  const srv = createServer({ allowHalfOpen: true });
  const port = await listenLocal(srv);
  const accepted = once(srv, 'connection') as Promise<[Socket]>;
  const client = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const [[server]] = await Promise.all([accepted, once(client, 'connect')]);
  return {
    client,
    server,
    close: async () => {
      client.destroy();
      server.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}
