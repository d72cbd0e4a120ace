/**
 * The logger interface the node and the backend client accept: a subset of pino's, so a pino logger can
 * be passed as is; the default is {@link noopLogger}. Components derive a scoped logger with
 * `logger.child({ component: 'hub' })`.
 */

/** Severity levels, lowest first (pino's names). */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** A log method: `log(obj, msg?)` or `log(msg)` (pino call shapes). */
export interface LogFn {
  (obj: object, msg?: string, ...args: unknown[]): void;
  (msg: string, ...args: unknown[]): void;
}

/** Pino-compatible logger. */
export interface Logger {
  /** Per-frame detail. Optional: guard hot paths with `isLevelEnabled?.('trace')`. */
  trace?: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /** A logger that adds `bindings` to every line. */
  child(bindings: Record<string, unknown>): Logger;
  /** Whether `level` would be written; absent means "assume yes". */
  isLevelEnabled?(level: LogLevel | string): boolean;
}

const noop = (): void => {};

/** A logger that discards everything. `child()` returns itself. */
export const noopLogger: Logger = Object.freeze({
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child(): Logger {
    return noopLogger;
  },
  isLevelEnabled(): boolean {
    return false;
  },
});
