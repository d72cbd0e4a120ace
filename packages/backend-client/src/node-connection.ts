import {
  Backoff,
  createWsBinarySender,
  DATA_HIGH_WATER_MARK,
  DATA_PAYLOAD_HEADER,
  Keepalive,
  type Logger,
  takeBinaryMessagesAsViews,
} from '@nexus-proxy/common';
import {
  type ConnectMessage,
  DATA_HEADER_LENGTH,
  MAX_DATA_PAYLOAD,
  MuxSession,
  type MuxStream,
  parseOfferedDataPayload,
  peerDataPayload,
  type MuxTransport,
  WS_CLOSE_POLICY_VIOLATION,
} from '@nexus-proxy/mux-protocol';
import WebSocket from 'ws';
import { attestedHandshake, issueStage } from './attestation.js';
import type { ResolvedBackendClientOptions } from './client-options.js';
import { type BackendClientError, HandshakeError, SessionError, TokenError } from './errors.js';
import type {
  NodeConnectionEvents,
  NodeConnectionState,
  NodeStats,
  SessionEndReason,
} from './node-connection-events.js';
import { NodeStreams } from './node-streams.js';
import { ReauthResponder } from './reauth-responder.js';
import { countReceivedBytes } from './relay-heap.js';
import { resolveSeedToken } from './token-provider.js';

export type {
  NodeConnectionState,
  SessionEndReason,
  ConnectedEvent,
  DisconnectedEvent,
  StreamOpenEvent,
  StreamCloseEvent,
  NodeConnectionEvents,
  NodeStats,
  ReauthEvent,
} from './node-connection-events.js';

/**
 * WebSocket `bufferedAmount` above which the session holds DATA back, bytes (16 KiB, `DATA_HIGH_WATER_MARK`):
 * a DATA frame waits until the one before it has left, so that each goes to the TLS socket as one buffer.
 */
export const TRANSPORT_HIGH_WATER_MARK = DATA_HIGH_WATER_MARK;
/** `bufferedAmount` at or below which held-back DATA resumes, bytes. */
const TRANSPORT_LOW_WATER_MARK = TRANSPORT_HIGH_WATER_MARK;

/** The base protocol's payload limits, both ways (docs/protocol.md §1.3). */
const BASE_PAYLOADS: Readonly<{ receive: number; send: number }> = {
  receive: MAX_DATA_PAYLOAD,
  send: MAX_DATA_PAYLOAD,
};

/** Grace for the WebSocket closing handshake before the socket is cut, ms. */
export const CLOSE_HANDSHAKE_TIMEOUT = 2_000;

/** Closes `ws` with `code` and cuts it if the hub does not complete the closing handshake in time. */
function closeWebSocket(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState === WebSocket.CLOSED) return;
  const cut = setTimeout(() => ws.terminate(), CLOSE_HANDSHAKE_TIMEOUT);
  ws.once('close', () => clearTimeout(cut));
  ws.close(code, reason);
}

/**
 * One hub address: a WebSocket session with its `MuxSession` (role `backend`), kept alive and
 * reconnected forever with jittered backoff (docs/protocol.md §1.6). Each connection is independent.
 */
export class NodeConnection {
  readonly node: string;
  #state: NodeConnectionState = 'idle';
  #options: ResolvedBackendClientOptions;
  readonly #emit: <K extends keyof NodeConnectionEvents>(event: K, ...args: NodeConnectionEvents[K]) => void;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  #ws: WebSocket | undefined;
  #session: MuxSession | undefined;
  #keepalive: Keepalive | undefined;
  #transportPaused = false;
  #openedAt = 0;
  #endReason: SessionEndReason | undefined;
  #lastError: Error | undefined;
  /** Why the current era's handshake failed (reported instead of a generic connect error). */
  #handshakeError: BackendClientError | undefined;
  /** The current WebSocket completed its opening handshake. */
  #opened = false;
  #reauth: ReauthResponder | undefined;
  /** This session already warned about a text message (seed era). */
  #textWarned = false;
  #reauths = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  readonly #streams: NodeStreams;
  #closeWaiters: Array<() => void> = [];
  #sessionsOpened = 0;
  /** The largest DATA payloads on the current WebSocket: accepted, and sent (docs/protocol.md §1.11). */
  #payloads = BASE_PAYLOADS;

  constructor(
    node: string,
    options: ResolvedBackendClientOptions,
    emit: <K extends keyof NodeConnectionEvents>(event: K, ...args: NodeConnectionEvents[K]) => void,
    random: () => number = Math.random,
  ) {
    this.node = node;
    this.#options = options;
    this.#emit = emit;
    this.#log = options.logger.child({ component: 'backend-client', node });
    this.#backoff = new Backoff(options.reconnect, random);
    this.#streams = new NodeStreams({
      node,
      log: this.#log,
      emit,
      options: () => this.#options,
      connected: () => this.#state === 'connected',
    });
  }

  /**
   * Options for what happens from now on (streams opened later use the new port mappings and health
   * checks); the session and open streams are left as they are.
   */
  setOptions(options: ResolvedBackendClientOptions): void {
    this.#options = options;
  }

  /** Current lifecycle state. */
  get state(): NodeConnectionState {
    return this.#state;
  }

  /** The live session, while connected. */
  get session(): MuxSession | undefined {
    return this.#state === 'connected' ? this.#session : undefined;
  }

  /** Snapshot for `stats()`. */
  stats(): NodeStats {
    const { streamsTotal, dialFailures, bytesIn, bytesOut } = this.#streams.totals();
    return {
      node: this.node,
      state: this.#state,
      streams: this.#streams.size,
      sessionsOpened: this.#sessionsOpened,
      failedAttempts: this.#backoff.attempt,
      connectedSince: this.#state === 'connected' ? this.#openedAt : undefined,
      streamsTotal,
      dialFailures,
      bytesIn,
      bytesOut,
      reauths: this.#reauths,
    };
  }

  /** Starts connecting (no-op unless idle). */
  start(): void {
    if (this.#state !== 'idle') return;
    void this.#connect();
  }

  /**
   * Stops reconnecting, lets open streams finish for up to `graceMs`, then closes them (reason
   * `shutdown`) and the session. Resolves once the WebSocket is closed; leaves no timer behind.
   */
  async close(graceMs: number): Promise<void> {
    if (this.#state === 'closed') return;
    if (this.#state === 'closing') return new Promise((resolve) => this.#closeWaiters.push(resolve));
    const previous = this.#state;
    this.#state = 'closing';
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const ws = this.#ws;
    if (ws === undefined || previous !== 'connected') {
      // Idle, in backoff, awaiting the token, or mid-handshake: nothing to drain.
      if (ws !== undefined) {
        const closed = this.#waitClosed();
        ws.terminate();
        await closed;
      }
      this.#finishClose();
      return;
    }
    if (this.#streams.size > 0 && graceMs > 0) {
      this.#log.info({ streams: this.#streams.size, graceMs }, 'closing: letting open streams finish');
      await this.#streams.waitDone(graceMs);
    }
    this.#streams.closeAll('shutdown');
    const closed = this.#waitClosed();
    this.#endReason = 'client_closed';
    ws.close(1000, 'shutdown');
    const cut = setTimeout(() => ws.terminate(), CLOSE_HANDSHAKE_TIMEOUT);
    await closed;
    clearTimeout(cut);
    this.#finishClose();
  }

  #finishClose(): void {
    this.#state = 'closed';
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #waitClosed(): Promise<void> {
    return new Promise((resolve) => {
      const ws = this.#ws;
      if (ws === undefined || ws.readyState === WebSocket.CLOSED) resolve();
      else ws.once('close', () => setImmediate(resolve));
    });
  }

  async #connect(): Promise<void> {
    this.#state = 'connecting';
    this.#endReason = undefined;
    this.#lastError = undefined;
    this.#handshakeError = undefined;
    const attestation = this.#options.attestation;
    let token: string;
    try {
      // Current era: the stage-0 token first, so a failing provider never holds a connection open.
      token =
        attestation === undefined
          ? await resolveSeedToken(this.#options.token!)
          : (await issueStage(attestation, 'handshake')).token;
    } catch (err) {
      if (this.#state !== 'connecting') return;
      this.#reportError(err as Error);
      this.#scheduleReconnect();
      return;
    }
    if (this.#state !== 'connecting') return; // closed while the provider ran

    const { tls, handshakeTimeoutMs } = this.#options;
    // §1.11: say what this client accepts; a hub that answers (Nexus) says what it accepts, and each
    // sends the other at most that. A hub that does not answer (the reference) keeps 32 768 both ways.
    const accepts = this.#options.maxDataPayload;
    this.#payloads = BASE_PAYLOADS;
    const ws = new WebSocket(this.node, {
      perMessageDeflate: false, // docs/protocol.md §1.1: no compression, no subprotocol
      // §1.3: 32 785 bytes unless the hub learnt of more; the message handler checks what applies.
      maxPayload: DATA_HEADER_LENGTH + accepts,
      headers: { [DATA_PAYLOAD_HEADER]: String(accepts) },
      handshakeTimeout: handshakeTimeoutMs,
      followRedirects: false,
      ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
      ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
      ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
    });
    this.#ws = ws;
    this.#opened = false;
    this.#textWarned = false;
    ws.on('upgrade', (res) => {
      const answer = res.headers[DATA_PAYLOAD_HEADER];
      if (answer !== undefined)
        this.#payloads = { receive: accepts, send: peerDataPayload(parseOfferedDataPayload(answer)) };
    });
    /** A binary message, whole (from ws) or as the views of the TLS reads it came in. */
    const onBinary = (parts: Buffer[], length: number): void => {
      this.#keepalive?.markAlive();
      if (this.#session === undefined || this.#ws !== ws) return;
      if (length > DATA_HEADER_LENGTH + this.#payloads.receive) {
        // §1.3: a message over the limit the hub knows of ends the session (close 1009).
        this.#log.warn({ bytes: length }, 'message too big from the hub; closing');
        this.#endReason ??= 'protocol_error';
        closeWebSocket(ws, 1009, 'message too big');
        return;
      }
      // The TLS reads the message came in are buffers outside the JS heap (relay-heap).
      countReceivedBytes(length);
      this.#session.receive(parts, length);
    };
    ws.on('open', () => {
      this.#opened = true;
      // Final binary messages (DATA) straight out of the TLS reads, as views, once the session runs; ws
      // delivers the rest (the current era's handshake reads its messages from ws).
      takeBinaryMessagesAsViews(ws, onBinary, () => this.#session !== undefined && this.#ws === ws);
      if (attestation === undefined) this.#onOpen(ws, token);
      else this.#onOpenAttested(ws, token);
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        onBinary([data as Buffer], (data as Buffer).length);
        return;
      }
      this.#keepalive?.markAlive();
      if (this.#session === undefined || this.#ws !== ws) return;
      if (this.#reauth !== undefined) this.#reauth.onText(data as Buffer);
      else {
        // Seed era: nothing to read in text; warn once per session, not once per frame of a flood.
        this.#log[this.#textWarned ? 'debug' : 'warn'](
          { length: (data as Buffer).length },
          'ignoring a text message from the hub',
        );
        this.#textWarned = true;
      }
    });
    ws.on('pong', () => this.#keepalive?.markAlive());
    ws.on('error', (err) => {
      this.#lastError = err;
    });
    ws.once('close', (code, reason) => this.#onClose(ws, code, reason.toString()));
  }

  #onOpen(ws: WebSocket, token: string): void {
    // docs/protocol.md §1.2: the JWT is the first message, as text; v1 hubs acknowledge nothing.
    ws.send(token);
    this.#startSession(ws);
  }

  /** Current era: stage 0, the challenge, stage 1 (docs/protocol.md §1.9), then the session as in the seed era. */
  #onOpenAttested(ws: WebSocket, stage0: string): void {
    const attestation = this.#options.attestation!;
    attestedHandshake(ws, stage0, attestation).then(
      () => {
        if (this.#ws !== ws || this.#state !== 'connecting' || ws.readyState !== WebSocket.OPEN) return;
        this.#reauth = new ReauthResponder(attestation, {
          // Straight to the socket, ahead of whatever DATA the session still holds back.
          send: (answer) => {
            if (this.#ws === ws && ws.readyState === WebSocket.OPEN) ws.send(answer);
          },
          answered: () => {
            this.#reauths++;
            this.#log.debug('answered the hub’s re-authentication challenge');
            this.#emit('reauth', { node: this.node });
          },
          fail: (err) => {
            this.#log.error(
              { err: err.message, code: err.code },
              'cannot answer the hub’s re-authentication challenge; ending the session',
            );
            this.#emit('error', err);
            this.#endReason = 'reauth_failed';
            closeWebSocket(ws, 1011, 'reauth failed');
          },
          flooded: (err) => {
            this.#log.error(
              { err: err.message },
              'the hub floods re-authentication challenges; closing the session',
            );
            this.#emit('error', err);
            this.#endReason = 'reauth_flood';
            closeWebSocket(ws, WS_CLOSE_POLICY_VIOLATION, 'reauth challenge flood');
          },
          ignored: (detail) => this.#log.debug({ detail }, 'ignoring a text message from the hub'),
        });
        this.#startSession(ws);
      },
      (err: BackendClientError) => {
        if (this.#ws !== ws) return;
        this.#handshakeError = err;
        closeWebSocket(ws, err instanceof TokenError ? 1011 : 1002, 'handshake failed');
      },
    );
  }

  #startSession(ws: WebSocket): void {
    // Grants and other small messages of a tick leave in one socket write; each DATA frame in one of its own.
    const sender = createWsBinarySender(ws, { onSent: this.#onSent });
    const transport: MuxTransport = {
      send: sender.send,
      get bufferedAmount() {
        return ws.bufferedAmount;
      },
    };
    // DATA frames masked in place in the local socket's read buffer, or from the stream's chunks into
    // one buffer (see WsFrameWriter); without `bufferutil` the engine joins each frame itself.
    if (sender.writer.writesData) transport.sendData = sender.sendData;
    const session = new MuxSession({
      role: 'backend',
      transport,
      highWaterMark: TRANSPORT_HIGH_WATER_MARK,
      maxDataPayload: this.#payloads.receive,
      sendDataPayload: this.#payloads.send,
      // v1 streams have no credit window: a local socket that does not drain pauses the WebSocket (§1.5).
      pauseTransport: () => {
        this.#transportPaused = true;
        ws.pause();
      },
      resumeTransport: () => {
        this.#transportPaused = false;
        ws.resume();
      },
      logger: this.#log,
    });
    this.#session = session;
    this.#transportPaused = false;
    session.on('stream', (stream: MuxStream, connect: ConnectMessage) => this.#streams.open(stream, connect));
    session.on('protocol-error', (err: Error) => this.#log.warn({ err }, 'protocol error from hub'));
    session.on('abort', (reason) => {
      // The hub broke a limit (a flood, or it stopped reading): close with a policy violation.
      if (this.#ws === ws && ws.readyState === WebSocket.OPEN && this.#state === 'connected') {
        this.#endReason ??= reason;
        ws.close(WS_CLOSE_POLICY_VIOLATION, reason);
      }
    });
    session.on('close', () => {
      // The multiplexer gave up on its own (e.g. a fatal protocol error): drop the WebSocket too.
      if (this.#ws === ws && ws.readyState === WebSocket.OPEN && this.#state === 'connected') {
        this.#endReason ??= 'protocol_error';
        ws.close(1011, 'session closed');
      }
    });
    this.#keepalive = new Keepalive(this.#options.keepalive, {
      ping: () => {
        // No pings while reads are paused: their pongs would pile up unread at the hub, and a ws-based
        // hub terminates a peer with too many pending pongs (ws `maxPendingAutoPongs`).
        if (ws.readyState === WebSocket.OPEN && !this.#transportPaused) ws.ping();
      },
      // While a slow local service keeps the WebSocket paused we cannot read pongs either.
      suspended: () => this.#transportPaused,
      onTimeout: () => {
        this.#log.warn({ timeoutMs: this.#options.keepalive.timeoutMs }, 'hub went silent; reconnecting');
        this.#endReason = 'keepalive_timeout';
        ws.terminate();
      },
    });
    this.#keepalive.start();
    this.#openedAt = Date.now();
    this.#sessionsOpened++;
    if (this.#state !== 'connecting') return;
    this.#state = 'connected';
    const era = this.#options.attestation === undefined ? 'seed' : 'current';
    this.#log.info({ era }, 'connected');
    this.#emit('connected', { node: this.node, era });
  }

  // ws has no public 'drain' event; a send callback runs once its frame reached the kernel, which is
  // when room may have opened up for the DATA the session holds back above its high-water mark.
  readonly #onSent = (): void => {
    const ws = this.#ws;
    if (ws !== undefined && ws.bufferedAmount <= TRANSPORT_LOW_WATER_MARK) this.#session?.transportDrained();
  };

  #onClose(ws: WebSocket, code: number, message: string): void {
    if (this.#ws !== ws) return;
    this.#keepalive?.stop();
    this.#keepalive = undefined;
    const wasConnected = this.#session !== undefined;
    const reason: SessionEndReason =
      this.#endReason ??
      (code === 1008 ? 'auth_rejected' : code === 1006 ? 'connection_lost' : 'closed_by_hub');
    // docs/reliability.md items 10 and 11: the local side of every stream goes first, then the session forgets them,
    // so nothing of this session can leak into the next one.
    this.#streams.endLocal();
    const session = this.#session;
    this.#session = undefined;
    this.#ws = undefined;
    this.#reauth?.stop();
    this.#reauth = undefined;
    session?.close('session_ended');
    this.#streams.destroyAll();

    if (wasConnected) {
      const upFor = Date.now() - this.#openedAt;
      if (reason === 'auth_rejected') {
        this.#log.error({ code, message }, 'hub rejected the token (close 1008); retrying with backoff');
      } else if (reason !== 'client_closed') {
        this.#log.warn({ code, message, reason, upForMs: upFor }, 'session ended');
      }
      if (upFor >= this.#options.reconnect.resetAfterMs) this.#backoff.reset();
      this.#emit('disconnected', { node: this.node, reason, code, message });
    } else if (this.#state === 'connecting') {
      const cause = this.#lastError;
      const closedHandshake =
        this.#options.attestation !== undefined && this.#opened
          ? new HandshakeError(
              `the hub closed the handshake (${code}${message === '' ? '' : `: ${message}`})`,
            )
          : undefined;
      this.#reportError(
        this.#handshakeError ??
          closedHandshake ??
          new SessionError(`cannot connect to ${this.node}: ${cause?.message ?? `closed with ${code}`}`, {
            cause,
            closeCode: code,
          }),
      );
    }
    if (this.#state === 'connecting' || this.#state === 'connected') this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    const delay = this.#backoff.next();
    this.#state = 'backoff';
    this.#log.debug({ delayMs: delay, attempt: this.#backoff.attempt }, 'reconnecting after backoff');
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#state === 'backoff') void this.#connect();
    }, delay);
  }

  #reportError(err: Error): void {
    this.#log.warn({ err: err.message, code: (err as BackendClientError).code }, 'connection attempt failed');
    this.#emit('error', err);
  }
}
