/**
 * The far end not reading what the engine answers (docs/security.md): when the transport's queue passes
 * `limit`, reading from the far end pauses (nothing it sends can make us queue more); when it stays
 * above the limit for `graceMs`, the session is given up.
 */
export interface BacklogWatchHooks {
  /** Bytes queued on the transport now. */
  buffered(): number;
  /** Reading should pause or resume: {@link BacklogWatch.high} changed. */
  changed(): void;
  /** The grace ran out and the queue had drained meanwhile (a missed drain): serve what waits. */
  recovered(): void;
  /** The grace ran out with the queue still above the limit. */
  expired(buffered: number): void;
}

export class BacklogWatch {
  readonly #limit: number;
  readonly #graceMs: number;
  readonly #hooks: BacklogWatchHooks;
  #high = false;
  #timer: NodeJS.Timeout | undefined;
  #pauses = 0;

  constructor(limit: number, graceMs: number, hooks: BacklogWatchHooks) {
    this.#limit = limit;
    this.#graceMs = graceMs;
    this.#hooks = hooks;
  }

  /** The queue is above the limit: reading stays paused until it drains. */
  get high(): boolean {
    return this.#high;
  }

  /** Times the queue went over the limit. */
  get pauses(): number {
    return this.#pauses;
  }

  /** After something was queued: starts the grace when the queue went over the limit. */
  queued(): void {
    if (this.#high || this.#hooks.buffered() <= this.#limit) return;
    this.#high = true;
    this.#pauses++;
    this.#hooks.changed();
    this.#timer = setTimeout(() => this.#expire(), this.#graceMs);
    this.#timer.unref?.();
  }

  /** After the transport drained: ends the pause when the queue is back under the limit. */
  drained(): void {
    if (this.#high && this.#hooks.buffered() <= this.#limit) this.#fell();
  }

  /** The session closed: no pause, no timer (does not call `changed`). */
  stop(): void {
    this.#high = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #fell(): void {
    this.stop();
    this.#hooks.changed();
  }

  #expire(): void {
    this.#timer = undefined;
    // A drain may have been missed: look again before giving up.
    const buffered = this.#hooks.buffered();
    if (buffered <= this.#limit) {
      this.#fell();
      this.#hooks.recovered();
      return;
    }
    this.#hooks.expired(buffered);
  }
}
