/**
 * The authorizer health check before a re-authentication round (docs/protocol.md §1.10): an HTTPS GET of
 * the token's `authorizer_status_uri`; healthy means status 200 within 5 s. The body is not read. Like
 * every outbound HTTPS request of the hub (the remote verifier, docs/protocol.md §5.5), it presents the
 * hub certificate in force at that moment as its TLS client certificate (an ACME renewal replaces it).
 */
import { request } from 'node:https';
import { rootCertificates, type SecureContext } from 'node:tls';
import type { CertificateAndKey } from './certificates.js';
import { DialContextCache } from './mesh-dial.js';

/** Time a status check may take, ms: 5 000. */
export const AUTHORIZER_STATUS_TIMEOUT_MS = 5_000;

/** Options of {@link checkAuthorizerStatus} and {@link createAuthorizerStatusCheck}. */
export interface AuthorizerStatusOptions {
  /** Extra trusted CA certificates, PEM (besides Node's root store). */
  ca?: string | readonly string[];
  /** Timeout, ms. Default: `5_000`. */
  timeoutMs?: number;
  /**
   * The hub certificate to present, read for every request; `undefined` (or no function) = none (an
   * authorizer that requires one then refuses the connection: unhealthy).
   */
  clientCertificate?: () => Readonly<CertificateAndKey> | undefined;
}

/**
 * A status check bound to its options, reusing one TLS context while the client certificate stays the
 * same (a new certificate gets a new context at the next request).
 */
export function createAuthorizerStatusCheck(
  options: AuthorizerStatusOptions = {},
): (uri: string) => Promise<boolean> {
  const extra =
    options.ca === undefined ? undefined : typeof options.ca === 'string' ? [options.ca] : [...options.ca];
  const ca = extra === undefined ? undefined : [...rootCertificates, ...extra];
  const trust = { caPem: () => ca };
  const contexts = new DialContextCache();
  const timeoutMs = options.timeoutMs ?? AUTHORIZER_STATUS_TIMEOUT_MS;
  return (uri) => {
    const material = options.clientCertificate?.();
    return get(
      uri,
      timeoutMs,
      material === undefined ? { ca } : { secureContext: contexts.get(material, trust) },
    );
  };
}

/**
 * GET `uri` (https only); resolves `true` for status 200, `false` for any other status, a transport or
 * TLS error, a non-https URL or the timeout. Never rejects.
 */
export function checkAuthorizerStatus(uri: string, options: AuthorizerStatusOptions = {}): Promise<boolean> {
  return createAuthorizerStatusCheck(options)(uri);
}

function get(
  uri: string,
  timeoutMs: number,
  tls: { ca?: string[] | undefined; secureContext?: SecureContext },
): Promise<boolean> {
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      resolve(false);
      return;
    }
    if (url.protocol !== 'https:') {
      resolve(false);
      return;
    }
    const req = request(url, {
      method: 'GET',
      signal: AbortSignal.timeout(timeoutMs),
      // No shared agent: each check is one connection, with the context of this moment.
      agent: false,
      ...(tls.secureContext !== undefined ? { secureContext: tls.secureContext } : {}),
      ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
      headers: { accept: '*/*' },
    });
    req.once('response', (res) => {
      resolve(res.statusCode === 200);
      res.destroy();
    });
    req.once('error', () => resolve(false));
    req.end();
  });
}
