/**
 * The backend's side of the current era's attested handshake and re-authentication (docs/protocol.md
 * §1.9, §1.10): stage-0 token → `handshake_challenge{nonce}` → stage-1 token with `session_nonce`; later,
 * every `reauth_challenge{nonce}` gets a fresh token (reauth-responder.ts). Challenges are WebSocket text
 * frames; the answers are text frames holding the raw JWT, sent straight to the socket (ahead of any DATA
 * the multiplexer still holds back).
 */
import type WebSocket from 'ws';
import { BackendClientError, HandshakeError, TokenError } from './errors.js';
import {
  type IssuedToken,
  issueToken,
  type TokenProvider,
  type TokenRequest,
  type TokenStage,
} from './token-provider.js';

/** How long the client waits for `handshake_challenge` after sending its stage-0 token, ms. */
export const DEFAULT_CHALLENGE_TIMEOUT = 15_000;
/** Longest nonce accepted from a hub, characters (a hub sends 43). */
export const MAX_NONCE_LENGTH = 512;
/** Longest text frame read as a challenge, bytes (a hub's is about 90); longer ones are not parsed. */
export const MAX_CHALLENGE_FRAME = 1024;

/** The claims of a backend that every token request carries. */
export type TokenIdentity = Omit<TokenRequest, 'stage' | 'sessionNonce'>;

/** A challenge frame: `{"type": "handshake_challenge" | "reauth_challenge", "nonce": "…"}`. */
export interface Challenge {
  type: string;
  nonce: string;
}

/**
 * Reads a text frame from the hub as a challenge. Throws a {@link HandshakeError} for a frame that is
 * longer than {@link MAX_CHALLENGE_FRAME}, not a JSON object with string `type` and `nonce`, or whose nonce
 * is empty, longer than {@link MAX_NONCE_LENGTH} or not printable.
 */
export function parseChallenge(data: Buffer): Challenge {
  if (data.length > MAX_CHALLENGE_FRAME) {
    throw new HandshakeError(
      `the hub sent a text frame of ${data.length} bytes (a challenge is at most ${MAX_CHALLENGE_FRAME})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch {
    throw new HandshakeError('the hub sent a text frame that is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HandshakeError('the hub sent a text frame that is not a JSON object');
  }
  const { type, nonce } = parsed as { type?: unknown; nonce?: unknown };
  if (typeof type !== 'string') throw new HandshakeError('the hub sent a challenge without a type');
  const value = typeof nonce === 'string' ? nonce.trim() : '';
  const what = JSON.stringify(type.slice(0, 64));
  if (value === '') throw new HandshakeError(`the hub sent a ${what} challenge without a nonce`, type);
  if (value.length > MAX_NONCE_LENGTH || !/^[\x21-\x7e]+$/.test(value)) {
    throw new HandshakeError(`the hub sent a ${what} challenge whose nonce is not a nonce`, type);
  }
  return { type, nonce: value };
}

/** Issues the token for `stage`, failing with a {@link TokenError} when the provider takes over `timeoutMs`. */
export function issueWithin(
  provider: TokenProvider,
  request: TokenRequest,
  timeoutMs: number,
): Promise<IssuedToken> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TokenError(`token provider gave no ${request.stage} token within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  return Promise.race([issueToken(provider, request), timeout]).finally(() => clearTimeout(timer));
}

/** What one node connection needs to speak the current era. */
export interface AttestationContext {
  readonly provider: TokenProvider;
  readonly identity: Readonly<TokenIdentity>;
  /** Wait for `handshake_challenge`, ms. */
  readonly challengeTimeoutMs: number;
  /** Longest a provider may take for one token, ms. */
  readonly issueTimeoutMs: number;
}

/** Issues the token of `stage` (nonce `''` at `handshake`). */
export function issueStage(context: AttestationContext, stage: TokenStage, nonce = ''): Promise<IssuedToken> {
  return issueWithin(
    context.provider,
    { ...context.identity, stage, sessionNonce: nonce },
    context.issueTimeoutMs,
  );
}

/**
 * Runs the rest of the handshake on an open WebSocket: sends `stage0`, waits for `handshake_challenge`,
 * sends the stage-1 token. Resolves once stage 1 is on its way (the hub sends no success message: the
 * session starts now); rejects with a {@link HandshakeError} or {@link TokenError}. Until it settles it
 * owns the WebSocket's messages; a binary frame before the challenge fails it.
 */
export function attestedHandshake(ws: WebSocket, stage0: string, context: AttestationContext): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (err?: BackendClientError): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const timer = setTimeout(
      () =>
        finish(
          new HandshakeError(`no handshake_challenge from the hub within ${context.challengeTimeoutMs} ms`),
        ),
      context.challengeTimeoutMs,
    );
    const onClose = (code: number, reason: Buffer): void => {
      const text = reason.toString('utf8');
      finish(new HandshakeError(`the hub closed the handshake (${code}${text === '' ? '' : `: ${text}`})`));
    };
    let challenged = false;
    const onMessage = (data: Buffer, isBinary: boolean): void => {
      if (challenged) {
        // Nothing may come before our stage-1 token: the hub has not registered us yet.
        finish(new HandshakeError('the hub sent a frame before the stage-1 token'));
        return;
      }
      if (isBinary) {
        finish(new HandshakeError('expected a text handshake_challenge from the hub, got a binary frame'));
        return;
      }
      let challenge: Challenge;
      try {
        challenge = parseChallenge(data);
      } catch (err) {
        finish(err as HandshakeError);
        return;
      }
      if (challenge.type !== 'handshake_challenge') {
        finish(
          new HandshakeError(
            `expected a handshake_challenge from the hub, got ${JSON.stringify(challenge.type)}`,
          ),
        );
        return;
      }
      challenged = true;
      clearTimeout(timer);
      issueStage(context, 'attest', challenge.nonce).then(
        ({ token }) => {
          if (done) return;
          if (ws.readyState !== ws.OPEN) {
            finish(new HandshakeError('the connection closed while the stage-1 token was issued'));
            return;
          }
          ws.send(token);
          finish();
        },
        (err: unknown) => finish(BackendClientError.is(err) ? err : new TokenError(String(err))),
      );
    };
    ws.on('message', onMessage);
    ws.once('close', onClose);
    ws.send(stage0);
  });
}
