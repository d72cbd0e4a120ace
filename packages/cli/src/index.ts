// Programmatic entry points of the `nexus-proxy` CLI (the binary is `dist/cli.js`).
export { renderConfigTemplate, writeConfigTemplate } from './init.js';
export { type CliLoggerOptions, createCliLogger, type LogFormat, REDACTED_PATHS } from './logger.js';
export { createProgram, runCli, VERSION } from './program.js';
export { EMBEDDED_PORTS, embeddedConfig, type RunningNode, type ServeOptions, serve } from './serve.js';
export { DEFAULT_STATE_DIR, ensureNodeState, type NodeState } from './state.js';
