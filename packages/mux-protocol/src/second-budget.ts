/**
 * A count of events allowed per one-second window: the engine's bounds on close answers to DATA for unknown
 * stream ids (§1.4) and on empty DATA frames (§1.3). Fixed windows: the first event a second or more after
 * the window began starts the next one.
 */
export class SecondBudget {
  readonly limit: number;
  readonly #now: () => number;
  #windowStart = 0;
  #used = 0;

  constructor(limit: number, now: () => number) {
    this.limit = limit;
    this.#now = now;
  }

  /** Takes one event from this second's budget: false, and nothing taken, once it is spent. */
  take(): boolean {
    const now = this.#now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#used = 0;
    }
    if (this.#used >= this.limit) return false;
    this.#used++;
    return true;
  }
}
