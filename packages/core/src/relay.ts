/**
 * Wiring one routed end-user socket to a stream (a mux stream, a peer tunnel or any Duplex): both
 * directions piped with backpressure, half-close propagated, an idle timeout that counts traffic in both
 * directions, byte counts and one close reason.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { MuxStream } from '@nexus-proxy/mux-protocol';
import type { BandwidthAccount } from './bandwidth-scheduler.js';
import { readInFrames } from './frame-reads.js';
import { RelayMeter } from './relay-bandwidth.js';
import { type UploadBudget, UploadForward } from './relay-uploads.js';

/** Default idle timeout: `0` (off), like the reference's `idleTimeoutSeconds: 0` (docs/protocol.md §4.5). */
export const DEFAULT_RELAY_IDLE_TIMEOUT_MS = 0;
/** TCP keepalive probe delay on relayed end-user sockets: 60 000 ms. */
export const RELAYED_SOCKET_KEEPALIVE_MS = 60_000;
/**
 * Default grace between the FIN that ends a stream toward the end user and the full close of its socket:
 * 2 000 ms, like the reference hub's graceful close (docs/protocol.md §1.7).
 */
export const DEFAULT_RELAY_END_GRACE_MS = 2_000;
/** Longest end grace accepted: 60 000 ms. */
export const MAX_RELAY_END_GRACE_MS = 60_000;

/**
 * Why a relay ended. `completed`: both directions reached EOF. `idle-timeout`: no byte either way for
 * `idleTimeoutMs`. `client-error` / `client-closed`: the end-user socket failed or was closed before the
 * stream finished. `stream-error` / `stream-aborted`: the stream failed or was destroyed before its EOF.
 * Any other string is the reason passed to {@link RelayHandle.close}.
 */
export type RelayEndReason =
  | 'completed'
  | 'idle-timeout'
  | 'client-fin-timeout'
  | 'client-error'
  | 'client-closed'
  | 'stream-error'
  | 'stream-aborted'
  | (string & {});

/** Reported once, after both the socket and the stream have closed. */
export interface RelayStats {
  /** Why the relay ended. */
  reason: RelayEndReason;
  /** Bytes from the end user to the stream, prelude included. */
  bytesUp: number;
  /** Bytes from the stream to the end user. */
  bytesDown: number;
  /** Lifetime of the relay, in ms. */
  durationMs: number;
  /** The error behind `client-error` / `stream-error`. */
  error?: Error;
}

/** Options of {@link relayConnection}. */
export interface RelayOptions {
  /** Close both sides after this long without a byte in either direction, in ms; `0` = off. Default: `0`. */
  idleTimeoutMs?: number;
  /**
   * Once the end user has half-closed (sent FIN), close both sides after this long without a byte in either
   * direction, in ms; `0` = wait for the stream (or `idleTimeoutMs`). The v1 wire cannot tell a backend that
   * the end user stopped sending (docs/protocol.md §1.7), so a service that keeps its side open would otherwise
   * hold the stream forever (HAProxy's `timeout client-fin`). Default: `0`.
   */
  clientFinTimeoutMs?: number;
  /**
   * After the stream's EOF has reached the end user as a FIN, keep the socket open this long, ms, reading
   * and discarding what the end user still sends, before closing it fully; the end user's own FIN closes
   * it sooner. Request bytes already in flight then meet a socket that reads them instead of a reset
   * that could cost the end user the response it has not read yet (docs/protocol.md §1.7). `0` closes
   * as soon as the FIN is written. Capped at 60 000. Default: `2_000`.
   */
  endGraceMs?: number;
  /** Bytes to write to the stream before anything read from the socket (the sniffed prelude). */
  prelude?: Uint8Array;
  /**
   * The stream's EOF ends the whole relay: the end user receives every byte, then a FIN, and the socket
   * is released once that is written (bytes the end user still sends are discarded). Right for mux streams
   * and tunnels, whose wire has no half-close: the peer's `disconnect` ends both directions (docs/protocol.md
   * §1.7). `false` relays a TCP half-close in this direction too.
   * Default: `true`.
   */
  closeOnStreamEnd?: boolean;
  /**
   * Meter both directions on this account (the node's bandwidth cap, docs/edge.md "Bandwidth fair share");
   * the relay holds it until it ends. Default: none (unmetered, nothing per chunk).
   */
  bandwidth?: BandwidthAccount | undefined;
  /**
   * The node's count of what streams hold of what relayed sockets sent them (`limits.maxBufferedUploadBytes`):
   * an end user's socket reads in smaller pieces once it is used up ({@link relayMuxStream}). Default: none
   * (each relay is bounded by its stream's high-water mark and its reads alone).
   */
  uploads?: UploadBudget | undefined;
  /** Called once when the relay has fully ended. */
  onClose?(stats: RelayStats): void;
}

/** A running relay. */
export interface RelayHandle {
  /** Bytes relayed so far from the end user to the stream. */
  readonly bytesUp: number;
  /** Bytes relayed so far from the stream to the end user. */
  readonly bytesDown: number;
  /** Resolves with the final stats (the same object `onClose` receives). */
  readonly done: Promise<RelayStats>;
  /** Abort both sides now (no graceful flush), recording `reason`. Default reason: `closed`. */
  close(reason?: RelayEndReason): void;
  /**
   * Meter the relay on `account` from now on (the relay holds it until it ends or the next call), or stop
   * metering (`undefined`): a reload that sets or lifts the bandwidth cap. After the end, the account is
   * given back at once.
   */
  setBandwidth(account: BandwidthAccount | undefined): void;
}

/**
 * Relay `socket` ⇄ `stream`. The socket should be paused (as `sniffConnection` leaves it) and created with
 * `allowHalfOpen: true`: an end user's FIN then ends only the stream's write side while the response keeps
 * flowing, and the stream's EOF ends the socket only after every byte was written (docs/protocol.md §1.7,
 * docs/reliability.md items 5 and 6).
 */
export function relayConnection(socket: Duplex, stream: Duplex, options: RelayOptions = {}): RelayHandle {
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_RELAY_IDLE_TIMEOUT_MS;
  const clientFinTimeoutMs = options.clientFinTimeoutMs ?? 0;
  // A TCP end user that vanished without a FIN or RST (a dead NAT mapping) is found by the kernel.
  (socket as { setKeepAlive?: (enable: boolean, delayMs: number) => unknown }).setKeepAlive?.(
    true,
    RELAYED_SOCKET_KEEPALIVE_MS,
  );
  const closeOnStreamEnd = options.closeOnStreamEnd ?? true;
  const endGraceMs = Math.min(
    Math.max(0, options.endGraceMs ?? DEFAULT_RELAY_END_GRACE_MS),
    MAX_RELAY_END_GRACE_MS,
  );
  const started = Date.now();
  let bytesUp = 0;
  let bytesDown = 0;
  let lastActivity = started;
  let reason: RelayEndReason | undefined;
  let error: Error | undefined;
  let upEnded = false; // end user sent FIN
  let downEnded = false; // stream reached EOF
  let socketClosed = false;
  let streamClosed = false;
  let finished = false;
  let idleTimer: NodeJS.Timeout | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  let meter: RelayMeter | undefined;
  // The end user → stream direction: `pipe` with what the stream holds counted in the node's budget.
  // A mux stream calls a write back once nothing holds its chunk (the transport included): what the
  // socket read in frames (frame-reads.ts) is then reused for its next reads.
  const up = new UploadForward(socket, stream, options.uploads, stream instanceof MuxStream);
  const setBandwidth = (account: BandwidthAccount | undefined): void => {
    meter?.detach();
    meter = undefined;
    if (account === undefined) return;
    // Once nothing more flows to the stream (and the stream's EOF has passed), there is nothing to meter.
    if (finished || socket.destroyed || stream.destroyed || downEnded) account.release();
    else meter = new RelayMeter(socket, stream, account);
  };
  /** (Re-)arms the idle timer for the limit in force; set below, once the listeners exist. */
  let armIdle = (): void => {};
  let resolveDone!: (stats: RelayStats) => void;
  const done = new Promise<RelayStats>((r) => {
    resolveDone = r;
  });

  const setReason = (r: RelayEndReason, err?: Error): void => {
    if (reason !== undefined) return;
    reason = r;
    error = err;
  };

  const abort = (r: RelayEndReason, err?: Error): void => {
    setReason(r, err);
    if (!socket.destroyed) socket.destroy();
    if (!stream.destroyed) stream.destroy();
  };

  // The FIN is written: the end user may still have request bytes in flight. Reading them for a grace
  // period (or until the end user's own FIN) keeps our close from turning into a reset on its side.
  const closeAfterGrace = (): void => {
    if (socket.destroyed || graceTimer !== undefined) return;
    if (endGraceMs === 0 || socket.readableEnded) {
      socket.destroy();
      return;
    }
    graceTimer = setTimeout(() => socket.destroy(), endGraceMs);
    socket.once('end', () => socket.destroy());
  };

  // Ends the end user's side once the stream is gone. After the stream's EOF the bytes still queued for the
  // end user are flushed and a FIN sent, and the socket is released after the end grace; without an EOF it
  // is an abort.
  const releaseSocket = (): void => {
    // What the end user still sends is discarded, and the stream's bytes have all been passed on.
    setBandwidth(undefined);
    if (socket.destroyed) return;
    // Nothing more goes to the stream: keep reading and discard, so the end user's late bytes cannot sit
    // unread in the kernel and turn our close into a RST that would drop the response on its side.
    up.stop();
    socket.resume();
    if (!downEnded) {
      socket.destroy();
      return;
    }
    if (socket.writableFinished) {
      closeAfterGrace();
      return;
    }
    socket.once('finish', closeAfterGrace);
    if (!socket.writableEnded) socket.end();
  };

  const maybeFinish = (): void => {
    if (finished || !socketClosed || !streamClosed) return;
    finished = true;
    setBandwidth(undefined);
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    idleTimer = undefined;
    if (graceTimer !== undefined) clearTimeout(graceTimer);
    graceTimer = undefined;
    socket.off('data', onSocketData);
    socket.off('end', onSocketEnd);
    socket.off('error', onSocketError);
    socket.off('close', onSocketClose);
    stream.off('data', onStreamData);
    stream.off('end', onStreamEnd);
    stream.off('error', onStreamError);
    stream.off('close', onStreamClose);
    stream.off('finish', onStreamFinish);
    const stats: RelayStats = {
      reason: reason ?? 'completed',
      bytesUp,
      bytesDown,
      durationMs: Date.now() - started,
    };
    if (error !== undefined) stats.error = error;
    resolveDone(stats);
    options.onClose?.(stats);
  };

  const onSocketData = (chunk: Buffer): void => {
    bytesUp += chunk.length;
    lastActivity = Date.now();
  };
  const onStreamData = (chunk: Buffer | Uint8Array): void => {
    bytesDown += chunk.length;
    lastActivity = Date.now();
  };
  const onSocketEnd = (): void => {
    // The forward passes the FIN on as stream.end(); the response direction continues.
    upEnded = true;
    if (clientFinTimeoutMs > 0) armIdle();
  };
  const onStreamEnd = (): void => {
    // pipe() forwards the EOF as socket.end() after the queued bytes.
    downEnded = true;
    if (closeOnStreamEnd) {
      releaseSocket();
      if (!stream.writableEnded && !stream.destroyed) stream.end();
    }
  };
  const onSocketError = (err: Error): void => {
    setReason('client-error', err);
    // The socket destroys itself after 'error'; the stream must not linger.
    if (!stream.destroyed) stream.destroy();
  };
  const onStreamError = (err: Error): void => {
    setReason(downEnded ? 'completed' : 'stream-error', err);
    releaseSocket();
  };
  const onSocketClose = (): void => {
    socketClosed = true;
    if (!streamClosed) {
      if (upEnded && downEnded) {
        // Both directions finished: let the stream close on its own once its write side is flushed.
        if (stream.destroyed || (stream.readableEnded && stream.writableFinished)) streamClosed = true;
      } else {
        setReason('client-closed');
        stream.destroy();
      }
    }
    maybeFinish();
  };
  const onStreamClose = (): void => {
    streamClosed = true;
    if (!downEnded) setReason('stream-aborted');
    releaseSocket();
    maybeFinish();
  };
  const onStreamFinish = (): void => {
    if (socketClosed && stream.readableEnded) {
      streamClosed = true;
      maybeFinish();
    }
  };

  socket.on('error', onSocketError);
  socket.on('close', onSocketClose);
  socket.on('end', onSocketEnd);
  stream.on('error', onStreamError);
  stream.on('close', onStreamClose);
  stream.on('end', onStreamEnd);
  stream.once('finish', onStreamFinish);

  if (options.prelude !== undefined && options.prelude.length > 0) {
    bytesUp += options.prelude.length;
    up.write(options.prelude);
  }
  up.start();
  stream.pipe(socket);
  socket.on('data', onSocketData);
  stream.on('data', onStreamData);
  if (options.bandwidth !== undefined) {
    setBandwidth(options.bandwidth);
    if (options.prelude !== undefined && options.prelude.length > 0) meter?.chargeUp(options.prelude.length);
  }

  // One timer re-armed for the remaining time, instead of a reset on every chunk (docs/reliability.md item 9:
  // traffic in either direction keeps the relay alive). After the end user's FIN the shorter of the idle and
  // client-FIN timeouts applies.
  const finActive = (): boolean =>
    upEnded && clientFinTimeoutMs > 0 && (idleTimeoutMs <= 0 || clientFinTimeoutMs < idleTimeoutMs);
  const limit = (): number => (finActive() ? clientFinTimeoutMs : idleTimeoutMs);
  const check = (): void => {
    idleTimer = undefined;
    const max = limit();
    if (max <= 0 || finished) return;
    const idleFor = Date.now() - lastActivity;
    if (idleFor >= max) abort(finActive() ? 'client-fin-timeout' : 'idle-timeout');
    else idleTimer = setTimeout(check, max - idleFor);
  };
  armIdle = (): void => {
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    idleTimer = undefined;
    const max = limit();
    if (max > 0 && !finished) idleTimer = setTimeout(check, Math.max(0, max - (Date.now() - lastActivity)));
  };
  armIdle();

  return {
    get bytesUp() {
      return bytesUp;
    },
    get bytesDown() {
      return bytesDown;
    },
    done,
    close(r: RelayEndReason = 'closed') {
      abort(r);
    },
    setBandwidth,
  };
}

/**
 * Stream close reasons that mean the far end finished normally: a backend's `disconnect{reason:"normal"}`
 * or a peer's TUNNEL_CLOSE. Any other reason on a stream that reached EOF (session lost, link lost, dial
 * failed…) is reported instead of `completed`.
 */
const NORMAL_STREAM_ENDS: ReadonlySet<string> = new Set(['normal', 'peer_closed']);

/**
 * A stream of the mux engine as the relay sees it (a `MuxStream`, a backend session's stream or a peer
 * tunnel): a `Duplex` that can be closed gracefully and remembers why it closed.
 */
export interface MuxStreamLike extends Duplex {
  /** Ends both directions once everything written so far has been sent (the v1 wire has no half-close). */
  disconnect(reason?: string): void;
  /** Why the stream closed, once it did (`normal`, `peer_closed`, `session_closed`, …). */
  readonly closeReason?: string | undefined;
}

function isMuxStream(value: Duplex): value is MuxStreamLike {
  return typeof (value as { disconnect?: unknown }).disconnect === 'function';
}

/** Closes `stream` gracefully: `disconnect('normal')` for a mux stream, `end()` for any other Duplex. */
function closeGracefully(stream: Duplex): void {
  if (isMuxStream(stream)) stream.disconnect('normal');
  else if (!stream.writableEnded && !stream.destroyed) stream.end();
}

/**
 * Relay `end` ⇄ `stream`, where `stream` is a mux stream and `end` is an end-user socket or another mux
 * stream (any `Duplex` works for `stream`; a mux stream's graceful disconnect and close reason are used
 * when it has them). Every relay of a node goes through here: end user ⇄ backend stream, end user ⇄ tunnel (origin
 * of a tunnel) and tunnel ⇄ backend stream (destination).
 *
 * On top of {@link relayConnection}:
 * - when `end` is a mux stream too, neither side has a half-close (docs/protocol.md §1.7): the EOF of either
 *   closes the other gracefully (`disconnect('normal')`, after what was written first);
 * - the reason reported for a relay that `completed` is the stream's own close reason when that is not a
 *   normal end (the backend session or the peer link died: the end user got everything the node had,
 *   then FIN, docs/protocol.md §1.7, and the stats say why).
 */
export function relayMuxStream(end: Duplex, stream: Duplex, options: RelayOptions = {}): RelayHandle {
  const endIsMux = isMuxStream(end);
  if (endIsMux) {
    stream.once('end', () => end.disconnect('normal'));
    end.once('end', () => closeGracefully(stream));
  } else {
    // An end-user socket: one read per DATA frame during a burst (frame-reads.ts), smaller once what the
    // node's streams hold of uploads reaches its bound (relay-uploads.ts).
    readInFrames(end as Socket, options.uploads?.readSize);
  }
  return relayConnection(end, stream, {
    ...options,
    // A mux stream has no reset to avoid: its `disconnect` already went after the last byte.
    ...(endIsMux ? { endGraceMs: 0 } : {}),
    onClose: (stats) => {
      const streamReason = (stream as Partial<MuxStreamLike>).closeReason;
      if (stats.reason === 'completed' && streamReason !== undefined && !NORMAL_STREAM_ENDS.has(streamReason))
        stats.reason = streamReason;
      options.onClose?.(stats);
    },
  });
}
