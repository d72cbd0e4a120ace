/**
 * Liveness of one WebSocket, for every long-lived link Nexus keeps: the hub's backend sessions, the
 * backend client's node connections (docs/protocol.md §1.6) and the mesh's peer links (§2.5). A socket
 * whose far end vanished without a FIN never errors by itself (a black-holed route, a powered-off
 * device: docs/reliability.md item 13), so each end pings and counts the silence.
 */

/** Timing of a {@link Keepalive}, ms. */
export interface KeepaliveTiming {
  /** Ping interval; `0` turns the keepalive off (no pings, and no deadline: silence proves nothing then). */
  intervalMs: number;
  /** Silence (no message, no pong) after which the link is dead; `0` = pings without a deadline. */
  timeoutMs: number;
}

/** Callbacks of a {@link Keepalive}. */
export interface KeepaliveHooks {
  /** Sends one WebSocket ping (never called once the deadline has passed). */
  ping(): void;
  /**
   * Nothing arrived for `timeoutMs` (`silentForMs` ≥ it): the link is dead (black-holed, or the far end
   * vanished). Called once.
   */
  onTimeout(silentForMs: number): void;
  /**
   * True while the owner deliberately stopped reading the link (backpressure): the far end's pongs then
   * wait unread, so the silence is the owner's doing and the deadline is pushed back instead of firing.
   */
  suspended?(): boolean;
}

/**
 * Pings every `intervalMs`; when no message and no pong arrived for `timeoutMs`, stops and calls
 * `onTimeout` once. The owner calls {@link Keepalive.markAlive} for everything it receives, so that only
 * stores a timestamp: the deadline timer re-arms itself lazily when it fires early instead of being
 * reset per message, and a ping tick past the deadline ends the link instead of pinging.
 */
export class Keepalive {
  #intervalMs: number;
  #timeoutMs: number;
  readonly #hooks: KeepaliveHooks;
  #lastSeen = Date.now();
  #started = false;
  #pingTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;

  constructor(timing: KeepaliveTiming, hooks: KeepaliveHooks) {
    this.#intervalMs = timing.intervalMs;
    this.#timeoutMs = timing.timeoutMs;
    this.#hooks = hooks;
  }

  /** Whether the keepalive is started (and has not timed out or been stopped). */
  get running(): boolean {
    return this.#started;
  }

  /** Starts pinging; the link counts as alive now. */
  start(): void {
    this.stop();
    this.#started = true;
    this.#lastSeen = Date.now();
    this.#arm();
  }

  /** Records that something (a message, a ping or a pong) arrived, at `now` (ms since the epoch). */
  markAlive(now: number = Date.now()): void {
    this.#lastSeen = now;
  }

  /**
   * Replaces the timing (an omitted field is kept). The ping timer restarts when the interval changes;
   * silence already counted toward the deadline still counts.
   */
  setTiming(timing: Partial<KeepaliveTiming>): void {
    const intervalMs = timing.intervalMs ?? this.#intervalMs;
    const timeoutMs = timing.timeoutMs ?? this.#timeoutMs;
    if (intervalMs === this.#intervalMs && timeoutMs === this.#timeoutMs) return;
    const restartPings = intervalMs !== this.#intervalMs;
    this.#intervalMs = intervalMs;
    this.#timeoutMs = timeoutMs;
    if (!this.#started) return;
    if (restartPings) {
      this.#clearTimers();
      this.#arm();
      return;
    }
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    this.#armDeadlineFromSilence();
  }

  /** Stops every timer; idempotent. */
  stop(): void {
    this.#started = false;
    this.#clearTimers();
  }

  #clearTimers(): void {
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer);
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    this.#pingTimer = undefined;
    this.#deadlineTimer = undefined;
  }

  #arm(): void {
    if (this.#intervalMs <= 0) return;
    this.#pingTimer = setInterval(() => {
      if (!this.#expired()) this.#hooks.ping();
    }, this.#intervalMs);
    this.#armDeadlineFromSilence();
  }

  /** Arms the deadline for what is left of `timeoutMs` since the last sign of life (pings must be on). */
  #armDeadlineFromSilence(): void {
    if (this.#intervalMs <= 0 || this.#timeoutMs <= 0) return;
    this.#armDeadline(Math.max(0, this.#timeoutMs - (Date.now() - this.#lastSeen)));
  }

  #armDeadline(delayMs: number): void {
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = undefined;
      if (!this.#expired()) this.#armDeadlineFromSilence();
    }, delayMs);
  }

  /** Whether the deadline has passed; if so, stops and reports the timeout (once). */
  #expired(): boolean {
    if (this.#timeoutMs <= 0) return false;
    if (this.#hooks.suspended?.()) this.#lastSeen = Date.now();
    const silentForMs = Date.now() - this.#lastSeen;
    if (silentForMs < this.#timeoutMs) return false;
    this.stop();
    this.#hooks.onTimeout(silentForMs);
    return true;
  }
}
