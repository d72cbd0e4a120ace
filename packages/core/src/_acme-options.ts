/**
 * The ACME block's options: defaults, types and their validation (`resolveAcmeCertificateManagerOptions`).
 */
import { isIP } from 'node:net';
import { normalizeHostname } from '@nexus-proxy/sni';
import { InvalidConfigError } from './errors.js';
import type { HubTlsContext } from './hub-tls.js';
import type { Logger } from './logger.js';

/** Let's Encrypt's production ACME directory (the default). */
export const LETSENCRYPT_DIRECTORY_URL = 'https://acme-v02.api.letsencrypt.org/directory';
/** Let's Encrypt's staging ACME directory (untrusted certificates, generous rate limits). */
export const LETSENCRYPT_STAGING_DIRECTORY_URL = 'https://acme-staging-v02.api.letsencrypt.org/directory';
/** Shortcuts accepted for `directoryUrl`. */
export const ACME_DIRECTORY_SHORTCUTS: Readonly<Record<string, string>> = Object.freeze({
  letsencrypt: LETSENCRYPT_DIRECTORY_URL,
  'letsencrypt-production': LETSENCRYPT_DIRECTORY_URL,
  'letsencrypt-staging': LETSENCRYPT_STAGING_DIRECTORY_URL,
});

/** Default cache directory (docs/protocol.md §6.1 `acmeCacheDir`): `acme_certs`, relative to the working directory. */
export const DEFAULT_ACME_CACHE_DIR = 'acme_certs';
/** Default share of a certificate's lifetime left when it is renewed: `1/3` (day 60 of a 90-day certificate). */
export const DEFAULT_ACME_RENEW_BEFORE_FRACTION = 1 / 3;
/** Default first retry delay after a failed issuance: `300_000` ms (5 minutes). */
export const DEFAULT_ACME_RETRY_MIN = 300_000;
/** Default longest retry delay: `3_600_000` ms (1 hour). */
export const DEFAULT_ACME_RETRY_MAX = 3_600_000;
/** Default first delay when polling the ACME server for a status change: `5_000` ms (acme-client's). */
export const DEFAULT_ACME_BACKOFF_MIN = 5_000;
/** Default longest polling delay: `30_000` ms (acme-client's). */
export const DEFAULT_ACME_BACKOFF_MAX = 30_000;
/** Default number of polls before an order counts as failed: `10` (acme-client's). */
export const DEFAULT_ACME_BACKOFF_ATTEMPTS = 10;
/** Default timeout of one HTTP request to the ACME server: `30_000` ms. */
export const DEFAULT_ACME_REQUEST_TIMEOUT = 30_000;
/** Lifetime of the temporary self-signed certificate served until the first issuance: `7` days. */
export const TEMPORARY_CERTIFICATE_VALIDITY_DAYS = 7;

/** Timer functions, injectable for tests. */
export interface AcmeTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options of `AcmeCertificateManager`. */
export interface AcmeCertificateManagerOptions {
  /** The node's public hostname (`hubPublicHostname`); the certificate is ordered for exactly this name. */
  hostname: string;
  /**
   * ACME directory URL (`acmeDirectoryUrl`), or a shortcut: `letsencrypt`, `letsencrypt-staging`.
   * Default: Let's Encrypt production.
   */
  directoryUrl?: string;
  /** Contact e-mail for the ACME account (`acmeEmail`); expiry notices go there. Default: none. */
  email?: string;
  /** PEM file with an extra CA to trust for the ACME API's HTTPS (`acmeCaFile`), e.g. a private CA. */
  caFile?: string;
  /** Extra CA(s) for the ACME API, as PEM text (same effect as `caFile`). */
  ca?: string | readonly string[];
  /** Cache directory (`acmeCacheDir`), created with mode 0700; key files are 0600. Default: `acme_certs`. */
  cacheDir?: string;
  /**
   * The context to update with each certificate. Default: the manager makes one in `start()` (see
   * `tlsContext`).
   */
  tlsContext?: HubTlsContext;
  /**
   * Skip acme-client's own pre-check that fetches the challenge over `http://<hostname>:80` before asking the
   * CA to validate. Default: `false`. Tests (names that do not resolve) set `true`.
   */
  skipChallengeVerification?: boolean;
  /** First delay when polling for an order / challenge status, ms. Default: `5_000`. */
  backoffMin?: number;
  /** Longest polling delay, ms. Default: `30_000`. */
  backoffMax?: number;
  /** Polls before giving up on one order. Default: `10`. */
  backoffAttempts?: number;
  /** Renew when less than this share of the lifetime is left (0 < x < 1). Default: `1/3`. */
  renewBeforeFraction?: number;
  /** First retry delay after a failed issuance, ms; doubles per failure. Default: `300_000`. */
  retryMin?: number;
  /** Longest retry delay, ms. Default: `3_600_000`. */
  retryMax?: number;
  /** Timeout of one HTTP request to the ACME server, ms. Default: `30_000`. */
  requestTimeout?: number;
  /** Clock, ms since the epoch. Default: `Date.now`. */
  now?: () => number;
  /** Timer functions. Default: the global `setTimeout` / `clearTimeout` (timers are unref'd). */
  timers?: AcmeTimers;
  /** Logger; a `component: 'acme'` child is used. Default: no-op. */
  logger?: Logger;
}

/** Validated options. */
export interface ResolvedAcmeCertificateManagerOptions {
  readonly hostname: string;
  readonly directoryUrl: string;
  readonly email: string | undefined;
  readonly caFile: string | undefined;
  readonly ca: readonly string[];
  readonly cacheDir: string;
  readonly skipChallengeVerification: boolean;
  readonly backoffMin: number;
  readonly backoffMax: number;
  readonly backoffAttempts: number;
  readonly renewBeforeFraction: number;
  readonly retryMin: number;
  readonly retryMax: number;
  readonly requestTimeout: number;
}

/**
 * Resolves `directoryUrl` shortcuts and checks the URL. Throws `InvalidConfigError`.
 */
export function resolveAcmeDirectoryUrl(value: string | undefined, path = 'directoryUrl'): string {
  if (value === undefined || value === '') return LETSENCRYPT_DIRECTORY_URL;
  const shortcut = ACME_DIRECTORY_SHORTCUTS[value];
  if (shortcut !== undefined) return shortcut;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidConfigError(
      path,
      `must be an https URL or one of ${Object.keys(ACME_DIRECTORY_SHORTCUTS).join(', ')}`,
    );
  }
  // RFC 8555 §6.1: ACME runs over HTTPS only.
  if (url.protocol !== 'https:') throw new InvalidConfigError(path, 'must be an https URL');
  return url.href;
}

/** Applies defaults and validates. Throws `InvalidConfigError` naming the option. */
export function resolveAcmeCertificateManagerOptions(
  options: AcmeCertificateManagerOptions,
): ResolvedAcmeCertificateManagerOptions {
  const hostname = typeof options.hostname === 'string' ? normalizeHostname(options.hostname) : undefined;
  if (hostname === undefined || isIP(hostname) !== 0 || !hostname.includes('.')) {
    throw new InvalidConfigError(
      'hostname',
      'must be a fully qualified DNS name (no IP address, no wildcard)',
    );
  }
  const positive = (name: string, value: number | undefined, fallback: number): number => {
    const result = value ?? fallback;
    if (!Number.isFinite(result) || result <= 0) throw new InvalidConfigError(name, 'must be a number > 0');
    return result;
  };
  const fraction = options.renewBeforeFraction ?? DEFAULT_ACME_RENEW_BEFORE_FRACTION;
  if (!(fraction > 0 && fraction < 1)) {
    throw new InvalidConfigError('renewBeforeFraction', 'must be between 0 and 1 (exclusive)');
  }
  const resolved: ResolvedAcmeCertificateManagerOptions = {
    hostname,
    directoryUrl: resolveAcmeDirectoryUrl(options.directoryUrl),
    email: options.email === '' ? undefined : options.email,
    caFile: options.caFile === '' ? undefined : options.caFile,
    ca: options.ca === undefined ? [] : typeof options.ca === 'string' ? [options.ca] : [...options.ca],
    cacheDir:
      options.cacheDir === undefined || options.cacheDir === '' ? DEFAULT_ACME_CACHE_DIR : options.cacheDir,
    skipChallengeVerification: options.skipChallengeVerification ?? false,
    backoffMin: positive('backoffMin', options.backoffMin, DEFAULT_ACME_BACKOFF_MIN),
    backoffMax: positive('backoffMax', options.backoffMax, DEFAULT_ACME_BACKOFF_MAX),
    backoffAttempts: positive('backoffAttempts', options.backoffAttempts, DEFAULT_ACME_BACKOFF_ATTEMPTS),
    renewBeforeFraction: fraction,
    retryMin: positive('retryMin', options.retryMin, DEFAULT_ACME_RETRY_MIN),
    retryMax: positive('retryMax', options.retryMax, DEFAULT_ACME_RETRY_MAX),
    requestTimeout: positive('requestTimeout', options.requestTimeout, DEFAULT_ACME_REQUEST_TIMEOUT),
  };
  if (resolved.email !== undefined && !/^[^@\s]+@[^@\s]+$/.test(resolved.email)) {
    throw new InvalidConfigError('email', 'must be an e-mail address');
  }
  if (resolved.backoffMax < resolved.backoffMin)
    throw new InvalidConfigError('backoffMax', 'must be ≥ backoffMin');
  if (resolved.retryMax < resolved.retryMin) throw new InvalidConfigError('retryMax', 'must be ≥ retryMin');
  return Object.freeze(resolved);
}
