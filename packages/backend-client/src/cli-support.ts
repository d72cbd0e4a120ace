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
export {
  type BackendSystemdUnitOptions,
  DEFAULT_BACKEND_SYSTEMD_UNIT_NAME,
  DEFAULT_BACKEND_SYSTEMD_USER,
  renderBackendSystemdUnit,
  SYSTEMD_SANDBOX,
} from './systemd-unit.js';
