import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';

/** A TCP connection to 127.0.0.1:port that records every byte it receives. */
export interface RecordingClient {
  socket: Socket;
  received: () => Buffer;
  closed: Promise<void>;
}

export async function connectRecording(port: number, allowHalfOpen = false): Promise<RecordingClient> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks), closed };
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

/** Resolve once `cond()` is true, polling every few ms (for state that has no event). */
export async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('waitFor timed out');
    await new Promise((r) => setTimeout(r, 5));
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
  const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
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
