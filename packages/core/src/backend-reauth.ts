/**
 * Periodic re-authentication of a current-era backend session (docs/protocol.md §1.10). When the registered
 * claims carry `reauth_interval_seconds` > 0, the hub challenges the backend every interval (plus up to a
 * fifth of it of random jitter) with `reauth_challenge`; the backend's text answer, a token bound to the new
 * nonce and repeating the registered sets, must arrive within `reauth_grace_seconds`. An
 * `authorizer_status_uri` is polled first: while it is unhealthy the round is deferred, up to the
 * maintenance cap. Any failure closes the session.
 */
import { randomInt } from 'node:crypto';
import { LogRateLimit } from '@nexus-proxy/common';
import type { TokenVerifier } from './auth.js';
import { checkAuthorizerStatus } from './authorizer-status.js';
import {
  type ClaimPolicy,
  type CurrentEraClaims,
  claimSetMismatch,
  parseCurrentClaims,
} from './current-claims.js';
import { AuthError } from './errors.js';
import { createChallengeNonce, encodeChallenge } from './hub-handshake.js';
import type { Logger } from './logger.js';

/** Default wait for a re-authentication answer when the claims name none: 10 s. */
export const DEFAULT_REAUTH_GRACE_SECONDS = 10;
/** Default cap on deferring rounds while the authorizer is unhealthy, seconds: 1 800. */
export const DEFAULT_MAINTENANCE_GRACE_SECONDS = 1_800;
/** Longest timer Node keeps (about 24.8 days); longer claimed durations are shortened to it. */
const MAX_TIMER_MS = 2_147_483_647;

/** Options of {@link BackendReauth}. */
export interface BackendReauthOptions {
  /** The claims the session registered with (stage 1). */
  claims: CurrentEraClaims;
  /** Verifies each answer (the hub's token verifier). */
  verifyToken: TokenVerifier;
  /** What answers may claim (the node's claim policy). */
  policy: ClaimPolicy;
  /** Deferral cap when the claims name none, seconds. Default: `1_800`. */
  maintenanceGraceDefaultSeconds?: number;
  /** Sends a challenge as a WebSocket text message. */
  sendText(text: string): void;
  /** Ends the session (policy close) with `reason`. */
  fail(reason: string): void;
  /** Whether the authorizer is healthy (HTTP 200). Default: {@link checkAuthorizerStatus}. */
  checkStatus?: (uri: string) => Promise<boolean>;
  /** Called after each successful round with the claims now registered. */
  renewed?: (claims: CurrentEraClaims) => void;
  logger: Logger;
}

/** The re-authentication loop of one session; {@link BackendReauth.stop} it when the session closes. */
export class BackendReauth {
  readonly #o: BackendReauthOptions;
  #claims: CurrentEraClaims;
  #timer: NodeJS.Timeout | undefined;
  /** The nonce of the challenge awaiting its answer. */
  #pendingNonce: string | undefined;
  /** Deferral already spent in this round, ms. */
  #maintenanceUsedMs = 0;
  #stopped = false;
  #rounds = 0;
  readonly #unexpectedLog: LogRateLimit;

  constructor(options: BackendReauthOptions) {
    this.#o = options;
    this.#claims = options.claims;
    this.#unexpectedLog = new LogRateLimit({
      perWindow: 1,
      windowMs: 10_000,
      onSuppressed: (_key, suppressed) =>
        options.logger.warn({ suppressed }, 'more unexpected text messages from the backend ignored'),
    });
  }

  /** The claims registered now (updated by each successful round). */
  get claims(): CurrentEraClaims {
    return this.#claims;
  }

  /** Whether a challenge awaits its answer. */
  get pending(): boolean {
    return this.#pendingNonce !== undefined;
  }

  /** Successful rounds so far. */
  get rounds(): number {
    return this.#rounds;
  }

  /** Schedule the first round (nothing when the claims ask for none). */
  start(): void {
    this.#schedule();
  }

  /** Clear every timer; later answers are ignored. Idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#pendingNonce = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#unexpectedLog.flush();
  }

  /** A text message from the backend: the answer to a pending challenge, else logged and ignored. */
  handleText(text: string): void {
    if (this.#stopped) return;
    const nonce = this.#pendingNonce;
    if (nonce === undefined) {
      if (this.#unexpectedLog.admit('text'))
        this.#o.logger.warn('ignoring a text message from the backend: no re-authentication is pending');
      return;
    }
    this.#pendingNonce = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#o.verifyToken(text.trim()).then(
      (payload) => {
        if (this.#stopped) return;
        try {
          this.#apply(parseCurrentClaims(payload, this.#o.policy), nonce);
        } catch (err) {
          this.#fail(AuthError.is(err) ? err.reason : 'authentication failed');
        }
      },
      (err: unknown) => {
        if (!this.#stopped) this.#fail(AuthError.is(err) ? err.reason : 'authentication failed');
      },
    );
  }

  #apply(next: CurrentEraClaims, nonce: string): void {
    if (next.sessionNonce !== nonce) throw new AuthError('re-authentication nonce mismatch');
    const current = this.#claims;
    const mismatch = claimSetMismatch(current, next, 'the registered set');
    if (mismatch !== undefined) throw new AuthError(mismatch);
    // The sets and the weight stay; the timing, status URI and policy version follow the new token.
    this.#claims = {
      ...current,
      reauthIntervalSeconds: next.reauthIntervalSeconds,
      reauthGraceSeconds: next.reauthGraceSeconds,
      maintenanceGraceCapSeconds: next.maintenanceGraceCapSeconds ?? current.maintenanceGraceCapSeconds,
      authorizerStatusUri: next.authorizerStatusUri,
      policyVersion: next.policyVersion,
      issuedAt: next.issuedAt,
      issuedAtQuote: next.issuedAtQuote,
      sessionNonce: next.sessionNonce,
    };
    this.#maintenanceUsedMs = 0;
    this.#rounds++;
    this.#o.logger.debug({ rounds: this.#rounds }, 'backend re-authenticated');
    this.#o.renewed?.(this.#claims);
    this.#schedule();
  }

  #fail(reason: string): void {
    this.#o.logger.warn({ reason }, 're-authentication failed: closing the session');
    this.stop();
    this.#o.fail(reason);
  }

  get #intervalMs(): number {
    const s = this.#claims.reauthIntervalSeconds ?? 0;
    return s > 0 ? Math.min(s * 1000, MAX_TIMER_MS) : 0;
  }

  #schedule(): void {
    const interval = this.#intervalMs;
    if (this.#stopped || interval === 0) return;
    this.#timer = setTimeout(() => this.#round(), Math.min(interval + jitter(interval), MAX_TIMER_MS));
  }

  #round(): void {
    this.#timer = undefined;
    const uri = this.#claims.authorizerStatusUri;
    if (uri === undefined) {
      this.#challenge();
      return;
    }
    const check = this.#o.checkStatus ?? checkAuthorizerStatus;
    check(uri).then(
      (healthy) => this.#afterStatus(healthy),
      () => this.#afterStatus(false),
    );
  }

  #afterStatus(healthy: boolean): void {
    if (this.#stopped) return;
    if (healthy) {
      this.#maintenanceUsedMs = 0;
      this.#challenge();
      return;
    }
    const capSeconds =
      this.#claims.maintenanceGraceCapSeconds ??
      this.#o.maintenanceGraceDefaultSeconds ??
      DEFAULT_MAINTENANCE_GRACE_SECONDS;
    const remaining = Math.min(capSeconds * 1000, MAX_TIMER_MS) - this.#maintenanceUsedMs;
    if (remaining <= 0) {
      this.#o.logger.warn('authorizer still unhealthy after the maintenance cap: re-authenticating anyway');
      this.#challenge();
      return;
    }
    const interval = this.#intervalMs;
    const delay = interval === 0 || interval > remaining ? remaining : interval;
    const wait = Math.min(delay + jitter(delay), remaining);
    this.#o.logger.info({ deferMs: wait }, 'authorizer unhealthy: deferring re-authentication');
    this.#timer = setTimeout(() => {
      this.#maintenanceUsedMs += wait;
      this.#round();
    }, wait);
  }

  #challenge(): void {
    if (this.#stopped) return;
    const nonce = createChallengeNonce();
    this.#pendingNonce = nonce;
    const graceSeconds = this.#claims.reauthGraceSeconds ?? 0;
    const graceMs = Math.min(
      (graceSeconds > 0 ? graceSeconds : DEFAULT_REAUTH_GRACE_SECONDS) * 1000,
      MAX_TIMER_MS,
    );
    this.#timer = setTimeout(() => {
      if (this.#pendingNonce === nonce) this.#fail('re-authentication timed out');
    }, graceMs);
    this.#o.sendText(encodeChallenge('reauth_challenge', nonce));
  }
}

/** Uniform random jitter in [0, base / 5), from crypto randomness; 0 when that range is empty. */
function jitter(baseMs: number): number {
  const span = Math.floor(baseMs / 5);
  return span >= 1 ? randomInt(0, span) : 0;
}
