/**
 * Backend tokens (docs/protocol.md §1.2, §5): compact JWS, HMAC-signed with the node's shared secret, listing
 * the hostnames a backend serves and its weight.
 *
 * What a valid token may claim, by design (docs/security.md):
 * - any exact hostname and any `*.suffix` wildcard, except a wildcard directly under a public suffix
 *   (`*.co.uk`, `*.github.io`: every registrable domain below it would be captured), decided with the
 *   Public Suffix List (ICANN and private sections) through `tldts`;
 * - a hostname another token claims too: every holder of a token the node's secret signed is trusted for
 *   the names it lists, and backends claiming one name share its pool by weight (weighted round robin);
 * - no `exp` at all: reference tokens often have none, so `exp` is checked when present and required only
 *   with `auth.requireExp`.
 */
import { normalizeHostnamePattern } from '@nexus-proxy/sni';
import { decodeProtectedHeader, type JWTPayload, jwtVerify, SignJWT } from 'jose';
import { getPublicSuffix } from 'tldts';
import { AuthError, InvalidConfigError } from './errors.js';
import { normalizeWeight } from './weighted-round-robin.js';

/** The only accepted algorithms: HMAC with SHA-2 (docs/protocol.md §5.1; `none`, RS*, ES*, PS* are refused). */
export const BACKEND_TOKEN_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
/** An accepted token algorithm. */
export type BackendTokenAlgorithm = (typeof BACKEND_TOKEN_ALGORITHMS)[number];

/** Default cap on a token's length, bytes (UTF-8). */
export const DEFAULT_MAX_TOKEN_BYTES = 65_536;
/** Default cap on the number of hostnames a token may list. */
export const DEFAULT_MAX_TOKEN_HOSTNAMES = 1_000;
/** Default tolerance for clock skew when checking `exp`, `nbf` and `iat`, seconds. */
export const DEFAULT_CLOCK_TOLERANCE_SEC = 30;
/** Issuer that minted tokens carry (later reference hubs require it, docs/protocol.md §5.4). */
export const DEFAULT_TOKEN_ISSUER = 'authorizer';
/** Audience that minted tokens carry (later reference hubs require it to contain `nexus`). */
export const DEFAULT_TOKEN_AUDIENCE: readonly string[] = Object.freeze(['nexus']);

/** Options of {@link verifyBackendToken}. */
export interface VerifyBackendTokenOptions {
  /** Accepted secrets, tried in order (rotation: list the new one and the old one). At least one. */
  secrets: readonly string[];
  /** Refuse tokens without `exp`. Default: `false` (reference tokens often have none). */
  requireExp?: boolean;
  /** Required `iss`. Default: not checked. */
  issuer?: string | readonly string[];
  /** Required `aud` (the token's `aud` must contain one of these). Default: not checked. */
  audience?: string | readonly string[];
  /** Allowed clock skew, seconds. Default: `30`. */
  clockToleranceSec?: number;
  /** Most hostnames a token may list (`hostnames` entries); more → rejected. Default: `1_000`. */
  maxHostnames?: number;
  /** Longest accepted token, bytes. Default: `65_536` (1 000 hostnames of typical length fit). */
  maxTokenBytes?: number;
  /** Clock for tests. Default: `Date.now`. */
  now?: () => number;
}

/** A verified backend token, read the seed-era way. */
export interface VerifiedBackendToken extends SeedTokenRoutes, VerifiedTokenPayload {}

const encoder = new TextEncoder();

function asList(value: string | readonly string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return typeof value === 'string' ? [value] : [...value];
}

/** A verified token's payload and which secret verified it (see {@link verifyTokenSignature}). */
export interface VerifiedTokenPayload {
  /** Every claim of the token. */
  claims: JWTPayload;
  /** Index in `secrets` of the secret that verified the token. */
  secretIndex: number;
}

/**
 * What the hub verifies every token with (docs/protocol.md §5.3): resolves with the token's claims once its
 * algorithm, signature, dates and the node's own `iss`/`aud` checks pass, or rejects with an
 * {@link AuthError} whose `reason` fits a close frame. The claims themselves (hostnames, ports, the era) are
 * the hub's business. This is the one seam where a verifier other than the node's secret plugs in (a
 * remote verifier); {@link createLocalTokenVerifier} is the local one.
 */
export type TokenVerifier = (token: string) => Promise<JWTPayload>;

/** The local {@link TokenVerifier}: HMAC with the node's secrets ({@link verifyTokenSignature}). */
export function createLocalTokenVerifier(options: VerifyBackendTokenOptions): TokenVerifier {
  return async (token) => (await verifyTokenSignature(token, options)).claims;
}

/**
 * Verify a token's size, algorithm, signature (trying each secret), dates and the configured `iss`/`aud`,
 * without reading its routes. Throws {@link AuthError} (reasons as {@link verifyBackendToken}) or
 * {@link InvalidConfigError} when `secrets` is empty.
 */
export async function verifyTokenSignature(
  token: string,
  options: VerifyBackendTokenOptions,
): Promise<VerifiedTokenPayload> {
  const secrets = options.secrets.filter((s) => typeof s === 'string' && s !== '');
  if (secrets.length === 0)
    throw new InvalidConfigError('backendsJWTSecrets', 'must list at least one secret');
  const maxTokenBytes = options.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
  const tolerance = options.clockToleranceSec ?? DEFAULT_CLOCK_TOLERANCE_SEC;

  if (typeof token !== 'string') throw new AuthError('malformed token');
  // Cheap length check before any parsing; chars ≥ bytes / 3 so this bounds the UTF-8 size too.
  if (token.length > maxTokenBytes || Buffer.byteLength(token, 'utf8') > maxTokenBytes) {
    throw new AuthError('token too large');
  }
  const compact = token.trim();
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(compact).alg;
  } catch (err) {
    throw new AuthError('malformed token', { cause: err });
  }
  if (!(BACKEND_TOKEN_ALGORITHMS as readonly unknown[]).includes(alg)) {
    throw new AuthError('unsupported token algorithm');
  }

  const currentDate = options.now ? new Date(options.now()) : undefined;
  let claims: JWTPayload | undefined;
  let secretIndex = -1;
  let lastError: unknown;
  for (let i = 0; i < secrets.length; i++) {
    try {
      const result = await jwtVerify(compact, encoder.encode(secrets[i]), {
        algorithms: [...BACKEND_TOKEN_ALGORITHMS],
        issuer: asList(options.issuer),
        audience: asList(options.audience),
        clockTolerance: tolerance,
        requiredClaims: options.requireExp ? ['exp'] : [],
        currentDate,
      });
      claims = result.payload;
      secretIndex = i;
      break;
    } catch (err) {
      const code = (err as { code?: unknown })?.code;
      // Only a signature mismatch means "try the next secret"; any other failure happened after the
      // signature was verified (claims) or concerns the token's shape, and is final.
      if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') {
        lastError = err;
        continue;
      }
      throw mapJoseError(err);
    }
  }
  if (claims === undefined) throw new AuthError('invalid token signature', { cause: lastError });

  // jose checks `iat` only together with maxTokenAge; docs/protocol.md §5.3 checks it whenever present.
  const nowSec = Math.floor((options.now?.() ?? Date.now()) / 1000);
  if (typeof claims.iat === 'number' && claims.iat > nowSec + tolerance) {
    throw new AuthError('token issued in the future');
  }
  return { claims, secretIndex };
}

/** A token's routes as the seed era reads them (docs/protocol.md §5.2). */
export interface SeedTokenRoutes {
  /** Normalised, valid, de-duplicated patterns (exact names and `*.suffix` wildcards), in token order. */
  hostnames: string[];
  /**
   * Claimed entries that were dropped as invalid (`*.com`, `*.*.x`, malformed names, wildcards directly
   * under a public suffix such as `*.co.uk`), as written.
   */
  ignoredHostnames: string[];
  /** Pool weight, ≥ 1 (`weight` ≤ 0, absent or not a number → 1). */
  weight: number;
}

/**
 * Read the routes of a verified seed-era token: `hostnames`, else the legacy `hostname`; `weight`. Throws
 * {@link AuthError} `invalid token claims`, `too many hostnames` or `no valid hostnames`.
 */
export function seedTokenRoutes(
  claims: JWTPayload,
  maxHostnames = DEFAULT_MAX_TOKEN_HOSTNAMES,
): SeedTokenRoutes {
  let listed = tokenHostnameEntries(claims.hostnames, maxHostnames);
  // Legacy single `hostname`, used only when `hostnames` is empty (docs/protocol.md §5.2).
  if (listed.length === 0 && typeof claims.hostname === 'string' && claims.hostname !== '') {
    listed = [claims.hostname];
  }
  const { hostnames, ignoredHostnames } = normalizeTokenHostnames(listed);
  if (hostnames.length === 0) throw new AuthError('no valid hostnames');
  const weight = normalizeWeight(typeof claims.weight === 'number' ? claims.weight : undefined);
  return { hostnames, ignoredHostnames, weight };
}

/**
 * The entries of a `hostnames` claim: absent or `null` → none; not an array → `invalid token claims`; more
 * than `maxHostnames` → `too many hostnames`. @internal
 */
export function tokenHostnameEntries(raw: unknown, maxHostnames: number): unknown[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new AuthError('invalid token claims');
  if (raw.length > maxHostnames) throw new AuthError('too many hostnames');
  return raw;
}

/** Normalise claimed hostname entries: valid patterns de-duplicated in order, and the dropped ones. @internal */
export function normalizeTokenHostnames(listed: readonly unknown[]): {
  hostnames: string[];
  ignoredHostnames: string[];
} {
  const hostnames: string[] = [];
  const ignoredHostnames: string[] = [];
  const seen = new Set<string>();
  for (const entry of listed) {
    const pattern = typeof entry === 'string' ? normalizeTokenPattern(entry) : undefined;
    if (pattern === undefined) {
      ignoredHostnames.push(typeof entry === 'string' ? entry : String(entry));
      continue;
    }
    if (seen.has(pattern)) continue;
    seen.add(pattern);
    hostnames.push(pattern);
  }
  return { hostnames, ignoredHostnames };
}

/**
 * Verify a backend token and extract its routes the seed-era way ({@link verifyTokenSignature}, then
 * {@link seedTokenRoutes}). Throws {@link AuthError} whose `reason` is short and fits
 * a WebSocket close frame: `malformed token`, `token too large`, `unsupported token algorithm`,
 * `invalid token signature`, `token expired`, `token not yet valid`, `token issued in the future`,
 * `token has no expiry`, `invalid token issuer`, `invalid token audience`, `too many hostnames`,
 * `no valid hostnames`, `invalid token claims`. Throws {@link InvalidConfigError} when `secrets` is empty.
 */
export async function verifyBackendToken(
  token: string,
  options: VerifyBackendTokenOptions,
): Promise<VerifiedBackendToken> {
  const { claims, secretIndex } = await verifyTokenSignature(token, options);
  const routes = seedTokenRoutes(claims, options.maxHostnames ?? DEFAULT_MAX_TOKEN_HOSTNAMES);
  return { ...routes, claims, secretIndex };
}

/**
 * True when `pattern` is a wildcard directly under a public suffix of the Public Suffix List (ICANN or
 * private section): `*.co.uk`, `*.github.io`. `*.example.co.uk` is not.
 */
export function isPublicSuffixWildcard(pattern: string): boolean {
  if (!pattern.startsWith('*.')) return false;
  const suffix = pattern.slice(2);
  return getPublicSuffix(suffix, { allowPrivateDomains: true }) === suffix;
}

/** A token's hostname entry, normalised, or `undefined` when it may not be claimed. */
function normalizeTokenPattern(entry: string): string | undefined {
  const pattern = normalizeHostnamePattern(entry);
  return pattern === undefined || isPublicSuffixWildcard(pattern) ? undefined : pattern;
}

function mapJoseError(err: unknown): AuthError {
  const e = err as { code?: string; claim?: string; reason?: string };
  switch (e?.code) {
    case 'ERR_JWT_EXPIRED':
      return new AuthError('token expired', { cause: err });
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return new AuthError('unsupported token algorithm', { cause: err });
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'nbf') return new AuthError('token not yet valid', { cause: err });
      if (e.claim === 'exp' && e.reason === 'missing')
        return new AuthError('token has no expiry', { cause: err });
      if (e.claim === 'iss') return new AuthError('invalid token issuer', { cause: err });
      if (e.claim === 'aud') return new AuthError('invalid token audience', { cause: err });
      return new AuthError('invalid token claims', { cause: err });
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return new AuthError('malformed token', { cause: err });
    default:
      return new AuthError('invalid token', { cause: err });
  }
}

/** Options of {@link mintBackendToken}. */
export interface MintBackendTokenOptions {
  /** The node's `backendsJWTSecret`. */
  secret: string;
  /** Hostnames (and `*.suffix` wildcards) the backend serves. At least one valid. */
  hostnames: readonly string[];
  /** Pool weight. Default: 1 (claim omitted). */
  weight?: number;
  /** Lifetime, seconds; sets `exp`. Default: no expiry. */
  ttlSeconds?: number;
  /** `iss`. Default: `authorizer`. */
  issuer?: string;
  /** `aud`. Default: `['nexus']`. */
  audience?: string | readonly string[];
  /** Algorithm. Default: `HS256`. */
  algorithm?: BackendTokenAlgorithm;
  /** Clock for tests. Default: `Date.now`. */
  now?: () => number;
}

/**
 * Mint a **seed-era** backend token (docs/protocol.md §5.4): `hostnames`, the legacy `hostname` (first
 * entry; older reference hubs read only that), `weight`, `iat`, optional `exp`, and `iss`/`aud`. The
 * legacy `hostname` claim is what makes a Nexus node in `auth.backendEra: auto` treat the backend as a
 * seed-era one (one token, no challenge, docs/protocol.md §1.9), so a seed-era client using this token
 * attaches unconfigured. Current-era backends mint their own tokens per handshake stage (without
 * `hostname`). Hostnames are normalised; invalid ones throw {@link InvalidConfigError}.
 */
export async function mintBackendToken(options: MintBackendTokenOptions): Promise<string> {
  if (typeof options.secret !== 'string' || options.secret === '') {
    throw new InvalidConfigError('secret', 'must be a non-empty string');
  }
  if (!Array.isArray(options.hostnames) || options.hostnames.length === 0) {
    throw new InvalidConfigError('hostnames', 'must list at least one hostname');
  }
  const hostnames: string[] = [];
  options.hostnames.forEach((h, i) => {
    const pattern = typeof h === 'string' ? normalizeTokenPattern(h) : undefined;
    if (pattern === undefined) {
      throw new InvalidConfigError(
        `hostnames[${i}]`,
        `is not a valid hostname or wildcard: ${JSON.stringify(h)}`,
      );
    }
    if (!hostnames.includes(pattern)) hostnames.push(pattern);
  });
  const algorithm = options.algorithm ?? 'HS256';
  if (!BACKEND_TOKEN_ALGORITHMS.includes(algorithm)) {
    throw new InvalidConfigError('algorithm', `must be one of ${BACKEND_TOKEN_ALGORITHMS.join(', ')}`);
  }
  const nowSec = Math.floor((options.now?.() ?? Date.now()) / 1000);
  const payload: JWTPayload = { hostnames, hostname: hostnames[0] };
  if (options.weight !== undefined) payload.weight = normalizeWeight(options.weight);
  const jwt = new SignJWT(payload)
    .setProtectedHeader({ alg: algorithm, typ: 'JWT' })
    .setIssuedAt(nowSec)
    .setIssuer(options.issuer ?? DEFAULT_TOKEN_ISSUER)
    .setAudience(asList(options.audience) ?? [...DEFAULT_TOKEN_AUDIENCE]);
  if (options.ttlSeconds !== undefined) {
    if (!Number.isFinite(options.ttlSeconds) || options.ttlSeconds <= 0) {
      throw new InvalidConfigError('ttlSeconds', 'must be a positive number of seconds');
    }
    jwt.setExpirationTime(nowSec + Math.floor(options.ttlSeconds));
  }
  return jwt.sign(encoder.encode(options.secret));
}
