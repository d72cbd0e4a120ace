/**
 * The SDK's current-era options (`tokenProvider`, `backend`): which provider issues the tokens and what
 * the backend claims in them. Validated here for both the SDK and the configuration file, so a claim set
 * the hub would refuse is an {@link InvalidOptionsError} at start-up instead.
 */
import { normalizeHostnamePattern } from '@nexus-proxy/sni';
import { type AttestationContext, DEFAULT_CHALLENGE_TIMEOUT, type TokenIdentity } from './attestation.js';
import {
  type CommandTokenProviderOptions,
  createCommandTokenProvider,
  DEFAULT_COMMAND_TIMEOUT_SECONDS,
} from './command-token-provider.js';
import { InvalidOptionsError } from './errors.js';
import { createHmacTokenProvider, type HmacTokenProviderOptions } from './hmac-token-provider.js';
import type { TokenProvider, UdpRouteClaim } from './token-provider.js';

/** Default longest wait for a provider function's token, ms. */
export const DEFAULT_TOKEN_TIMEOUT = 30_000;
/** Extra time past a command's own timeout before the client gives up on it, ms. */
const COMMAND_TIMEOUT_MARGIN = 5_000;

/** What the backend claims in its tokens (reference: the backend's config keys and `attestation.outbound*`). */
export interface BackendIdentity {
  /** Backend name (`sub`). Required. */
  name: string;
  /** Hostnames and `*.suffix` wildcards. */
  hostnames?: readonly string[];
  /** TCP port claims (1–65535). */
  tcpPorts?: readonly number[];
  /** UDP port claims. */
  udpRoutes?: readonly UdpRouteClaim[];
  /** ≤ 0 → 1. Default: 1. */
  weight?: number;
  /** Ask for outbound (SOCKS5) connections through the node. Default: false. */
  outboundAllowed?: boolean;
  /** Ports outbound connections may reach (with `outboundAllowed`). */
  allowedOutboundPorts?: readonly number[];
}

/** A provider function, or the options of a built-in one (`command` → command provider, else HMAC). */
export type TokenProviderOption = TokenProvider | CommandTokenProviderOptions | HmacTokenProviderOptions;

function isPort(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= 65535;
}

function ports(value: unknown, at: string): number[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidOptionsError(at, 'must be a list of ports');
  const out: number[] = [];
  value.forEach((p, i) => {
    if (!isPort(p))
      throw new InvalidOptionsError(
        `${at}[${i}]`,
        `must be a port between 1 and 65535 (got ${JSON.stringify(p)})`,
      );
    if (!out.includes(p)) out.push(p);
  });
  return out;
}

function udpRoutes(value: unknown, at: string): UdpRouteClaim[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value))
    throw new InvalidOptionsError(at, 'must be a list of { port, flowIdleTimeoutSeconds }');
  const seen = new Set<number>();
  return value.map((route, i) => {
    const r = (route ?? {}) as { port?: unknown; flowIdleTimeoutSeconds?: unknown };
    if (!isPort(r.port))
      throw new InvalidOptionsError(`${at}[${i}].port`, 'must be a port between 1 and 65535');
    if (seen.has(r.port)) throw new InvalidOptionsError(`${at}[${i}].port`, `duplicates UDP port ${r.port}`);
    seen.add(r.port);
    const t = r.flowIdleTimeoutSeconds;
    if (t === undefined || t === null) return { port: r.port };
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0) {
      throw new InvalidOptionsError(`${at}[${i}].flowIdleTimeoutSeconds`, 'must be a non-negative integer');
    }
    return { port: r.port, flowIdleTimeoutSeconds: t };
  });
}

/**
 * Validates a backend's claims: names normalised and de-duplicated (route keys `tcp:`/`udp:` refused),
 * ports 1–65535, weight ≤ 0 → 1, and at least one hostname, TCP port or UDP route. `at` prefixes paths.
 */
export function resolveBackendIdentity(
  input: BackendIdentity | undefined,
  at: string,
): Readonly<TokenIdentity> {
  if (typeof input !== 'object' || input === null) {
    throw new InvalidOptionsError(at, 'is required with tokenProvider: { name, hostnames, … }');
  }
  if (typeof input.name !== 'string' || input.name.trim() === '') {
    throw new InvalidOptionsError(`${at}.name`, 'must be a non-empty string');
  }
  const hostnames: string[] = [];
  if (input.hostnames !== undefined && input.hostnames !== null) {
    if (!Array.isArray(input.hostnames))
      throw new InvalidOptionsError(`${at}.hostnames`, 'must be a list of hostnames');
    input.hostnames.forEach((raw, i) => {
      const pattern =
        typeof raw === 'string' && !/^(tcp|udp):/i.test(raw.trim())
          ? normalizeHostnamePattern(raw)
          : undefined;
      if (pattern === undefined) {
        throw new InvalidOptionsError(
          `${at}.hostnames[${i}]`,
          `is not a valid hostname or wildcard (got ${JSON.stringify(raw)})`,
        );
      }
      if (!hostnames.includes(pattern)) hostnames.push(pattern);
    });
  }
  const tcpPorts = ports(input.tcpPorts, `${at}.tcpPorts`);
  const routes = udpRoutes(input.udpRoutes, `${at}.udpRoutes`);
  if (hostnames.length === 0 && tcpPorts.length === 0 && routes.length === 0) {
    throw new InvalidOptionsError(
      `${at}.hostnames`,
      'must list at least one hostname (or give tcpPorts or udpRoutes)',
    );
  }
  const weight = input.weight ?? 1;
  if (typeof weight !== 'number' || !Number.isInteger(weight))
    throw new InvalidOptionsError(`${at}.weight`, 'must be an integer');
  if (input.outboundAllowed !== undefined && typeof input.outboundAllowed !== 'boolean') {
    throw new InvalidOptionsError(`${at}.outboundAllowed`, 'must be a boolean');
  }
  return Object.freeze({
    backendName: input.name.trim(),
    hostnames: Object.freeze(hostnames),
    tcpPorts: Object.freeze(tcpPorts),
    udpRoutes: Object.freeze(routes.map((r) => Object.freeze(r))),
    weight: weight > 0 ? weight : 1,
    outboundAllowed: input.outboundAllowed === true,
    allowedOutboundPorts: Object.freeze(ports(input.allowedOutboundPorts, `${at}.allowedOutboundPorts`)),
  });
}

/** What {@link resolveAttestation} reads of the client options. */
export interface AttestationOptionsInput {
  tokenProvider: TokenProviderOption;
  backend: BackendIdentity | undefined;
  challengeTimeoutMs?: number | undefined;
  tokenTimeoutMs?: number | undefined;
}

function positiveMs(value: unknown, at: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidOptionsError(at, 'must be a positive finite number');
  }
  return value;
}

/** The current-era context of a client: its provider (built from options when given as such) and claims. */
export function resolveAttestation(input: AttestationOptionsInput): AttestationContext {
  const option = input.tokenProvider;
  const identity = resolveBackendIdentity(input.backend, 'backend');
  let provider: TokenProvider;
  let defaultTimeout = DEFAULT_TOKEN_TIMEOUT;
  if (typeof option === 'function') provider = option;
  else if (
    typeof option === 'object' &&
    option !== null &&
    'command' in option &&
    option.command !== undefined
  ) {
    provider = createCommandTokenProvider(option, 'tokenProvider');
    defaultTimeout =
      (option.timeoutSeconds || DEFAULT_COMMAND_TIMEOUT_SECONDS) * 1000 + COMMAND_TIMEOUT_MARGIN;
  } else if (typeof option === 'object' && option !== null) {
    provider = createHmacTokenProvider(option as HmacTokenProviderOptions, 'tokenProvider');
  } else {
    throw new InvalidOptionsError('tokenProvider', 'must be a function, { command, … } or { hmacSecret, … }');
  }
  return Object.freeze({
    provider,
    identity,
    challengeTimeoutMs: positiveMs(input.challengeTimeoutMs, 'challengeTimeoutMs', DEFAULT_CHALLENGE_TIMEOUT),
    issueTimeoutMs: positiveMs(input.tokenTimeoutMs, 'tokenTimeoutMs', defaultTimeout),
  });
}
