/**
 * What current-era backend tokens may claim (docs/protocol.md §5.6): the reference server's keys for TCP
 * and UDP port claims, UDP flow idle timeouts and outbound connections, and the re-authentication
 * maintenance cap (§1.10). The claims are validated at the handshake; acting on them is the business of the
 * features that use them.
 */
import { ConfigIssue, flag, integer, list, optional, type Parsed } from '@nexus-proxy/common/config';
import {
  DEFAULT_UDP_FLOW_IDLE_TIMEOUT_MAX_SECONDS,
  DEFAULT_UDP_FLOW_IDLE_TIMEOUT_MIN_SECONDS,
  DEFAULT_UDP_FLOW_IDLE_TIMEOUT_SECONDS,
} from '../current-claims.js';
import { DEFAULT_MAINTENANCE_GRACE_SECONDS } from '../backend-reauth.js';
import type { ResolveContext, ResolvedBackendClaims } from './types.js';

const ports = (help: string) => optional(list(integer(1, 65_535)), help);
const seconds = (help: string, dflt: number) =>
  optional(integer(1, 86_400), `${help}, seconds. Default: ${dflt}.`);

/** Keys of the claim policy. */
export const claimFields = {
  allowedTCPPortClaims: ports(
    '(reference) TCP ports a current-era token may claim in `tcp_ports`; empty = every such claim is refused. Default: [].',
  ),
  allowedUDPPortClaims: ports(
    '(reference) UDP ports a current-era token may claim in `udp_routes`; empty = every such claim is refused. Default: [].',
  ),
  udpFlowIdleTimeoutDefaultSeconds: seconds(
    '(reference) Idle timeout of a claimed UDP route that names none',
    DEFAULT_UDP_FLOW_IDLE_TIMEOUT_SECONDS,
  ),
  udpFlowIdleTimeoutMinSeconds: seconds(
    '(reference) Claimed UDP idle timeouts are raised to this',
    DEFAULT_UDP_FLOW_IDLE_TIMEOUT_MIN_SECONDS,
  ),
  udpFlowIdleTimeoutMaxSeconds: seconds(
    '(reference) Claimed UDP idle timeouts are lowered to this',
    DEFAULT_UDP_FLOW_IDLE_TIMEOUT_MAX_SECONDS,
  ),
  allowOutbound: optional(
    flag(),
    '(reference) Whether a current-era token may claim `outbound_allowed`; without it such a token is refused. Default: false.',
  ),
  allowedOutboundPorts: ports(
    '(reference) Ports `allowed_outbound_ports` may list; empty = any. Default: [].',
  ),
  maintenanceGraceDefaultSeconds: optional(
    integer(0, 2_000_000),
    `(reference) How long re-authentication is deferred while the authorizer is unhealthy, when the token names no maintenance_grace_cap_seconds, seconds. Default: ${DEFAULT_MAINTENANCE_GRACE_SECONDS}.`,
  ),
};

type ClaimsParsed = Parsed<typeof claimFields>;

/** The claim policy with its defaults; min ≤ max. */
export function resolveBackendClaims(p: ClaimsParsed, ctx: ResolveContext): ResolvedBackendClaims {
  const min = p.udpFlowIdleTimeoutMinSeconds ?? DEFAULT_UDP_FLOW_IDLE_TIMEOUT_MIN_SECONDS;
  const max = p.udpFlowIdleTimeoutMaxSeconds ?? DEFAULT_UDP_FLOW_IDLE_TIMEOUT_MAX_SECONDS;
  if (max < min) {
    throw new ConfigIssue(
      'udpFlowIdleTimeoutMaxSeconds',
      `must not be less than udpFlowIdleTimeoutMinSeconds (${min})`,
    );
  }
  const allowOutbound = p.allowOutbound ?? false;
  const allowedOutboundPorts = dedupe(p.allowedOutboundPorts);
  if (allowOutbound && allowedOutboundPorts.length === 0) {
    ctx.warnings.push(
      'allowOutbound is on and allowedOutboundPorts is empty: a backend may claim outbound connections to any port',
    );
  }
  return {
    allowedTCPPortClaims: dedupe(p.allowedTCPPortClaims),
    allowedUDPPortClaims: dedupe(p.allowedUDPPortClaims),
    udpFlowIdleTimeoutDefaultSeconds:
      p.udpFlowIdleTimeoutDefaultSeconds ?? DEFAULT_UDP_FLOW_IDLE_TIMEOUT_SECONDS,
    udpFlowIdleTimeoutMinSeconds: min,
    udpFlowIdleTimeoutMaxSeconds: max,
    allowOutbound,
    allowedOutboundPorts,
    maintenanceGraceDefaultSeconds: p.maintenanceGraceDefaultSeconds ?? DEFAULT_MAINTENANCE_GRACE_SECONDS,
  };
}

function dedupe(list: readonly number[] | null | undefined): number[] {
  return [...new Set(list ?? [])].sort((a, b) => a - b);
}
