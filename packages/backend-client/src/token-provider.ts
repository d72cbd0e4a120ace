/**
 * Token providers of the current protocol era (docs/protocol.md §1.9, §1.10): the client asks its provider for a
 * JWT at each stage of the attested handshake (`handshake`, then `attest` with the hub's nonce) and for
 * every re-authentication (`reauth`). One interface for the built-in providers (HMAC, command; see
 * hmac-token-provider.ts and command-token-provider.ts) and for an application's own function.
 */
import { TokenError } from './errors.js';

/** Which step asks for a token: stage 0, stage 1 (answers `handshake_challenge`), or a `reauth_challenge`. */
export type TokenStage = 'handshake' | 'attest' | 'reauth';

/** A UDP port claim: the port, and optionally how long the node keeps an idle flow, seconds. */
export interface UdpRouteClaim {
  port: number;
  flowIdleTimeoutSeconds?: number;
}

/** What a provider is asked for: the stage, the hub's nonce, and the backend's claims. */
export interface TokenRequest {
  readonly stage: TokenStage;
  /** The challenge's nonce at `attest` and `reauth`; `''` at `handshake`. */
  readonly sessionNonce: string;
  readonly backendName: string;
  readonly hostnames: readonly string[];
  readonly tcpPorts: readonly number[];
  readonly udpRoutes: readonly Readonly<UdpRouteClaim>[];
  /** ≥ 1. */
  readonly weight: number;
  readonly outboundAllowed: boolean;
  readonly allowedOutboundPorts: readonly number[];
}

/** A token and, when known, when it expires. */
export interface IssuedToken {
  token: string;
  expiry?: Date;
}

/**
 * Issues the token for one request. May return the token alone or `{ token, expiry }`; a rejection (or
 * an empty token) fails that step: the handshake is abandoned and retried with backoff, a failed
 * re-authentication ends the session.
 */
export type TokenProvider = (request: TokenRequest) => IssuedToken | string | Promise<IssuedToken | string>;

/** The longest token accepted from a provider, characters (a hub takes nothing near this long). */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/**
 * Runs `provider` for `request` and checks what it gave: a non-empty string (trimmed) of at most
 * {@link MAX_TOKEN_LENGTH} characters without whitespace inside. Throws a {@link TokenError}.
 */
export async function issueToken(provider: TokenProvider, request: TokenRequest): Promise<IssuedToken> {
  let issued: IssuedToken | string;
  try {
    issued = await provider(request);
  } catch (err) {
    if (err instanceof TokenError) throw err;
    throw new TokenError(`token provider failed at stage ${request.stage}: ${describe(err)}`, { cause: err });
  }
  const raw = typeof issued === 'string' ? issued : issued?.token;
  const token = typeof raw === 'string' ? raw.trim() : '';
  const problem = tokenProblem(token);
  if (problem !== undefined) throw new TokenError(`token provider ${problem} at stage ${request.stage}`);
  const expiry = typeof issued === 'string' ? undefined : issued.expiry;
  return expiry instanceof Date && !Number.isNaN(expiry.getTime()) ? { token, expiry } : { token };
}

/**
 * Why `token` (trimmed) cannot go to a hub — `'returned no token'`, or `'returned something that is not a
 * token'` (longer than {@link MAX_TOKEN_LENGTH} or not all visible ASCII) — or `undefined` when it can.
 */
export function tokenProblem(token: string): string | undefined {
  if (token === '') return 'returned no token';
  if (token.length > MAX_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token))
    return 'returned something that is not a token';
  return undefined;
}

/** The seed era's token: the static string, or what the function returns (trimmed). Throws a {@link TokenError}. */
export async function resolveSeedToken(source: string | (() => string | Promise<string>)): Promise<string> {
  let token: unknown;
  try {
    token = typeof source === 'function' ? await source() : source;
  } catch (err) {
    throw new TokenError(`token provider failed: ${describe(err)}`, { cause: err });
  }
  if (typeof token !== 'string' || token.trim() === '')
    throw new TokenError('token provider returned no token');
  return token.trim();
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The stage-0 token kept for reuse (`cacheHandshakeSeconds`): valid until the earlier of the cache
 * lifetime and the token's own expiry, and only for the same claims (`key`): one token per provider, so a
 * provider shared by two backends re-issues rather than hand one the other's token.
 */
export class HandshakeTokenCache {
  readonly #ttlMs: number;
  readonly #now: () => number;
  #token: IssuedToken | undefined;
  #key = '';
  #until = 0;

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** Whether caching is on (a positive lifetime). */
  get enabled(): boolean {
    return this.#ttlMs > 0;
  }

  /** The cached token for `key` while it is still fresh. */
  get(key: string): IssuedToken | undefined {
    if (this.#token !== undefined && this.#key === key && this.#now() < this.#until) return this.#token;
    return undefined;
  }

  /** Keeps `token` (for `key`) for min(lifetime, its expiry). */
  set(key: string, token: IssuedToken): void {
    if (!this.enabled) return;
    this.#key = key;
    const now = this.#now();
    const expiry = token.expiry?.getTime() ?? Number.POSITIVE_INFINITY;
    this.#until = Math.min(now + this.#ttlMs, expiry);
    this.#token = this.#until > now ? token : undefined;
  }
}

/** `provider` with its stage-0 tokens served from `cache` while fresh (concurrent misses share one call). */
export function cachingHandshake(provider: TokenProvider, cache: HandshakeTokenCache): TokenProvider {
  if (!cache.enabled) return provider;
  let pending: { key: string; token: Promise<IssuedToken> } | undefined;
  return (request) => {
    if (request.stage !== 'handshake') return provider(request);
    const key = JSON.stringify({ ...request, sessionNonce: '' });
    const cached = cache.get(key);
    if (cached !== undefined) return cached;
    if (pending?.key === key) return pending.token;
    const token = issueToken(provider, request).then(
      (issued) => {
        if (pending?.token === token) pending = undefined;
        cache.set(key, issued);
        return issued;
      },
      (err: unknown) => {
        if (pending?.token === token) pending = undefined;
        throw err;
      },
    );
    pending = { key, token };
    return token;
  };
}
