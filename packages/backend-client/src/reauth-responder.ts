/**
 * The backend's answers to the hub's `reauth_challenge` frames (docs/protocol.md §1.10), bounded against a
 * hub that asks too often: each answer costs a run of the token provider (for a device, its attestor), so
 * a hostile hub must not be able to keep it running.
 *
 * - One token is issued at a time, and a new one is not started sooner than
 *   {@link REAUTH_MIN_SPACING_MS} after the previous answer was sent (the provider runs at most about
 *   once a second per session, whatever the hub sends).
 * - A challenge that arrives while an answer is being issued or waits replaces the waiting one: the
 *   newest nonce is the one answered, once the spacing allows.
 * - A challenge is *early* when it arrives while an answer is still being issued or waits, or less than
 *   half the spacing after the previous answer was sent. A reference hub never sends one: it schedules its
 *   next round at least `reauth_interval_seconds` (≥ 1 s) after it received the previous answer, so its
 *   challenges arrive on time and are answered at once. After {@link MAX_EARLY_REAUTH_CHALLENGES} early
 *   challenges in a row the hub is flooding: the session is closed (`flooded`).
 */
import { type AttestationContext, type Challenge, issueStage, parseChallenge } from './attestation.js';
import { BackendClientError, type HandshakeError, SessionError, TokenError } from './errors.js';

/** Least time between sending one re-authentication answer and starting to issue the next, ms. */
export const REAUTH_MIN_SPACING_MS = 1_000;
/** Early challenges in a row (see the module comment) after which the session is closed. */
export const MAX_EARLY_REAUTH_CHALLENGES = 8;

/** Callbacks of a {@link ReauthResponder}. */
export interface ReauthResponderHooks {
  /** Sends the answer (a text frame). */
  send(token: string): void;
  /** Issuing the answer failed, or the hub sent an unusable challenge: end the session. */
  fail(err: BackendClientError): void;
  /** The hub sent challenges faster than any reference hub does, past the limit: end the session. */
  flooded(err: SessionError): void;
  /** An answer was sent. */
  answered(): void;
  /** A text frame that is not a reauth challenge (ignored). */
  ignored(detail: string): void;
}

/** Answers the `reauth_challenge` frames of one session (see the module comment for the bounds). */
export class ReauthResponder {
  readonly #context: AttestationContext;
  readonly #hooks: ReauthResponderHooks;
  #busy = false;
  /** The nonce waiting for an answer (the newest one). */
  #next: string | undefined;
  /** Waits out the spacing before the next answer. */
  #timer: NodeJS.Timeout | undefined;
  /** `performance.now()` when the last answer was sent. */
  #lastSentAt = Number.NEGATIVE_INFINITY;
  #early = 0;
  #stopped = false;

  constructor(context: AttestationContext, hooks: ReauthResponderHooks) {
    this.#context = context;
    this.#hooks = hooks;
  }

  /** A text frame from the hub. */
  onText(data: Buffer): void {
    if (this.#stopped) return;
    let challenge: Challenge;
    try {
      challenge = parseChallenge(data);
    } catch (err) {
      // An unusable reauth challenge ends the session (the hub would close it anyway); other noise is ignored.
      const problem = err as HandshakeError;
      if (problem.challengeType === 'reauth_challenge') this.#fail(problem);
      else this.#hooks.ignored(problem.message);
      return;
    }
    if (challenge.type !== 'reauth_challenge') {
      this.#hooks.ignored(`unexpected ${JSON.stringify(challenge.type.slice(0, 64))} after the handshake`);
      return;
    }
    const sinceAnswer = performance.now() - this.#lastSentAt;
    if (this.#busy || this.#next !== undefined || sinceAnswer < REAUTH_MIN_SPACING_MS / 2) {
      this.#early++;
      if (this.#early > MAX_EARLY_REAUTH_CHALLENGES) {
        this.stop();
        this.#hooks.flooded(
          new SessionError(
            `the hub sent ${this.#early} reauth_challenge frames in a row before its previous one was answered or within ${REAUTH_MIN_SPACING_MS / 2} ms of the answer`,
          ),
        );
        return;
      }
    } else {
      this.#early = 0;
    }
    this.#next = challenge.nonce;
    this.#pump();
  }

  /** The session ended: answers still being issued or waiting are dropped. */
  stop(): void {
    this.#stopped = true;
    this.#next = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Starts issuing the waiting answer when nothing is being issued and the spacing has passed. */
  #pump(): void {
    if (this.#stopped || this.#busy || this.#timer !== undefined || this.#next === undefined) return;
    // At most the spacing, even if the clock misbehaves.
    const wait = Math.min(
      REAUTH_MIN_SPACING_MS,
      this.#lastSentAt + REAUTH_MIN_SPACING_MS - performance.now(),
    );
    if (wait > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#pump();
      }, wait);
      return;
    }
    const nonce = this.#next;
    this.#next = undefined;
    this.#busy = true;
    issueStage(this.#context, 'reauth', nonce).then(
      ({ token }) => {
        this.#busy = false;
        if (this.#stopped) return;
        this.#lastSentAt = performance.now();
        this.#hooks.send(token);
        this.#hooks.answered();
        this.#pump();
      },
      (err: unknown) => {
        this.#busy = false;
        this.#fail(BackendClientError.is(err) ? err : new TokenError(String(err)));
      },
    );
  }

  #fail(err: BackendClientError): void {
    if (this.#stopped) return;
    this.stop();
    this.#hooks.fail(err);
  }
}
