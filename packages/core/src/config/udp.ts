/**
 * The UDP relay (docs/edge.md "UDP relay"): `udpRelayPorts` (the reference's key), the bound on flows
 * (`udpMaxFlows`) and on one datagram (`udpMaxDatagramBytes`). The ports bind `bindHost`, like the TCP
 * relay ports. Which backends serve a port is their `udp_routes` claim (claims.ts).
 */
import { ConfigIssue, integer, list, optional, type Parsed } from '@nexus-proxy/common/config';
import { MAX_DATA_PAYLOAD } from '@nexus-proxy/mux-protocol';
import { unbracket } from './listeners.js';
import type { ResolveContext, ResolvedUdpRelay } from './types.js';

/** Flows tracked at once across every UDP relay port (the reference's default). */
export const DEFAULT_UDP_MAX_FLOWS = 200_000;
/** Largest datagram relayed, bytes (the reference's default); larger ones are dropped and counted. */
export const DEFAULT_UDP_MAX_DATAGRAM_BYTES = 2_048;

/** Keys of the UDP relay section. */
export const udpFields = {
  udpRelayPorts: optional(
    list(integer(0, 65_535)),
    '(reference, later versions) Public UDP ports relayed to the backends that claim them in `udp_routes` (route `udp:<port>`); 0 = any free port (tests). Default: [] (off).',
  ),
  udpMaxFlows: optional(
    integer(1, 10_000_000),
    `(reference, later versions) UDP flows (source address and port, per relay port) tracked at once, node-wide; past it the least recently used flow is closed. Default: ${DEFAULT_UDP_MAX_FLOWS}.`,
  ),
  udpMaxDatagramBytes: optional(
    integer(1, MAX_DATA_PAYLOAD),
    `(reference, later versions) Largest UDP datagram relayed, bytes (at most one DATA frame, 32768); larger ones are dropped and counted. Default: ${DEFAULT_UDP_MAX_DATAGRAM_BYTES}.`,
  ),
};

/** The UDP relay, `undefined` when `udpRelayPorts` is empty. */
export function resolveUdpRelay(
  p: Parsed<typeof udpFields> & { bindHost?: string | null | undefined },
  ctx: ResolveContext,
): ResolvedUdpRelay | undefined {
  const ports = p.udpRelayPorts ?? [];
  const seen = new Set<number>();
  ports.forEach((port, i) => {
    if (port !== 0 && seen.has(port))
      throw new ConfigIssue(`udpRelayPorts[${i}]`, `lists port ${port} twice`);
    seen.add(port);
  });
  const claims = ctx.doc.allowedUDPPortClaims;
  if (ports.length === 0) {
    if (Array.isArray(claims) && claims.length > 0) {
      ctx.warnings.push(
        'allowedUDPPortClaims is set but udpRelayPorts is empty: no UDP flow reaches those claims on this node',
      );
    }
    return undefined;
  }
  const bindHost = p.bindHost ?? undefined;
  return Object.freeze({
    ports: Object.freeze([...ports]),
    host: bindHost === undefined ? undefined : unbracket(bindHost),
    maxFlows: p.udpMaxFlows ?? DEFAULT_UDP_MAX_FLOWS,
    maxDatagramBytes: p.udpMaxDatagramBytes ?? DEFAULT_UDP_MAX_DATAGRAM_BYTES,
  });
}
