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
  resolveFrom,
  validate,
  type YamlConfigDocument,
} from '@nexus-proxy/common/config';
import { type ResolvedAttestationConfig, resolveAttestationConfig } from './attestation-config.js';
import { resolveBackendIdentity } from './attestation-options.js';
import { backendClientConfigSchema, type backendSchema, detailOf } from './config-schema.js';
import { InvalidOptionsError } from './errors.js';
import { readHmacSecretFile } from './hmac-token-provider.js';
import { type ResolvedPortMappings, resolvePortMappings } from './port-mappings.js';
import { SOCKS5_LISTEN_ADDR_FORMAT, splitSocks5ListenAddr } from './socks5-listener.js';
import type { UdpRouteClaim } from './token-provider.js';

export type { ResolvedAttestationConfig } from './attestation-config.js';

export { backendClientConfigJsonSchema, parseDuration } from './config-schema.js';

/** Health-check idle time before `ping_client`, seconds (reference default). */
export const DEFAULT_HEALTH_CHECK_INACTIVITY_TIMEOUT_SECONDS = 60;
/** Health-check wait for `pong_client`, seconds (reference default). */
export const DEFAULT_HEALTH_CHECK_PONG_TIMEOUT_SECONDS = 5;
/** Reference `flowControl` defaults, messages. */
export const DEFAULT_FLOW_CONTROL = Object.freeze({ highWaterMark: 48, lowWaterMark: 16, maxBuffer: 64 });

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
  /** (reference) TCP port claims (current era). */
  tcpPorts?: number[];
  /** (reference) UDP port claims (current era; not served yet). */
  udpRoutes?: Array<{ port: number; flowIdleTimeoutSeconds?: number }>;
  /** (reference, seed era) The backend JWT. One of `authToken`, `authTokenFile`, `attestation`. */
  authToken?: string;
  /** (seed era) A file holding the backend JWT, re-read before every (re)connect so it can be rotated. */
  authTokenFile?: string;
  /** (reference, current era) How tokens are obtained and what they claim. */
  attestation?: Record<string, unknown>;
  /** (reference) Accepted and validated; not acted on. */
  flowControl?: { highWaterMark?: number; lowWaterMark?: number; maxBuffer?: number };
  /** (reference) Accepted and validated; not acted on yet. */
  socks5ListenAddr?: string;
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
  /** `'seed'` with `authToken`/`authTokenFile`, `'current'` with `attestation`. */
  readonly era: 'seed' | 'current';
  /** De-duplicated TCP port claims. */
  readonly tcpPorts: readonly number[];
  readonly udpRoutes: readonly Readonly<UdpRouteClaim>[];
  readonly authToken: string | undefined;
  /** Absolute when loaded from a file. */
  readonly authTokenFile: string | undefined;
  /** The current era's token source and claims. */
  readonly attestation: ResolvedAttestationConfig | undefined;
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
  /** Reference thresholds, validated (low < high < max) and kept; this client's flow control is its own. */
  readonly flowControl: {
    readonly highWaterMark: number;
    readonly lowWaterMark: number;
    readonly maxBuffer: number;
  };
  /** Validated and kept; not acted on yet (no local SOCKS5 listener). */
  readonly socks5ListenAddr: string | undefined;
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
  const seedKey =
    authToken !== undefined ? 'authToken' : tokenFile !== undefined ? 'authTokenFile' : undefined;
  if (seedKey !== undefined && b.attestation !== undefined && b.attestation !== null) {
    throw new ConfigIssue(
      `${at}.attestation`,
      `cannot be combined with ${seedKey}: ${seedKey} speaks the seed era, attestation the current era; set one of them`,
    );
  }
  if (seedKey === undefined && (b.attestation === undefined || b.attestation === null)) {
    throw new ConfigIssue(
      `${at}.authToken`,
      'is required, or authTokenFile (seed era), or attestation (current era: command or hmacSecret)',
    );
  }
  const weight = b.weight !== undefined && b.weight !== null && b.weight > 0 ? b.weight : 1;
  const tcpPorts = [...new Set(b.tcpPorts ?? [])];
  const udpRoutes = (b.udpRoutes ?? []).map((r) =>
    r.flowIdleTimeoutSeconds === undefined || r.flowIdleTimeoutSeconds === null
      ? { port: r.port }
      : { port: r.port, flowIdleTimeoutSeconds: r.flowIdleTimeoutSeconds },
  );
  const duplicate = udpRoutes.findIndex((r, i) => udpRoutes.findIndex((o) => o.port === r.port) !== i);
  if (duplicate >= 0) {
    throw new ConfigIssue(
      `${at}.udpRoutes[${duplicate}].port`,
      `duplicates UDP port ${udpRoutes[duplicate]!.port}`,
    );
  }
  const attestation =
    b.attestation === undefined || b.attestation === null
      ? undefined
      : resolveAttestationConfig(b.attestation, `${at}.attestation`, baseDir, warnings);
  if (attestation !== undefined) {
    // What the tokens will claim: refused here rather than by every hub.
    resolveBackendIdentity({ name: b.name, hostnames, tcpPorts, udpRoutes, weight }, at);
  } else if (tcpPorts.length > 0 || udpRoutes.length > 0) {
    warnings.push(
      `${at}.tcpPorts/udpRoutes are claimed only with attestation (the seed era's token is fixed)`,
    );
  }
  if (
    b.socks5ListenAddr !== undefined &&
    b.socks5ListenAddr !== null &&
    attestation?.outboundAllowed !== true
  ) {
    warnings.push(
      `${at}.socks5ListenAddr: without attestation.outboundAllowed: true the node refuses every outbound connection`,
    );
  }
  const portMappings = resolvePortMappings(raw.portMappings, `${at}.portMappings`);
  udpRoutes.forEach((r, i) => {
    if (!portMappings.ports.has(r.port)) {
      warnings.push(
        `${at}.udpRoutes[${i}]: portMappings has no entry for UDP port ${r.port}; its flows will be closed (dial_failed)`,
      );
    }
  });
  const hc = b.healthChecks ?? {};
  return {
    name: b.name,
    hostnames,
    nexusAddresses,
    era: attestation === undefined ? 'seed' : 'current',
    tcpPorts,
    udpRoutes,
    authToken,
    authTokenFile: resolveFrom(baseDir, tokenFile),
    attestation,
    weight,
    portMappings,
    healthChecks: {
      enabled: hc.enabled === true,
      inactivityTimeoutMs: hc.inactivityTimeout ?? DEFAULT_HEALTH_CHECK_INACTIVITY_TIMEOUT_SECONDS * 1000,
      pongTimeoutMs: hc.pongTimeout ?? DEFAULT_HEALTH_CHECK_PONG_TIMEOUT_SECONDS * 1000,
    },
    caFile: resolveFrom(baseDir, b.caFile ?? undefined),
    flowControl: resolveFlowControl(b.flowControl ?? undefined, `${at}.flowControl`),
    socks5ListenAddr: resolveSocks5(b.socks5ListenAddr ?? undefined, `${at}.socks5ListenAddr`),
  };
}

function resolveFlowControl(
  fc: { highWaterMark?: number | null; lowWaterMark?: number | null; maxBuffer?: number | null } | undefined,
  at: string,
): ResolvedBackendConfig['flowControl'] {
  // As in the reference: 0 or absent means the default; then low < high < max.
  const highWaterMark = fc?.highWaterMark || DEFAULT_FLOW_CONTROL.highWaterMark;
  const lowWaterMark = fc?.lowWaterMark || DEFAULT_FLOW_CONTROL.lowWaterMark;
  const maxBuffer = fc?.maxBuffer || DEFAULT_FLOW_CONTROL.maxBuffer;
  if (lowWaterMark >= highWaterMark) {
    throw new ConfigIssue(
      `${at}.lowWaterMark`,
      `(${lowWaterMark}) must be less than highWaterMark (${highWaterMark})`,
    );
  }
  if (highWaterMark >= maxBuffer) {
    throw new ConfigIssue(
      `${at}.highWaterMark`,
      `(${highWaterMark}) must be less than maxBuffer (${maxBuffer})`,
    );
  }
  return { highWaterMark, lowWaterMark, maxBuffer };
}

function resolveSocks5(address: string | undefined, at: string): string | undefined {
  if (address === undefined) return undefined;
  if (splitSocks5ListenAddr(address) === undefined) {
    throw new ConfigIssue(at, `${SOCKS5_LISTEN_ADDR_FORMAT} (got "${address}")`);
  }
  return address;
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
 * against the file's directory; an `attestation.hmacSecretFile` must be readable and not empty. Throws
 * {@link InvalidOptionsError}.
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
  const config = parseBackendClientConfig(text, { source: file, baseDir: path.dirname(path.resolve(file)) });
  // The HMAC secret file is checked now, so a missing one stops the start instead of failing every
  // connection attempt (the provider reads it again before each connection: docs/backend-client-config.md).
  config.backends.forEach((backend, i) => {
    const a = backend.attestation;
    if (a?.provider === 'hmac' && a.hmacSecretFile !== undefined) {
      readHmacSecretFile(a.hmacSecretFile, `backends[${i}].attestation.hmacSecretFile`);
    }
  });
  return config;
}
