/** Callbacks of a {@link Keepalive}. */
export interface KeepaliveHooks {
  /** Sends one WebSocket ping. */
  ping(): void;
  /** Nothing arrived for `timeoutMs`: the link is dead (black-holed, or the far end vanished). */
  onTimeout(): void;
  /**
   * True while we deliberately stopped reading the link (backpressure): silence is then our doing, so the
   * deadline is pushed back instead of firing.
   */
  suspended?(): boolean;
}

/**
 * Session liveness for the backend side (docs/protocol.md §1.6): ping every `intervalMs`; when no message
 * and no pong arrived for `timeoutMs`, call `onTimeout` once. A socket whose far end vanished without a
 * FIN never errors by itself (docs/reliability.md item 13), so this is what detects it.
 *
 * `markAlive()` runs for every received message, so it only stores a timestamp; the deadline timer
 * re-arms itself lazily when it fires early instead of being reset per message.
 */
export class Keepalive {
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #hooks: KeepaliveHooks;
  #lastSeen = 0;
  #pingTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;

  constructor(options: { intervalMs: number; timeoutMs: number }, hooks: KeepaliveHooks) {
    this.#intervalMs = options.intervalMs;
    this.#timeoutMs = options.timeoutMs;
    this.#hooks = hooks;
  }

  /** Whether the timers are running. */
  get running(): boolean {
    return this.#deadlineTimer !== undefined;
  }

  /** Starts pinging; the link counts as alive now. */
  start(): void {
    this.stop();
    this.#lastSeen = Date.now();
    this.#pingTimer = setInterval(() => this.#hooks.ping(), this.#intervalMs);
    this.#armDeadline(this.#timeoutMs);
  }

  /** Records that something (message or pong) arrived. */
  markAlive(): void {
    this.#lastSeen = Date.now();
  }

  /** Stops every timer; idempotent. */
  stop(): void {
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer);
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    this.#pingTimer = undefined;
    this.#deadlineTimer = undefined;
  }

  #armDeadline(delayMs: number): void {
    this.#deadlineTimer = setTimeout(() => {
      if (this.#hooks.suspended?.()) this.#lastSeen = Date.now();
      const silentFor = Date.now() - this.#lastSeen;
      if (silentFor >= this.#timeoutMs) {
        this.stop();
        this.#hooks.onTimeout();
      } else {
        this.#armDeadline(this.#timeoutMs - silentFor);
      }
    }, delayMs);
  }
}
