/**
 * The backend client's local SOCKS5 listener (`socks5ListenAddr`, docs/backend-client.md "Outbound
 * connections"): each CONNECT becomes an `outbound_connect` on the session of the backend's first node,
 * and once the node answers `outbound_result`, a SOCKS5 reply and a relay over that stream. Concurrent
 * connections and handshakes are bounded; a handshake has 10 s, the node's answer 15 s (the reference's
 * deadlines).
 */
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '@nexus-proxy/common';
import { MuxProtocolError, type MuxSession } from '@nexus-proxy/mux-protocol';
import { InvalidOptionsError, Socks5Error } from './errors.js';
import {
  endSocket,
  Socks5Reply,
  socks5Handshake,
  socks5Reply,
  socks5TargetAddr,
} from './socks5-handshake.js';
import { StreamRelay } from './stream-relay.js';

/** The SOCKS5 handshake must be done within: 10 000 ms (the reference's). */
export const SOCKS5_HANDSHAKE_TIMEOUT_MS = 10_000;
/** The node must answer `outbound_connect` within: 15 000 ms (the reference's). */
export const SOCKS5_RESULT_TIMEOUT_MS = 15_000;
/** Default most SOCKS5 connections at once (handshaking, waiting or relaying): 1 024. */
export const DEFAULT_SOCKS5_MAX_CONNECTIONS = 1_024;
/** Default most SOCKS5 connections in their handshake at once: 128. */
export const DEFAULT_SOCKS5_MAX_HANDSHAKES = 128;
/** Delay between attempts to bind an address in use (another process, or a client being replaced), ms. */
const REBIND_DELAY_MS = 1_000;

/** Where the listener binds. */
export interface Socks5ListenAddress {
  host: string;
  port: number;
}

/** What a valid `socks5ListenAddr` looks like (the detail of its validation errors). */
export const SOCKS5_LISTEN_ADDR_FORMAT = 'must be "host:port", e.g. "127.0.0.1:1080"';

/**
 * Reads `host:port` or `[v6]:port` (`socks5ListenAddr`; port `0` picks one); `undefined` when it is not
 * one. An empty host means all interfaces, which the docs advise against.
 */
export function splitSocks5ListenAddr(value: unknown): Socks5ListenAddress | undefined {
  const m = typeof value === 'string' ? /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value) : null;
  const port = m === null ? Number.NaN : Number(m[3]);
  return m === null || !(port >= 0 && port <= 65_535) ? undefined : { host: m[1] ?? m[2] ?? '', port };
}

/** {@link splitSocks5ListenAddr}, or `InvalidOptionsError` naming `at`. */
export function parseSocks5ListenAddr(value: unknown, at: string): Socks5ListenAddress {
  const address = splitSocks5ListenAddr(value);
  if (address === undefined) {
    throw new InvalidOptionsError(at, `${SOCKS5_LISTEN_ADDR_FORMAT} (got ${JSON.stringify(value)})`);
  }
  return address;
}

/** `host:port` again (`[v6]:port`), as {@link parseSocks5ListenAddr} reads it. */
export function formatSocks5ListenAddr(address: Socks5ListenAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** How a SOCKS5 request ended (for stats and logs). */
export interface Socks5Stats {
  /** Connections open now (any phase). */
  connections: number;
  /** Connections relaying now. */
  relaying: number;
  /** Requests the node accepted. */
  accepted: number;
  /** Requests that got an error reply, by RFC 1928 reply code. */
  failed: Record<number, number>;
  /** Connections dropped before a request: broken or slow handshakes, over the limits. */
  dropped: number;
}

/** Options of {@link Socks5Listener}. */
export interface Socks5ListenerOptions {
  listen: Socks5ListenAddress;
  /** The session outbound connections go through (the first node's), while it is up. */
  session(): MuxSession | undefined;
  logger: Logger;
  handshakeTimeoutMs?: number;
  resultTimeoutMs?: number;
  maxConnections?: number;
  maxHandshakes?: number;
}

/**
 * The reply for a failed request. The node's refusals by policy (its allow-lists, the claim, the address
 * policy: reasons with "not allowed", and "disabled") get 0x02 "connection not allowed by ruleset"; its
 * other refusals (dial failed, limit exceeded…) 0x05 "connection refused"; no node, no answer in time,
 * or anything else 0x01 "general failure".
 */
export function socks5ReplyFor(err: unknown): number {
  if (!MuxProtocolError.is(err) || err.code !== 'MUX_ERR_OUTBOUND_REFUSED') return Socks5Reply.GeneralFailure;
  return /not allowed|disabled/.test(err.message) ? Socks5Reply.NotAllowed : Socks5Reply.ConnectionRefused;
}

/** A bound SOCKS5 listener; `close()` stops it and ends its connections. */
export class Socks5Listener {
  readonly #options: Socks5ListenerOptions;
  readonly #log: Logger;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #stats: Socks5Stats = { connections: 0, relaying: 0, accepted: 0, failed: {}, dropped: 0 };
  #handshakes = 0;
  #address: AddressInfo | undefined;
  #closed = false;
  #rebind: NodeJS.Timeout | undefined;

  constructor(options: Socks5ListenerOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: 'socks5' });
    this.#server = createServer({ noDelay: true }, (socket) => this.#accept(socket));
    this.#server.maxConnections = options.maxConnections ?? DEFAULT_SOCKS5_MAX_CONNECTIONS;
  }

  /** The bound address, once listening. */
  get address(): AddressInfo | undefined {
    return this.#address;
  }

  /** Counters. */
  stats(): Socks5Stats {
    return { ...this.#stats, failed: { ...this.#stats.failed } };
  }

  /**
   * Binds, retrying every second while the address is in use (a client being replaced still holds it);
   * resolves once bound. Other errors are logged and end the attempts.
   */
  start(): Promise<AddressInfo | undefined> {
    const { host, port } = this.#options.listen;
    return new Promise((resolve) => {
      const attempt = () => {
        if (this.#closed) {
          resolve(undefined);
          return;
        }
        const onError = (err: NodeJS.ErrnoException) => {
          this.#server.off('listening', onListening);
          if (err.code === 'EADDRINUSE' && !this.#closed) {
            this.#log.warn({ host, port }, 'SOCKS5 address in use: retrying');
            this.#rebind = setTimeout(attempt, REBIND_DELAY_MS);
            return;
          }
          this.#log.error({ host, port, err: err.message }, 'cannot listen for SOCKS5');
          resolve(undefined);
        };
        const onListening = () => {
          this.#server.off('error', onError);
          this.#address = this.#server.address() as AddressInfo;
          this.#log.info({ address: `${this.#address.address}:${this.#address.port}` }, 'SOCKS5 listening');
          resolve(this.#address);
        };
        this.#server.once('error', onError);
        this.#server.once('listening', onListening);
        this.#server.listen(port, host === '' ? undefined : host);
      };
      attempt();
    });
  }

  /** Stops listening and ends every SOCKS5 connection at once. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#rebind);
    for (const socket of this.#sockets) socket.destroy();
    if (this.#server.listening) {
      this.#server.close();
      await once(this.#server, 'close');
    }
  }

  #accept(socket: Socket): void {
    socket.on('error', () => {});
    const maxHandshakes = this.#options.maxHandshakes ?? DEFAULT_SOCKS5_MAX_HANDSHAKES;
    if (this.#closed || this.#handshakes >= maxHandshakes) {
      this.#stats.dropped++;
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    this.#stats.connections++;
    socket.once('close', () => {
      this.#sockets.delete(socket);
      this.#stats.connections--;
    });
    this.#handshakes++;
    socks5Handshake(socket, this.#options.handshakeTimeoutMs ?? SOCKS5_HANDSHAKE_TIMEOUT_MS).then(
      (request) => {
        this.#handshakes--;
        void this.#connect(socket, socks5TargetAddr(request));
      },
      (err: Socks5Error) => {
        this.#handshakes--;
        this.#stats.dropped++;
        this.#log.debug({ err: err.message }, 'SOCKS5 handshake failed');
      },
    );
  }

  async #connect(socket: Socket, target: string): Promise<void> {
    const session = this.#options.session();
    if (session === undefined) {
      this.#fail(socket, target, new Socks5Error('not connected to the node'));
      return;
    }
    const gone = new AbortController();
    const onClose = () => gone.abort();
    socket.once('close', onClose);
    let stream: Awaited<ReturnType<MuxSession['openOutbound']>>;
    try {
      stream = await session.openOutbound(target, {
        timeoutMs: this.#options.resultTimeoutMs ?? SOCKS5_RESULT_TIMEOUT_MS,
        signal: gone.signal,
      });
    } catch (err) {
      socket.off('close', onClose);
      if (!socket.destroyed) this.#fail(socket, target, err);
      return;
    }
    socket.off('close', onClose);
    if (socket.destroyed) {
      stream.destroy();
      return;
    }
    this.#stats.accepted++;
    this.#stats.relaying++;
    stream.once('close', () => this.#stats.relaying--);
    this.#log.debug({ target, id: stream.id }, 'SOCKS5 connection open');
    // The reply goes before anything the stream delivers (same socket, written in order).
    socket.write(socks5Reply(Socks5Reply.Succeeded));
    new StreamRelay(stream, socket);
  }

  #fail(socket: Socket, target: string, err: unknown): void {
    const reply = socks5ReplyFor(err);
    this.#stats.failed[reply] = (this.#stats.failed[reply] ?? 0) + 1;
    this.#log.info(
      { target, reply, err: err instanceof Error ? err.message : String(err) },
      'SOCKS5 request failed',
    );
    endSocket(socket, socks5Reply(reply));
  }
}
