/**
 * Port mappings: where the backend client dials for a stream, by the node's relay port (`conn_port`)
 * and the stream's hostname. Same format as the reference client's `portMappings` (docs/protocol.md §6.2):
 *
 * ```yaml
 * portMappings:
 *   443:
 *     default: "localhost:8443"
 *     hosts:
 *       api.example.com: "localhost:9443"
 *       "*.preview.example.com": "localhost:10443"
 *   80: "localhost:8080"          # a bare string is the default
 *   25:                           # (nexus) PROXY protocol toward the service, per port or per host
 *     default: "localhost:2525"
 *     proxyProtocol: v2
 *     hosts:
 *       legacy.example.com: { target: "localhost:2526", proxyProtocol: none }
 * ```
 */
import { isIPv6 } from 'node:net';
import { normalizeHostname, normalizeHostnamePattern } from '@nexus-proxy/sni';
import { InvalidOptionsError } from './errors.js';
import { type ProxyProtocolVersion, parseProxyProtocolVersion } from './proxy-protocol.js';

/** A local dial target. `host` is a name or an IP literal without brackets. */
export interface HostPort {
  /** Hostname or IP address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port, 1–65535. */
  readonly port: number;
  /** Send a PROXY protocol header of this version before the stream's bytes. Absent: none. */
  readonly proxyProtocol?: ProxyProtocolVersion;
}

/** `proxyProtocol` as written: a version, or `none` / `false` to turn off an inherited one. */
export type ProxyProtocolInput = ProxyProtocolVersion | 'none' | false;

/** A host override as written: `"host:port"` or `{ target: "host:port", proxyProtocol? }`. */
export type HostTargetInput = string | { target: string; proxyProtocol?: ProxyProtocolInput };

/**
 * One port's mapping as written in the config: `"host:port"` or `{ default?, hosts?, proxyProtocol? }`.
 * A mapping's `proxyProtocol` applies to its default and to every host override that does not set its own.
 */
export type PortMappingInput =
  | string
  | { default?: string; hosts?: Record<string, HostTargetInput>; proxyProtocol?: ProxyProtocolInput };

/** Every port's mapping as written in the config, keyed by relay port. */
export type PortMappingsInput = Record<string | number, PortMappingInput>;

/** One port's mapping after validation. */
export interface ResolvedPortMapping {
  /** Target when no host override matches. */
  readonly default: HostPort | undefined;
  /** Exact host overrides, keyed by normalised hostname. */
  readonly exact: ReadonlyMap<string, HostPort>;
  /** Wildcard overrides, keyed by the suffix after `*.` (normalised). */
  readonly wildcards: ReadonlyMap<string, HostPort>;
}

/** All port mappings after validation, keyed by relay port. */
export interface ResolvedPortMappings {
  readonly ports: ReadonlyMap<number, ResolvedPortMapping>;
}

/**
 * Parses a `host:port` dial target: `localhost:8443`, `10.0.0.5:80`, `[::1]:8443`. The port is required.
 * Throws {@link InvalidOptionsError} naming `path`.
 */
export function parseHostPort(text: unknown, path: string): HostPort {
  if (typeof text !== 'string') throw new InvalidOptionsError(path, 'must be a "host:port" string');
  const value = text.trim();
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close === -1 || value[close + 1] !== ':') {
      throw new InvalidOptionsError(path, `must be "[ipv6]:port" (got ${JSON.stringify(text)})`);
    }
    host = value.slice(1, close);
    portText = value.slice(close + 2);
    if (!isIPv6(host))
      throw new InvalidOptionsError(path, `has an invalid IPv6 address (got ${JSON.stringify(text)})`);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon === -1)
      throw new InvalidOptionsError(path, `must be "host:port" (got ${JSON.stringify(text)})`);
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) {
      throw new InvalidOptionsError(
        path,
        `must write an IPv6 address in brackets, "[addr]:port" (got ${JSON.stringify(text)})`,
      );
    }
    if (host === '' || /[\s/@?#]/.test(host)) {
      throw new InvalidOptionsError(path, `must name a host before the port (got ${JSON.stringify(text)})`);
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new InvalidOptionsError(
      path,
      `must end in a port between 1 and 65535 (got ${JSON.stringify(text)})`,
    );
  }
  return Object.freeze({ host, port: Number(portText) });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `proxyProtocol` as written → a version, `null` for an explicit "none", `undefined` when absent. */
function parseProxyProtocolInput(value: unknown, path: string): ProxyProtocolVersion | null | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === false || value === 'none') return null;
  try {
    return parseProxyProtocolVersion(value, path);
  } catch {
    throw new InvalidOptionsError(path, `must be "v1", "v2" or "none" (got ${JSON.stringify(value)})`);
  }
}

function withProxyProtocol(target: HostPort, version: ProxyProtocolVersion | null | undefined): HostPort {
  return version === undefined || version === null
    ? target
    : Object.freeze({ ...target, proxyProtocol: version });
}

function resolveHostTarget(
  raw: unknown,
  path: string,
  inherited: ProxyProtocolVersion | null | undefined,
): HostPort {
  if (!isPlainObject(raw)) return withProxyProtocol(parseHostPort(raw, path), inherited);
  for (const key of Object.keys(raw)) {
    if (key !== 'target' && key !== 'proxyProtocol') {
      throw new InvalidOptionsError(
        `${path}.${key}`,
        'is not a known key (expected `target` or `proxyProtocol`)',
      );
    }
  }
  const own = parseProxyProtocolInput(raw.proxyProtocol, `${path}.proxyProtocol`);
  return withProxyProtocol(parseHostPort(raw.target, `${path}.target`), own === undefined ? inherited : own);
}

function resolveOne(input: unknown, path: string): ResolvedPortMapping {
  if (typeof input === 'string') {
    return Object.freeze({ default: parseHostPort(input, path), exact: new Map(), wildcards: new Map() });
  }
  if (!isPlainObject(input)) {
    throw new InvalidOptionsError(path, 'must be "host:port" or a mapping with `default` and/or `hosts`');
  }
  for (const key of Object.keys(input)) {
    if (key !== 'default' && key !== 'hosts' && key !== 'proxyProtocol') {
      throw new InvalidOptionsError(
        `${path}.${key}`,
        'is not a known key (expected `default`, `hosts` or `proxyProtocol`)',
      );
    }
  }
  const proxyProtocol = parseProxyProtocolInput(input.proxyProtocol, `${path}.proxyProtocol`);
  const rawDefault = input.default;
  const def =
    rawDefault === undefined ||
    rawDefault === null ||
    (typeof rawDefault === 'string' && rawDefault.trim() === '')
      ? undefined
      : withProxyProtocol(parseHostPort(rawDefault, `${path}.default`), proxyProtocol);
  const exact = new Map<string, HostPort>();
  const wildcards = new Map<string, HostPort>();
  const hosts = input.hosts;
  if (hosts !== undefined && hosts !== null) {
    if (!isPlainObject(hosts))
      throw new InvalidOptionsError(`${path}.hosts`, 'must map hostnames to "host:port"');
    for (const [rawPattern, rawTarget] of Object.entries(hosts)) {
      const pattern = normalizeHostnamePattern(rawPattern);
      const hostPath = `${path}.hosts`;
      if (pattern === undefined) {
        throw new InvalidOptionsError(
          hostPath,
          `has an invalid hostname pattern ${JSON.stringify(rawPattern)} (use a name or "*.example.com")`,
        );
      }
      const target = resolveHostTarget(
        rawTarget,
        `${hostPath}[${JSON.stringify(rawPattern)}]`,
        proxyProtocol,
      );
      const isWildcard = pattern.startsWith('*.');
      const table = isWildcard ? wildcards : exact;
      const key = isWildcard ? pattern.slice(2) : pattern;
      if (table.has(key)) {
        throw new InvalidOptionsError(
          hostPath,
          `lists ${JSON.stringify(pattern)} twice (after normalisation)`,
        );
      }
      table.set(key, target);
    }
  }
  if (def === undefined && exact.size === 0 && wildcards.size === 0) {
    throw new InvalidOptionsError(path, 'must specify a default or host overrides');
  }
  return Object.freeze({ default: def, exact, wildcards });
}

/**
 * Validates port mappings in the reference format. Keys are relay ports (1–65535); values are
 * `"host:port"` or `{ default?, hosts? }`. Host patterns are normalised like every hostname (docs/protocol.md
 * §3.1). Throws {@link InvalidOptionsError} naming the path, e.g. `portMappings.443.hosts`.
 */
export function resolvePortMappings(input: unknown, path = 'portMappings'): ResolvedPortMappings {
  if (!isPlainObject(input)) throw new InvalidOptionsError(path, 'must map relay ports to targets');
  const ports = new Map<number, ResolvedPortMapping>();
  for (const [key, value] of Object.entries(input)) {
    const portPath = `${path}.${key}`;
    if (!/^\d{1,5}$/.test(key.trim()) || Number(key) < 1 || Number(key) > 65535) {
      throw new InvalidOptionsError(portPath, 'is not a port between 1 and 65535');
    }
    const port = Number(key);
    if (ports.has(port)) throw new InvalidOptionsError(portPath, `duplicates port ${port}`);
    ports.set(port, resolveOne(value, portPath));
  }
  if (ports.size === 0) throw new InvalidOptionsError(path, 'must map at least one port');
  return Object.freeze({ ports });
}

/**
 * Where to dial for a stream on relay port `connPort` for `hostname`: an exact host override, else the
 * wildcard override whose suffix matches (a wildcard matches exactly one extra label, so at most one can
 * match), else the port's default. `undefined` when the port is not mapped or nothing matches.
 */
export function resolveTarget(
  mappings: ResolvedPortMappings,
  connPort: number,
  hostname: string,
): HostPort | undefined {
  const mapping = mappings.ports.get(connPort);
  if (mapping === undefined) return undefined;
  if (hostname !== '' && (mapping.exact.size > 0 || mapping.wildcards.size > 0)) {
    const host = normalizeHostname(hostname);
    if (host !== undefined) {
      const exact = mapping.exact.get(host);
      if (exact !== undefined) return exact;
      const dot = host.indexOf('.');
      if (dot > 0) {
        const wildcard = mapping.wildcards.get(host.slice(dot + 1));
        if (wildcard !== undefined) return wildcard;
      }
    }
  }
  return mapping.default;
}

/** The relay port whose mapping serves a TLS stream on a node port without a mapping of its own. */
export const TLS_FALLBACK_PORT = 443;
/** The relay port whose mapping serves an HTTP stream on a node port without a mapping of its own. */
export const HTTP_FALLBACK_PORT = 80;

/** Where a stream goes, and which port's mapping said so. */
export interface StreamTarget {
  /** The dial target. */
  readonly target: HostPort;
  /** The mapped port that gave the target: the stream's own, or the 443/80 fallback. */
  readonly mappedPort: number;
}

/**
 * Like {@link resolveTarget}, but when the node's relay port has no mapping at all (a node listening on
 * 20443 while the mappings say 443), falls back by the stream's kind: a TLS stream to the 443 mapping, an
 * HTTP stream to the 80 mapping. A port that is mapped never falls back, even when no host of it matches.
 * `undefined` when nothing serves the stream.
 */
export function resolveStreamTarget(
  mappings: ResolvedPortMappings,
  stream: { connPort: number; hostname: string; isTls: boolean },
): StreamTarget | undefined {
  const mappedPort = mappings.ports.has(stream.connPort)
    ? stream.connPort
    : stream.isTls
      ? TLS_FALLBACK_PORT
      : HTTP_FALLBACK_PORT;
  const target = resolveTarget(mappings, mappedPort, stream.hostname);
  return target === undefined ? undefined : { target, mappedPort };
}
