// The CLI's logger is the one both command lines share (`@nexus-proxy/backend-client/cli-support`): one
// readable line per event on a terminal, JSON lines otherwise or with `--log-format json`.
export {
  type CliLoggerOptions,
  createCliLogger,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  REDACTED_PATHS,
} from '@nexus-proxy/backend-client/cli-support';
