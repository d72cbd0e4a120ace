/**
 * The claims of a current-era backend token (docs/protocol.md §5.6): parsed from a verified payload,
 * validated against the node's claim policy (port allow-lists, UDP idle-timeout bounds, outbound), and
 * compared between handshake stages and re-authentication rounds. Every refusal is an {@link AuthError}
 * whose `reason` fits a close frame.
 */
import type { JWTPayload } from 'jose';
import { DEFAULT_MAX_TOKEN_HOSTNAMES, normalizeTokenHostnames, tokenHostnameEntries } from './auth.js';
import type { OutboundClaims, UdpRouteClaim } from './backend-identity.js';
import { AuthError } from './errors.js';
import { normalizeWeight } from './weighted-round-robin.js';

/** The `iss` every current-era token carries. */
export const CURRENT_ERA_ISSUER = 'authorizer';
/** The audience a current-era token's `aud` must contain. */
export const CURRENT_ERA_AUDIENCE = 'nexus';
/** Default UDP flow idle timeout of a route that names none, seconds: 30. */
export const DEFAULT_UDP_FLOW_IDLE_TIMEOUT_SECONDS = 30;
/** Default shortest UDP flow idle timeout a route may claim, seconds: 5. */
export const DEFAULT_UDP_FLOW_IDLE_TIMEOUT_MIN_SECONDS = 5;
/** Default longest UDP flow idle timeout a route may claim, seconds: 300. */
export const DEFAULT_UDP_FLOW_IDLE_TIMEOUT_MAX_SECONDS = 300;

/** What the node allows current-era tokens to claim (the node configuration's claim keys). */
export interface ClaimPolicy {
  /** TCP ports a token may claim; empty = every `tcp_ports` claim is refused. Default: `[]`. */
  readonly allowedTCPPortClaims: readonly number[];
  /** UDP ports a token may claim; empty = every `udp_routes` claim is refused. Default: `[]`. */
  readonly allowedUDPPortClaims: readonly number[];
  /** Idle timeout of a UDP route that names none, seconds. Default: `30`. */
  readonly udpFlowIdleTimeoutDefaultSeconds: number;
  /** Claimed idle timeouts are raised to this, seconds. Default: `5`. */
  readonly udpFlowIdleTimeoutMinSeconds: number;
  /** Claimed idle timeouts are lowered to this, seconds. Default: `300`. */
  readonly udpFlowIdleTimeoutMaxSeconds: number;
  /** Whether a token may claim `outbound_allowed`. Default: `false`. */
  readonly allowOutbound: boolean;
  /** Ports `allowed_outbound_ports` may list; empty = any. Default: `[]`. */
  readonly allowedOutboundPorts: readonly number[];
  /** Most `hostnames` entries. Default: `1_000`. */
  readonly maxHostnames: number;
}

/** The default {@link ClaimPolicy}: no port claims, no outbound, the reference's UDP timeouts. */
export const DEFAULT_CLAIM_POLICY: ClaimPolicy = Object.freeze({
  allowedTCPPortClaims: Object.freeze([]) as readonly number[],
  allowedUDPPortClaims: Object.freeze([]) as readonly number[],
  udpFlowIdleTimeoutDefaultSeconds: DEFAULT_UDP_FLOW_IDLE_TIMEOUT_SECONDS,
  udpFlowIdleTimeoutMinSeconds: DEFAULT_UDP_FLOW_IDLE_TIMEOUT_MIN_SECONDS,
  udpFlowIdleTimeoutMaxSeconds: DEFAULT_UDP_FLOW_IDLE_TIMEOUT_MAX_SECONDS,
  allowOutbound: false,
  allowedOutboundPorts: Object.freeze([]) as readonly number[],
  maxHostnames: DEFAULT_MAX_TOKEN_HOSTNAMES,
});

/** A current-era token's claims, validated and normalised. */
export interface CurrentEraClaims {
  /** Normalised, valid, de-duplicated patterns, in token order (may be empty when ports are claimed). */
  readonly hostnames: readonly string[];
  /** `hostnames` entries dropped as invalid, as written. */
  readonly ignoredHostnames: readonly string[];
  /** `tcp_ports`: de-duplicated, ascending, each in `allowedTCPPortClaims`. */
  readonly tcpPorts: readonly number[];
  /** `udp_routes`: one per port, ascending, with the effective (clamped) idle timeout. */
  readonly udpRoutes: readonly UdpRouteClaim[];
  /** `outbound_allowed` and `allowed_outbound_ports` (de-duplicated, ascending). */
  readonly outbound: OutboundClaims;
  /** Effective pool weight, ≥ 1 (`weight` ≤ 0 or absent → 1). */
  readonly weight: number;
  /** `weight` as claimed (`0` when absent): a later stage compares it only when it is above 0. */
  readonly weightClaim: number;
  readonly sessionNonce: string | undefined;
  readonly handshakeMaxAgeSeconds: number | undefined;
  readonly reauthIntervalSeconds: number | undefined;
  readonly reauthGraceSeconds: number | undefined;
  /** ≥ 0 when present. */
  readonly maintenanceGraceCapSeconds: number | undefined;
  /** An `https:` URL with a host, when present. */
  readonly authorizerStatusUri: string | undefined;
  readonly policyVersion: string | undefined;
  /** Carried, never used (as in the reference). */
  readonly issuedAtQuote: string | undefined;
  /** `iat`, seconds since the epoch. */
  readonly issuedAt: number | undefined;
}

/** True when `claims` carry `iss: "authorizer"` and an `aud` containing `"nexus"` (both are required). */
export function hasCurrentEraIssuer(claims: JWTPayload): boolean {
  const aud = claims.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  return claims.iss === CURRENT_ERA_ISSUER && audiences.includes(CURRENT_ERA_AUDIENCE);
}

/**
 * Parse and validate a verified current-era payload against `policy`. Throws {@link AuthError}: `invalid
 * token issuer`, `invalid token audience`, `invalid token claims: <claim>`, `no valid hostnames`,
 * `no hostnames or port claims`, the port, UDP and outbound refusals, `maintenance_grace_cap_seconds
 * cannot be negative`, `authorizer_status_uri must be an https URL with a host`.
 */
export function parseCurrentClaims(
  claims: JWTPayload,
  policy: ClaimPolicy = DEFAULT_CLAIM_POLICY,
): CurrentEraClaims {
  if (claims.iss !== CURRENT_ERA_ISSUER) throw new AuthError('invalid token issuer');
  if (!hasCurrentEraIssuer(claims)) throw new AuthError('invalid token audience');

  const entries = tokenHostnameEntries(claims.hostnames, policy.maxHostnames);
  const { hostnames, ignoredHostnames } = normalizeTokenHostnames(entries);
  if (entries.length > 0 && hostnames.length === 0) throw new AuthError('no valid hostnames');
  const tcpPorts = parseTcpPorts(claims.tcp_ports, policy);
  const udpRoutes = parseUdpRoutes(claims.udp_routes, policy);
  if (hostnames.length === 0 && tcpPorts.length === 0 && udpRoutes.length === 0) {
    throw new AuthError('no hostnames or port claims');
  }
  const outbound = parseOutbound(claims.outbound_allowed, claims.allowed_outbound_ports, policy);
  const weightClaim = intClaim(claims, 'weight') ?? 0;

  const maintenanceGraceCapSeconds = intClaim(claims, 'maintenance_grace_cap_seconds');
  if (maintenanceGraceCapSeconds !== undefined && maintenanceGraceCapSeconds < 0) {
    throw new AuthError('maintenance_grace_cap_seconds cannot be negative');
  }
  const authorizerStatusUri = stringClaim(claims, 'authorizer_status_uri');
  if (authorizerStatusUri !== undefined && !isHttpsUrlWithHost(authorizerStatusUri)) {
    throw new AuthError('authorizer_status_uri must be an https URL with a host');
  }
  return {
    hostnames,
    ignoredHostnames,
    tcpPorts,
    udpRoutes,
    outbound,
    weight: normalizeWeight(weightClaim),
    weightClaim,
    sessionNonce: stringClaim(claims, 'session_nonce'),
    handshakeMaxAgeSeconds: intClaim(claims, 'handshake_max_age_seconds'),
    reauthIntervalSeconds: intClaim(claims, 'reauth_interval_seconds'),
    reauthGraceSeconds: intClaim(claims, 'reauth_grace_seconds'),
    maintenanceGraceCapSeconds,
    authorizerStatusUri,
    policyVersion: stringClaim(claims, 'policy_version'),
    issuedAtQuote: stringClaim(claims, 'issued_at_quote'),
    issuedAt: typeof claims.iat === 'number' ? claims.iat : undefined,
  };
}

/**
 * Stage 0's freshness rule: with `handshake_max_age_seconds` > 0, `iat` is required and the token's age
 * (now − iat) must not exceed it. Throws {@link AuthError}.
 */
export function checkHandshakeAge(claims: CurrentEraClaims, nowMs: number = Date.now()): void {
  const maxAge = claims.handshakeMaxAgeSeconds;
  if (maxAge === undefined || maxAge <= 0) return;
  if (claims.issuedAt === undefined) throw new AuthError('handshake token has no iat');
  if (nowMs / 1000 - claims.issuedAt > maxAge) {
    throw new AuthError('handshake token older than handshake_max_age_seconds');
  }
}

/**
 * Why `next` (a stage-1 or re-authentication token) does not repeat `expected`'s sets, or `undefined` when
 * it does: hostnames, TCP ports, UDP routes (port and effective timeout), `outbound_allowed`, outbound
 * ports, and the weight when `next` claims one above 0. `against` names `expected` in the reason.
 */
export function claimSetMismatch(
  expected: CurrentEraClaims,
  next: CurrentEraClaims,
  against: 'the handshake token' | 'the registered set',
): string | undefined {
  if (!sameSet(expected.hostnames, next.hostnames)) return `hostnames differ from ${against}`;
  if (!sameSet(expected.tcpPorts, next.tcpPorts)) return `tcp port claims differ from ${against}`;
  const udp = (c: CurrentEraClaims) => c.udpRoutes.map((r) => `${r.port}/${r.flowIdleTimeoutSeconds}`);
  if (!sameSet(udp(expected), udp(next))) return `udp route claims differ from ${against}`;
  if (expected.outbound.allowed !== next.outbound.allowed) return `outbound_allowed differs from ${against}`;
  if (!sameSet(expected.outbound.ports, next.outbound.ports)) {
    return `outbound port claims differ from ${against}`;
  }
  if (next.weightClaim > 0 && next.weight !== expected.weight) return `weight differs from ${against}`;
  return undefined;
}

function sameSet<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((x) => set.has(x));
}

function invalid(claim: string): AuthError {
  return new AuthError(`invalid token claims: ${claim}`);
}

/** An integer claim (Go `*int`): absent or `null` → `undefined`; anything but a safe integer → refused. */
function intClaim(claims: JWTPayload, name: string): number | undefined {
  const value = claims[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw invalid(name);
  return value;
}

function stringClaim(claims: JWTPayload, name: string): string | undefined {
  const value = claims[name];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw invalid(name);
  return value;
}

/** A list claim of integers; absent or `null` → `[]`. */
function intList(value: unknown, name: string): number[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid(name);
  return value.map((x) => {
    if (typeof x !== 'number' || !Number.isSafeInteger(x)) throw invalid(name);
    return x;
  });
}

function isPort(n: number): boolean {
  return n >= 1 && n <= 65_535;
}

function parseTcpPorts(raw: unknown, policy: ClaimPolicy): number[] {
  const ports = intList(raw, 'tcp_ports');
  if (ports.length === 0) return [];
  if (policy.allowedTCPPortClaims.length === 0) {
    throw new AuthError('tcp port claims are disabled (allowedTCPPortClaims is empty)');
  }
  const out = new Set<number>();
  for (const port of ports) {
    if (!isPort(port)) throw new AuthError(`invalid tcp port claim: ${port}`);
    if (!policy.allowedTCPPortClaims.includes(port)) {
      throw new AuthError(`tcp port claim ${port} is not allowed`);
    }
    out.add(port);
  }
  return [...out].sort((a, b) => a - b);
}

function parseUdpRoutes(raw: unknown, policy: ClaimPolicy): UdpRouteClaim[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('udp_routes');
  if (raw.length === 0) return [];
  if (policy.allowedUDPPortClaims.length === 0) {
    throw new AuthError('udp port claims are disabled (allowedUDPPortClaims is empty)');
  }
  const min = policy.udpFlowIdleTimeoutMinSeconds;
  const max = policy.udpFlowIdleTimeoutMaxSeconds;
  const byPort = new Map<number, number>();
  for (const entry of raw) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw invalid('udp_routes');
    const route = entry as Record<string, unknown>;
    const port = route.port ?? 0;
    const timeout = route.flow_idle_timeout_seconds;
    if (typeof port !== 'number' || !Number.isSafeInteger(port)) throw invalid('udp_routes');
    if (
      timeout !== undefined &&
      timeout !== null &&
      (typeof timeout !== 'number' || !Number.isSafeInteger(timeout))
    ) {
      throw invalid('udp_routes');
    }
    if (!isPort(port)) throw new AuthError(`invalid udp route port claim: ${port}`);
    if (!policy.allowedUDPPortClaims.includes(port))
      throw new AuthError(`udp port claim ${port} is not allowed`);
    const claimed =
      typeof timeout === 'number' && timeout > 0 ? timeout : policy.udpFlowIdleTimeoutDefaultSeconds;
    const effective = Math.min(Math.max(claimed, min), max);
    const existing = byPort.get(port);
    if (existing !== undefined && existing !== effective) {
      throw new AuthError(`conflicting udp route policies for port ${port}`);
    }
    byPort.set(port, effective);
  }
  return [...byPort]
    .sort(([a], [b]) => a - b)
    .map(([port, flowIdleTimeoutSeconds]) => Object.freeze({ port, flowIdleTimeoutSeconds }));
}

function parseOutbound(allowedRaw: unknown, portsRaw: unknown, policy: ClaimPolicy): OutboundClaims {
  if (allowedRaw !== undefined && allowedRaw !== null && typeof allowedRaw !== 'boolean') {
    throw invalid('outbound_allowed');
  }
  const allowed = allowedRaw === true;
  const ports = intList(portsRaw, 'allowed_outbound_ports');
  if (!allowed) {
    if (ports.length > 0) throw new AuthError('allowed_outbound_ports set but outbound_allowed is false');
    return { allowed, ports: [] };
  }
  if (!policy.allowOutbound) throw new AuthError('outbound_allowed claimed but allowOutbound is off');
  const out = new Set<number>();
  for (const port of ports) {
    if (!isPort(port)) throw new AuthError(`invalid outbound port claim: ${port}`);
    if (policy.allowedOutboundPorts.length > 0 && !policy.allowedOutboundPorts.includes(port)) {
      throw new AuthError(`outbound port claim ${port} is not allowed`);
    }
    out.add(port);
  }
  return { allowed, ports: [...out].sort((a, b) => a - b) };
}

function isHttpsUrlWithHost(raw: string): boolean {
  // WHATWG URL reads `https:///x` as host `x`; the authority must be written out.
  if (!/^https:\/\/[^/?#]/i.test(raw)) return false;
  try {
    const url = new URL(raw);
    return url.protocol === 'https:' && url.hostname !== '';
  } catch {
    return false;
  }
}
