/**
 * `resolveNexusConfig`: validate a document against the schema, then let each section resolve its keys
 * (defaults, file paths, cross-field rules) in the order below.
 */
import { ConfigIssue, deepFreeze, presentKeys, validate } from '@nexus-proxy/common/config';
import { InvalidConfigError } from '../errors.js';
import { resolveAdmin, resolveAdminToken, resolveLogLevel } from './admin.js';
import { resolveAuth, resolveSecrets } from './auth.js';
import { resolveTotalBandwidthMbps } from './bandwidth.js';
import { resolveBackendClaims } from './claims.js';
import { resolveMeshDiscovery } from './discovery.js';
import { resolveBackendListen, resolveHubTls } from './hub-tls.js';
import { resolveKeepalive } from './keepalive.js';
import { resolveLimits } from './limits.js';
import { resolveIdleTimeoutMs, resolveListeners } from './listeners.js';
import { resolveMesh } from './mesh.js';
import { resolveRemoteVerifier } from './remote-verifier.js';
import { nodeConfigSchema, UNSUPPORTED_REFERENCE_KEYS } from './schema.js';
import { resolveOutbound } from './outbound.js';
import { resolveRegistration } from './registration.js';
import { resolveStun } from './stun.js';
import { resolveUdpRelay } from './udp.js';
import type {
  NexusConfigInput,
  ResolveContext,
  ResolvedNexusConfig,
  ResolveNexusConfigOptions,
} from './types.js';

function resolve(input: unknown, options: ResolveNexusConfigOptions): ResolvedNexusConfig {
  const p = validate(nodeConfigSchema, input);
  const doc = input as Record<string, unknown>;
  const ctx: ResolveContext = { baseDir: options.baseDir, warnings: [], doc };
  for (const key of presentKeys(doc, UNSUPPORTED_REFERENCE_KEYS)) {
    ctx.warnings.push(`${key} is a reference setting Nexus does not support; it is ignored`);
  }
  const remoteVerifier = resolveRemoteVerifier(p, ctx);
  const backendsJWTSecrets = resolveSecrets(p, ctx, remoteVerifier !== undefined);
  const backendListen = resolveBackendListen(p);
  const listeners = resolveListeners(p, ctx);
  const idleTimeoutMs = resolveIdleTimeoutMs(p);
  const { peers, peerListen, peerAuthentication, peerTunnelPorts } = resolveMesh(p, ctx);
  const meshDiscovery = resolveMeshDiscovery(p, ctx, peerAuthentication.trustedDomainSuffixes);
  const tls = resolveHubTls(p, ctx);
  const auth = resolveAuth(p);
  const backendClaims = resolveBackendClaims(p, ctx);
  const limits = resolveLimits(p, ctx);
  const keepalive = resolveKeepalive(p);
  const logLevel = resolveLogLevel(p);
  const admin = resolveAdmin(p, ctx);
  const adminToken = resolveAdminToken(p, ctx);
  const udp = resolveUdpRelay(p, ctx);
  const stun = resolveStun(p, ctx);
  const registration = resolveRegistration(p, ctx);
  const outbound = resolveOutbound(p, ctx);
  const totalBandwidthMbps = resolveTotalBandwidthMbps(p);
  return deepFreeze({
    backendListen,
    peerListen,
    listeners,
    idleTimeoutMs,
    backendsJWTSecrets,
    remoteVerifier,
    peers,
    peerAuthentication,
    peerTunnelPorts,
    meshDiscovery,
    tls,
    auth,
    backendClaims,
    limits,
    keepalive,
    logLevel,
    admin,
    adminToken,
    stun,
    udp,
    registration,
    outbound,
    totalBandwidthMbps,
    warnings: ctx.warnings,
  });
}

/**
 * Validate a configuration document and apply defaults. Accepts every reference key unchanged; keys of
 * later reference versions that Nexus does not implement are ignored with a warning; any other unknown
 * key is an error (with a "did you mean" hint). Throws {@link InvalidConfigError} naming the field path.
 */
export function resolveNexusConfig(
  input: NexusConfigInput | Record<string, unknown>,
  options: ResolveNexusConfigOptions = {},
): ResolvedNexusConfig {
  try {
    return resolve(input, options);
  } catch (err) {
    if (ConfigIssue.is(err)) throw new InvalidConfigError(err.path, err.detail, { cause: err });
    throw err;
  }
}
