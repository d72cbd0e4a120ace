// Programmatic entry points of the `nexus-proxy` CLI (the binary is `bin/nexus-proxy.js`, which loads `dist/cli.js`).
export {
  type ConfigTemplateOptions,
  DEFAULT_CONFIG_DIR,
  DEFAULT_NODE_STATE_DIR,
  renderConfigTemplate,
  writeConfigTemplate,
} from './init.js';
export {
  checkHostnameDns,
  checkInitHostname,
  type InitFlags,
  type InitOptions,
  type InitResult,
  resolveInitOptions,
  runInit,
} from './installer.js';
export { type CliLoggerOptions, createCliLogger, type LogFormat, REDACTED_PATHS } from './logger.js';
export { createProgram, runCli } from './program.js';
export { VERSION } from './version.js';
export { EMBEDDED_PORTS, embeddedConfig, type RunningNode, type ServeOptions, serve } from './serve.js';
export { DEFAULT_STATE_DIR, ensureNodeState, type NodeState } from './state.js';
export { type AdminServer, type AdminServerOptions, createAdminServer } from './admin.js';
export {
  createDashboard,
  type Dashboard,
  type DashboardOptions,
  type DashboardStatus,
  DEFAULT_DASHBOARD_HISTORY_POINTS,
  DEFAULT_DASHBOARD_MAX_CLIENT_BUFFER,
  DEFAULT_DASHBOARD_MAX_CLIENTS,
  DEFAULT_DASHBOARD_MAX_ROWS,
  DEFAULT_DASHBOARD_PUSH_MS,
  DEFAULT_DASHBOARD_SAMPLE_MS,
  type ThroughputSample,
} from './dashboard.js';
export {
  createNexusMetrics,
  DEFAULT_MAX_REASON_LABELS,
  DEFAULT_MAX_ROUTE_LABELS,
  type NexusMetrics,
  type NexusMetricsOptions,
  type NexusTotals,
  type OpenStreamInfo,
  OTHER_LABEL,
  STREAM_DURATION_BUCKETS,
} from './metrics.js';
export {
  buildStatus,
  DEFAULT_ADMIN_ADDRESS,
  DEFAULT_STATUS_MAX_STREAMS,
  DEFAULT_STATUS_TIMEOUT_MS,
  fetchStatus,
  formatStatus,
  formatTable,
  nodeReadiness,
  parseAdminAddress,
  type Readiness,
  type StatusSnapshot,
  type StatusSources,
} from './status.js';
export {
  DEFAULT_SYSTEMD_CONFIG_FILE,
  DEFAULT_SYSTEMD_TIMEOUT_STOP_SECONDS,
  DEFAULT_SYSTEMD_UNIT_FILE,
  DEFAULT_SYSTEMD_UNIT_NAME,
  DEFAULT_SYSTEMD_USER,
  renderSystemdUnit,
  type SystemdUnitOptions,
  writeSystemdUnit,
} from './systemd.js';
