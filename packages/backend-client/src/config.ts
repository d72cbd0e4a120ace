/**
 * The backend client's configuration file: the reference client's YAML format unchanged (docs/protocol.md §6.2)
 * plus a few keys of our own. `resolveBackendClientConfig(doc)` validates a parsed document and returns a
 * frozen structure; `loadBackendClientConfig(file)` reads the YAML. Errors are
 * {@link InvalidOptionsError}s naming the field path (`backends[0].portMappings.443.hosts`).
 *
 * ```yaml
 * backends:
 *   - name: edge-apps
 *     hostnames: ["app.example.com", "*.preview.example.com"]
 *     nexusAddresses: ["wss://nexus-1.example.com:8443/connect"]
 *     authToken: "eyJhbGciOiJIUzI1NiJ9…"
 *     portMappings:
 *       443: { default: "localhost:8443", hosts: { "*.preview.example.com": "localhost:10443" } }
 *       80: "localhost:8080"
 *     healthChecks: { enabled: true, inactivityTimeout: 60, pongTimeout: 5 }
 * ```
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  ConfigIssue,
  deepFreeze,
  locateIssue,
  type Output,
  parseYamlConfig,
  presentKeys,
  resolveFrom,
  validate,
  type YamlConfigDocument,
} from '@nexus-proxy/common/config';
import {
  backendClientConfigSchema,
  type backendSchema,
  detailOf,
  UNSUPPORTED_BACKEND_KEYS,
} from './config-schema.js';
import { InvalidOptionsError } from './errors.js';
import { type ResolvedPortMappings, resolvePortMappings } from './port-mappings.js';

export { backendClientConfigJsonSchema, parseDuration } from './config-schema.js';

/** Health-check idle time before `ping_client`, seconds (reference default). */
export const DEFAULT_HEALTH_CHECK_INACTIVITY_TIMEOUT_SECONDS = 60;
/** Health-check wait for `pong_client`, seconds (reference default). */
export const DEFAULT_HEALTH_CHECK_PONG_TIMEOUT_SECONDS = 5;

/** A duration: a number of seconds (reference) or a Go-style duration string (`"60s"`, `"1m30s"`, `"500ms"`). */
export type DurationInput = number | string;

/** One backend block as written. */
export interface BackendConfigInput {
  /** (reference) Unique name, used in logs. Required. */
  name: string;
  /** (reference) Hostnames (and `*.suffix` wildcards) this backend serves. Informational: the token decides. */
  hostnames?: string[];
  /** (reference, legacy) A single hostname, used when `hostnames` is empty. */
  hostname?: string;
  /** (reference) Hub addresses: `wss://node:8443/connect` or `node:8443`. At least one. */
  nexusAddresses: string[];
  /** (reference) The backend JWT. This or `authTokenFile` is required. */
  authToken?: string;
  /** A file holding the backend JWT, re-read before every (re)connect so it can be rotated. */
  authTokenFile?: string;
  /** (reference) Weight advertised in minted tokens; ≤ 0 → 1. Default: `1`. */
  weight?: number;
  /** (reference) Relay port → local target(s). At least one. */
  portMappings: Record<string | number, unknown>;
  /** (reference) Per-stream health checks. */
  healthChecks?: { enabled?: boolean; inactivityTimeout?: DurationInput; pongTimeout?: DurationInput };
  /** CA bundle (PEM file) to trust for the hubs' certificates. Default: Node's root store. */
  caFile?: string;
}

/** The whole document as written. */
export interface BackendClientConfigInput {
  backends: BackendConfigInput[];
}

/** One backend after validation. */
export interface ResolvedBackendConfig {
  readonly name: string;
  /** Normalised, de-duplicated patterns. */
  readonly hostnames: readonly string[];
  /** Normalised hub URLs (`wss://host:port/connect`). */
  readonly nexusAddresses: readonly string[];
  readonly authToken: string | undefined;
  /** Absolute when loaded from a file. */
  readonly authTokenFile: string | undefined;
  readonly weight: number;
  readonly portMappings: ResolvedPortMappings;
  readonly healthChecks: {
    readonly enabled: boolean;
    /** ms */
    readonly inactivityTimeoutMs: number;
    /** ms */
    readonly pongTimeoutMs: number;
  };
  readonly caFile: string | undefined;
}

/** The validated document. Frozen. */
export interface ResolvedBackendClientConfig {
  readonly backends: readonly ResolvedBackendConfig[];
  /** Non-fatal problems (ignored reference keys…). Log them. */
  readonly warnings: readonly string[];
}

/** Options of {@link resolveBackendClientConfig}. */
export interface ResolveBackendClientConfigOptions {
  /** Directory relative file paths (`caFile`, `authTokenFile`) are resolved against. Default: kept as written. */
  baseDir?: string;
}

function resolveBackend(
  b: Output<typeof backendSchema>,
  raw: Record<string, unknown>,
  at: string,
  baseDir: string | undefined,
  warnings: string[],
): ResolvedBackendConfig {
  for (const key of presentKeys(raw, UNSUPPORTED_BACKEND_KEYS)) {
    warnings.push(`${at}.${key} is a reference setting this client does not support; it is ignored`);
  }
  if (b.name === undefined) throw new ConfigIssue(`${at}.name`, 'is required');
  const listed =
    b.hostnames !== undefined && b.hostnames !== null && b.hostnames.length > 0
      ? b.hostnames
      : b.hostname !== undefined && b.hostname !== null
        ? [b.hostname]
        : [];
  const hostnames = [...new Set(listed)];
  const nexusAddresses = [...new Set(b.nexusAddresses)];

  const authToken = b.authToken ?? undefined;
  const tokenFile = b.authTokenFile ?? undefined;
  if (authToken !== undefined && tokenFile !== undefined) {
    throw new ConfigIssue(`${at}.authTokenFile`, 'cannot be combined with authToken; set one of them');
  }
  if (authToken === undefined && tokenFile === undefined) {
    const why =
      raw.attestation !== undefined && raw.attestation !== null
        ? ' (attestation is not supported by this client)'
        : '';
    throw new ConfigIssue(`${at}.authToken`, `is required (or authTokenFile)${why}`);
  }
  const weight = b.weight !== undefined && b.weight !== null && b.weight > 0 ? b.weight : 1;
  const portMappings = resolvePortMappings(raw.portMappings, `${at}.portMappings`);
  const hc = b.healthChecks ?? {};
  return {
    name: b.name,
    hostnames,
    nexusAddresses,
    authToken,
    authTokenFile: resolveFrom(baseDir, tokenFile),
    weight,
    portMappings,
    healthChecks: {
      enabled: hc.enabled === true,
      inactivityTimeoutMs: hc.inactivityTimeout ?? DEFAULT_HEALTH_CHECK_INACTIVITY_TIMEOUT_SECONDS * 1000,
      pongTimeoutMs: hc.pongTimeout ?? DEFAULT_HEALTH_CHECK_PONG_TIMEOUT_SECONDS * 1000,
    },
    caFile: resolveFrom(baseDir, b.caFile ?? undefined),
  };
}

function resolve(input: unknown, options: ResolveBackendClientConfigOptions): ResolvedBackendClientConfig {
  const doc = validate(backendClientConfigSchema, input);
  const raws = (input as { backends: Record<string, unknown>[] }).backends;
  const warnings: string[] = [];
  const backends = doc.backends.map((b, i) =>
    resolveBackend(b, raws[i]!, `backends[${i}]`, options.baseDir, warnings),
  );
  const names = new Set<string>();
  backends.forEach((b, i) => {
    if (names.has(b.name)) throw new ConfigIssue(`backends[${i}].name`, `duplicates "${b.name}"`);
    names.add(b.name);
  });
  return deepFreeze({ backends, warnings });
}

/**
 * Validate a backend-client configuration document (reference format) and apply defaults. Throws
 * {@link InvalidOptionsError} naming the field path.
 */
export function resolveBackendClientConfig(
  input: BackendClientConfigInput | Record<string, unknown>,
  options: ResolveBackendClientConfigOptions = {},
): ResolvedBackendClientConfig {
  try {
    return resolve(input, options);
  } catch (err) {
    if (ConfigIssue.is(err)) throw new InvalidOptionsError(err.path === '' ? 'config' : err.path, err.detail);
    throw err;
  }
}

/** Options of {@link parseBackendClientConfig}. */
export interface ParseBackendClientConfigOptions extends ResolveBackendClientConfigOptions {
  /** Name used in error messages (usually the file path). Default: `config`. */
  source?: string;
}

function readYaml(text: string, source: string): YamlConfigDocument {
  try {
    return parseYamlConfig(text, source);
  } catch (err) {
    if (!ConfigIssue.is(err)) throw err;
    if (err.kind === 'empty') throw new InvalidOptionsError(source, 'is empty');
    throw new InvalidOptionsError(err.where ?? source, `is not valid YAML: ${err.detail}`);
  }
}

/**
 * Parse and resolve a YAML document. YAML syntax errors and validation errors are
 * {@link InvalidOptionsError}s whose message carries `source:line`.
 */
export function parseBackendClientConfig(
  text: string,
  options: ParseBackendClientConfigOptions = {},
): ResolvedBackendClientConfig {
  const source = options.source ?? 'config';
  const doc = readYaml(text, source);
  try {
    return resolveBackendClientConfig(doc.value as Record<string, unknown>, options);
  } catch (err) {
    if (!(err instanceof InvalidOptionsError)) throw err;
    const located = locateIssue(new ConfigIssue(err.path, detailOf(err)), doc, source);
    throw new InvalidOptionsError(err.path, located.locatedDetail);
  }
}

/**
 * Read, parse and resolve the backend-client YAML file at `file`; relative paths inside it are resolved
 * against the file's directory. Throws {@link InvalidOptionsError}.
 */
export async function loadBackendClientConfig(file: string): Promise<ResolvedBackendClientConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    throw new InvalidOptionsError(
      file,
      code === 'ENOENT' ? 'not found' : `cannot be read: ${(err as Error).message}`,
    );
  }
  return parseBackendClientConfig(text, { source: file, baseDir: path.dirname(path.resolve(file)) });
}
