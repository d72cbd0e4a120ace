/**
 * The remote token verifier (docs/protocol.md §5.5, the reference's `remoteVerifierURL`): the hub asks an
 * HTTPS service whether a backend token is valid instead of checking its HMAC signature itself, and
 * presents its own hub certificate as the TLS client certificate so the service knows which node asks.
 *
 * - Request: `POST <url>` with `Content-Type: application/json` and the body `{"token":"<compact JWS>"}`.
 * - Answer: HTTP 200 with `{"valid":true,"claims":{…}}` (the token's claims, as JSON) or
 *   `{"valid":false,"error":"…"}`.
 * - A transport failure (connection refused, TLS refused, no answer before the timeout) or a 5xx answer
 *   means "verifier unavailable": the token is checked locally with the node's secrets when it has any,
 *   and refused otherwise. Any other status, a body that is not such an object, or one over the size
 *   limit refuses the token.
 *
 * Every request uses the hub certificate current at that moment (an ACME renewal replaces it), over a
 * connection of its own, at most {@link REMOTE_VERIFIER_MAX_CONCURRENT} at once.
 */
import { readFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import * as https from 'node:https';
import type { SecureContext } from 'node:tls';
import type { JWTPayload } from 'jose';
import { LogRateLimit } from '@nexus-proxy/common';
import type { CertificateAndKey } from './certificates.js';
import { AuthError, InvalidConfigError, NexusError, NexusErrorCode, TlsError } from './errors.js';
import { type Logger, noopLogger } from './logger.js';
import { DialContextCache } from './mesh-dial.js';
import { parsePemBundle } from './peer-trust.js';
import type { TokenVerifier } from './auth.js';

/** Default time for one exchange with the verifier (connect, TLS, request, whole answer): `10_000` ms. */
export const DEFAULT_REMOTE_VERIFIER_TIMEOUT_MS = 10_000;
/** Default largest answer read from the verifier: `1_048_576` bytes; a longer one refuses the token. */
export const DEFAULT_REMOTE_VERIFIER_MAX_RESPONSE_BYTES = 1_048_576;
/** Most requests to the verifier in flight at once; later ones wait for a connection (within their timeout). */
export const REMOTE_VERIFIER_MAX_CONCURRENT = 32;
/** Longest part of the verifier's `error` text kept in the close reason, characters. */
const MAX_VERIFIER_ERROR_CHARS = 80;

export type { TokenVerifier } from './auth.js';

/** Options of {@link createRemoteVerifier}. */
export interface RemoteVerifierOptions {
  /** The verifier's URL; `https:` only. */
  url: string | URL;
  /**
   * The hub certificate to present, read for every request (it may be replaced while the node runs);
   * `undefined` = none yet (the request goes without one, and the verifier may refuse the connection).
   */
  clientCertificate(): Readonly<CertificateAndKey> | undefined;
  /** CA certificates (PEM) trusted for the verifier's server certificate. Default: Node's root store. */
  ca?: readonly string[];
  /**
   * A PEM file of CA certificates to trust instead of `ca`, read when a connection context is built (the
   * first request, then after each certificate change); a file that cannot be read or holds no
   * certificate makes the verifier unavailable (the fallback applies) and is logged.
   */
  caFile?: string;
  /**
   * Local verification used when the verifier is unavailable (transport failure or 5xx); without it such
   * tokens are refused (`token verifier unavailable`).
   */
  fallback?: TokenVerifier;
  /** Time for one exchange, ms. Default: `10_000`. */
  timeoutMs?: number;
  /** Largest answer read, bytes. Default: `1_048_576`. */
  maxResponseBytes?: number;
  /** Logger; a `component: 'remote-verifier'` child is used. Default: no-op. */
  logger?: Logger;
}

/** A running remote verifier. */
export interface RemoteVerifier {
  /** Verify one token (bound: can be passed as is). */
  readonly verify: TokenVerifier;
  /** Requests in flight (metrics, tests). */
  readonly inFlight: number;
  /** Abort the requests in flight (they are refused with `shutdown`); later calls are refused too. */
  close(): void;
}

/** What one exchange with the verifier ended with. */
type Exchange =
  | { kind: 'answer'; status: number; body: Buffer }
  | { kind: 'unavailable'; detail: string; status?: number }
  | { kind: 'refused'; reason: string; detail: string };

/** Builds a verifier. Throws `InvalidConfigError` when `url` is not an `https:` URL with a host. */
export function createRemoteVerifier(options: RemoteVerifierOptions): RemoteVerifier {
  const url = parseVerifierUrl(options.url);
  const timeoutMs = positive(options.timeoutMs, DEFAULT_REMOTE_VERIFIER_TIMEOUT_MS, 'timeoutMs');
  const maxBytes = positive(
    options.maxResponseBytes,
    DEFAULT_REMOTE_VERIFIER_MAX_RESPONSE_BYTES,
    'maxResponseBytes',
  );
  const log = (options.logger ?? noopLogger).child({ component: 'remote-verifier' });
  // A verifier outage meets every backend that (re)connects: a few lines per second and kind, then counts.
  const lines = new LogRateLimit({
    perWindow: 5,
    windowMs: 10_000,
    onSuppressed: (kind, suppressed) =>
      log.warn({ kind, suppressed }, 'token verifier problems (lines suppressed)'),
  });
  const ca = options.ca === undefined ? undefined : [...options.ca];
  const caFile = options.caFile;
  const trust = { caPem: () => (caFile !== undefined ? readCaFile(caFile) : ca) };
  const contexts = new DialContextCache();
  const inFlight = new Set<ClientRequest>();
  let agent: { context: SecureContext | undefined; agent: https.Agent } | undefined;
  let closed = false;

  /** One agent per client context: a renewed certificate gets a new one, so no request uses the old. */
  const agentFor = (material: Readonly<CertificateAndKey> | undefined): https.Agent => {
    const context = material === undefined ? undefined : contexts.get(material, trust);
    if (agent === undefined || agent.context !== context) {
      agent = {
        context,
        agent: new https.Agent({
          keepAlive: false,
          maxSockets: REMOTE_VERIFIER_MAX_CONCURRENT,
          ...(context !== undefined ? { secureContext: context } : caOptions(trust.caPem())),
        }),
      };
    }
    return agent.agent;
  };

  const exchange = (token: string): Promise<Exchange> =>
    new Promise<Exchange>((resolve) => {
      const payload = Buffer.from(JSON.stringify({ token }), 'utf8');
      let settled = false;
      let status: number | undefined;
      const finish = (result: Exchange): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        inFlight.delete(req);
        if (!req.destroyed) req.destroy();
        resolve(result);
      };
      let agentNow: https.Agent;
      try {
        agentNow = agentFor(options.clientCertificate());
      } catch (err) {
        // The CA file or the certificate cannot be used: nothing was sent.
        resolve({ kind: 'unavailable', detail: (err as Error).message });
        return;
      }
      const req = https.request(url, {
        method: 'POST',
        agent: agentNow,
        headers: {
          'content-type': 'application/json',
          'content-length': payload.length,
          accept: 'application/json',
        },
      });
      inFlight.add(req);
      // Before the status line, a timeout is the verifier being unavailable; after a 200 it is a broken
      // answer (the reference decodes the body under the same deadline).
      const timer = setTimeout(() => {
        if (status === undefined) finish({ kind: 'unavailable', detail: `no answer within ${timeoutMs} ms` });
        else finish({ kind: 'refused', reason: 'invalid verifier response', detail: 'answer timed out' });
      }, timeoutMs);
      req.on('error', (err) => {
        if (status === undefined) finish({ kind: 'unavailable', detail: err.message });
        else finish({ kind: 'refused', reason: 'invalid verifier response', detail: err.message });
      });
      req.on('response', (res) => {
        status = res.statusCode ?? 0;
        // Destroying the request below may fail the answer's stream; that is already accounted for.
        res.on('error', noop);
        if (status >= 500) {
          finish({ kind: 'unavailable', status, detail: `HTTP ${status}` });
          return;
        }
        if (status !== 200) {
          finish({ kind: 'answer', status, body: Buffer.alloc(0) });
          return;
        }
        const chunks: Buffer[] = [];
        let length = 0;
        res.on('data', (chunk: Buffer) => {
          length += chunk.length;
          if (length > maxBytes) {
            finish({
              kind: 'refused',
              reason: 'invalid verifier response',
              detail: `over ${maxBytes} bytes`,
            });
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => finish({ kind: 'answer', status: 200, body: Buffer.concat(chunks, length) }));
        res.on('error', (err) =>
          finish({ kind: 'refused', reason: 'invalid verifier response', detail: err.message }),
        );
        res.on('close', () =>
          finish({ kind: 'refused', reason: 'invalid verifier response', detail: 'answer cut short' }),
        );
      });
      req.end(payload);
    });

  const verify: TokenVerifier = async (token) => {
    if (closed) throw new AuthError('shutdown');
    if (typeof token !== 'string') throw new AuthError('malformed token');
    const result = await exchange(token);
    if (closed) throw new AuthError('shutdown');
    switch (result.kind) {
      case 'unavailable':
        if (options.fallback === undefined) {
          if (lines.admit('unavailable'))
            log.warn({ detail: result.detail }, 'token verifier unavailable, no fallback: refusing');
          throw new AuthError('token verifier unavailable');
        }
        if (lines.admit('unavailable'))
          log.warn({ detail: result.detail }, 'token verifier unavailable: using the fallback check');
        return options.fallback(token);
      case 'refused':
        if (lines.admit('invalid-answer'))
          log.warn({ detail: result.detail }, 'token verifier answer refused');
        throw new AuthError(result.reason);
      case 'answer':
        if (result.status !== 200) {
          log.info({ status: result.status }, 'token verifier refused the token');
          throw new AuthError(`token refused by verifier (HTTP ${result.status})`);
        }
        return parseAnswer(result.body);
    }
  };

  return {
    verify,
    get inFlight() {
      return inFlight.size;
    },
    close() {
      closed = true;
      lines.flush();
      for (const req of inFlight) req.destroy(new NexusError(NexusErrorCode.Closed, 'verifier closed'));
      inFlight.clear();
      agent?.agent.destroy();
      agent = undefined;
    },
  };
}

/**
 * The claims of a 200 answer, or `AuthError`: `valid` must be a boolean, `claims` an object when valid,
 * `error` a string when present; the verifier's `error` text goes into the close reason, cut short and
 * stripped of control characters.
 */
export function parseAnswer(body: Buffer): JWTPayload {
  let answer: unknown;
  try {
    answer = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new AuthError('invalid verifier response', { cause: err });
  }
  if (!isPlainObject(answer)) throw new AuthError('invalid verifier response');
  const { valid, claims, error } = answer;
  if (typeof valid !== 'boolean') throw new AuthError('invalid verifier response');
  if (error !== undefined && error !== null && typeof error !== 'string')
    throw new AuthError('invalid verifier response');
  if (!valid) {
    const text = typeof error === 'string' ? cleanText(error) : '';
    throw new AuthError(text === '' ? 'token refused by verifier' : `token refused by verifier: ${text}`);
  }
  if (claims === undefined || claims === null) throw new AuthError('verifier returned no claims');
  if (!isPlainObject(claims)) throw new AuthError('invalid verifier response');
  return claims as JWTPayload;
}

function noop(): void {}

function caOptions(ca: readonly string[] | undefined): { ca?: string[] } {
  return ca === undefined ? {} : { ca: [...ca] };
}

/** The certificates of a PEM bundle; `TlsError` when it cannot be read or holds none. */
function readCaFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new TlsError(`cannot read remoteVerifierCaFile: ${(cause as Error).message}`, { cause });
  }
  const certificates = parsePemBundle(text);
  if (certificates.length === 0) throw new TlsError('remoteVerifierCaFile holds no PEM certificate');
  return certificates.map((c) => c.toString());
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Printable text only (control and format characters become spaces), at most 80 characters. */
function cleanText(text: string): string {
  const printable = text.replace(/[\p{Cc}\p{Cf}]+/gu, ' ').trim();
  const chars = [...printable];
  return chars.length <= MAX_VERIFIER_ERROR_CHARS
    ? printable
    : `${chars.slice(0, MAX_VERIFIER_ERROR_CHARS).join('')}…`;
}

function parseVerifierUrl(value: string | URL): URL {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch (err) {
    throw new InvalidConfigError('remoteVerifierURL', 'must be an https:// URL', { cause: err });
  }
  if (url.protocol !== 'https:' || url.hostname === '')
    throw new InvalidConfigError('remoteVerifierURL', 'must be an https:// URL with a host');
  return url;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new InvalidConfigError(name, 'must be a positive number');
  return value;
}
