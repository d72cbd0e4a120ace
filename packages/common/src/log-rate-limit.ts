/**
 * A rate limit for a repeated log line, so a flood of the same event cannot flood the log: per key (e.g. a
 * refusal reason), at most `perWindow` lines in each window of `windowMs`; the events past that are counted,
 * and the count is handed to `onSuppressed` when the window ends (or at {@link LogRateLimit.flush}).
 */

/** Settings of a {@link LogRateLimit}. */
export interface LogRateLimitOptions {
  /** Lines admitted per key and window. Default: 10. */
  perWindow?: number;
  /** Window length, ms. Default: 1 000. */
  windowMs?: number;
  /** Keys tracked at once; events for further keys are counted under {@link OTHER_KEY}. Default: 32. */
  maxKeys?: number;
  /** Called once per key and window in which lines were suppressed, with their number. */
  onSuppressed(key: string, suppressed: number): void;
}

/** The key that events for keys past `maxKeys` are counted under. */
export const OTHER_KEY = 'other';

interface Window {
  admitted: number;
  suppressed: number;
  timer: NodeJS.Timeout;
}

/** Admits or counts one log line per event; see the module comment. */
export class LogRateLimit {
  readonly #perWindow: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #onSuppressed: (key: string, suppressed: number) => void;
  readonly #windows = new Map<string, Window>();

  constructor(options: LogRateLimitOptions) {
    this.#perWindow = options.perWindow ?? 10;
    this.#windowMs = options.windowMs ?? 1_000;
    this.#maxKeys = options.maxKeys ?? 32;
    this.#onSuppressed = options.onSuppressed;
  }

  /** Whether to write the line for one event of `key` (otherwise it is counted as suppressed). */
  admit(key: string): boolean {
    let k = key;
    let window = this.#windows.get(k);
    if (window === undefined && this.#windows.size >= this.#maxKeys) {
      k = OTHER_KEY;
      window = this.#windows.get(k);
    }
    if (window === undefined) {
      const timer = setTimeout(() => this.#end(k), this.#windowMs);
      timer.unref();
      window = { admitted: 0, suppressed: 0, timer };
      this.#windows.set(k, window);
    }
    if (k === key && window.admitted < this.#perWindow) {
      window.admitted++;
      return true;
    }
    window.suppressed++;
    return false;
  }

  /** Ends every window now: reports what each suppressed, and stops the timers (e.g. at shutdown). */
  flush(): void {
    for (const key of [...this.#windows.keys()]) this.#end(key);
  }

  #end(key: string): void {
    const window = this.#windows.get(key);
    if (window === undefined) return;
    clearTimeout(window.timer);
    this.#windows.delete(key);
    if (window.suppressed > 0) this.#onSuppressed(key, window.suppressed);
  }
}
