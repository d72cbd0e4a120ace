// @nexus-proxy/common/config: the configuration machinery shared by the node's and the backend client's
// config files. A separate entry so that the runtime mechanisms (index.ts) never load yaml or valibot.
// Key paths, YAML with line numbers, "did you mean", the schema builders.
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
