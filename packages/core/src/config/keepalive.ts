/** Keepalive of backend sessions and peer links (docs/protocol.md §1.6). */
import { ConfigIssue, integer, mapping, optional, type Parsed } from '@nexus-proxy/common/config';
import { DEFAULT_KEEPALIVE } from './defaults.js';
import type { ResolvedKeepalive } from './types.js';

const ms = (help: string, k: keyof ResolvedKeepalive) =>
  optional(integer(100, 3_600_000), `${help}, ms. Default: ${DEFAULT_KEEPALIVE[k]}.`);

/** Keys of the keepalive section. */
export const keepaliveFields = {
  keepalive: optional(
    mapping({
      hubPingIntervalMs: ms('Hub → backend WebSocket ping interval', 'hubPingIntervalMs'),
      hubDeadAfterMs: ms(
        'A backend session silent this long is dead (greater than the ping interval)',
        'hubDeadAfterMs',
      ),
      peerPingIntervalMs: ms('Peer link ping interval', 'peerPingIntervalMs'),
      peerDeadAfterMs: ms('A silent peer link is dead (greater than the ping interval)', 'peerDeadAfterMs'),
    }),
    'Keepalive of backend sessions and peer links.',
  ),
};

/** Ping intervals and dead-after times; each ping interval is below its dead-after time. */
export function resolveKeepalive(p: Parsed<typeof keepaliveFields>): ResolvedKeepalive {
  const k = p.keepalive ?? {};
  const keepalive = {
    hubPingIntervalMs: k.hubPingIntervalMs ?? DEFAULT_KEEPALIVE.hubPingIntervalMs,
    hubDeadAfterMs: k.hubDeadAfterMs ?? DEFAULT_KEEPALIVE.hubDeadAfterMs,
    peerPingIntervalMs: k.peerPingIntervalMs ?? DEFAULT_KEEPALIVE.peerPingIntervalMs,
    peerDeadAfterMs: k.peerDeadAfterMs ?? DEFAULT_KEEPALIVE.peerDeadAfterMs,
  };
  for (const side of ['hub', 'peer'] as const) {
    if (keepalive[`${side}PingIntervalMs`] >= keepalive[`${side}DeadAfterMs`]) {
      throw new ConfigIssue(
        `keepalive.${side}DeadAfterMs`,
        `must be greater than keepalive.${side}PingIntervalMs`,
      );
    }
  }
  return keepalive;
}
