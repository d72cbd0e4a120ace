/**
 * A public relay port (docs/protocol.md §4): accepts end-user TCP connections, sniffs the SNI or Host without
 * answering, and hands each routed socket to `onRouted`. Every connection that is not routed is destroyed
 * without a byte written, and its close reason is logged and reported.
 */
import { setMaxListeners } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { addressGroup } from './address-group.js';
import { readInFrames } from './frame-reads.js';
import { listenServer } from './listen.js';
import { type Logger, noopLogger } from './logger.js';
import {
  type RelayMode,
  SniffBudget,
  type SniffCloseReason,
  type SniffedConnection,
  type SniffLimits,
  sniffConnection,
} from './sniff-connection.js';

/** Why the listener closed a connection (sniff failures, plus the routing outcomes). */
export type RelayCloseReason = SniffCloseReason | 'no-route' | 'ip-limit' | (string & {});

/** Reported once for every connection the listener closes itself (before or instead of relaying). */
export interface RelayCloseEvent {
  /** Why the connection was closed. */
  reason: RelayCloseReason;
  /** Parser detail, e.g. `record type 0x47`. */
  detail?: string;
  /** End user's address. */
  remoteAddress?: string;
  /** End user's port. */
  remotePort?: number;
  /** Hostname, when sniffing got that far. */
  hostname?: string;
  /** Bytes read from the end user. */
  bytesRead: number;
}

/** Limits of a relay listener. */
export interface RelayListenerLimits extends SniffLimits {
  /**
   * Connections (sniffing or relayed) allowed per source address (IPv6: per /64). Read for each new
   * connection, so it can be changed in place; connections accepted while it was `0` are not counted.
   * Default: `0` (unlimited).
   */
  maxConnectionsPerIp?: number;
  /** Size of the sniff budget created when `budget` is not given. Default: `256`. */
  maxConcurrentSniffs?: number;
}

/** Options of {@link createRelayListener}. */
export interface RelayListenerOptions {
  /** TCP port; `0` picks a free one. Default: `0`. */
  port?: number;
  /** Address to bind. Default: all interfaces. */
  host?: string;
  /** `tls` routes by SNI, `http` by Host. */
  mode: RelayMode;
  /** Sniffing caps/deadlines and the per-IP limit. */
  limits?: RelayListenerLimits;
  /**
   * Concurrent-sniff budget; pass the same instance to every listener of a node. Default: a new one of
   * `limits.maxConcurrentSniffs` (256) for this listener alone.
   */
  budget?: SniffBudget;
  /**
   * Bytes an end user's socket may read at once, asked before each read from the moment it is accepted
   * (sniffing included): the node's upload budget (`UploadBudget.readSize`), so that what a connection's
   * first reads bring is small once the node's streams hold their bound of uploads (a prelude read while
   * sniffing becomes part of what the stream holds). Default: none (Node's reads until the relay starts).
   */
  readSize?: () => number;
  /** Logger; a child with `component: 'relay-listener'` is used. Default: no-op. */
  logger?: Logger;
  /**
   * The route key of this port's TCP claim (`tcp:<port>`) while a backend claims the port: connections
   * that yield no name go there instead of being closed (`SniffOptions.portClaim`). Default: none.
   */
  portClaim?: () => string | undefined;
  /**
   * Called with each routed socket (paused; nothing read is lost: it is all in `sniffed.prelude`).
   * The callee owns the socket from now on. Return (or resolve to) a reason string such as `'no-route'`
   * to have the listener destroy the socket and report that reason instead.
   */
  onRouted(socket: Socket, sniffed: SniffedConnection): string | undefined | Promise<string | undefined>;
  /** Called for every connection the listener closes itself, with the reason. */
  onClose?(event: RelayCloseEvent): void;
}

/** A running relay listener. */
export interface RelayListener {
  /** Start listening; resolves with the bound address. */
  listen(): Promise<AddressInfo>;
  /** The bound address (undefined before `listen()`). */
  address(): AddressInfo | undefined;
  /**
   * Sniff and route a socket accepted elsewhere ("bring your own server"). The socket should have been
   * created with `allowHalfOpen: true` so half-closes can be relayed.
   */
  handleConnection(socket: Socket): void;
  /**
   * Stop accepting and destroy every connection this listener still owns (sniffing ones with reason
   * `shutdown`, plus per-IP bookkeeping). Routed sockets belong to `onRouted`'s owner.
   */
  close(): Promise<void>;
  /** Connections currently sniffing on this listener. */
  readonly sniffing: number;
}

/** Create a relay listener on `node:net`. */
export function createRelayListener(options: RelayListenerOptions): RelayListener {
  const log = (options.logger ?? noopLogger).child({ component: 'relay-listener', mode: options.mode });
  const budget = options.budget ?? new SniffBudget(options.limits?.maxConcurrentSniffs);
  const perIp = new Map<string, number>();
  const sniffing = new Set<Socket>();
  const shutdown = new AbortController();
  // Every connection still sniffing listens on this one signal (removed when its sniff ends): up to the
  // sniff budget at once, far more than the default of 10 before Node warns of a leak.
  setMaxListeners(0, shutdown.signal);
  let server: Server | undefined;

  const report = (
    socket: Socket,
    peer: Peer,
    event: Omit<RelayCloseEvent, 'remoteAddress' | 'remotePort' | 'bytesRead'>,
  ): void => {
    const full: RelayCloseEvent = { ...event, ...peer, bytesRead: socket.bytesRead };
    // `debug`: the end user's address is not logged at the default level for every refused connection
    // (scanners make many); `onClose` (the node's `sniff-failed` event) still carries it.
    // The routed name goes under `host`: `hostname` is pino's field for the machine's name.
    const { hostname, ...fields } = full;
    log.debug(
      hostname === undefined ? fields : { ...fields, host: hostname },
      `connection closed: ${event.reason}`,
    );
    try {
      options.onClose?.(full);
    } catch (err) {
      log.error({ err }, 'onClose callback threw');
    }
  };

  const trackIp = (socket: Socket): boolean => {
    const maxPerIp = options.limits?.maxConnectionsPerIp ?? 0; // live: a reload may change it
    if (maxPerIp <= 0) return true;
    const ip = addressGroup(socket.remoteAddress);
    const n = perIp.get(ip) ?? 0;
    if (n >= maxPerIp) return false;
    perIp.set(ip, n + 1);
    socket.once('close', () => {
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left <= 0) perIp.delete(ip);
      else perIp.set(ip, left);
    });
    return true;
  };

  const handleConnection = (socket: Socket): void => {
    // Read now: a destroyed socket no longer knows its peer.
    const peer: Peer = { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort };
    if (shutdown.signal.aborted) {
      socket.destroy();
      return;
    }
    if (!trackIp(socket)) {
      socket.on('error', ignore);
      socket.destroy();
      report(socket, peer, { reason: 'ip-limit' });
      return;
    }
    if (options.readSize !== undefined) readInFrames(socket, options.readSize);
    sniffing.add(socket);
    void sniffConnection(socket, {
      mode: options.mode,
      limits: options.limits,
      budget,
      signal: shutdown.signal,
      ...(options.portClaim === undefined ? {} : { portClaim: options.portClaim }),
    }).then(async (result) => {
      sniffing.delete(socket);
      if (!result.ok) {
        report(
          socket,
          peer,
          result.detail === undefined
            ? { reason: result.reason }
            : { reason: result.reason, detail: result.detail },
        );
        return;
      }
      const { sniffed } = result;
      let outcome: string | undefined;
      // Sniffing detached its listeners, yet a paused socket still reads (up to its high-water mark)
      // and so still sees a reset: until the owner has attached its own, an error must not go unheard.
      socket.on('error', ignore);
      try {
        outcome = await options.onRouted(socket, sniffed);
      } catch (err) {
        log.error({ err, host: sniffed.hostname }, 'onRouted threw');
        outcome = 'internal-error';
      } finally {
        socket.off('error', ignore);
      }
      if (typeof outcome === 'string') {
        socket.on('error', ignore);
        socket.destroy();
        report(socket, peer, { reason: outcome, hostname: sniffed.hostname });
      } else {
        log.debug({ host: sniffed.hostname, isTls: sniffed.isTls }, 'connection routed');
      }
    });
  };

  return {
    listen() {
      // allowHalfOpen: an end user's FIN must not close our write side; the response still flows
      // (docs/protocol.md §1.7, docs/reliability.md item 6).
      const srv = createServer({ allowHalfOpen: true, pauseOnConnect: false }, handleConnection);
      server = srv;
      const what = `${options.mode === 'tls' ? 'TLS' : 'HTTP'} relay listener`;
      return listenServer(srv, options.port ?? 0, options.host, log, what, 'relayPorts (or listeners)');
    },
    address() {
      const addr = server?.address();
      return addr && typeof addr === 'object' ? addr : undefined;
    },
    handleConnection,
    close() {
      // Aborting destroys every socket still sniffing (reason `shutdown`).
      shutdown.abort();
      const srv = server;
      server = undefined;
      if (srv === undefined || !srv.listening) return Promise.resolve();
      // Resolve once the port is released; routed sockets are owned (and closed) by their relays.
      return new Promise<void>((resolve) => {
        srv.close(() => resolve());
        // net.Server#close waits for every open connection; we only wait for the port to be unbound.
        setImmediate(resolve);
      });
    },
    get sniffing() {
      return sniffing.size;
    },
  };
}

interface Peer {
  remoteAddress: string | undefined;
  remotePort: number | undefined;
}

function ignore(): void {}
