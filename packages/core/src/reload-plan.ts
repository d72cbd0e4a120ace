/**
 * Reload planning: what a node does when its configuration changes, as a pure function of the
 * configuration in force, the next one and a few facts about the node (`planReload`). `node-reload.ts`
 * carries the plan out; nothing here reads a file or touches a socket.
 *
 * Setting names are configuration paths (`backendsJWTSecrets`, `limits.maxStreamsPerSession`, `tls`,
 * `peers`…), as `Nexus.reload()` reports them.
 */
import type { ResolvedKeepalive, ResolvedLimits, ResolvedNexusConfig, ResolvedOutbound } from './config.js';

/**
 * Limits that take effect without a restart: the relay listeners, the sniff budget and the hub read them
 * for each new connection, upgrade, backend session or stream (`maxPendingConnects`), the STUN server for
 * each datagram.
 */
export const LIVE_LIMITS = [
  'maxBufferedUploadBytes',
  'sniffFirstByteTimeoutMs',
  'sniffFirstByteTimeoutBusyMs',
  'sniffReadExtensionMs',
  'sniffAbsoluteTimeoutMs',
  'maxClientHelloBytes',
  'maxHttpHeadBytes',
  'maxStreamsPerSession',
  'maxControlMessagesPerSecond',
  'clientFinTimeoutMs',
  'streamEndGraceMs',
  'maxConcurrentSniffs',
  'maxConnectionsPerIp',
  'maxSessions',
  'authTimeoutMs',
  'maxMessageBytes',
  'maxPendingConnects',
  'maxPendingAuth',
  'maxPendingAuthPerAddress',
  'maxSessionsPerAddress',
  'maxSessionsPerToken',
  'stunMaxResponsesPerSecond',
  'stunMaxResponsesPerAddressPerSecond',
] as const satisfies ReadonlyArray<keyof ResolvedLimits>;

/** What the planner needs to know about the node besides its two configurations. */
export interface ReloadContext {
  /** The hub TLS comes from certificate files the node reads itself (not from the embedder). */
  ownsFileTls: boolean;
  /** `listen()` has loaded the hub TLS (before that, there is nothing to re-read). */
  tlsLoaded: boolean;
  /** The node was started with a mesh (peers or a peer listener configured). */
  meshWanted: boolean;
  /** The mesh runs (`listen()` started it). */
  meshRunning: boolean;
  /** Mesh settings the embedder fixed (`CreateNexusOptions.mesh`): the configuration does not change them. */
  meshFixed: { idleTimeoutMs: boolean; keepaliveIntervalMs: boolean; keepaliveTimeoutMs: boolean };
}

/** One step of a reload. */
export type ReloadAction =
  /** Only a restart applies `setting`; the node keeps the old value until then. */
  | { kind: 'restart'; setting: string }
  /** `setting` is read from the configuration in force at each use: installing the new one applies it. */
  | { kind: 'apply'; setting: string }
  /**
   * Re-read the hub certificate files (also when their paths are unchanged) and serve their content to
   * new handshakes when it changed (reported as `tls` then). Fails the reload when they cannot be read
   * or used.
   */
  | { kind: 'reload-certificate'; certFile: string; keyFile: string }
  /**
   * Replace the mesh's trust (suffixes, CA file re-read like the certificate files) when either changed;
   * reported as `peerAuthentication.trustedDomainSuffixes` / `peerAuthentication.caFile` (the latter also
   * when only the file's content changed). Fails the reload when the CA file cannot be read or used.
   */
  | {
      kind: 'reload-peer-trust';
      trustedDomainSuffixes: readonly string[];
      caFile: string | undefined;
      suffixesChanged: boolean;
      caFileChanged: boolean;
    }
  /** New idle timeout for new streams; `mesh`: also for new tunnels to local backends. */
  | { kind: 'set-idle-timeout'; setting: 'idleTimeoutSeconds'; idleTimeoutMs: number; mesh: boolean }
  | { kind: 'set-limit'; setting: string; key: keyof ResolvedLimits; value: number }
  | { kind: 'set-keepalive'; setting: string; key: keyof ResolvedKeepalive; value: number }
  /** New keepalive for every peer link (the `set-keepalive` steps report the settings). */
  | { kind: 'set-peer-keepalive'; keepaliveIntervalMs?: number; keepaliveTimeoutMs?: number }
  /** Dial new peers, stop removed ones. */
  | { kind: 'set-peers'; setting: 'peers'; peers: readonly string[] }
  /** New bandwidth cap for every relay, running ones included (`0` lifts it). */
  | { kind: 'set-bandwidth'; setting: 'totalBandwidthMbps'; totalBandwidthMbps: number };

const changed = (a: unknown, b: unknown): boolean => JSON.stringify(a) !== JSON.stringify(b);

/** The configuration key of each resolved outbound setting. */
const OUTBOUND_SETTINGS: ReadonlyArray<[keyof ResolvedOutbound, string]> = [
  ['maxConnsPerBackend', 'maxOutboundConnsPerBackend'],
  ['dialTimeoutMs', 'outboundDialTimeoutSeconds'],
  ['idleTimeoutMs', 'outboundIdleTimeoutSeconds'],
  ['allowedNetworks', 'allowedOutboundNetworks'],
];

/**
 * The steps that take a node from `before` to `next`, in the order they run. Steps that can fail
 * (`reload-certificate`, `reload-peer-trust`) come first, so a failure leaves the old configuration whole.
 */
export function planReload(
  before: ResolvedNexusConfig,
  next: ResolvedNexusConfig,
  context: ReloadContext,
): ReloadAction[] {
  const actions: ReloadAction[] = [];

  // 1. Hub TLS: files this node reads itself are re-read; any other change needs a restart.
  const filesLive = context.ownsFileTls && next.tls.mode === 'files';
  if (changed(before.tls, next.tls) && !filesLive) actions.push({ kind: 'restart', setting: 'tls' });

  // The mesh's trust (docs/protocol.md §2.1). It can only change live on a node that runs a mesh: one that
  // started without trusted suffixes has no peer listener, and a restart creates one.
  const beforeAuth = before.peerAuthentication;
  const nextAuth = next.peerAuthentication;
  const meshLive = context.meshWanted && nextAuth.trustedDomainSuffixes.length > 0;
  if (meshLive && context.meshRunning) {
    actions.push({
      kind: 'reload-peer-trust',
      trustedDomainSuffixes: nextAuth.trustedDomainSuffixes,
      caFile: nextAuth.caFile,
      suffixesChanged: changed(beforeAuth.trustedDomainSuffixes, nextAuth.trustedDomainSuffixes),
      caFileChanged: nextAuth.caFile !== beforeAuth.caFile,
    });
  } else {
    for (const key of ['trustedDomainSuffixes', 'caFile'] as const) {
      if (changed(beforeAuth[key], nextAuth[key]))
        actions.push({ kind: meshLive ? 'apply' : 'restart', setting: `peerAuthentication.${key}` });
    }
  }
  if (filesLive && context.tlsLoaded && next.tls.mode === 'files')
    actions.push({ kind: 'reload-certificate', certFile: next.tls.certFile, keyFile: next.tls.keyFile });

  // 2. Live settings.
  if (changed(before.backendsJWTSecrets, next.backendsJWTSecrets))
    actions.push({ kind: 'apply', setting: 'backendsJWTSecrets' });
  if (changed(before.auth, next.auth)) actions.push({ kind: 'apply', setting: 'auth' });
  // The hub reads the claim policy for each new connection and session.
  if (changed(before.backendClaims, next.backendClaims))
    actions.push({ kind: 'apply', setting: 'backendClaims' });
  if (before.idleTimeoutMs !== next.idleTimeoutMs) {
    actions.push({
      kind: 'set-idle-timeout',
      setting: 'idleTimeoutSeconds',
      idleTimeoutMs: next.idleTimeoutMs,
      mesh: !context.meshFixed.idleTimeoutMs,
    });
  }
  for (const key of Object.keys(next.limits) as Array<keyof ResolvedLimits>) {
    if (before.limits[key] === next.limits[key]) continue;
    if ((LIVE_LIMITS as readonly string[]).includes(key))
      actions.push({ kind: 'set-limit', setting: `limits.${key}`, key, value: next.limits[key] });
    else actions.push({ kind: 'restart', setting: `limits.${key}` });
  }
  // Every keepalive setting is live: the hub's for new backend sessions, the peer ones for every link.
  const peerKeepalive: { keepaliveIntervalMs?: number; keepaliveTimeoutMs?: number } = {};
  for (const key of Object.keys(next.keepalive) as Array<keyof ResolvedKeepalive>) {
    if (before.keepalive[key] === next.keepalive[key]) continue;
    actions.push({ kind: 'set-keepalive', setting: `keepalive.${key}`, key, value: next.keepalive[key] });
    // As at start, what the embedder fixed wins over the configuration.
    if (key === 'peerPingIntervalMs' && !context.meshFixed.keepaliveIntervalMs)
      peerKeepalive.keepaliveIntervalMs = next.keepalive[key];
    if (key === 'peerDeadAfterMs' && !context.meshFixed.keepaliveTimeoutMs)
      peerKeepalive.keepaliveTimeoutMs = next.keepalive[key];
  }
  // A node without a mesh has no link to apply the peer keepalive to: nothing to restart for either.
  if (Object.keys(peerKeepalive).length > 0) actions.push({ kind: 'set-peer-keepalive', ...peerKeepalive });

  // Outbound connections read the configuration in force when they are requested.
  for (const [key, setting] of OUTBOUND_SETTINGS) {
    if (changed(before.outbound[key], next.outbound[key])) actions.push({ kind: 'apply', setting });
  }

  // The bandwidth scheduler takes a new cap at once; running relays are metered or released.
  if (before.totalBandwidthMbps !== next.totalBandwidthMbps) {
    actions.push({
      kind: 'set-bandwidth',
      setting: 'totalBandwidthMbps',
      totalBandwidthMbps: next.totalBandwidthMbps,
    });
  }

  // 3. The mesh's dialers: new peers are dialled, removed ones stop and their outbound links close.
  if (changed(before.peers, next.peers)) {
    actions.push(
      context.meshWanted
        ? { kind: 'set-peers', setting: 'peers', peers: next.peers }
        : { kind: 'restart', setting: 'peers' },
    );
  }

  // 4. Bound sockets: a restart applies them. Rebinding live would have to refuse connections between
  // closing the old socket and binding the new one (or bind both), and the TLS mode decides how the hub
  // gets its certificate at start-up.
  const fixed: Array<[string, unknown, unknown]> = [
    ['backendListenAddress', before.backendListen, next.backendListen],
    ['peerListenAddress', before.peerListen, next.peerListen],
    ['listeners', before.listeners, next.listeners],
    ['stunPort', before.stun, next.stun],
    // The UDP sockets and the flow table are made once; a restart applies new ports and bounds.
    ['udpRelayPorts', before.udp, next.udp],
    // The registration loop keeps the endpoint and body it started with.
    ['registrationURL', before.registration, next.registration],
    // Discovery keeps the connection, bucket and identity it started with.
    ['meshDiscovery', before.meshDiscovery, next.meshDiscovery],
    // The verifier's URL, timeout and CA file are fixed when the node is created.
    ['remoteVerifierURL', before.remoteVerifier, next.remoteVerifier],
  ];
  for (const [setting, a, b] of fixed) if (changed(a, b)) actions.push({ kind: 'restart', setting });
  return actions;
}
