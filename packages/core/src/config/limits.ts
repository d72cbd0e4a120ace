/**
 * Resource limits (`limits.*`) and the later reference versions' sniff settings they replace
 * (`peekTimeouts`, `maxConcurrentPeeks`): `limits` wins when both are given.
 */
import { ConfigIssue, integer, mapping, optional, type Parsed, present } from '@nexus-proxy/common/config';
import { DEFAULT_LIMITS } from './defaults.js';
import type { ResolveContext, ResolvedLimits } from './types.js';

/** Range and meaning of each limit. */
const LIMIT_RULES: Record<keyof ResolvedLimits, { min: number; max: number; help: string }> = {
  maxConcurrentSniffs: {
    min: 1,
    max: 1_000_000,
    help: 'Connections reading their ClientHello / HTTP head at once, node-wide.',
  },
  sniffFirstByteTimeoutMs: { min: 1, max: 3_600_000, help: 'The first byte must arrive within, ms.' },
  sniffFirstByteTimeoutBusyMs: {
    min: 1,
    max: 3_600_000,
    help: 'The first byte must arrive within this, ms, while half the sniff budget or more is in use.',
  },
  sniffReadExtensionMs: { min: 1, max: 3_600_000, help: 'Each read extends the sniff deadline by, ms.' },
  sniffAbsoluteTimeoutMs: { min: 1, max: 3_600_000, help: 'Hard cap on sniffing one connection, ms.' },
  maxClientHelloBytes: { min: 512, max: 1 << 20, help: 'Larger ClientHellos are closed, bytes.' },
  maxHttpHeadBytes: { min: 512, max: 16 << 20, help: 'Larger HTTP request heads are closed, bytes.' },
  maxStreamsPerSession: { min: 1, max: 1_000_000, help: 'Open streams per backend session.' },
  maxSessions: { min: 1, max: 10_000_000, help: 'Backend sessions per node.' },
  maxPendingConnects: {
    min: 1,
    max: 10_000_000,
    help: 'Streams per backend session the backend has not answered yet.',
  },
  maxConnectionsPerIp: {
    min: 0,
    max: 10_000_000,
    help: 'Connections (sniffing or relayed) per end-user address (IPv6: /64) on the relay ports; 0 = off.',
  },
  authTimeoutMs: { min: 1, max: 3_600_000, help: 'A backend must send its token within, ms.' },
  // A smaller cap would reject the full-size frames every reference backend sends (docs/protocol.md §1.3).
  maxMessageBytes: {
    min: 32_785,
    max: 64 << 20,
    help: 'Largest WebSocket message from a backend after its token, bytes.',
  },
  maxControlMessagesPerSecond: {
    min: 0,
    max: 100_000_000,
    help: 'Control messages plus pings per backend session per second; 0 = off.',
  },
  maxPendingAuth: {
    min: 1,
    max: 1_000_000,
    help: 'Hub upgrades waiting for their token at once (they do not count against maxSessions).',
  },
  maxPendingAuthPerAddress: {
    min: 1,
    max: 1_000_000,
    help: 'Hub upgrades waiting for their token from one address (IPv6: /64).',
  },
  maxSessionsPerAddress: {
    min: 1,
    max: 10_000_000,
    help: 'Backend sessions from one address (IPv6: /64).',
  },
  maxSessionsPerToken: {
    min: 1,
    max: 10_000_000,
    help: 'Backend sessions one token (current era: one backend identity) may hold at once.',
  },
  tlsHandshakeTimeoutMs: {
    min: 100,
    max: 600_000,
    help: 'Time a client has to finish its TLS handshake on the hub and peer listeners, ms.',
  },
  maxListenerConnections: {
    min: 1,
    max: 10_000_000,
    help: 'Open connections on the hub listener, and on the peer listener.',
  },
  maxPeerRoutes: {
    min: 1,
    max: 10_000_000,
    help: 'Routes kept from one peer announce (the first ones).',
  },
  maxLocalRoutes: {
    min: 1,
    max: 10_000_000,
    help: 'Hostname patterns (and route keys) served by local backends, node-wide; a backend that would take the node past it is refused.',
  },
  maxPeerMessageBytes: {
    min: 65_536,
    max: 67_108_864,
    help: 'Largest WebSocket message accepted on a peer link, bytes.',
  },
  maxBufferedBytes: {
    min: 65_536,
    max: 1_099_511_627_776,
    help: 'DATA from backends granted and not yet delivered to end users, node-wide, bytes (each stream may always have 64 KiB more).',
  },
  maxBufferedUploadBytes: {
    min: 65_536,
    max: 1_099_511_627_776,
    help: 'What end users (outbound connections, tunnels at their destination) sent that streams to backends hold before sending it, node-wide, bytes; past it a relay holds 16 KiB at most.',
  },
  clientFinTimeoutMs: {
    min: 0,
    max: 31_536_000_000,
    help: 'After an end user’s FIN, close once no byte moved for this long, ms; 0 = wait for the backend.',
  },
  streamEndGraceMs: {
    min: 0,
    max: 60_000,
    help: 'After a stream ends from the backend side and the end user got its FIN, close its connection fully this long after (or at its own FIN), ms; 0 = at once.',
  },
  stunMaxResponsesPerSecond: {
    min: 1,
    max: 10_000_000,
    help: 'STUN answers per second, node-wide; requests past it are dropped.',
  },
  stunMaxResponsesPerAddressPerSecond: {
    min: 1,
    max: 10_000_000,
    help: 'STUN answers per second to one address (IPv6: one /64); requests past it are dropped.',
  },
};

const LIMIT_KEYS = Object.keys(LIMIT_RULES) as (keyof ResolvedLimits)[];

function limitField(k: keyof ResolvedLimits) {
  const r = LIMIT_RULES[k];
  return optional(integer(r.min, r.max), `${r.help} Default: ${DEFAULT_LIMITS[k]}.`);
}

const limitEntries = Object.fromEntries(LIMIT_KEYS.map((k) => [k, limitField(k)])) as {
  [K in keyof ResolvedLimits]: ReturnType<typeof limitField>;
};

/** Keys of the limits section. */
export const limitFields = {
  peekTimeouts: optional(
    mapping({
      firstByteSeconds: optional(integer(0, 3600), '→ limits.sniffFirstByteTimeoutMs; 0 = default.'),
      idleExtensionSeconds: optional(integer(0, 3600), '→ limits.sniffReadExtensionMs; 0 = default.'),
      absoluteMaxSeconds: optional(integer(0, 3600), '→ limits.sniffAbsoluteTimeoutMs; 0 = default.'),
    }),
    '(reference, later versions) Sniff deadlines in seconds. Prefer limits.',
  ),
  maxConcurrentPeeks: optional(
    integer(-1, 1_000_000),
    '(reference, later versions) → limits.maxConcurrentSniffs; 0 = default, -1 = unbounded (capped). Prefer limits.',
  ),
  limits: optional(mapping(limitEntries), 'Resource limits.'),
};

type LimitsParsed = Parsed<typeof limitFields>;

/** Every limit: `limits.*`, else the reference's peek settings, else the default. */
export function resolveLimits(p: LimitsParsed, ctx: ResolveContext): ResolvedLimits {
  const fromReference: Partial<Record<keyof ResolvedLimits, number>> = {};
  const peek = p.peekTimeouts ?? {};
  const seconds = (s: number | null | undefined, target: keyof ResolvedLimits) => {
    if (s !== undefined && s !== null && s > 0) fromReference[target] = s * 1000;
  };
  seconds(peek.firstByteSeconds, 'sniffFirstByteTimeoutMs');
  seconds(peek.idleExtensionSeconds, 'sniffReadExtensionMs');
  seconds(peek.absoluteMaxSeconds, 'sniffAbsoluteTimeoutMs');
  const peeks = p.maxConcurrentPeeks ?? 0;
  if (peeks > 0) fromReference.maxConcurrentSniffs = peeks;
  if (peeks === -1) {
    const cap = LIMIT_RULES.maxConcurrentSniffs.max;
    fromReference.maxConcurrentSniffs = cap;
    ctx.warnings.push(`maxConcurrentPeeks -1 (unbounded) is capped at ${cap}`);
  }
  const given = p.limits ?? {};
  const limits = {} as Record<keyof ResolvedLimits, number>;
  for (const k of LIMIT_KEYS) limits[k] = given[k] ?? fromReference[k] ?? DEFAULT_LIMITS[k];
  if (limits.sniffFirstByteTimeoutMs > limits.sniffAbsoluteTimeoutMs) {
    throw new ConfigIssue(
      present(given.sniffFirstByteTimeoutMs)
        ? 'limits.sniffFirstByteTimeoutMs'
        : 'peekTimeouts.firstByteSeconds',
      `must not exceed the absolute sniff timeout (${limits.sniffAbsoluteTimeoutMs} ms)`,
    );
  }
  return limits;
}
