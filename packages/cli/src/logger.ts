import pino, { type DestinationStream, type Logger as PinoLogger } from 'pino';

/** Output format of the CLI's logs. `auto`: human-readable on a TTY, JSON lines otherwise. */
export type LogFormat = 'auto' | 'pretty' | 'json';

export interface CliLoggerOptions {
  /** pino level. Default: `info`. */
  level?: string;
  /** Default: `auto`. */
  format?: LogFormat;
  /** Write JSON lines here instead of stderr (embedding, tests); `format` is then ignored. */
  destination?: DestinationStream;
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

/** Creates the CLI's pino logger (pretty on a TTY unless `--log-format json`), writing to stderr. */
export function createCliLogger(options: CliLoggerOptions = {}): PinoLogger {
  const level = options.level ?? 'info';
  const format = options.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  const redact = { paths: REDACTED_PATHS, censor: '[redacted]' };
  if (options.destination !== undefined) return pino({ level, redact }, options.destination);
  if (pretty) {
    return pino({
      level,
      redact,
      transport: {
        target: 'pino-pretty',
        options: {
          destination: 2,
          colorize: process.stderr.isTTY === true,
          translateTime: 'HH:MM:ss.l',
          ignore: 'pid,hostname',
        },
      },
    });
  }
  return pino({ level, redact }, pino.destination({ dest: 2, sync: false }));
}
