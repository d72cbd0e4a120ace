/**
 * The STUN Binding server (`stunPort`, docs/edge.md "STUN"): its UDP port, which must not be one of the
 * UDP relay ports (both would bind the same socket). It binds `bindHost`, like the relay ports.
 */
import { ConfigIssue, integer, optional, type Parsed } from '@nexus-proxy/common/config';
import { unbracket } from './listeners.js';
import type { ResolveContext, ResolvedStun } from './types.js';

/** Keys of the STUN section. */
export const stunFields = {
  stunPort: optional(
    integer(0, 65535),
    '(reference, later versions) UDP port of the STUN Binding server (RFC 8489); 0 = off. Must not be one of udpRelayPorts. Default: 0.',
  ),
};

/** The STUN server's address, `undefined` when off. */
export function resolveStun(
  p: Parsed<typeof stunFields> & { bindHost?: string | null | undefined },
  ctx: ResolveContext,
): ResolvedStun | undefined {
  const port = p.stunPort ?? 0;
  if (port === 0) return undefined;
  // udpRelayPorts is read as written: the UDP relay's own section validates it.
  const udp = ctx.doc.udpRelayPorts;
  if (Array.isArray(udp) && udp.includes(port)) {
    throw new ConfigIssue(
      'stunPort',
      `must not be one of udpRelayPorts (${port} is listed there; both would bind UDP port ${port})`,
    );
  }
  const bindHost = p.bindHost ?? undefined;
  return Object.freeze({ port, host: bindHost === undefined ? undefined : unbracket(bindHost) });
}
