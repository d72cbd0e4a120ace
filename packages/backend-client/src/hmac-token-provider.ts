/**
 * The built-in HMAC token provider (docs/backend-client.md, "Token providers"): signs each stage's JWT
 * locally with HS256 and the hub's shared secret, with the claims the current reference client puts in
 * its tokens, in the same order (docs/protocol.md §5.6).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { InvalidOptionsError, TokenError } from './errors.js';
import {
  cachingHandshake,
  HandshakeTokenCache,
  type IssuedToken,
  type TokenProvider,
  type TokenRequest,
} from './token-provider.js';

/** `iss` of current-era tokens. */
export const TOKEN_ISSUER = 'authorizer';
/** The audience current-era hubs require in `aud`. */
export const TOKEN_AUDIENCE = 'nexus';
/** Default lifetime of a minted token, seconds (reference `tokenTTLSeconds`). */
export const DEFAULT_TOKEN_TTL_SECONDS = 30;

/** Options of {@link createHmacTokenProvider}; the claim-related keys are the config's `attestation` keys. */
export interface HmacTokenProviderOptions {
  /** The hub's `backendsJWTSecret`: the key is the UTF-8 bytes of the trimmed string. This or `hmacSecretFile`. */
  hmacSecret?: string;
  /**
   * A file holding the secret (trimmed). Read when the provider is created (a missing, unreadable or empty
   * file is an {@link InvalidOptionsError} at start-up) and again before every stage-0 token, so a rotated
   * secret is used from the next connection on.
   */
  hmacSecretFile?: string;
  /** `exp` = `iat` + this, seconds. Default: 30. */
  tokenTTLSeconds?: number;
  /** Stage 0 only: `handshake_max_age_seconds` (the hub then requires `iat` no older than this). */
  handshakeMaxAgeSeconds?: number;
  /** `reauth_interval_seconds`: asks the hub to re-authenticate this often. */
  reauthIntervalSeconds?: number;
  /** `reauth_grace_seconds`: how long the hub waits for each answer. */
  reauthGraceSeconds?: number;
  /** `maintenance_grace_cap_seconds`. */
  maintenanceGraceCapSeconds?: number;
  /** `authorizer_status_uri` (https). */
  authorizerStatusUri?: string;
  /** `policy_version`. */
  policyVersion?: string;
  /** Reuse a stage-0 token for up to this long, seconds (0 = never). */
  cacheHandshakeSeconds?: number;
  /** Clock, ms since the epoch (tests and golden vectors). Default: `Date.now`. */
  now?: () => number;
}

const positiveInt = (x: number | undefined): number | undefined =>
  x !== undefined && Number.isInteger(x) && x > 0 ? x : undefined;

/**
 * The claims of one token, in the reference's order: its backend claims, then `iss`, `sub`, `aud`, `exp`,
 * `iat`. Empty lists and unset options are left out; `weight` is always there.
 */
export function hmacTokenClaims(
  request: TokenRequest,
  options: HmacTokenProviderOptions,
  nowMs: number,
): Record<string, unknown> {
  const ttl = positiveInt(options.tokenTTLSeconds) ?? DEFAULT_TOKEN_TTL_SECONDS;
  const claims: Record<string, unknown> = {};
  if (request.hostnames.length > 0) claims.hostnames = [...request.hostnames];
  if (request.tcpPorts.length > 0) claims.tcp_ports = [...request.tcpPorts];
  if (request.udpRoutes.length > 0) {
    claims.udp_routes = request.udpRoutes.map((r) =>
      r.flowIdleTimeoutSeconds === undefined
        ? { port: r.port }
        : { port: r.port, flow_idle_timeout_seconds: r.flowIdleTimeoutSeconds },
    );
  }
  claims.weight = request.weight;
  if (request.stage !== 'handshake') {
    if (request.sessionNonce !== '') claims.session_nonce = request.sessionNonce;
  } else {
    const maxAge = positiveInt(options.handshakeMaxAgeSeconds);
    if (maxAge !== undefined) claims.handshake_max_age_seconds = maxAge;
  }
  const optionalInts: Array<[string, number | undefined]> = [
    ['reauth_interval_seconds', options.reauthIntervalSeconds],
    ['reauth_grace_seconds', options.reauthGraceSeconds],
    ['maintenance_grace_cap_seconds', options.maintenanceGraceCapSeconds],
  ];
  for (const [claim, value] of optionalInts) {
    const n = positiveInt(value);
    if (n !== undefined) claims[claim] = n;
  }
  if (options.authorizerStatusUri) claims.authorizer_status_uri = options.authorizerStatusUri;
  if (options.policyVersion) claims.policy_version = options.policyVersion;
  if (request.outboundAllowed) {
    claims.outbound_allowed = true;
    if (request.allowedOutboundPorts.length > 0)
      claims.allowed_outbound_ports = [...request.allowedOutboundPorts];
  }
  const iat = Math.floor(nowMs / 1000);
  claims.iss = TOKEN_ISSUER;
  claims.sub = request.backendName;
  claims.aud = [TOKEN_AUDIENCE];
  claims.exp = Math.floor((nowMs + ttl * 1000) / 1000);
  claims.iat = iat;
  return claims;
}

/** Checks the options (throws {@link InvalidOptionsError} naming `at.key`). */
function checkOptions(options: HmacTokenProviderOptions, at: string): void {
  const hasSecret = typeof options.hmacSecret === 'string' && options.hmacSecret.trim() !== '';
  const hasFile = typeof options.hmacSecretFile === 'string' && options.hmacSecretFile.trim() !== '';
  if (hasSecret === hasFile) {
    throw new InvalidOptionsError(`${at}.hmacSecret`, 'or hmacSecretFile is required (exactly one of them)');
  }
  for (const key of [
    'tokenTTLSeconds',
    'handshakeMaxAgeSeconds',
    'reauthIntervalSeconds',
    'reauthGraceSeconds',
    'maintenanceGraceCapSeconds',
    'cacheHandshakeSeconds',
  ] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isInteger(value) || value < 0)) {
      throw new InvalidOptionsError(`${at}.${key}`, 'must be a non-negative integer (seconds)');
    }
  }
}

/** The trimmed secret in `text` as a key, or why `file` holds none. */
function secretKey(text: string, file: string): Uint8Array | string {
  const secret = text.trim();
  return secret === '' ? `${file} is empty` : new TextEncoder().encode(secret);
}

/**
 * Reads the HMAC secret in `file` now (start-up): throws an {@link InvalidOptionsError} naming `at` (the
 * option or config key) and the file when it is missing, unreadable or empty.
 */
export function readHmacSecretFile(file: string, at: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    throw new InvalidOptionsError(
      at,
      code === 'ENOENT' ? `${file} not found` : `${file} cannot be read: ${(err as Error).message}`,
    );
  }
  const key = secretKey(text, file);
  if (typeof key === 'string') throw new InvalidOptionsError(at, key);
  return key;
}

/**
 * A {@link TokenProvider} that signs HS256 tokens with the hub's shared secret. Throws
 * {@link InvalidOptionsError} for bad options, including a `hmacSecretFile` that cannot be read now; the
 * file is read again before each stage-0 token (a failure then fails that token with a
 * {@link TokenError}: the attempt is retried with backoff, the older secret is not used silently).
 */
export function createHmacTokenProvider(
  options: HmacTokenProviderOptions,
  at = 'tokenProvider',
): TokenProvider {
  checkOptions(options, at);
  const now = options.now ?? Date.now;
  const file = options.hmacSecretFile?.trim();
  let key =
    file === undefined || file === ''
      ? new TextEncoder().encode(options.hmacSecret!.trim())
      : readHmacSecretFile(file, `${at}.hmacSecretFile`);
  const loadKey = async (stage: TokenRequest['stage']): Promise<Uint8Array> => {
    if (file === undefined || file === '' || stage !== 'handshake') return key;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new TokenError(`cannot read hmacSecretFile ${file}: ${(err as Error).message}`, { cause: err });
    }
    const fresh = secretKey(text, file);
    if (typeof fresh === 'string') throw new TokenError(`hmacSecretFile ${fresh}`);
    key = fresh;
    return key;
  };
  const sign = async (request: TokenRequest): Promise<IssuedToken> => {
    const secret = await loadKey(request.stage);
    const nowMs = now();
    const claims = hmacTokenClaims(request, options, nowMs);
    // Loaded on first use: a client that never signs keeps `jose` off its heap (docs/benchmarks.md, "The
    // backend client's download": every megabyte at rest counts).
    const { SignJWT } = await import('jose');
    const token = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(secret);
    return { token, expiry: new Date((claims.exp as number) * 1000) };
  };
  return cachingHandshake(sign, new HandshakeTokenCache((options.cacheHandshakeSeconds ?? 0) * 1000, now));
}
