/**
 * The logger of both command lines (`nexus-backend` here, `nexus-proxy` in the `nexus-proxy` package):
 * one readable line per event on a terminal, JSON lines otherwise, `--log-format json|pretty` to choose.
 * The readable form is pino-pretty (pino's own formatter) used as a synchronous stream on stderr, not
 * as a worker-thread transport: a line written just before the process exits is never lost, and only a
 * person at a terminal pays for the formatting.
 */
import pino, { type DestinationStream, type Logger as PinoLogger } from 'pino';
import pretty from 'pino-pretty';

/** Output format of the logs. `auto`: readable lines on a terminal, JSON lines otherwise. */
export type LogFormat = 'auto' | 'pretty' | 'json';

/** The values `--log-format` takes. */
export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'pretty', 'json'];

/** The values `--log-level` takes. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export interface CliLoggerOptions {
  /** pino level. Default: `info`. */
  level?: string;
  /** Default: `auto`. */
  format?: LogFormat;
  /** Write JSON lines here instead of stderr (embedding, tests); `format` is then ignored. */
  destination?: DestinationStream;
  /** Whether stderr is a terminal (tests). Default: `process.stderr.isTTY`. */
  isTerminal?: boolean;
  /** pino's `name` field of every line, e.g. `nexus-backend`. Default: none. */
  name?: string;
}

/** Fields that must never reach a log line (tokens and secrets). */
export const REDACTED_PATHS = [
  'token',
  'authToken',
  'secret',
  'backendsJWTSecret',
  'backendsJWTSecrets',
  '*.token',
  '*.authToken',
  '*.secret',
];

/**
 * Creates a CLI's pino logger, writing to stderr. The machine's name is pino's `hostname` field (JSON
 * only); a routed name is logged as `host`, so the two never collide.
 */
export function createCliLogger(options: CliLoggerOptions = {}): PinoLogger {
  const level = options.level ?? 'info';
  const format = options.format ?? 'auto';
  const terminal = options.isTerminal ?? process.stderr.isTTY === true;
  const settings = {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    ...(options.name !== undefined ? { name: options.name } : {}),
  };
  if (options.destination !== undefined) return pino(settings, options.destination);
  if (format === 'pretty' || (format === 'auto' && terminal)) {
    return pino(settings, prettyStream(2, terminal));
  }
  return pino(settings, pino.destination({ dest: 2, sync: false }));
}

/**
 * The readable form: `12:00:01.234 INFO  stream closed {"host":"app.example.com",…}`, one line per event
 * (an error's stack, shown with `--debug`, follows on its own lines).
 */
export function prettyStream(
  destination: number | NodeJS.WritableStream,
  colorize: boolean,
): DestinationStream {
  return pretty({
    destination,
    sync: true,
    colorize,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,name',
  });
}
