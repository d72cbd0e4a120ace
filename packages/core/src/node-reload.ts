/**
 * Carrying out a reload plan (`reload-plan.ts`) on a running node: the steps that can fail first (re-read
 * certificate and CA files, swap the mesh's trust and the hub certificate, undoing the trust when the
 * certificate is refused), then the live settings, which cannot fail.
 */
import type { ResolvedKeepalive, ResolvedLimits } from './config.js';
import { readHubTlsMaterial } from './config-files.js';
import type { HubTlsContext } from './hub-tls.js';
import type { PeerMesh, PeerMeshOptions, PeerTrustOptions } from './mesh.js';
import { readPeerCaFile } from './peer-auth.js';
import type { ReloadAction } from './reload-plan.js';
import type { SniffBudget } from './sniff-connection.js';

/**
 * What {@link Nexus.reload} did. Setting names are configuration paths (`backendsJWTSecrets`,
 * `limits.maxStreamsPerSession`, `tls`, `peers`…).
 */
export interface NexusReloadResult {
  /** Changed settings now in force (for new connections, sessions and handshakes; nothing open is cut). */
  applied: string[];
  /** Changed settings that only a restart applies; the node keeps their old values until then. */
  restartRequired: string[];
}

/** `T` with its fields writable: the live limits and keepalive objects a reload updates in place. */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The mesh's trust in force, and the CA file's content it was built from. */
export interface PeerTrustState {
  trust: PeerTrustOptions | undefined;
  caPem: string | undefined;
}

/** The parts of a node a reload changes. */
export interface ReloadTarget {
  tlsContext: HubTlsContext | undefined;
  mesh: PeerMesh | undefined;
  /** Updated in place when the mesh's trust is replaced. */
  peerTrust: PeerTrustState;
  /** What the embedder set for the mesh (`CreateNexusOptions.mesh`): it wins over the configuration. */
  meshOverrides: Partial<PeerMeshOptions> | undefined;
  /** The limits and keepalive objects the hub and the relay listeners read live. */
  liveLimits: Mutable<ResolvedLimits>;
  liveKeepalive: Mutable<ResolvedKeepalive>;
  budget: SniffBudget;
  /** Sets the bandwidth cap, Mbit/s, for every relay (running ones included). */
  setBandwidth(totalBandwidthMbps: number): void;
}

/**
 * Runs `actions` on `target`. Rejects — having changed nothing — when a certificate or CA file cannot be
 * read or used (`TlsError`, `InvalidConfigError`).
 */
export async function carryOutReload(
  actions: readonly ReloadAction[],
  target: ReloadTarget,
): Promise<NexusReloadResult> {
  const { tlsContext, mesh, peerTrust } = target;
  /** Settings reported by the steps that can fail, known once their files are read. */
  const reported = new Map<ReloadAction, string[]>();

  // 1. Everything that can fail comes first, so a failure leaves the old configuration whole.
  let tlsMaterial: { certPem: string; keyPem: string } | undefined;
  const certificate = actions.find((a) => a.kind === 'reload-certificate');
  if (certificate !== undefined && tlsContext !== undefined) {
    const { certPem, keyPem } = await readHubTlsMaterial(certificate);
    const served = tlsContext.material;
    if (certPem !== served.certPem || keyPem !== served.keyPem) tlsMaterial = { certPem, keyPem };
  }
  let nextTrust: PeerTrustState | undefined;
  const trust = actions.find((a) => a.kind === 'reload-peer-trust');
  if (trust !== undefined && mesh !== undefined) {
    // The CA file is read again even when its path is unchanged (CA rotation), like the hub's files.
    const caPem =
      trust.caFile === undefined
        ? undefined
        : await readPeerCaFile(trust.caFile, 'peerAuthentication.caFile');
    const caChanged = trust.caFileChanged || caPem !== peerTrust.caPem;
    const settings: string[] = [];
    if (caChanged) settings.push('peerAuthentication.caFile');
    if (trust.suffixesChanged) settings.push('peerAuthentication.trustedDomainSuffixes');
    reported.set(trust, settings);
    if (settings.length > 0) {
      // What the embedder set keeps winning over the configuration, as at start.
      const ca = target.meshOverrides?.ca ?? caPem;
      nextTrust = {
        trust: {
          trustedDomainSuffixes: target.meshOverrides?.trustedDomainSuffixes ?? trust.trustedDomainSuffixes,
          ...(ca !== undefined ? { ca } : {}),
        },
        caPem,
      };
    }
  }
  const previous = { ...peerTrust };
  if (nextTrust?.trust !== undefined && mesh !== undefined) {
    mesh.setTrust(nextTrust.trust); // throws and keeps the old trust when invalid
    Object.assign(peerTrust, nextTrust);
  }
  if (tlsMaterial !== undefined && tlsContext !== undefined && certificate !== undefined) {
    try {
      tlsContext.update(tlsMaterial); // throws TlsError and keeps the old certificate when invalid
    } catch (err) {
      if (nextTrust !== undefined && previous.trust !== undefined) {
        mesh?.setTrust(previous.trust); // accepted before, so it cannot throw
        Object.assign(peerTrust, previous);
      }
      throw err;
    }
    reported.set(certificate, ['tls']);
  }

  // 2. Live settings, which cannot fail; and the report, in the plan's order.
  const applied: string[] = [];
  const restartRequired: string[] = [];
  for (const action of actions) {
    switch (action.kind) {
      case 'restart':
        restartRequired.push(action.setting);
        continue;
      case 'apply':
        break;
      case 'reload-certificate':
      case 'reload-peer-trust':
        applied.push(...(reported.get(action) ?? []));
        continue;
      case 'set-idle-timeout':
        // Tunnels this node relays to its backends (unless the embedder fixed their timeout).
        if (action.mesh) mesh?.setIdleTimeout(action.idleTimeoutMs);
        break;
      case 'set-limit':
        target.liveLimits[action.key] = action.value;
        if (action.key === 'maxConcurrentSniffs') target.budget.limit = action.value;
        break;
      case 'set-keepalive':
        target.liveKeepalive[action.key] = action.value;
        break;
      case 'set-peer-keepalive': {
        const { kind: _, ...keepalive } = action;
        mesh?.setKeepalive(keepalive);
        continue;
      }
      case 'set-peers':
        mesh?.setPeers(action.peers);
        break;
      case 'set-bandwidth':
        target.setBandwidth(action.totalBandwidthMbps);
        break;
    }
    applied.push(action.setting);
  }
  return { applied, restartRequired };
}
