/**
 * The authorizer health check before a re-authentication round (docs/protocol.md §1.10): an HTTPS GET of
 * the token's `authorizer_status_uri`; healthy means status 200 within 5 s. The body is not read.
 */
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';

/** Time a status check may take, ms: 5 000. */
export const AUTHORIZER_STATUS_TIMEOUT_MS = 5_000;

/** Options of {@link checkAuthorizerStatus}. */
export interface AuthorizerStatusOptions {
  /** Extra trusted CA certificates, PEM (besides Node's root store). */
  ca?: string | readonly string[];
  /** Timeout, ms. Default: `5_000`. */
  timeoutMs?: number;
}

/**
 * GET `uri` (https only); resolves `true` for status 200, `false` for any other status, a transport or
 * TLS error, a non-https URL or the timeout. Never rejects.
 */
export function checkAuthorizerStatus(uri: string, options: AuthorizerStatusOptions = {}): Promise<boolean> {
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
    const ca =
      options.ca === undefined ? undefined : typeof options.ca === 'string' ? [options.ca] : [...options.ca];
    const req = request(url, {
      method: 'GET',
      signal: AbortSignal.timeout(options.timeoutMs ?? AUTHORIZER_STATUS_TIMEOUT_MS),
      ...(ca !== undefined ? { ca: [...rootCertificates, ...ca] } : {}),
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
