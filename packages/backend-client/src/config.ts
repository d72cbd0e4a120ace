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
import { normalizeHostnamePattern } from '@nexus-proxy/sni';
import { isMap, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { InvalidOptionsError } from './errors.js';
import { normalizeNodeAddress } from './node-address.js';
import { type ResolvedPortMappings, resolvePortMappings } from './port-mappings.js';

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

const BACKEND_KEYS = [
  'name',
  'hostnames',
  'hostname',
  'nexusAddresses',
  'authToken',
  'authTokenFile',
  'weight',
  'portMappings',
  'healthChecks',
  'caFile',
];
/** Keys of later reference client versions that this client does not implement (a warning each). */
const UNSUPPORTED_BACKEND_KEYS = ['tcpPorts', 'udpRoutes', 'attestation', 'flowControl', 'socks5ListenAddr'];

type Dict = Record<string, unknown>;

function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function str(value: unknown, at: string): string | undefined {
  if (!present(value)) return undefined;
  if (typeof value !== 'string') throw new InvalidOptionsError(at, 'must be a string');
  const t = value.trim();
  return t === '' ? undefined : t;
}

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parse a duration: a number of seconds (the reference unit), a numeric string (seconds), or a Go
 * duration string such as `"60s"`, `"1m30s"`, `"1.5s"`, `"500ms"`. Returns ms, or `undefined` for absent,
 * zero or negative values (which mean "use the default", as in the reference). Throws naming `at`.
 */
export function parseDuration(value: unknown, at: string): number | undefined {
  if (!present(value)) return undefined;
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidOptionsError(at, 'must be a finite number of seconds');
    ms = value * 1000;
  } else if (typeof value === 'string') {
    const text = value.trim();
    if (/^-?\d+(\.\d+)?$/.test(text)) ms = Number(text) * 1000;
    else {
      const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
      ms = 0;
      let consumed = 0;
      for (let m = re.exec(text); m !== null; m = re.exec(text)) {
        ms += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
        consumed = re.lastIndex;
      }
      if (text === '' || consumed !== text.length) {
        throw new InvalidOptionsError(
          at,
          `must be seconds or a duration like "60s", "1m30s", "500ms" (got "${value}")`,
        );
      }
    }
  } else {
    throw new InvalidOptionsError(at, 'must be a number of seconds or a duration string like "60s"');
  }
  if (ms <= 0) return undefined;
  if (ms > 31_536_000_000) throw new InvalidOptionsError(at, 'must be at most one year');
  return Math.round(ms);
}

/** A known key that differs from `key` only in case or by a short suffix (`nexusAddress` → `nexusAddresses`). */
function suggest(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  return known.find((k) => {
    const kl = k.toLowerCase();
    return (
      kl === lower ||
      (Math.abs(kl.length - lower.length) <= 2 && (kl.startsWith(lower) || lower.startsWith(kl)))
    );
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value) && !(value instanceof Map)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function resolveBackend(
  raw: unknown,
  at: string,
  baseDir: string | undefined,
  warnings: string[],
): ResolvedBackendConfig {
  if (!isDict(raw)) throw new InvalidOptionsError(at, 'must be a mapping');
  for (const key of Object.keys(raw)) {
    if (BACKEND_KEYS.includes(key)) continue;
    if (UNSUPPORTED_BACKEND_KEYS.includes(key)) {
      if (present(raw[key]))
        warnings.push(`${at}.${key} is a reference setting this client does not support; it is ignored`);
      continue;
    }
    const hint = suggest(key, BACKEND_KEYS);
    throw new InvalidOptionsError(
      `${at}.${key}`,
      `is not a known key${hint ? ` (did you mean \`${hint}\`?)` : ''}`,
    );
  }
  const name = str(raw.name, `${at}.name`);
  if (name === undefined) throw new InvalidOptionsError(`${at}.name`, 'is required');

  let listed: unknown[] = [];
  let listPath = `${at}.hostnames`;
  if (present(raw.hostnames)) {
    if (!Array.isArray(raw.hostnames)) throw new InvalidOptionsError(listPath, 'must be a list');
    listed = raw.hostnames;
  }
  if (listed.length === 0 && present(raw.hostname)) {
    listed = [raw.hostname];
    listPath = `${at}.hostname`;
  }
  const hostnames: string[] = [];
  listed.forEach((h, i) => {
    const p = listPath.endsWith('.hostname') ? listPath : `${listPath}[${i}]`;
    const pattern = typeof h === 'string' ? normalizeHostnamePattern(h) : undefined;
    if (pattern === undefined)
      throw new InvalidOptionsError(p, `is not a valid hostname or wildcard (got ${JSON.stringify(h)})`);
    if (!hostnames.includes(pattern)) hostnames.push(pattern);
  });

  if (!Array.isArray(raw.nexusAddresses) || raw.nexusAddresses.length === 0) {
    throw new InvalidOptionsError(`${at}.nexusAddresses`, 'must list at least one hub address');
  }
  const nexusAddresses: string[] = [];
  raw.nexusAddresses.forEach((a, i) => {
    const p = `${at}.nexusAddresses[${i}]`;
    if (typeof a !== 'string') throw new InvalidOptionsError(p, 'must be a string');
    const url = normalizeNodeAddress(a, p);
    if (!nexusAddresses.includes(url)) nexusAddresses.push(url);
  });

  const authToken = str(raw.authToken, `${at}.authToken`);
  const tokenFile = str(raw.authTokenFile, `${at}.authTokenFile`);
  if (authToken !== undefined && tokenFile !== undefined) {
    throw new InvalidOptionsError(
      `${at}.authTokenFile`,
      'cannot be combined with authToken; set one of them',
    );
  }
  if (authToken === undefined && tokenFile === undefined) {
    const why = present(raw.attestation) ? ' (attestation is not supported by this client)' : '';
    throw new InvalidOptionsError(`${at}.authToken`, `is required (or authTokenFile)${why}`);
  }

  let weight = 1;
  if (present(raw.weight)) {
    if (typeof raw.weight !== 'number' || !Number.isInteger(raw.weight)) {
      throw new InvalidOptionsError(`${at}.weight`, 'must be an integer');
    }
    weight = raw.weight > 0 ? raw.weight : 1;
  }

  if (!present(raw.portMappings)) throw new InvalidOptionsError(`${at}.portMappings`, 'is required');
  const portMappings = resolvePortMappings(raw.portMappings, `${at}.portMappings`);

  const hcIn = present(raw.healthChecks) ? raw.healthChecks : {};
  if (!isDict(hcIn)) throw new InvalidOptionsError(`${at}.healthChecks`, 'must be a mapping');
  for (const key of Object.keys(hcIn)) {
    if (!['enabled', 'inactivityTimeout', 'pongTimeout'].includes(key)) {
      throw new InvalidOptionsError(
        `${at}.healthChecks.${key}`,
        'is not a known key (enabled, inactivityTimeout, pongTimeout)',
      );
    }
  }
  if (present(hcIn.enabled) && typeof hcIn.enabled !== 'boolean') {
    throw new InvalidOptionsError(`${at}.healthChecks.enabled`, 'must be true or false');
  }
  const healthChecks = {
    enabled: hcIn.enabled === true,
    inactivityTimeoutMs:
      parseDuration(hcIn.inactivityTimeout, `${at}.healthChecks.inactivityTimeout`) ??
      DEFAULT_HEALTH_CHECK_INACTIVITY_TIMEOUT_SECONDS * 1000,
    pongTimeoutMs:
      parseDuration(hcIn.pongTimeout, `${at}.healthChecks.pongTimeout`) ??
      DEFAULT_HEALTH_CHECK_PONG_TIMEOUT_SECONDS * 1000,
  };

  const file = (v: string | undefined) =>
    v === undefined || baseDir === undefined ? v : path.resolve(baseDir, v);
  return {
    name,
    hostnames,
    nexusAddresses,
    authToken,
    authTokenFile: file(tokenFile),
    weight,
    portMappings,
    healthChecks,
    caFile: file(str(raw.caFile, `${at}.caFile`)),
  };
}

/**
 * Validate a backend-client configuration document (reference format) and apply defaults. Throws
 * {@link InvalidOptionsError} naming the field path.
 */
export function resolveBackendClientConfig(
  input: BackendClientConfigInput | Record<string, unknown>,
  options: ResolveBackendClientConfigOptions = {},
): ResolvedBackendClientConfig {
  if (!isDict(input)) throw new InvalidOptionsError('config', 'must be a mapping with a `backends` list');
  for (const key of Object.keys(input)) {
    if (key !== 'backends') {
      const hint = key.toLowerCase().startsWith('backend') ? ' (did you mean `backends`?)' : '';
      throw new InvalidOptionsError(key, `is not a known key${hint}`);
    }
  }
  const list = input.backends;
  if (!Array.isArray(list) || list.length === 0)
    throw new InvalidOptionsError('backends', 'must list at least one backend');
  const warnings: string[] = [];
  const backends = list.map((b, i) => resolveBackend(b, `backends[${i}]`, options.baseDir, warnings));
  const names = new Set<string>();
  backends.forEach((b, i) => {
    if (names.has(b.name)) throw new InvalidOptionsError(`backends[${i}].name`, `duplicates "${b.name}"`);
    names.add(b.name);
  });
  return deepFreeze({ backends, warnings });
}

/** Options of {@link parseBackendClientConfig}. */
export interface ParseBackendClientConfigOptions extends ResolveBackendClientConfigOptions {
  /** Name used in error messages (usually the file path). Default: `config`. */
  source?: string;
}

/** `backends[0].portMappings.443.hosts` → `['backends', 0, 'portMappings', '443', 'hosts']`. */
function splitPath(fieldPath: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of fieldPath.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) return out;
    if (m[1] !== '') out.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

/** The node at `segments` below `root`; map keys compare as text, so `443` finds a numeric key `443:`. */
function nodeAt(root: unknown, segments: readonly (string | number)[]): unknown {
  let node = root;
  for (const segment of segments) {
    if (isMap(node)) {
      node = node.items.find(
        (p) => String((p.key as { value?: unknown })?.value ?? p.key) === String(segment),
      )?.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
    } else {
      return undefined;
    }
  }
  return node;
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
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = first.linePos?.[0];
    throw new InvalidOptionsError(
      pos ? `${source}:${pos.line}:${pos.col}` : source,
      `is not valid YAML: ${first.message.split('\n')[0]}`,
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new InvalidOptionsError(source, `is not valid YAML: ${(err as Error).message}`);
  }
  if (!present(value)) throw new InvalidOptionsError(source, 'is empty');
  try {
    return resolveBackendClientConfig(value as Record<string, unknown>, options);
  } catch (err) {
    if (!(err instanceof InvalidOptionsError)) throw err;
    const segments = splitPath(err.path);
    let line: number | undefined;
    if (segments.length > 0) {
      const parent = nodeAt(doc.contents, segments.slice(0, -1));
      const last = segments[segments.length - 1]!;
      let node: Node | undefined;
      if (isMap(parent)) {
        const pair = parent.items.find(
          (p) => String((p.key as { value?: unknown })?.value ?? p.key) === String(last),
        );
        node = pair?.key as Node | undefined;
      } else if (isSeq(parent) && typeof last === 'number') {
        node = parent.items[last] as Node | undefined;
      }
      const offset = node?.range?.[0];
      if (offset !== undefined) line = lineCounter.linePos(offset).line;
    }
    const detail = err.message.startsWith(`${err.path} `)
      ? err.message.slice(err.path.length + 1)
      : err.message;
    throw new InvalidOptionsError(
      err.path,
      `${detail} (${line === undefined ? source : `${source}:${line}`})`,
    );
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
