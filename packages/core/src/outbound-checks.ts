/**
 * The node's checks of an `outbound_connect` request (SOCKS5 egress, docs/edge.md "Outbound connections"),
 * in the reference's order and with its reason strings, which reference backend clients show: the node
 * allows outbound connections, the backend's claim allows them, the target is a short `host:port` without
 * control characters, the port is in the node's and then the claim's allow-list, and the backend is under
 * its connection limit. A pure function: the caller counts connections and dials (`connectOutbound`, which
 * applies the address policy to every address the name resolves to).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { normalizeHostname } from '@nexus-proxy/sni';
import type { OutboundClaims } from './backend-identity.js';
import type { ResolvedNexusConfig } from './config.js';

/** Longest `target_addr`, characters (the reference's limit). */
export const MAX_OUTBOUND_TARGET_LENGTH = 260;

/** The node's outbound settings the checks read. */
export interface OutboundNodeSettings {
  /** `allowOutbound`. */
  readonly allow: boolean;
  /** `allowedOutboundPorts`; empty = any. */
  readonly allowedPorts: readonly number[];
  /** `maxOutboundConnsPerBackend`; `-1` = no limit of its own. */
  readonly maxConnsPerBackend: number;
}

/** The node's settings from its configuration: the claim policy's `allowOutbound` and ports, the limit. */
export function outboundNodeSettings(
  config: Pick<ResolvedNexusConfig, 'backendClaims' | 'outbound'>,
): OutboundNodeSettings {
  return {
    allow: config.backendClaims.allowOutbound,
    allowedPorts: config.backendClaims.allowedOutboundPorts,
    maxConnsPerBackend: config.outbound.maxConnsPerBackend,
  };
}

/** One `outbound_connect`, as the backend sent it. */
export interface OutboundConnectRequest {
  /** `client_id`: the stream the connection will use. */
  readonly clientId: string | undefined;
  /** `target_addr`: `host:port`, `[v6]:port`. */
  readonly targetAddr: unknown;
}

/** Why a request is refused (a metric label); `message` is the reference's text for `outbound_result`. */
export type OutboundCheckFailure =
  | 'disabled'
  | 'not-allowed-for-backend'
  | 'target-too-long'
  | 'target-control-characters'
  | 'invalid-target'
  | 'invalid-port'
  | 'port-not-allowed-by-server'
  | 'port-not-allowed-for-backend'
  | 'connection-limit'
  | 'missing-client-id';

/** The target of an accepted request. */
export interface OutboundTarget {
  /** An IP address (IPv6 without brackets) or a normalised DNS name. */
  readonly host: string;
  readonly port: number;
  readonly kind: 'ipv4' | 'ipv6' | 'name';
}

/** The outcome of {@link checkOutboundConnect}. */
export type OutboundCheckResult =
  | ({ readonly ok: true } & OutboundTarget)
  | { readonly ok: false; readonly reason: OutboundCheckFailure; readonly message: string };

const NIL_UUID = '00000000-0000-0000-0000-000000000000';

const fail = (reason: OutboundCheckFailure, message: string): OutboundCheckResult => ({
  ok: false,
  reason,
  message,
});

/**
 * Checks one request. `claim` is the backend's identity's `outbound` (absent for a seed-era backend, which
 * can claim nothing); `activeConnections` is its established outbound connections plus its dials in flight.
 */
export function checkOutboundConnect(
  request: OutboundConnectRequest,
  node: OutboundNodeSettings,
  claim: OutboundClaims | undefined,
  activeConnections: number,
): OutboundCheckResult {
  if (!node.allow) return fail('disabled', 'outbound connections disabled on this proxy');
  if (claim?.allowed !== true) {
    return fail('not-allowed-for-backend', 'outbound connections not allowed for this backend');
  }
  const addr = request.targetAddr;
  if (typeof addr !== 'string') return fail('invalid-target', 'invalid target address');
  if (addr.length > MAX_OUTBOUND_TARGET_LENGTH) return fail('target-too-long', 'target address too long');
  if (/[\x00-\x1f\x7f]/.test(addr)) {
    return fail('target-control-characters', 'target address contains control characters');
  }
  const split = splitHostPort(addr);
  if (split === undefined) return fail('invalid-target', 'invalid target address');
  const target = parseHost(split.host);
  if (target === undefined) return fail('invalid-target', 'invalid target address');
  const port = /^\d{1,5}$/.test(split.port) ? Number(split.port) : 0;
  if (port < 1 || port > 65_535) return fail('invalid-port', 'invalid target port');
  if (node.allowedPorts.length > 0 && !node.allowedPorts.includes(port)) {
    return fail('port-not-allowed-by-server', `outbound port ${port} not allowed by server`);
  }
  if (claim.ports.length > 0 && !claim.ports.includes(port)) {
    return fail('port-not-allowed-for-backend', `outbound port ${port} not allowed for this backend`);
  }
  if (node.maxConnsPerBackend >= 0 && activeConnections >= node.maxConnsPerBackend) {
    return fail('connection-limit', 'outbound connection limit exceeded');
  }
  if (request.clientId === undefined || request.clientId === '' || request.clientId === NIL_UUID) {
    return fail('missing-client-id', 'missing client ID');
  }
  return { ok: true, ...target, port };
}

/** `host:port` or `[host]:port`; `undefined` when the shape is wrong (like Go's `net.SplitHostPort`). */
function splitHostPort(addr: string): { host: string; port: string } | undefined {
  if (addr.startsWith('[')) {
    const close = addr.indexOf(']');
    if (close === -1 || addr[close + 1] !== ':') return undefined;
    return { host: addr.slice(1, close), port: addr.slice(close + 2) };
  }
  const colon = addr.lastIndexOf(':');
  if (colon <= 0 || addr.indexOf(':') !== colon) return undefined;
  return { host: addr.slice(0, colon), port: addr.slice(colon + 1) };
}

/**
 * An IP literal or a DNS name. Numeric forms that resolvers read as IPv4 (`127.1`, `0x7f.1`, `2130706433`)
 * are refused, so no name is an address in disguise.
 */
function parseHost(host: string): Omit<OutboundTarget, 'port'> | undefined {
  if (isIPv4(host)) return { host, kind: 'ipv4' };
  if (isIPv6(host.split('%', 1)[0] ?? '')) return { host, kind: 'ipv6' };
  const name = normalizeHostname(host);
  if (name === undefined || name.startsWith('[') || /^[0-9.]+$/.test(name)) return undefined;
  return { host: name, kind: 'name' };
}
