/** A pino-compatible logger that keeps every line, for asserting log output. */
import type { Logger } from '@nexus-proxy/core';

/** One line a {@link recordingLogger} received. */
export interface LogLine {
  level: string;
  msg: string;
  /** The line's fields, with the bindings of the child loggers it went through. */
  fields: Record<string, unknown>;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type RecordedLevel = (typeof LEVELS)[number];

/**
 * Keeps every line at `level` or above in `lines`, with its child bindings; prints nothing. Below `level`
 * the logger says so (`isLevelEnabled`), so hot paths skip their per-frame lines, as under pino.
 */
export function recordingLogger(
  lines: LogLine[] = [],
  level: RecordedLevel = 'trace',
): Logger & { lines: LogLine[] } {
  const min = LEVELS.indexOf(level);
  const enabled = (l: string): boolean => LEVELS.indexOf(l as RecordedLevel) >= min;
  const make = (bindings: Record<string, unknown>): Logger => {
    const at =
      (l: RecordedLevel) =>
      (a: unknown, b?: unknown): void => {
        if (!enabled(l)) return;
        const fields = typeof a === 'object' && a !== null ? (a as Record<string, unknown>) : {};
        const msg = typeof a === 'string' ? a : typeof b === 'string' ? b : '';
        lines.push({ level: l, msg, fields: { ...bindings, ...fields } });
      };
    return {
      trace: at('trace'),
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      isLevelEnabled: enabled,
      child: (more) => make({ ...bindings, ...more }),
    };
  };
  return Object.assign(make({}), { lines });
}
