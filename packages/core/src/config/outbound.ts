/**
 * Outbound connections (SOCKS5 egress, docs/edge.md "Outbound connections"): the reference's
 * `maxOutboundConnsPerBackend`, `outboundDialTimeoutSeconds` and `outboundIdleTimeoutSeconds`, and
 * Nexus's address policy (`allowedOutboundNetworks`). `allowOutbound` and `allowedOutboundPorts` belong to
 * the claim policy (`claims.ts`), which the checks read too.
 */
import { ConfigIssue, integer, list, nonEmptyText, optional, type Parsed } from '@nexus-proxy/common/config';
import { parseNetwork } from '../outbound-policy.js';
import {
  DEFAULT_MAX_OUTBOUND_CONNS_PER_BACKEND,
  DEFAULT_OUTBOUND_DIAL_TIMEOUT_SECONDS,
  DEFAULT_OUTBOUND_IDLE_TIMEOUT_SECONDS,
  MAX_OUTBOUND_CONNS_PER_BACKEND,
} from './defaults.js';
import type { ResolveContext, ResolvedOutbound } from './types.js';

/** Keys of the outbound section. */
export const outboundFields = {
  maxOutboundConnsPerBackend: optional(
    integer(-1, MAX_OUTBOUND_CONNS_PER_BACKEND),
    `(reference, later versions) Outbound connections (open and being dialled) per backend; 0 = ${DEFAULT_MAX_OUTBOUND_CONNS_PER_BACKEND}, -1 = no limit of its own (capped at ${MAX_OUTBOUND_CONNS_PER_BACKEND}). Default: 0.`,
  ),
  outboundDialTimeoutSeconds: optional(
    integer(0, 3_600),
    `(reference, later versions) An outbound connection must be up within, seconds; 0 = ${DEFAULT_OUTBOUND_DIAL_TIMEOUT_SECONDS}. Default: 0.`,
  ),
  outboundIdleTimeoutSeconds: optional(
    integer(0, 31_536_000),
    `(reference, later versions) Close an outbound connection idle this long, seconds; 0 = never. Default: ${DEFAULT_OUTBOUND_IDLE_TIMEOUT_SECONDS}.`,
  ),
  allowedOutboundNetworks: optional(
    list(nonEmptyText(), () => 'must be a list of networks'),
    'Networks (CIDR, or one address) outbound connections may reach although the address policy refuses them: loopback, private, link-local, CGNAT, multicast, cloud metadata… Default: [] (none).',
  ),
};

/** The outbound settings. */
export function resolveOutbound(p: Parsed<typeof outboundFields>, ctx: ResolveContext): ResolvedOutbound {
  const networks = (p.allowedOutboundNetworks ?? []).map((entry, i) => {
    const n = parseNetwork(entry);
    if (n === undefined) {
      throw new ConfigIssue(
        `allowedOutboundNetworks[${i}]`,
        `must be a network like "10.0.0.0/8" or "fd00::/8", or an address (got ${JSON.stringify(entry)})`,
      );
    }
    return `${n.network}/${n.prefix}`;
  });
  let maxConnsPerBackend = p.maxOutboundConnsPerBackend ?? 0;
  if (maxConnsPerBackend === 0) maxConnsPerBackend = DEFAULT_MAX_OUTBOUND_CONNS_PER_BACKEND;
  if (maxConnsPerBackend === -1) {
    maxConnsPerBackend = MAX_OUTBOUND_CONNS_PER_BACKEND;
    ctx.warnings.push(
      `maxOutboundConnsPerBackend -1 (unbounded) is capped at ${MAX_OUTBOUND_CONNS_PER_BACKEND}`,
    );
  }
  const dial = p.outboundDialTimeoutSeconds ?? 0;
  return {
    maxConnsPerBackend,
    dialTimeoutMs: (dial === 0 ? DEFAULT_OUTBOUND_DIAL_TIMEOUT_SECONDS : dial) * 1000,
    idleTimeoutMs: (p.outboundIdleTimeoutSeconds ?? DEFAULT_OUTBOUND_IDLE_TIMEOUT_SECONDS) * 1000,
    allowedNetworks: networks,
  };
}
