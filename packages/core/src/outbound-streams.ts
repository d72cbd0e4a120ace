/**
 * The hub's side of SOCKS5 egress (docs/edge.md "Outbound connections"): a backend's `outbound_connect`
 * goes through the ordered checks (`checkOutboundConnect`), the dial under the address policy
 * (`connectOutbound`, cancelled when the backend leaves) and, once connected, becomes an ordinary stream
 * of that backend's session, opened with `outbound_result{success:true, credits}` and relayed both ways
 * with credit flow control and the outbound idle timeout. Every refusal is answered with
 * `outbound_result{success:false, reason}`, logged (rate-limited) and counted by reason.
 */
import type { Socket } from 'node:net';
import { LogRateLimit } from '@nexus-proxy/common';
import type { MuxStream, OutboundConnectMessage } from '@nexus-proxy/mux-protocol';
import type { BackendSession } from './backend-session.js';
import { NexusError, OutboundRefusedError } from './errors.js';
import type { Logger } from './logger.js';
import {
  type OutboundCheckFailure,
  type OutboundNodeSettings,
  checkOutboundConnect,
} from './outbound-checks.js';
import { connectOutbound, type OutboundResolver } from './outbound-connect.js';
import { OutboundAddressPolicy } from './outbound-policy.js';
import { relayMuxStream } from './relay.js';
import type { MeteredRelays } from './relay-bandwidth.js';
import type { UploadBudget } from './relay-uploads.js';

/** What the hub reads for each request (live: a reload applies to the next request). */
export interface OutboundSettings {
  /** `allowOutbound`, `allowedOutboundPorts`, `maxOutboundConnsPerBackend`. */
  readonly node: OutboundNodeSettings;
  /** `allowedOutboundNetworks`. */
  readonly allowedNetworks: readonly string[];
  /** `outboundDialTimeoutSeconds`, ms. */
  readonly dialTimeoutMs: number;
  /** `outboundIdleTimeoutSeconds`, ms; `0` = never. */
  readonly idleTimeoutMs: number;
}

/** Settings when none are given: outbound connections off (the reference's default). */
export const OUTBOUND_DISABLED: OutboundSettings = {
  node: { allow: false, allowedPorts: [], maxConnsPerBackend: 0 },
  allowedNetworks: [],
  dialTimeoutMs: 10_000,
  idleTimeoutMs: 0,
};

/**
 * Why a request ended without a connection (a metric label): a check of `checkOutboundConnect`, or
 * `duplicate-client-id` (a stream or dial with that id exists), `address-refused` (the address policy),
 * `dial-failed` (unreachable, refused, timed out, cancelled), `registration-failed` (the session could
 * not take the stream).
 */
export type OutboundFailure =
  | OutboundCheckFailure
  | 'duplicate-client-id'
  | 'address-refused'
  | 'dial-failed'
  | 'registration-failed';

/** Outbound connections of one backend session (or of the whole hub). */
export interface OutboundStats {
  /** Connections open now. */
  open: number;
  /** Dials in flight now. */
  dialling: number;
  /** Connections established since the start. */
  opened: number;
  /** Requests refused or failed, by {@link OutboundFailure}. */
  refused: Partial<Record<OutboundFailure, number>>;
  /** Addresses the address policy refused, by policy reason (`loopback`, `private`, …). */
  addressRefusals: Record<string, number>;
}

/** Options of {@link OutboundStreams}. */
export interface OutboundStreamsOptions {
  /** Read for each request. Default: {@link OUTBOUND_DISABLED}. */
  settings?: () => OutboundSettings;
  /** Name resolution for dials (tests). Default: the system resolver. */
  resolve?: OutboundResolver;
  /**
   * The node's relays under the bandwidth cap: an outbound connection is charged to its backend
   * (docs/edge.md "Bandwidth fair share"). Default: none, never metered.
   */
  meters?: MeteredRelays;
  /**
   * The node's count of what streams hold of what relayed sockets sent (`limits.maxBufferedUploadBytes`):
   * an outbound connection's reads are sized by it as an end user's are. Default: none.
   */
  uploads?: UploadBudget;
  logger: Logger;
}

/** The reason text answered for a dial that failed (the reference's). */
const DIAL_FAILED = 'dial failed';
/** Log lines per refusal reason and second; the rest are counted. */
const LOG_LINES_PER_SECOND = 10;

interface SessionOutbound {
  readonly dials: Map<string, AbortController>;
  readonly open: Map<string, MuxStream>;
  readonly stats: OutboundStats;
}

function emptyStats(): OutboundStats {
  return { open: 0, dialling: 0, opened: 0, refused: {}, addressRefusals: {} };
}

/** Serves `outbound_connect` for every backend session attached to it. */
export class OutboundStreams {
  readonly #settings: () => OutboundSettings;
  readonly #resolve: OutboundResolver | undefined;
  readonly #meters: MeteredRelays | undefined;
  readonly #uploads: UploadBudget | undefined;
  readonly #log: Logger;
  readonly #logLimit: LogRateLimit;
  readonly #sessions = new Map<BackendSession, SessionOutbound>();
  /** Totals over every session, past ones included. */
  readonly #totals = emptyStats();
  /** The policy for the networks in force, rebuilt when they change. */
  #policy: { networks: readonly string[]; policy: OutboundAddressPolicy } | undefined;

  constructor(options: OutboundStreamsOptions) {
    this.#settings = options.settings ?? (() => OUTBOUND_DISABLED);
    this.#resolve = options.resolve;
    this.#meters = options.meters;
    this.#uploads = options.uploads;
    this.#log = options.logger.child({ component: 'outbound' });
    this.#logLimit = new LogRateLimit({
      perWindow: LOG_LINES_PER_SECOND,
      onSuppressed: (reason, suppressed) =>
        this.#log.warn({ reason, suppressed }, 'outbound refusals not logged (rate limit)'),
    });
  }

  /** Serves the session's `outbound_connect` until it closes; its dials are cancelled then. */
  attach(session: BackendSession): void {
    const state: SessionOutbound = { dials: new Map(), open: new Map(), stats: emptyStats() };
    this.#sessions.set(session, state);
    session.mux.on('outbound-connect', (request) => this.#request(session, state, request));
    session.once('close', () => {
      this.#sessions.delete(session);
      for (const dial of state.dials.values()) dial.abort();
    });
  }

  /** The session's outbound connections, while it is attached. */
  sessionStats(session: BackendSession): OutboundStats | undefined {
    const state = this.#sessions.get(session);
    return state === undefined ? undefined : structuredClone(state.stats);
  }

  /** Totals over every session since the start (open and dialling: now). */
  stats(): OutboundStats {
    return structuredClone(this.#totals);
  }

  #request(session: BackendSession, state: SessionOutbound, request: OutboundConnectMessage): void {
    const settings = this.#settings();
    const id = request.client_id;
    const check = checkOutboundConnect(
      { clientId: id, targetAddr: request.target_addr },
      settings.node,
      session.identity.outbound,
      state.dials.size + state.open.size,
    );
    if (!check.ok) {
      this.#refuse(session, state, id, check.reason, check.message, request.target_addr);
      return;
    }
    if (state.dials.has(id) || session.mux.getStream(id) !== undefined) {
      this.#refuse(
        session,
        state,
        id,
        'duplicate-client-id',
        'client ID already in use',
        request.target_addr,
      );
      return;
    }
    const target = request.target_addr;
    const dial = new AbortController();
    state.dials.set(id, dial);
    this.#count(state, 'dialling', 1);
    const policy = this.#policyFor(settings.allowedNetworks);
    connectOutbound({
      host: check.host,
      port: check.port,
      policy,
      timeoutMs: settings.dialTimeoutMs,
      signal: dial.signal,
      ...(this.#resolve !== undefined ? { resolve: this.#resolve } : {}),
      onRefused: (refusal) => {
        for (const s of [state.stats, this.#totals])
          s.addressRefusals[refusal.reason] = (s.addressRefusals[refusal.reason] ?? 0) + 1;
      },
    }).then(
      (socket) => {
        this.#dialEnded(state, id);
        this.#connected(session, state, id, target, socket, settings.idleTimeoutMs);
      },
      (err: unknown) => {
        this.#dialEnded(state, id);
        if (session.closed) return;
        if (OutboundRefusedError.is(err)) {
          const message = `target address not allowed (${err.reason})`;
          this.#refuse(session, state, id, 'address-refused', message, target, err.address);
        } else {
          const detail = NexusError.is(err) ? err.message : String(err);
          this.#refuse(session, state, id, 'dial-failed', DIAL_FAILED, target, undefined, detail);
        }
      },
    );
  }

  #connected(
    session: BackendSession,
    state: SessionOutbound,
    id: string,
    target: string,
    socket: Socket,
    idleTimeoutMs: number,
  ): void {
    if (session.closed) {
      socket.destroy();
      return;
    }
    let stream: MuxStream;
    try {
      stream = session.mux.acceptOutbound(id, target);
    } catch (err) {
      socket.destroy();
      const message = `registration failed: ${err instanceof Error ? err.message : String(err)}`;
      this.#refuse(session, state, id, 'registration-failed', message, target);
      return;
    }
    state.open.set(id, stream);
    this.#count(state, 'open', 1);
    state.stats.opened++;
    this.#totals.opened++;
    this.#log.info({ sessionId: session.id, streamId: id, target }, 'outbound connection established');
    socket.pause();
    const meters = this.#meters;
    const handle = relayMuxStream(socket, stream, {
      idleTimeoutMs,
      bandwidth: meters?.account(session),
      uploads: this.#uploads,
      onClose: (stats) => {
        meters?.delete(handle);
        state.open.delete(id);
        this.#count(state, 'open', -1);
        this.#log.debug(
          {
            sessionId: session.id,
            streamId: id,
            target,
            reason: stats.reason,
            bytesUp: stats.bytesUp,
            bytesDown: stats.bytesDown,
          },
          'outbound connection closed',
        );
      },
    });
    meters?.add(handle, session);
  }

  #dialEnded(state: SessionOutbound, id: string): void {
    state.dials.delete(id);
    this.#count(state, 'dialling', -1);
  }

  #count(state: SessionOutbound, key: 'open' | 'dialling', delta: number): void {
    state.stats[key] += delta;
    this.#totals[key] += delta;
  }

  #refuse(
    session: BackendSession,
    state: SessionOutbound,
    id: string,
    reason: OutboundFailure,
    message: string,
    target: unknown,
    address?: string,
    detail?: string,
  ): void {
    for (const s of [state.stats, this.#totals]) s.refused[reason] = (s.refused[reason] ?? 0) + 1;
    session.mux.refuseOutbound(id, message);
    if (this.#logLimit.admit(reason)) {
      this.#log.warn(
        {
          sessionId: session.id,
          streamId: id,
          target: typeof target === 'string' ? target.slice(0, 300) : undefined,
          reason,
          ...(address !== undefined ? { address } : {}),
          ...(detail !== undefined ? { err: detail } : {}),
        },
        `outbound connection refused: ${message}`,
      );
    }
  }

  #policyFor(networks: readonly string[]): OutboundAddressPolicy {
    const cached = this.#policy;
    if (cached !== undefined && cached.networks === networks) return cached.policy;
    const policy = new OutboundAddressPolicy(networks);
    this.#policy = { networks, policy };
    return policy;
  }
}
