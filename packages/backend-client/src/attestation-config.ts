/**
 * The current era in the configuration file: a backend's `attestation` block (reference format), and the
 * client options it turns into (`tokenProvider` and `backend`). See docs/backend-client-config.md.
 */
import { ConfigIssue, type Output, resolveFrom } from '@nexus-proxy/common/config';
import type { BackendIdentity } from './attestation-options.js';
import {
  type CommandTokenProviderOptions,
  DEFAULT_COMMAND_TIMEOUT_SECONDS,
} from './command-token-provider.js';
import type { attestationSchema } from './config-schema.js';
import { DEFAULT_TOKEN_TTL_SECONDS, type HmacTokenProviderOptions } from './hmac-token-provider.js';

/** A backend's `attestation` block after validation (defaults applied, paths absolute when loaded from a file). */
export interface ResolvedAttestationConfig {
  /** `'command'` when `command` is set (it wins over an HMAC secret, as in the reference), else `'hmac'`. */
  readonly provider: 'command' | 'hmac';
  readonly command: string | undefined;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Seconds (default 15). */
  readonly timeoutSeconds: number;
  /** Seconds (0 = no caching). */
  readonly cacheHandshakeSeconds: number;
  readonly hmacSecret: string | undefined;
  readonly hmacSecretFile: string | undefined;
  /** Seconds (default 30). */
  readonly tokenTTLSeconds: number;
  /** Seconds; 0 = not claimed. */
  readonly handshakeMaxAgeSeconds: number;
  readonly reauthIntervalSeconds: number;
  readonly reauthGraceSeconds: number;
  readonly maintenanceGraceCapSeconds: number;
  readonly authorizerStatusUri: string | undefined;
  readonly policyVersion: string | undefined;
  readonly outboundAllowed: boolean;
  readonly allowedOutboundPorts: readonly number[];
}

/**
 * Resolves a validated `attestation` block at `at`: it needs `command` or an HMAC secret (`hmacSecret` or
 * `hmacSecretFile`, not both); `authorizerStatusUri` must be https. Warnings go to `warnings`.
 */
export function resolveAttestationConfig(
  a: Output<typeof attestationSchema>,
  at: string,
  baseDir: string | undefined,
  warnings: string[],
): ResolvedAttestationConfig {
  const command = a.command ?? undefined;
  const hmacSecret = a.hmacSecret ?? undefined;
  const hmacSecretFile = a.hmacSecretFile ?? undefined;
  if (command === undefined && hmacSecret === undefined && hmacSecretFile === undefined) {
    throw new ConfigIssue(at, 'needs either command or hmacSecret (or hmacSecretFile)');
  }
  if (hmacSecret !== undefined && hmacSecretFile !== undefined) {
    throw new ConfigIssue(`${at}.hmacSecretFile`, 'cannot be combined with hmacSecret; set one of them');
  }
  if (command !== undefined && (hmacSecret !== undefined || hmacSecretFile !== undefined)) {
    warnings.push(`${at}.command is set: tokens come from the command and the HMAC secret is not used`);
  }
  const statusUri = a.authorizerStatusUri ?? undefined;
  if (statusUri !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(statusUri);
    } catch {
      url = undefined;
    }
    if (url === undefined || url.protocol !== 'https:' || url.hostname === '') {
      throw new ConfigIssue(
        `${at}.authorizerStatusUri`,
        `must be an https:// URL with a host (got "${statusUri}")`,
      );
    }
  }
  const allowedOutboundPorts = [...new Set(a.allowedOutboundPorts ?? [])];
  if (allowedOutboundPorts.length > 0 && a.outboundAllowed !== true) {
    warnings.push(`${at}.allowedOutboundPorts is ignored without outboundAllowed: true`);
  }
  return {
    provider: command !== undefined ? 'command' : 'hmac',
    command,
    args: a.args ?? [],
    env: a.env ?? {},
    timeoutSeconds: a.timeoutSeconds || DEFAULT_COMMAND_TIMEOUT_SECONDS,
    cacheHandshakeSeconds: a.cacheHandshakeSeconds ?? 0,
    hmacSecret,
    hmacSecretFile: resolveFrom(baseDir, hmacSecretFile),
    tokenTTLSeconds: a.tokenTTLSeconds || DEFAULT_TOKEN_TTL_SECONDS,
    handshakeMaxAgeSeconds: a.handshakeMaxAgeSeconds ?? 0,
    reauthIntervalSeconds: a.reauthIntervalSeconds ?? 0,
    reauthGraceSeconds: a.reauthGraceSeconds ?? 0,
    maintenanceGraceCapSeconds: a.maintenanceGraceCapSeconds ?? 0,
    authorizerStatusUri: statusUri,
    policyVersion: a.policyVersion ?? undefined,
    outboundAllowed: a.outboundAllowed === true,
    allowedOutboundPorts,
  };
}

/** What a configured backend claims, for {@link attestationClientOptions}. */
export interface ConfiguredIdentity {
  readonly name: string;
  readonly hostnames: readonly string[];
  readonly tcpPorts: readonly number[];
  readonly udpRoutes: readonly { port: number; flowIdleTimeoutSeconds?: number }[];
  readonly weight: number;
}

/** The `tokenProvider` and `backend` client options of a configured current-era backend. */
export function attestationClientOptions(
  backend: ConfiguredIdentity,
  a: ResolvedAttestationConfig,
): { tokenProvider: CommandTokenProviderOptions | HmacTokenProviderOptions; backend: BackendIdentity } {
  const identity: BackendIdentity = {
    name: backend.name,
    hostnames: backend.hostnames,
    tcpPorts: backend.tcpPorts,
    udpRoutes: backend.udpRoutes,
    weight: backend.weight,
    outboundAllowed: a.outboundAllowed,
    allowedOutboundPorts: a.allowedOutboundPorts,
  };
  const cacheHandshakeSeconds = a.cacheHandshakeSeconds;
  if (a.provider === 'command') {
    return {
      tokenProvider: {
        command: a.command!,
        args: a.args,
        env: a.env,
        timeoutSeconds: a.timeoutSeconds,
        cacheHandshakeSeconds,
      },
      backend: identity,
    };
  }
  const claims = {
    tokenTTLSeconds: a.tokenTTLSeconds,
    handshakeMaxAgeSeconds: a.handshakeMaxAgeSeconds,
    reauthIntervalSeconds: a.reauthIntervalSeconds,
    reauthGraceSeconds: a.reauthGraceSeconds,
    maintenanceGraceCapSeconds: a.maintenanceGraceCapSeconds,
    cacheHandshakeSeconds,
    ...(a.authorizerStatusUri !== undefined ? { authorizerStatusUri: a.authorizerStatusUri } : {}),
    ...(a.policyVersion !== undefined ? { policyVersion: a.policyVersion } : {}),
  };
  const secret =
    a.hmacSecret !== undefined ? { hmacSecret: a.hmacSecret } : { hmacSecretFile: a.hmacSecretFile! };
  return { tokenProvider: { ...secret, ...claims }, backend: identity };
}
