// What both command lines share (`nexus-backend` here, `nexus-proxy` in the `nexus-proxy` package): the
// logger and the way failures are reported. Imported as `@nexus-proxy/backend-client/cli-support`.
export {
  debugRequested,
  DEBUG_ENV,
  describeFailure,
  describeWithStack,
  errorFields,
  isExpectedError,
  oneLine,
} from './cli-errors.js';
export {
  type CliLoggerOptions,
  createCliLogger,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  prettyStream,
  REDACTED_PATHS,
} from './cli-logger.js';
