/**
 * Fleet registration (`registrationURL`, `region`; docs/edge.md "Fleet registration"): the node tells an
 * orchestrator that it is alive and what it offers, and keeps telling it at the interval the orchestrator
 * asks for. The request is the reference's, so one orchestrator serves both: `POST` of
 * `{"region","backendPort","services":{"stunPort"}}` (`region` and `services` left out when empty), JSON,
 * over HTTPS with the hub certificate as client certificate (mutual TLS is how the orchestrator knows
 * the node). The reply `{"heartbeat_interval": seconds}` sets the next heartbeat (at least 5 s).
 *
 * Failures: 400 and 401 are permanent (logged, registration stops: a retry would be refused the same way);
 * anything else (network errors, timeouts, 5xx, 429, malformed replies) is retried after a backoff of
 * 5 s doubling to 2 min, ±20 % jitter; a 429's `Retry-After` is honoured as a floor.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { Backoff } from '@nexus-proxy/common';
import { type Logger, noopLogger } from './logger.js';

/** Shortest heartbeat interval, ms; an orchestrator asking for less gets this. */
export const REGISTRATION_MIN_HEARTBEAT_MS = 5_000;
/** Longest heartbeat interval, ms (a larger `heartbeat_interval` would overflow a timer). */
export const REGISTRATION_MAX_HEARTBEAT_MS = 3_600_000;
/** Longest wait a `Retry-After` can impose, ms. */
export const REGISTRATION_MAX_RETRY_AFTER_MS = 3_600_000;
/** Largest reply body read, bytes; a longer one is a failed attempt. */
export const REGISTRATION_MAX_RESPONSE_BYTES = 4_096;
/** Time one attempt may take, ms. */
export const REGISTRATION_REQUEST_TIMEOUT_MS = 15_000;
/** Retry backoff: 5 s doubling to 2 min, ±20 %. */
export const REGISTRATION_BACKOFF = Object.freeze({
  initialDelayMs: 5_000,
  maxDelayMs: 120_000,
  factor: 2,
  jitter: 0.2,
});

/** The hub certificate, sent as client certificate; read for every attempt (renewals apply). */
export interface RegistrationClientCertificate {
  certPem: string;
  keyPem: string;
}

/** Options of {@link FleetRegistration}. */
export interface FleetRegistrationOptions {
  /** `https://` URL of the orchestrator's registration endpoint. */
  url: string;
  /** Region name sent with every request; left out when `undefined`. */
  region?: string | undefined;
  /** The hub's port, as backends reach it. */
  backendPort: number;
  /** The STUN server's port, when it runs (`services.stunPort`). */
  stunPort?: number | undefined;
  /** The client certificate, or `undefined` for none. */
  clientCertificate?: () => RegistrationClientCertificate | undefined;
  /** Extra CA certificates (PEM) to trust besides Node's roots (private orchestrators, tests). */
  ca?: string | undefined;
  /** pino-compatible logger; a `component: 'registration'` child is used. Default: no-op. */
  logger?: Logger;
  /** Source of jitter, in [0, 1). Default: `Math.random`. */
  random?: () => number;
}

/** Where the registration loop is. */
export type RegistrationState = 'idle' | 'registering' | 'registered' | 'retrying' | 'failed' | 'stopped';

/** Payload of `registered`. */
export interface RegistrationSuccessEvent {
  /** Time to the next heartbeat, ms. */
  heartbeatIntervalMs: number;
}

/** Payload of `failed`. */
export interface RegistrationFailureEvent {
  /** HTTP status, when there was a reply. */
  status?: number;
  /** What went wrong, one phrase (`HTTP 503`, `timeout`, `malformed reply`…). */
  reason: string;
  /** 400 or 401: registration has stopped. */
  permanent: boolean;
  /** When not permanent: time to the next attempt, ms. */
  retryInMs?: number;
}

/** Typed events of {@link FleetRegistration}. */
export interface FleetRegistrationEvents {
  registered: [event: RegistrationSuccessEvent];
  failed: [event: RegistrationFailureEvent];
}

/** Counters and state, for metrics and `/status`. */
export interface FleetRegistrationStats {
  state: RegistrationState;
  /** Requests sent. */
  attempts: number;
  /** Requests the orchestrator accepted. */
  successes: number;
  /** Requests that failed. */
  failures: number;
  /** The heartbeat interval in force, ms (`undefined` before the first success). */
  heartbeatIntervalMs: number | undefined;
  /** ms since the epoch of the last success. */
  lastSuccessAt: number | undefined;
  /** The last failure's reason. */
  lastError: string | undefined;
}

type Outcome =
  | { ok: true; intervalMs: number }
  | { ok: false; status?: number; reason: string; permanent: boolean; retryAfterMs?: number };

/** Registers a node with its orchestrator and sends heartbeats until `stop()`. */
export class FleetRegistration extends EventEmitter<FleetRegistrationEvents> {
  readonly #options: FleetRegistrationOptions;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #random: () => number;
  readonly #body: string;
  #timer: NodeJS.Timeout | undefined;
  #abort: AbortController | undefined;
  readonly #stats: FleetRegistrationStats = {
    state: 'idle',
    attempts: 0,
    successes: 0,
    failures: 0,
    heartbeatIntervalMs: undefined,
    lastSuccessAt: undefined,
    lastError: undefined,
  };

  constructor(options: FleetRegistrationOptions) {
    super();
    this.#options = options;
    this.#log = (options.logger ?? noopLogger).child({ component: 'registration' });
    this.#random = options.random ?? Math.random;
    this.#backoff = new Backoff(REGISTRATION_BACKOFF, this.#random);
    this.#body = JSON.stringify(registrationBody(options));
  }

  /** The JSON body every request sends. */
  get body(): string {
    return this.#body;
  }

  /** A copy of the counters and state. */
  stats(): FleetRegistrationStats {
    return { ...this.#stats };
  }

  /** Sends the first registration now; heartbeats follow. Calling it again does nothing. */
  start(): void {
    if (this.#stats.state !== 'idle') return;
    this.#log.info({ url: redact(this.#options.url) }, 'fleet registration starting');
    void this.#attempt();
  }

  /** Stops: cancels the next heartbeat and any request in flight. */
  stop(): void {
    if (this.#stats.state === 'stopped') return;
    if (this.#stats.state !== 'failed') this.#stats.state = 'stopped';
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort?.abort();
    this.#abort = undefined;
  }

  get #stopped(): boolean {
    return this.#stats.state === 'stopped' || this.#stats.state === 'failed';
  }

  async #attempt(): Promise<void> {
    this.#timer = undefined;
    this.#stats.state = 'registering';
    this.#stats.attempts++;
    const abort = new AbortController();
    this.#abort = abort;
    const outcome = await this.#send(abort.signal);
    if (this.#abort === abort) this.#abort = undefined;
    if (this.#stopped) return;
    if (outcome.ok) {
      this.#backoff.reset();
      this.#stats.successes++;
      this.#stats.state = 'registered';
      this.#stats.lastSuccessAt = Date.now();
      if (this.#stats.heartbeatIntervalMs !== outcome.intervalMs) {
        this.#log.info({ heartbeatIntervalMs: outcome.intervalMs }, 'registered with the orchestrator');
      }
      this.#stats.heartbeatIntervalMs = outcome.intervalMs;
      this.emit('registered', { heartbeatIntervalMs: outcome.intervalMs });
      this.#schedule(outcome.intervalMs);
      return;
    }
    this.#stats.failures++;
    this.#stats.lastError = outcome.reason;
    const status = outcome.status === undefined ? {} : { status: outcome.status };
    if (outcome.permanent) {
      this.#stats.state = 'failed';
      this.#log.error({ ...status, reason: outcome.reason }, 'fleet registration refused for good; stopped');
      this.emit('failed', { ...status, reason: outcome.reason, permanent: true });
      return;
    }
    const backoff = this.#backoff.next();
    // Retry-After is a floor: jitter only ever adds to it.
    const delay =
      outcome.retryAfterMs === undefined
        ? backoff
        : Math.round(outcome.retryAfterMs * (1 + REGISTRATION_BACKOFF.jitter * this.#random()));
    this.#stats.state = 'retrying';
    this.#log.warn({ ...status, reason: outcome.reason, retryInMs: delay }, 'fleet registration failed');
    this.emit('failed', { ...status, reason: outcome.reason, permanent: false, retryInMs: delay });
    this.#schedule(delay);
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => void this.#attempt(), delayMs);
    this.#timer.unref();
  }

  /** One request; never rejects. */
  #send(signal: AbortSignal): Promise<Outcome> {
    const cert = this.#options.clientCertificate?.();
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (o: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timeout);
        resolve(o);
      };
      const req = request(this.#options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(this.#body),
        },
        ...(cert === undefined ? {} : { cert: cert.certPem, key: cert.keyPem }),
        ...(this.#options.ca === undefined ? {} : { ca: this.#options.ca }),
        signal,
      });
      const timeout = setTimeout(() => {
        req.destroy();
        settle({ ok: false, reason: 'timeout', permanent: false });
      }, REGISTRATION_REQUEST_TIMEOUT_MS);
      req.on('error', (err) => settle({ ok: false, reason: err.message, permanent: false }));
      req.on('response', (res) => {
        readBounded(res, (body) => {
          if (typeof body === 'string') {
            req.destroy();
            settle({ ok: false, status: res.statusCode, reason: body, permanent: false });
            return;
          }
          settle(this.#classify(res, body));
        });
      });
      req.end(this.#body);
    });
  }

  #classify(res: IncomingMessage, body: Buffer): Outcome {
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) {
      let seconds: unknown;
      try {
        seconds =
          body.length === 0
            ? undefined
            : (JSON.parse(body.toString('utf8')) as Record<string, unknown>)?.heartbeat_interval;
      } catch {
        return { ok: false, status, reason: 'malformed reply', permanent: false };
      }
      return { ok: true, intervalMs: this.#interval(seconds) };
    }
    const detail = `HTTP ${status}${body.length > 0 ? `: ${printable(body)}` : ''}`;
    if (status === 400 || status === 401) return { ok: false, status, reason: detail, permanent: true };
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(res.headers['retry-after'], Date.now());
      return {
        ok: false,
        status,
        reason: detail,
        permanent: false,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      };
    }
    return { ok: false, status, reason: detail, permanent: false };
  }

  /** `heartbeat_interval` (seconds) → ms, within [5 s, 1 h]. */
  #interval(seconds: unknown): number {
    const ms = typeof seconds === 'number' && Number.isFinite(seconds) ? seconds * 1000 : 0;
    if (ms < REGISTRATION_MIN_HEARTBEAT_MS) {
      this.#log.warn({ heartbeatInterval: seconds }, 'heartbeat interval below 5 s; using 5 s');
      return REGISTRATION_MIN_HEARTBEAT_MS;
    }
    return Math.min(REGISTRATION_MAX_HEARTBEAT_MS, Math.round(ms));
  }
}

/** The request body: the reference's field names and order, empty fields left out. */
export function registrationBody(
  options: Pick<FleetRegistrationOptions, 'region' | 'backendPort' | 'stunPort'>,
): {
  region?: string;
  backendPort: number;
  services?: { stunPort: number };
} {
  return {
    ...(options.region === undefined || options.region === '' ? {} : { region: options.region }),
    backendPort: options.backendPort,
    ...(options.stunPort === undefined || options.stunPort === 0
      ? {}
      : { services: { stunPort: options.stunPort } }),
  };
}

/**
 * A `Retry-After` value (RFC 9110 §10.2.3: seconds, or an HTTP date) as a wait in ms from `now`, capped at
 * {@link REGISTRATION_MAX_RETRY_AFTER_MS}; `undefined` when absent, unreadable or not in the future.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (text === undefined || text === '') return undefined;
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return ms > 0 ? Math.min(ms, REGISTRATION_MAX_RETRY_AFTER_MS) : undefined;
}

/** Reads at most {@link REGISTRATION_MAX_RESPONSE_BYTES}; a string says why the body could not be read. */
function readBounded(res: IncomingMessage, done: (body: Buffer | string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (body: Buffer | string) => {
    if (finished) return;
    finished = true;
    done(body);
  };
  res.on('data', (chunk: Buffer) => {
    if (finished) return;
    size += chunk.length;
    if (size > REGISTRATION_MAX_RESPONSE_BYTES) {
      res.destroy();
      finish('reply too large');
      return;
    }
    chunks.push(chunk);
  });
  res.on('end', () => finish(Buffer.concat(chunks)));
  res.on('error', (err) => finish(err.message));
  res.on('close', () => finish('reply cut short'));
}

/** A reply body for a log line: at most 200 printable characters. */
function printable(body: Buffer): string {
  return body
    .toString('utf8')
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 200);
}

/** The URL without credentials or query (it may carry a token). */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
