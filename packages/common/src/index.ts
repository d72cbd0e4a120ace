// @nexus-proxy/common: one home for the mechanisms that the node (@nexus-proxy/core) and the backend
// client (@nexus-proxy/backend-client) both need. See docs/architecture.md, "Shared mechanisms".
export { Backoff, type BackoffSettings, computeBackoffDelay } from './backoff.js';
export { DEFAULT_HUB_PORT, DEFAULT_PEER_PORT, HUB_PATH, MESH_PATH } from './endpoints.js';
export { Keepalive, type KeepaliveHooks, type KeepaliveTiming } from './keepalive.js';
export { type LogFn, type Logger, type LogLevel, noopLogger } from './logger.js';
export { REJECT_UPGRADE_GRACE_MS, rejectUpgrade } from './reject-upgrade.js';
export { createWsFrameWriter, type WsFrameWriter } from './ws-frame-writer.js';
export {
  checkWsInternals,
  WS_INTERNALS_VERSION,
  type WsInternals,
  wsInternals,
} from './ws-internals.js';

// Configuration: key paths, YAML with line numbers, "did you mean", the schema builders.
export { type ConfigIssueKind, ConfigIssue, type ConfigLocation } from './config-issue.js';
export { describeValue, formatPath, type PathSegment, splitPath } from './config-path.js';
export {
  type AnySchema,
  byKind,
  ConvertIssue,
  configJsonSchema,
  convert,
  type DetailFor,
  flag,
  ignoredKeys,
  integer,
  type JsonSchemaInfo,
  list,
  mapping,
  nonEmptyText,
  type Output,
  type Parsed,
  oneOf,
  optional,
  required,
  text,
  validate,
} from './config-schema.js';
export { didYouMean, unknownKeyDetail } from './config-suggest.js';
export { deepFreeze, isMapping, present, presentKeys, resolveFrom } from './config-values.js';
export {
  locateIssue,
  MAX_YAML_ALIAS_COUNT,
  nodeAt,
  parseYamlConfig,
  type YamlConfigDocument,
} from './config-yaml.js';
