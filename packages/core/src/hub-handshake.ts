/**
 * A backend connection from its WebSocket upgrade until it is accepted or refused (docs/protocol.md §1.2,
 * §1.9): the seed era's single token, or the current era's two-stage handshake (stage-0 token →
 * `handshake_challenge` → stage-1 token bound to the nonce). Owns the waits, the token size limits, the
 * pings and messages allowed before acceptance (kept and handed over in order) and the policy close.
 */
import { createHash, randomBytes } from 'node:crypto';
import { WS_CLOSE_POLICY_VIOLATION } from '@nexus-proxy/mux-protocol';
import type { JWTPayload } from 'jose';
import type { WebSocket } from 'ws';
import { seedTokenRoutes, type TokenVerifier } from './auth.js';
import { type BackendEraMode, chooseBackendEra } from './backend-era.js';
import type { BackendIdentity } from './backend-identity.js';
import {
  type ClaimPolicy,
  type CurrentEraClaims,
  checkHandshakeAge,
  claimSetMismatch,
  parseCurrentClaims,
} from './current-claims.js';
import { AuthError, MAX_CLOSE_REASON_BYTES, truncateUtf8 } from './errors.js';
import type { Logger } from './logger.js';

/** Messages (and pings) a backend may send before it is accepted; they are replayed in order. */
export const MAX_EARLY_MESSAGES = 64;
/** Random bytes in a challenge nonce (sent as 43 characters of unpadded base64url). */
export const CHALLENGE_NONCE_BYTES = 32;
/** WebSocket close code 1009 "message too big" (RFC 6455 §7.4.1). */
const WS_CLOSE_MESSAGE_TOO_BIG = 1009;

/** A challenge the hub sends as a text message: `handshake_challenge` or `reauth_challenge`. */
export interface ChallengeMessage {
  type: 'handshake_challenge' | 'reauth_challenge';
  /** 32 random bytes, unpadded base64url (43 characters). */
  nonce: string;
}

/** A fresh challenge nonce: 32 random bytes, unpadded base64url. */
export function createChallengeNonce(): string {
  return randomBytes(CHALLENGE_NONCE_BYTES).toString('base64url');
}

/** The text of a challenge message, fields in the reference's order. */
export function encodeChallenge(type: ChallengeMessage['type'], nonce: string): string {
  return JSON.stringify({ type, nonce } satisfies ChallengeMessage);
}

/** What a handshake needs to know; read once, when the connection starts. */
export interface HandshakeSettings {
  verifyToken: TokenVerifier;
  era: BackendEraMode;
  claims: ClaimPolicy;
  /** Wait for the (stage-0) token, and again for the stage-1 token after the challenge, ms. */
  authTimeoutMs: number;
  /** Largest token message, bytes. */
  maxTokenBytes: number;
  /** Largest other message before acceptance, bytes (larger → 1009). */
  maxMessageBytes: number;
  /** Clock for `handshake_max_age_seconds`. Default: `Date.now`. */
  now?: () => number;
}

/** A verified backend, handed to {@link HandshakeHooks.accepted}. */
export interface HandshakeOutcome {
  identity: BackendIdentity;
  /**
   * The per-token session cap's key ({@link sessionCapKey}): the seed era's token, or the current era's
   * backend identity (its stage-0 token is fresh on every connection).
   */
  tokenKey: string;
  /** Current era: the registered claims (stage 1 with stage 0's weight), for re-authentication. */
  current: CurrentEraClaims | undefined;
  /** Messages received after the token(s), in order, to replay into the session. */
  early: Array<[Buffer, boolean]>;
  /** Refuse the backend after all (policy close, like any handshake failure). */
  refuse(reason: string): void;
}

/** How a handshake reports. Exactly one of `accepted`, `failed`, `left` is called, then `settled`. */
export interface HandshakeHooks {
  /** Verified: the WebSocket is paused and the handshake's listeners are gone; attach it, then resume it. */
  accepted(outcome: HandshakeOutcome): void;
  /** Refused with a policy close (`reason` already truncated to 123 bytes). */
  failed(reason: string): void;
  /** The backend went away first. */
  left(): void;
  /** The handshake is over, whichever way (release what was held for it). */
  settled(): void;
}

/** Run the handshake of `ws` (just upgraded). */
export function runBackendHandshake(
  ws: WebSocket,
  settings: HandshakeSettings,
  hooks: HandshakeHooks,
  log: Logger,
): void {
  let done = false;
  /** Whether the next message is a token (a larger one is then refused as `token too large`). */
  let expectingToken = true;
  /** Current era: the validated stage-0 claims and the nonce sent, once challenged. */
  let stage0: CurrentEraClaims | undefined;
  let nonce: string | undefined;
  let tokenKey = '';
  const early: Array<[Buffer, boolean]> = [];
  let pings = 0;

  const settle = (): void => {
    done = true;
    clearTimeout(timer);
    ws.off('message', onMessage);
    ws.off('close', onClose);
    ws.off('ping', onPing);
    delete (ws as { close?: unknown }).close; // back to WebSocket.prototype.close
    hooks.settled();
  };
  const fail = (reason: string, code = WS_CLOSE_POLICY_VIOLATION): void => {
    if (done) return;
    settle();
    ws.off('error', onError);
    ws.on('error', noop);
    const short = truncateUtf8(reason, MAX_CLOSE_REASON_BYTES);
    hooks.failed(short);
    if (ws.readyState === ws.OPEN) {
      // Read again, or the backend's answering close frame is never seen and the close hangs.
      ws.resume();
      ws.close(code, short);
    }
  };
  const failWith = (err: unknown): void => fail(AuthError.is(err) ? err.reason : 'authentication failed');

  // A token over the WebSocket's `maxPayload` makes ws close with 1009 before any event we could act on;
  // docs/reliability.md item 23 wants every refused token closed with 1008 and a reason, so while a token
  // is expected that close is turned into a policy close (the 'error' then reports it).
  const wsClose = ws.close;
  ws.close = (code?: number, data?: string | Buffer): void => {
    if (expectingToken && code === WS_CLOSE_MESSAGE_TOO_BIG)
      wsClose.call(ws, WS_CLOSE_POLICY_VIOLATION, 'token too large');
    else wsClose.call(ws, code, data);
  };
  let timer = setTimeout(() => fail('authentication timeout'), settings.authTimeoutMs);

  const onClose = (): void => {
    if (done) return;
    settle();
    hooks.left();
  };
  const onError = (err: Error): void => {
    log.debug({ err: err.message }, 'WebSocket error before authentication');
    if ((err as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
      fail(
        expectingToken ? 'token too large' : 'message too big',
        expectingToken ? undefined : WS_CLOSE_MESSAGE_TOO_BIG,
      );
  };
  // The hub's sockets do not answer pings by themselves (`autoPong: false`, see BackendSession); before
  // the session exists they are answered here, as many as messages are allowed.
  const onPing = (data: Buffer): void => {
    if (++pings > MAX_EARLY_MESSAGES) fail('too many messages before authentication');
    else if (ws.readyState === ws.OPEN) ws.pong(data, false, noop);
  };

  const accept = (identity: BackendIdentity, current: CurrentEraClaims | undefined): void => {
    if (done) return;
    settle();
    ws.off('error', onError);
    hooks.accepted({ identity, tokenKey, current, early, refuse: (reason) => refuseLater(reason) });
  };
  const refuseLater = (reason: string): void => {
    const short = truncateUtf8(reason, MAX_CLOSE_REASON_BYTES);
    ws.on('error', noop);
    hooks.failed(short);
    if (ws.readyState === ws.OPEN) {
      ws.resume();
      ws.close(WS_CLOSE_POLICY_VIOLATION, short);
    }
  };

  /** The first token verified: pick the era, then accept (seed) or challenge (current). */
  const onFirstToken = (claims: JWTPayload, binary: boolean): void => {
    const era = chooseBackendEra(claims, settings.era);
    if (era === 'seed') {
      const routes = seedTokenRoutes(claims, settings.claims.maxHostnames);
      if (routes.ignoredHostnames.length > 0)
        log.warn({ ignored: routes.ignoredHostnames.slice(0, 10) }, 'ignoring invalid hostnames of a token');
      accept({ hostnames: routes.hostnames, weight: routes.weight, era: 'seed' }, undefined);
      return;
    }
    // §1.9: the current era requires a text frame, a fresh enough token, and nothing before the challenge.
    if (binary) throw new AuthError('expected a text frame for the stage-0 token');
    const parsed = parseCurrentClaims(claims, settings.claims);
    checkHandshakeAge(parsed, settings.now?.());
    if (early.length > 0) throw new AuthError('message before the handshake challenge');
    stage0 = parsed;
    nonce = createChallengeNonce();
    expectingToken = true;
    clearTimeout(timer);
    timer = setTimeout(() => fail('handshake challenge not answered in time'), settings.authTimeoutMs);
    ws.send(encodeChallenge('handshake_challenge', nonce));
    ws.resume();
  };

  /** The stage-1 token verified: it must carry the nonce and repeat stage 0's sets. */
  const onStage1 = (claims: JWTPayload): void => {
    const expected = stage0 as CurrentEraClaims;
    const parsed = parseCurrentClaims(claims, settings.claims);
    if (parsed.sessionNonce !== nonce) throw new AuthError('session nonce mismatch');
    const mismatch = claimSetMismatch(expected, parsed, 'the handshake token');
    if (mismatch !== undefined) throw new AuthError(mismatch);
    const registered: CurrentEraClaims = { ...parsed, weight: expected.weight };
    tokenKey = sessionCapKey(claims, registered);
    if (parsed.ignoredHostnames.length > 0)
      log.warn({ ignored: parsed.ignoredHostnames.slice(0, 10) }, 'ignoring invalid hostnames of a token');
    accept(
      {
        hostnames: registered.hostnames,
        weight: registered.weight,
        era: 'current',
        tcpPorts: registered.tcpPorts,
        udpRoutes: registered.udpRoutes,
        outbound: registered.outbound,
        ...(registered.policyVersion !== undefined ? { policyVersion: registered.policyVersion } : {}),
      },
      registered,
    );
  };

  const onMessage = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void => {
    const bytes = toBuffer(data);
    if (!expectingToken) {
      if (bytes.length > settings.maxMessageBytes) fail('message too big', WS_CLOSE_MESSAGE_TOO_BIG);
      else if (early.length >= MAX_EARLY_MESSAGES) fail('too many messages before authentication');
      else early.push([bytes, isBinary]);
      return;
    }
    expectingToken = false;
    if (bytes.length > settings.maxTokenBytes) {
      fail('token too large');
      return;
    }
    const stage1 = stage0 !== undefined;
    // §1.9: the stage-1 token must be a text frame; §1.2: a seed-era token may be either.
    if (stage1 && isBinary) {
      fail('expected a text frame for the stage-1 token');
      return;
    }
    ws.pause();
    const token = bytes.toString('utf8').trim();
    if (!stage1) tokenKey = createHash('sha256').update(token).digest('base64url');
    settings.verifyToken(token).then(
      (claims) => {
        if (done) return; // timed out or closed meanwhile
        try {
          if (stage1) onStage1(claims);
          else onFirstToken(claims, isBinary);
        } catch (err) {
          failWith(err);
        }
      },
      (err: unknown) => failWith(err),
    );
  };

  ws.on('message', onMessage);
  ws.on('close', onClose);
  ws.on('error', onError);
  ws.on('ping', onPing);
}

/**
 * The current era's key for `limits.maxSessionsPerToken` (docs/security.md): SHA-256 of `iss`, `sub` and
 * the sorted hostname, TCP port and UDP port claim sets, so sessions of one backend count together however
 * often it mints a fresh token.
 */
export function sessionCapKey(claims: JWTPayload, registered: CurrentEraClaims): string {
  const identity = [
    claims.iss ?? '',
    claims.sub ?? '',
    [...registered.hostnames].sort(),
    [...registered.tcpPorts].sort((a, b) => a - b),
    registered.udpRoutes.map((r) => r.port).sort((a, b) => a - b),
  ];
  return `current:${createHash('sha256').update(JSON.stringify(identity)).digest('base64url')}`;
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

function noop(): void {}
