/**
 * Node configuration: the reference server keys (docs/protocol.md §6.1), unchanged, plus Nexus's own keys.
 * `resolveNexusConfig(input)` validates a parsed document (YAML or an object literal), applies defaults and
 * returns a frozen {@link ResolvedNexusConfig} with camelCase names, milliseconds and parsed addresses.
 * Every error is an {@link InvalidConfigError} naming the field path (`listeners[2].port`).
 */
import { isIPv4, isIPv6 } from 'node:net';
import path from 'node:path';
import { normalizeHostname } from '@nexus-proxy/sni';
import { DEFAULT_ACME_CACHE_DIR, resolveAcmeDirectoryUrl } from './acme.js';
import { DEFAULT_CLOCK_TOLERANCE_SEC, DEFAULT_MAX_TOKEN_BYTES, DEFAULT_MAX_TOKEN_HOSTNAMES } from './auth.js';
import { InvalidConfigError } from './errors.js';
import type { LogLevel } from './logger.js';

// ---------------------------------------------------------------------------------------------------------
// Defaults

/** Hub (backend WebSocket) listen address. Default: `:8443` (all interfaces). */
export const DEFAULT_BACKEND_LISTEN_ADDRESS = ':8443';
/** Peer (mesh) listen address. Default: `:8444`. */
export const DEFAULT_PEER_LISTEN_ADDRESS = ':8444';
/** Public relay ports. Default: `[443, 80]`. */
export const DEFAULT_RELAY_PORTS: readonly number[] = Object.freeze([443, 80]);
/** The relay port that speaks plain HTTP (routes by Host) when listed in `relayPorts`; others route by SNI. */
export const HTTP_RELAY_PORT = 80;
/** Idle timeout of a relayed connection, seconds; `0` = off. Default: `0`. */
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 0;
/** Secrets shorter than this many bytes get a warning. */
export const MIN_SECRET_BYTES = 32;
/** Default log level. */
export const DEFAULT_LOG_LEVEL = 'info';
/** Port of the peer listener assumed for a `peers` entry written without one. */
export const DEFAULT_PEER_PORT = 8444;
/** Path of the peer WebSocket endpoint (docs/protocol.md §2.1). */
export const PEER_PATH = '/mesh';

/** Default resource limits (see {@link LimitsInput} for each one's meaning). */
export const DEFAULT_LIMITS: Readonly<ResolvedLimits> = Object.freeze({
  maxConcurrentSniffs: 256,
  sniffFirstByteTimeoutMs: 15_000,
  sniffReadExtensionMs: 5_000,
  sniffAbsoluteTimeoutMs: 30_000,
  maxClientHelloBytes: 32_768,
  maxHttpHeadBytes: 65_536,
  maxStreamsPerSession: 1_024,
  maxSessions: 10_000,
  maxPendingConnects: 1_024,
  maxConnectionsPerIp: 0,
  authTimeoutMs: 10_000,
  maxMessageBytes: 32_785,
  maxControlMessagesPerSecond: 10_000,
  clientFinTimeoutMs: 30_000,
});

/** Default keepalive settings (docs/protocol.md §1.6 reference hub values). */
export const DEFAULT_KEEPALIVE: Readonly<ResolvedKeepalive> = Object.freeze({
  hubPingIntervalMs: 54_000,
  hubDeadAfterMs: 60_000,
  peerPingIntervalMs: 54_000,
  peerDeadAfterMs: 60_000,
});

/** Default backend-token checks. */
export const DEFAULT_AUTH: Readonly<ResolvedAuth> = Object.freeze({
  requireExp: false,
  issuer: undefined,
  audience: undefined,
  clockToleranceSec: DEFAULT_CLOCK_TOLERANCE_SEC,
  maxHostnames: DEFAULT_MAX_TOKEN_HOSTNAMES,
  maxTokenBytes: DEFAULT_MAX_TOKEN_BYTES,
});

// ---------------------------------------------------------------------------------------------------------
// Input (what a config file / caller writes)

/** A listen address: `":8443"`, `"0.0.0.0:8443"`, `"[::1]:8443"`, `"localhost:0"`, or a bare port. */
export type AddressInput = string | number;

/** One public relay listener. */
export interface ListenerInput {
  /** TCP port, 0–65535 (0 = any free port, for tests). */
  port: number;
  /** `tls` routes by SNI, `http` by Host. Default: `http` for port 80, `tls` otherwise. */
  mode?: 'tls' | 'http';
  /** Address to bind. Default: `bindHost`, else all interfaces. */
  host?: string;
}

/** Resource limits. All integers. */
export interface LimitsInput {
  /** Connections sniffing (reading ClientHello / HTTP head) at once, node-wide; more are closed. Default: `256`. */
  maxConcurrentSniffs?: number;
  /** First byte must arrive within, ms. Default: `15_000`. */
  sniffFirstByteTimeoutMs?: number;
  /** Each read extends the sniff deadline by, ms. Default: `5_000`. */
  sniffReadExtensionMs?: number;
  /** Hard cap on sniffing one connection, ms. Default: `30_000`. */
  sniffAbsoluteTimeoutMs?: number;
  /** Largest ClientHello, bytes. Default: `32_768`. */
  maxClientHelloBytes?: number;
  /** Largest HTTP request head, bytes. Default: `65_536`. */
  maxHttpHeadBytes?: number;
  /** Open streams per backend session. Default: `1_024`. */
  maxStreamsPerSession?: number;
  /** Backend sessions per node. Default: `10_000`. */
  maxSessions?: number;
  /**
   * Streams per backend session that the backend has not answered yet; further end users go to the other
   * backends of the pool, or are closed (`pending-limit`). Default: `1_024`.
   */
  maxPendingConnects?: number;
  /** Connections per end-user IP on the relay ports; `0` = off. Default: `0`. */
  maxConnectionsPerIp?: number;
  /** A backend must send its token within, ms (docs/protocol.md §1.2). Default: `10_000`. */
  authTimeoutMs?: number;
  /** Largest WebSocket message accepted from a backend, bytes (≥ 32 785, docs/protocol.md §1.3). Default: `32_785`. */
  maxMessageBytes?: number;
  /** Control messages per second per backend session before it is closed; `0` = off. Default: `10_000`. */
  maxControlMessagesPerSecond?: number;
  /**
   * After an end user's FIN, close the relayed connection once no byte moved either way for this long, ms;
   * `0` = wait for the backend (or `idleTimeoutSeconds`). The v1 wire cannot pass a half-close to the
   * backend (docs/protocol.md §1.7), so without it a service that keeps its side open holds the stream forever
   * (HAProxy's `timeout client-fin`). Default: `30_000`.
   */
  clientFinTimeoutMs?: number;
}

/** Keepalive. All in ms. */
export interface KeepaliveInput {
  /** Hub → backend WebSocket ping interval. Default: `54_000`. */
  hubPingIntervalMs?: number;
  /** A backend session silent this long is dead. Default: `60_000`. */
  hubDeadAfterMs?: number;
  /** Peer link ping interval. Default: `54_000`. */
  peerPingIntervalMs?: number;
  /** A peer link silent this long is dead. Default: `60_000`. */
  peerDeadAfterMs?: number;
}

/** Backend-token checks (docs/protocol.md §5.3). */
export interface AuthInput {
  /** Refuse tokens without `exp`. Default: `false`. */
  requireExp?: boolean;
  /** Required `iss`. Default: not checked. */
  issuer?: string;
  /** Required `aud` (one of). Default: not checked. */
  audience?: string | string[];
  /** Clock skew allowed on `exp`/`nbf`/`iat`, seconds. Default: `30`. */
  clockToleranceSeconds?: number;
  /** Most hostnames one token may list. Default: `1_000`. */
  maxHostnames?: number;
  /** Longest token, bytes (the first WebSocket message may be this large). Default: `65_536`. */
  maxTokenBytes?: number;
}

/** The configuration document. Reference keys keep their reference names and units. */
export interface NexusConfigInput {
  /** (reference) Hub listen address. Default: `":8443"`. */
  backendListenAddress?: AddressInput;
  /** (reference) Peer listen address; used when `peerAuthentication.trustedDomainSuffixes` is set. Default: `":8444"`. */
  peerListenAddress?: AddressInput;
  /** (reference) Public relay ports; 80 = HTTP, others TLS. Ignored when `listeners` is set. Default: `[443, 80]`. */
  relayPorts?: number[];
  /** (reference) Idle timeout of relayed connections, seconds; both directions count; `0` = off. Default: `0`. */
  idleTimeoutSeconds?: number;
  /** (reference) Backend JWT HMAC secret. This or `backendsJWTSecrets` is required. */
  backendsJWTSecret?: string;
  /** (reference) Peer node URLs, `wss://peer:8444/mesh` (or `peer:8444`). Default: `[]`. */
  peers?: string[];
  /** (reference) Peer mTLS settings. */
  peerAuthentication?: {
    /** (reference) Accepted peer certificate name suffixes (label-boundary match). */
    trustedDomainSuffixes?: string[];
    /** CA bundle (PEM file) that peer certificates must chain to. Default: Node's root store. */
    caFile?: string;
  };
  /** (reference) Hub certificate chain, PEM file (manual TLS). */
  hubTlsCertFile?: string;
  /** (reference) Hub private key, PEM file (manual TLS). */
  hubTlsKeyFile?: string;
  /** (reference) Public hostname of this node; enables automatic TLS (ACME). */
  hubPublicHostname?: string;
  /** (reference) ACME account/certificate cache directory. Default: `acme_certs`. */
  acmeCacheDir?: string;
  /** (reference, later versions) Sniff deadlines in seconds; `0` = default. Prefer `limits`. */
  peekTimeouts?: { firstByteSeconds?: number; idleExtensionSeconds?: number; absoluteMaxSeconds?: number };
  /** (reference, later versions) Concurrent sniffs; `0` = default, `-1` = unbounded. Prefer `limits`. */
  maxConcurrentPeeks?: number;

  /** Several backend JWT secrets, for rotation; combined with `backendsJWTSecret`. */
  backendsJWTSecrets?: string[];
  /** Public relay listeners; overrides `relayPorts`. */
  listeners?: ListenerInput[];
  /** Address the relay ports bind to. Default: all interfaces. */
  bindHost?: string;
  /** ACME directory URL, or `letsencrypt` / `letsencrypt-staging`. Default: Let's Encrypt production. */
  acmeDirectoryUrl?: string;
  /** ACME account contact e-mail. Default: none. */
  acmeEmail?: string;
  /** CA bundle (PEM file) to trust for the ACME directory (private CAs, tests). */
  acmeCaFile?: string;
  /** Backend-token checks. */
  auth?: AuthInput;
  /** Resource limits. */
  limits?: LimitsInput;
  /** Keepalive. */
  keepalive?: KeepaliveInput;
  /** `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent`. Default: `info`. */
  logLevel?: string;
  /** Admin HTTP endpoint (health, metrics): an address or `{ address }`. Default: off. */
  admin?: AddressInput | { address?: AddressInput };
}

// ---------------------------------------------------------------------------------------------------------
// Resolved

/** A parsed listen address. `host` undefined = all interfaces. */
export interface ListenAddress {
  readonly host: string | undefined;
  readonly port: number;
}

/** A public relay listener. */
export interface RelayListenerConfig extends ListenAddress {
  readonly mode: 'tls' | 'http';
}

/** How the hub (and peer) endpoint gets its certificate. */
export type HubTlsConfig =
  | { readonly mode: 'files'; readonly certFile: string; readonly keyFile: string }
  | {
      readonly mode: 'acme';
      /** Normalised public hostname. */
      readonly hostname: string;
      readonly cacheDir: string;
      readonly directoryUrl: string;
      readonly email: string | undefined;
      readonly caFile: string | undefined;
    };

/** Resolved {@link LimitsInput}. */
export interface ResolvedLimits {
  readonly maxConcurrentSniffs: number;
  readonly sniffFirstByteTimeoutMs: number;
  readonly sniffReadExtensionMs: number;
  readonly sniffAbsoluteTimeoutMs: number;
  readonly maxClientHelloBytes: number;
  readonly maxHttpHeadBytes: number;
  readonly maxStreamsPerSession: number;
  readonly maxSessions: number;
  readonly maxPendingConnects: number;
  readonly maxConnectionsPerIp: number;
  readonly authTimeoutMs: number;
  readonly maxMessageBytes: number;
  readonly maxControlMessagesPerSecond: number;
  readonly clientFinTimeoutMs: number;
}

/** Resolved {@link KeepaliveInput}. */
export interface ResolvedKeepalive {
  readonly hubPingIntervalMs: number;
  readonly hubDeadAfterMs: number;
  readonly peerPingIntervalMs: number;
  readonly peerDeadAfterMs: number;
}

/** Resolved {@link AuthInput}; the shape `verifyBackendToken` takes (plus `secrets`). */
export interface ResolvedAuth {
  readonly requireExp: boolean;
  readonly issuer: string | undefined;
  readonly audience: readonly string[] | undefined;
  readonly clockToleranceSec: number;
  readonly maxHostnames: number;
  readonly maxTokenBytes: number;
}

/** The validated configuration. Frozen. */
export interface ResolvedNexusConfig {
  /** Hub listen address. */
  readonly backendListen: ListenAddress;
  /** Peer listen address; `undefined` when no peer could be accepted (no trusted suffixes). */
  readonly peerListen: ListenAddress | undefined;
  /** Public relay listeners. */
  readonly listeners: readonly RelayListenerConfig[];
  /** Idle timeout of relayed connections, ms; `0` = off. */
  readonly idleTimeoutMs: number;
  /** Backend JWT secrets, de-duplicated; tokens are minted with the first. */
  readonly backendsJWTSecrets: readonly string[];
  /** Peer URLs, normalised to `wss://host:port/mesh`. */
  readonly peers: readonly string[];
  readonly peerAuthentication: {
    /** Normalised, without a leading dot; a name matches when equal to one or ending in `.` + one. */
    readonly trustedDomainSuffixes: readonly string[];
    readonly caFile: string | undefined;
  };
  readonly tls: HubTlsConfig;
  readonly auth: ResolvedAuth;
  readonly limits: ResolvedLimits;
  readonly keepalive: ResolvedKeepalive;
  readonly logLevel: LogLevel | 'silent';
  /** Admin endpoint; `undefined` = off. */
  readonly admin: ListenAddress | undefined;
  /** Non-fatal problems (short secret, ignored reference keys…), one sentence each. Log them. */
  readonly warnings: readonly string[];
}

/** Options of {@link resolveNexusConfig}. */
export interface ResolveNexusConfigOptions {
  /** Directory relative file paths (cert, key, CA files, ACME cache) are resolved against. Default: kept as written. */
  baseDir?: string;
}

// ---------------------------------------------------------------------------------------------------------
// Key tables

const REFERENCE_KEYS = [
  'backendListenAddress',
  'peerListenAddress',
  'relayPorts',
  'idleTimeoutSeconds',
  'backendsJWTSecret',
  'peers',
  'peerAuthentication',
  'hubTlsCertFile',
  'hubTlsKeyFile',
  'hubPublicHostname',
  'acmeCacheDir',
  'peekTimeouts',
  'maxConcurrentPeeks',
] as const;

const OWN_KEYS = [
  'backendsJWTSecrets',
  'listeners',
  'bindHost',
  'acmeDirectoryUrl',
  'acmeEmail',
  'acmeCaFile',
  'auth',
  'limits',
  'keepalive',
  'logLevel',
  'admin',
] as const;

/** Keys of later reference versions that Nexus accepts but does not implement (a warning each). */
const UNSUPPORTED_REFERENCE_KEYS = new Set([
  'udpRelayPorts',
  'remoteVerifierURL',
  'remoteVerifierTimeoutSeconds',
  'maintenanceGraceDefaultSeconds',
  'totalBandwidthMbps',
  'allowedTCPPortClaims',
  'allowedUDPPortClaims',
  'registrationURL',
  'region',
  'udpMaxFlows',
  'udpMaxDatagramBytes',
  'udpFlowIdleTimeoutDefaultSeconds',
  'udpFlowIdleTimeoutMinSeconds',
  'udpFlowIdleTimeoutMaxSeconds',
  'stunPort',
  'allowOutbound',
  'allowedOutboundPorts',
  'maxOutboundConnsPerBackend',
  'outboundDialTimeoutSeconds',
  'outboundIdleTimeoutSeconds',
  'peerSecret',
]);

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const LIMIT_RULES: Record<keyof ResolvedLimits, { min: number; max: number }> = {
  maxConcurrentSniffs: { min: 1, max: 1_000_000 },
  sniffFirstByteTimeoutMs: { min: 1, max: 3_600_000 },
  sniffReadExtensionMs: { min: 1, max: 3_600_000 },
  sniffAbsoluteTimeoutMs: { min: 1, max: 3_600_000 },
  maxClientHelloBytes: { min: 512, max: 1 << 20 },
  maxHttpHeadBytes: { min: 512, max: 16 << 20 },
  maxStreamsPerSession: { min: 1, max: 1_000_000 },
  maxSessions: { min: 1, max: 10_000_000 },
  maxPendingConnects: { min: 1, max: 10_000_000 },
  maxConnectionsPerIp: { min: 0, max: 10_000_000 },
  authTimeoutMs: { min: 1, max: 3_600_000 },
  // A smaller cap would reject the full-size frames every reference backend sends (docs/protocol.md §1.3).
  maxMessageBytes: { min: 32_785, max: 64 << 20 },
  maxControlMessagesPerSecond: { min: 0, max: 100_000_000 },
  clientFinTimeoutMs: { min: 0, max: 31_536_000_000 },
};

const KEEPALIVE_KEYS = [
  'hubPingIntervalMs',
  'hubDeadAfterMs',
  'peerPingIntervalMs',
  'peerDeadAfterMs',
] as const;
const AUTH_KEYS = [
  'requireExp',
  'issuer',
  'audience',
  'clockToleranceSeconds',
  'maxHostnames',
  'maxTokenBytes',
];

// ---------------------------------------------------------------------------------------------------------
// Helpers

type Dict = Record<string, unknown>;

function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** YAML `key:` with no value parses as null; treat it like an absent key (as the reference's Go decoder does). */
function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

function dict(value: unknown, at: string): Dict {
  if (!present(value)) return {};
  if (!isDict(value)) throw new InvalidConfigError(at, `must be a mapping (got ${describe(value)})`);
  return value;
}

function int(value: unknown, at: string, min: number, max: number, fallback: number): number {
  if (!present(value)) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidConfigError(at, `must be an integer between ${min} and ${max} (got ${describe(value)})`);
  }
  return value;
}

function bool(value: unknown, at: string, fallback: boolean): boolean {
  if (!present(value)) return fallback;
  if (typeof value !== 'boolean')
    throw new InvalidConfigError(at, `must be true or false (got ${describe(value)})`);
  return value;
}

function str(value: unknown, at: string): string | undefined {
  if (!present(value)) return undefined;
  if (typeof value !== 'string')
    throw new InvalidConfigError(at, `must be a string (got ${describe(value)})`);
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function strList(value: unknown, at: string): string[] {
  if (!present(value)) return [];
  if (!Array.isArray(value)) throw new InvalidConfigError(at, `must be a list (got ${describe(value)})`);
  return value.map((v, i) => {
    const s = str(v, `${at}[${i}]`);
    if (s === undefined) throw new InvalidConfigError(`${at}[${i}]`, 'must not be empty');
    return s;
  });
}

function checkKeys(obj: Dict, known: readonly string[], at: string): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) {
      const hint = suggest(key, known);
      throw new InvalidConfigError(
        at ? `${at}.${key}` : key,
        `is not a known key${hint ? ` (did you mean \`${hint}\`?)` : ''}`,
      );
    }
  }
}

/** The closest known key, if it is close enough to be a likely typo. */
function suggest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const k of known) {
    if (k.toLowerCase() === key.toLowerCase()) return k;
    const d = levenshtein(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 4)) ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function filePath(value: unknown, at: string, baseDir: string | undefined): string | undefined {
  const s = str(value, at);
  if (s === undefined) return undefined;
  return baseDir === undefined ? s : path.resolve(baseDir, s);
}

function validHost(host: string): boolean {
  if (isIPv4(host) || isIPv6(host)) return true;
  return normalizeHostname(host) !== undefined && !host.includes('*');
}

/**
 * Parse a listen address: `":8443"` / `"8443"` / `8443` (all interfaces), `"0.0.0.0:8443"`,
 * `"[::1]:8443"`, `"localhost:0"`. The host comes back without brackets; `""`, `*`, or no host → all
 * interfaces (`host: undefined`). Throws {@link InvalidConfigError} naming `at`.
 */
export function parseListenAddress(value: unknown, at: string): ListenAddress {
  if (typeof value === 'number') return Object.freeze({ host: undefined, port: int(value, at, 0, 65535, 0) });
  if (typeof value !== 'string') {
    throw new InvalidConfigError(
      at,
      `must be an address like ":8443" or "127.0.0.1:8443" (got ${describe(value)})`,
    );
  }
  const text = value.trim();
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1 || text[close + 1] !== ':') {
      throw new InvalidConfigError(at, `must be "[ipv6]:port" (got ${describe(value)})`);
    }
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host))
      throw new InvalidConfigError(at, `has an invalid IPv6 address (got ${describe(value)})`);
  } else {
    const colon = text.lastIndexOf(':');
    host = colon === -1 ? '' : text.slice(0, colon);
    portText = colon === -1 ? text : text.slice(colon + 1);
    if (host.includes(':')) {
      throw new InvalidConfigError(
        at,
        `must write an IPv6 address in brackets, "[addr]:port" (got ${describe(value)})`,
      );
    }
    if (host !== '' && host !== '*' && !validHost(host)) {
      throw new InvalidConfigError(at, `has an invalid host (got ${describe(value)})`);
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new InvalidConfigError(at, `must end in a port between 0 and 65535 (got ${describe(value)})`);
  }
  return Object.freeze({ host: host === '' || host === '*' ? undefined : host, port: Number(portText) });
}

/** Normalise a peer URL: `wss://host:port/mesh`; a bare `host[:port]` gets `wss://`, port 8444 and `/mesh`. */
export function normalizePeerUrl(value: string, at: string): string {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value);
  let url: URL;
  try {
    url = new URL(hasScheme ? value : `wss://${value}`);
  } catch {
    throw new InvalidConfigError(at, `is not a valid peer URL (got ${describe(value)})`);
  }
  // Peer links are mutually authenticated TLS (docs/protocol.md §2.1); a plain ws:// link could not be.
  if (url.protocol !== 'wss:') throw new InvalidConfigError(at, `must use wss:// (got ${url.protocol}//)`);
  if (url.hostname === '') throw new InvalidConfigError(at, `has no host (got ${describe(value)})`);
  if (url.username !== '' || url.password !== '')
    throw new InvalidConfigError(at, 'must not carry credentials');
  if (!hasScheme && url.port === '') url.port = String(DEFAULT_PEER_PORT);
  if (url.pathname === '' || url.pathname === '/') url.pathname = PEER_PATH;
  url.hash = '';
  return url.toString();
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------
// resolveNexusConfig

/**
 * Validate a configuration document and apply defaults. Accepts every reference key unchanged; keys of
 * later reference versions that Nexus does not implement are ignored with a warning; any other unknown
 * key is an error (with a "did you mean" hint). Throws {@link InvalidConfigError} naming the field path.
 */
export function resolveNexusConfig(
  input: NexusConfigInput | Record<string, unknown>,
  options: ResolveNexusConfigOptions = {},
): ResolvedNexusConfig {
  if (!isDict(input))
    throw new InvalidConfigError('', `the configuration must be a mapping (got ${describe(input)})`);
  const doc = input as Dict;
  const baseDir = options.baseDir;
  const warnings: string[] = [];

  const known = [...REFERENCE_KEYS, ...OWN_KEYS] as string[];
  for (const key of Object.keys(doc)) {
    if (known.includes(key)) continue;
    if (UNSUPPORTED_REFERENCE_KEYS.has(key)) {
      if (present(doc[key]))
        warnings.push(`${key} is a reference setting Nexus does not support; it is ignored`);
      continue;
    }
    checkKeys({ [key]: doc[key] }, [...known, ...UNSUPPORTED_REFERENCE_KEYS], '');
  }

  // Secrets (docs/protocol.md §5.1).
  const secrets: string[] = [];
  const single = doc.backendsJWTSecret;
  if (present(single)) {
    if (typeof single !== 'string') throw new InvalidConfigError('backendsJWTSecret', 'must be a string');
    if (single !== '') secrets.push(single);
  }
  const many = doc.backendsJWTSecrets;
  if (present(many)) {
    if (!Array.isArray(many)) throw new InvalidConfigError('backendsJWTSecrets', 'must be a list of strings');
    many.forEach((s, i) => {
      if (typeof s !== 'string' || s === '') {
        throw new InvalidConfigError(`backendsJWTSecrets[${i}]`, 'must be a non-empty string');
      }
      if (!secrets.includes(s)) secrets.push(s);
    });
  }
  if (secrets.length === 0) {
    const remote = present(doc.remoteVerifierURL) ? ' (remoteVerifierURL is not supported)' : '';
    throw new InvalidConfigError('backendsJWTSecret', `is required${remote}`);
  }
  secrets.forEach((s, i) => {
    if (Buffer.byteLength(s, 'utf8') < MIN_SECRET_BYTES) {
      const where =
        s === single ? 'backendsJWTSecret' : `backendsJWTSecrets[${(many as unknown[]).indexOf(s)}]`;
      warnings.push(
        `${where} is shorter than ${MIN_SECRET_BYTES} bytes; use a long random secret (secret #${i + 1} of ${secrets.length})`,
      );
    }
  });

  // Addresses.
  const backendListen = parseListenAddress(
    present(doc.backendListenAddress) ? doc.backendListenAddress : DEFAULT_BACKEND_LISTEN_ADDRESS,
    'backendListenAddress',
  );

  // Relay listeners.
  const bindHost = str(doc.bindHost, 'bindHost');
  if (bindHost !== undefined && !validHost(bindHost.replace(/^\[(.*)\]$/, '$1'))) {
    throw new InvalidConfigError(
      'bindHost',
      `must be an IP address or hostname (got ${describe(doc.bindHost)})`,
    );
  }
  const relayHost = bindHost?.replace(/^\[(.*)\]$/, '$1');
  const listeners: RelayListenerConfig[] = [];
  const usedPorts = new Map<string, string>();
  const addListener = (l: RelayListenerConfig, at: string) => {
    const key = `${l.host ?? '*'}:${l.port}`;
    if (l.port !== 0 && usedPorts.has(key)) {
      throw new InvalidConfigError(at, `uses port ${l.port} again (already used by ${usedPorts.get(key)})`);
    }
    usedPorts.set(key, at);
    listeners.push(l);
  };
  if (present(doc.listeners)) {
    if (!Array.isArray(doc.listeners)) throw new InvalidConfigError('listeners', 'must be a list');
    if (doc.listeners.length === 0)
      throw new InvalidConfigError('listeners', 'must list at least one listener');
    if (present(doc.relayPorts)) warnings.push('relayPorts is ignored because listeners is set');
    doc.listeners.forEach((raw, i) => {
      const at = `listeners[${i}]`;
      const l = dict(raw, at);
      checkKeys(l, ['port', 'mode', 'host'], at);
      if (!present(l.port)) throw new InvalidConfigError(`${at}.port`, 'is required');
      const port = int(l.port, `${at}.port`, 0, 65535, 0);
      const mode = present(l.mode) ? l.mode : port === HTTP_RELAY_PORT ? 'http' : 'tls';
      if (mode !== 'tls' && mode !== 'http') {
        throw new InvalidConfigError(`${at}.mode`, `must be "tls" or "http" (got ${describe(l.mode)})`);
      }
      let host = relayHost;
      const rawHost = str(l.host, `${at}.host`);
      if (rawHost !== undefined) {
        const h = rawHost.replace(/^\[(.*)\]$/, '$1');
        if (!validHost(h))
          throw new InvalidConfigError(
            `${at}.host`,
            `must be an IP address or hostname (got ${describe(l.host)})`,
          );
        host = h;
      }
      addListener(Object.freeze({ host, port, mode }), at);
    });
  } else {
    const ports = present(doc.relayPorts) ? doc.relayPorts : DEFAULT_RELAY_PORTS;
    if (!Array.isArray(ports)) throw new InvalidConfigError('relayPorts', 'must be a list of ports');
    if (ports.length === 0) throw new InvalidConfigError('relayPorts', 'must list at least one port');
    ports.forEach((p, i) => {
      const port = int(p, `relayPorts[${i}]`, 0, 65535, 0);
      // docs/protocol.md §4: port 80 speaks HTTP (route by Host), every other port TLS (route by SNI).
      const mode = port === HTTP_RELAY_PORT ? 'http' : 'tls';
      addListener(Object.freeze({ host: relayHost, port, mode }), `relayPorts[${i}]`);
    });
  }

  const idleTimeoutMs =
    int(doc.idleTimeoutSeconds, 'idleTimeoutSeconds', 0, 31_536_000, DEFAULT_IDLE_TIMEOUT_SECONDS) * 1000;

  // Mesh.
  const peerAuth = dict(doc.peerAuthentication, 'peerAuthentication');
  checkKeys(peerAuth, ['trustedDomainSuffixes', 'caFile'], 'peerAuthentication');
  const trustedDomainSuffixes: string[] = [];
  strList(peerAuth.trustedDomainSuffixes, 'peerAuthentication.trustedDomainSuffixes').forEach((raw, i) => {
    const at = `peerAuthentication.trustedDomainSuffixes[${i}]`;
    // A leading dot only stresses the label boundary, which is always enforced (docs/protocol.md §2.1).
    const suffix = normalizeHostname(raw.replace(/^\*?\./, ''));
    if (suffix === undefined || suffix.startsWith('[') || isIPv4(suffix)) {
      throw new InvalidConfigError(
        at,
        `must be a domain name such as ".mesh.example.com" (got ${describe(raw)})`,
      );
    }
    if (!suffix.includes('.')) {
      throw new InvalidConfigError(at, `is too broad: it would trust every name under ".${suffix}"`);
    }
    if (!trustedDomainSuffixes.includes(suffix)) trustedDomainSuffixes.push(suffix);
  });
  const peers: string[] = [];
  strList(doc.peers, 'peers').forEach((raw, i) => {
    const url = normalizePeerUrl(raw, `peers[${i}]`);
    if (!peers.includes(url)) peers.push(url);
  });
  if (peers.length > 0 && trustedDomainSuffixes.length === 0) {
    throw new InvalidConfigError(
      'peerAuthentication.trustedDomainSuffixes',
      'must be set when peers are listed',
    );
  }
  let peerListen: ListenAddress | undefined;
  if (trustedDomainSuffixes.length > 0) {
    peerListen = parseListenAddress(
      present(doc.peerListenAddress) ? doc.peerListenAddress : DEFAULT_PEER_LISTEN_ADDRESS,
      'peerListenAddress',
    );
  } else if (present(doc.peerListenAddress)) {
    parseListenAddress(doc.peerListenAddress, 'peerListenAddress');
    warnings.push(
      'peerListenAddress is ignored: no peer can be accepted without peerAuthentication.trustedDomainSuffixes',
    );
  }
  const peerCaFile = filePath(peerAuth.caFile, 'peerAuthentication.caFile', baseDir);

  // Hub TLS: exactly one mode (docs/protocol.md §6.1).
  const certFile = filePath(doc.hubTlsCertFile, 'hubTlsCertFile', baseDir);
  const keyFile = filePath(doc.hubTlsKeyFile, 'hubTlsKeyFile', baseDir);
  const publicHostname = str(doc.hubPublicHostname, 'hubPublicHostname');
  const manual = certFile !== undefined || keyFile !== undefined;
  let tls: HubTlsConfig;
  if (manual && publicHostname !== undefined) {
    throw new InvalidConfigError(
      '',
      'choose one TLS mode: manual (hubTlsCertFile + hubTlsKeyFile) or automatic (hubPublicHostname), not both',
    );
  }
  if (manual) {
    if (certFile === undefined)
      throw new InvalidConfigError('hubTlsCertFile', 'is required with hubTlsKeyFile');
    if (keyFile === undefined)
      throw new InvalidConfigError('hubTlsKeyFile', 'is required with hubTlsCertFile');
    for (const k of ['acmeCacheDir', 'acmeDirectoryUrl', 'acmeEmail', 'acmeCaFile']) {
      if (present(doc[k])) warnings.push(`${k} is ignored: manual TLS (hubTlsCertFile) is configured`);
    }
    tls = { mode: 'files', certFile, keyFile };
  } else if (publicHostname !== undefined) {
    const hostname = normalizeHostname(publicHostname);
    if (hostname === undefined || hostname.startsWith('[') || isIPv4(hostname) || !hostname.includes('.')) {
      throw new InvalidConfigError(
        'hubPublicHostname',
        `must be a public DNS name such as "nexus.example.com" (got ${describe(publicHostname)})`,
      );
    }
    const directoryUrl = resolveAcmeDirectoryUrl(
      str(doc.acmeDirectoryUrl, 'acmeDirectoryUrl'),
      'acmeDirectoryUrl',
    );
    const email = str(doc.acmeEmail, 'acmeEmail');
    if (email !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
      throw new InvalidConfigError('acmeEmail', `must be an e-mail address (got ${describe(email)})`);
    }
    tls = {
      mode: 'acme',
      hostname,
      cacheDir:
        filePath(doc.acmeCacheDir, 'acmeCacheDir', baseDir) ?? resolveIn(baseDir, DEFAULT_ACME_CACHE_DIR),
      directoryUrl,
      email,
      caFile: filePath(doc.acmeCaFile, 'acmeCaFile', baseDir),
    };
  } else {
    throw new InvalidConfigError(
      '',
      'no TLS configured for the hub: set hubTlsCertFile + hubTlsKeyFile (manual TLS) or hubPublicHostname (automatic TLS)',
    );
  }

  // Auth.
  const authIn = dict(doc.auth, 'auth');
  checkKeys(authIn, AUTH_KEYS, 'auth');
  let audience: string[] | undefined;
  if (present(authIn.audience)) {
    audience =
      typeof authIn.audience === 'string' ? [authIn.audience] : strList(authIn.audience, 'auth.audience');
    if (audience.length === 0 || audience.some((a) => a.trim() === '')) {
      throw new InvalidConfigError('auth.audience', 'must be a non-empty string or list of strings');
    }
  }
  const auth: ResolvedAuth = {
    requireExp: bool(authIn.requireExp, 'auth.requireExp', DEFAULT_AUTH.requireExp),
    issuer: str(authIn.issuer, 'auth.issuer'),
    audience,
    clockToleranceSec: int(
      authIn.clockToleranceSeconds,
      'auth.clockToleranceSeconds',
      0,
      86_400,
      DEFAULT_AUTH.clockToleranceSec,
    ),
    maxHostnames: int(authIn.maxHostnames, 'auth.maxHostnames', 1, 1_000_000, DEFAULT_AUTH.maxHostnames),
    maxTokenBytes: int(authIn.maxTokenBytes, 'auth.maxTokenBytes', 256, 1 << 20, DEFAULT_AUTH.maxTokenBytes),
  };

  // Limits: `limits.*` wins over the reference's peekTimeouts / maxConcurrentPeeks.
  const limitsIn = dict(doc.limits, 'limits');
  checkKeys(limitsIn, Object.keys(LIMIT_RULES), 'limits');
  const peek = dict(doc.peekTimeouts, 'peekTimeouts');
  checkKeys(peek, ['firstByteSeconds', 'idleExtensionSeconds', 'absoluteMaxSeconds'], 'peekTimeouts');
  const fromReference: Partial<Record<keyof ResolvedLimits, number>> = {};
  const peekSeconds = (key: string, target: keyof ResolvedLimits) => {
    const s = int(peek[key], `peekTimeouts.${key}`, 0, 3600, 0);
    if (s > 0) fromReference[target] = s * 1000;
  };
  peekSeconds('firstByteSeconds', 'sniffFirstByteTimeoutMs');
  peekSeconds('idleExtensionSeconds', 'sniffReadExtensionMs');
  peekSeconds('absoluteMaxSeconds', 'sniffAbsoluteTimeoutMs');
  const peeks = int(doc.maxConcurrentPeeks, 'maxConcurrentPeeks', -1, 1_000_000, 0);
  if (peeks > 0) fromReference.maxConcurrentSniffs = peeks;
  if (peeks === -1) {
    fromReference.maxConcurrentSniffs = LIMIT_RULES.maxConcurrentSniffs.max;
    warnings.push(`maxConcurrentPeeks -1 (unbounded) is capped at ${LIMIT_RULES.maxConcurrentSniffs.max}`);
  }
  const limits = {} as Record<keyof ResolvedLimits, number>;
  for (const [key, rule] of Object.entries(LIMIT_RULES) as [
    keyof ResolvedLimits,
    { min: number; max: number },
  ][]) {
    limits[key] = int(
      limitsIn[key],
      `limits.${key}`,
      rule.min,
      rule.max,
      fromReference[key] ?? DEFAULT_LIMITS[key],
    );
  }
  if (limits.sniffFirstByteTimeoutMs > limits.sniffAbsoluteTimeoutMs) {
    throw new InvalidConfigError(
      present(limitsIn.sniffFirstByteTimeoutMs)
        ? 'limits.sniffFirstByteTimeoutMs'
        : 'peekTimeouts.firstByteSeconds',
      `must not exceed the absolute sniff timeout (${limits.sniffAbsoluteTimeoutMs} ms)`,
    );
  }

  // Keepalive.
  const kaIn = dict(doc.keepalive, 'keepalive');
  checkKeys(kaIn, KEEPALIVE_KEYS, 'keepalive');
  const keepalive = {} as Record<(typeof KEEPALIVE_KEYS)[number], number>;
  for (const key of KEEPALIVE_KEYS)
    keepalive[key] = int(kaIn[key], `keepalive.${key}`, 100, 3_600_000, DEFAULT_KEEPALIVE[key]);
  for (const side of ['hub', 'peer'] as const) {
    if (keepalive[`${side}PingIntervalMs`] >= keepalive[`${side}DeadAfterMs`]) {
      throw new InvalidConfigError(
        `keepalive.${side}DeadAfterMs`,
        `must be greater than keepalive.${side}PingIntervalMs`,
      );
    }
  }

  // Logging and admin.
  const logLevel = present(doc.logLevel) ? doc.logLevel : DEFAULT_LOG_LEVEL;
  if (typeof logLevel !== 'string' || !(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new InvalidConfigError(
      'logLevel',
      `must be one of ${LOG_LEVELS.join(', ')} (got ${describe(doc.logLevel)})`,
    );
  }
  let admin: ListenAddress | undefined;
  if (present(doc.admin) && doc.admin !== false) {
    let address: unknown = doc.admin;
    let at = 'admin';
    if (isDict(doc.admin)) {
      checkKeys(doc.admin, ['address'], 'admin');
      address = doc.admin.address;
      at = 'admin.address';
    }
    if (present(address)) {
      admin = parseListenAddress(address, at);
      const loopback = admin.host === 'localhost' || admin.host === '::1' || admin.host?.startsWith('127.');
      if (!loopback)
        warnings.push(`${at} is reachable from the network; bind it to 127.0.0.1 unless that is intended`);
    }
  }

  return deepFreeze({
    backendListen,
    peerListen,
    listeners,
    idleTimeoutMs,
    backendsJWTSecrets: secrets,
    peers,
    peerAuthentication: { trustedDomainSuffixes, caFile: peerCaFile },
    tls,
    auth,
    limits,
    keepalive,
    logLevel: logLevel as LogLevel | 'silent',
    admin,
    warnings,
  });
}

function resolveIn(baseDir: string | undefined, p: string): string {
  return baseDir === undefined ? p : path.resolve(baseDir, p);
}
