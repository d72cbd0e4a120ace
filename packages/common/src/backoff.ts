/**
 * Reconnect backoff, for everything Nexus redials: the backend client's node connections and the mesh's
 * peer dialers. Jitter spreads a fleet that lost the same node (or peer) so it does not come back in step
 * (docs/reliability.md item 14).
 */

/** Reconnect backoff settings, validated by the caller's options. */
export interface BackoffSettings {
  /** First delay, ms. */
  initialDelayMs: number;
  /** Upper bound of the un-jittered delay, ms. */
  maxDelayMs: number;
  /** Growth per failed attempt (≥ 1). */
  factor: number;
  /** Relative jitter in [0, 1): the delay is scaled by a uniform factor in [1 − jitter, 1 + jitter]. */
  jitter: number;
}

/** Attempts counted at most: past it the delay is the cap anyway. */
const MAX_COUNTED_ATTEMPTS = 1_000;

/**
 * Delay before reconnect attempt number `attempt` (0-based):
 * `min(maxDelayMs, initialDelayMs · factor^attempt) · (1 + jitter · (2·random − 1))`.
 * With 1 s, ×2, 60 s, ±25 %, attempt 0 waits 0.75–1.25 s and attempt ≥ 6 waits 45–75 s.
 * `random` returns a number in [0, 1) (injected so tests are exact).
 */
export function computeBackoffDelay(
  attempt: number,
  settings: BackoffSettings,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, Math.floor(attempt));
  // Cap before multiplying: factor^attempt overflows to Infinity after ~1000 attempts with factor 2.
  const base = Math.min(settings.maxDelayMs, settings.initialDelayMs * settings.factor ** exponent);
  const scale = 1 + settings.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base * scale));
}

/** Attempt counter over {@link computeBackoffDelay}: `next()` yields the next delay, `reset()` starts over. */
export class Backoff {
  #attempt = 0;
  readonly #settings: BackoffSettings;
  readonly #random: () => number;

  constructor(settings: BackoffSettings, random: () => number = Math.random) {
    this.#settings = settings;
    this.#random = random;
  }

  /** Failed attempts since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** Delay for the next attempt, ms; advances the counter. */
  next(): number {
    const delay = computeBackoffDelay(this.#attempt, this.#settings, this.#random);
    if (this.#attempt < MAX_COUNTED_ATTEMPTS) this.#attempt++;
    return delay;
  }

  /** Starts over from `initialDelayMs` (after a session stayed up long enough). */
  reset(): void {
    this.#attempt = 0;
  }
}
