import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { normalizeHostname } from '@nexus-proxy/sni';
import { AcmeCache } from './_acme-cache.js';
import { type AcmeProblem, routeClientRequests } from './_acme-http.js';
import { type CertificateAndKey, createSelfSignedCertificate } from './certificates.js';
import { AcmeError } from './errors.js';
import { certificateInfo, HubTlsContext, type TlsCertificateInfo } from './hub-tls.js';
import { type Logger, noopLogger } from './logger.js';

import {
  type AcmeCertificateManagerOptions,
  type AcmeTimers,
  type ResolvedAcmeCertificateManagerOptions,
  resolveAcmeCertificateManagerOptions,
  TEMPORARY_CERTIFICATE_VALIDITY_DAYS,
} from './_acme-options.js';

export type { AcmeProblem } from './_acme-http.js';
export type {
  AcmeCertificateManagerOptions,
  AcmeTimers,
  ResolvedAcmeCertificateManagerOptions,
} from './_acme-options.js';
export {
  ACME_DIRECTORY_SHORTCUTS,
  DEFAULT_ACME_BACKOFF_ATTEMPTS,
  DEFAULT_ACME_BACKOFF_MAX,
  DEFAULT_ACME_BACKOFF_MIN,
  DEFAULT_ACME_CACHE_DIR,
  DEFAULT_ACME_RENEW_BEFORE_FRACTION,
  DEFAULT_ACME_REQUEST_TIMEOUT,
  DEFAULT_ACME_RETRY_MAX,
  DEFAULT_ACME_RETRY_MIN,
  LETSENCRYPT_DIRECTORY_URL,
  LETSENCRYPT_STAGING_DIRECTORY_URL,
  resolveAcmeCertificateManagerOptions,
  resolveAcmeDirectoryUrl,
  TEMPORARY_CERTIFICATE_VALIDITY_DAYS,
} from './_acme-options.js';

type AcmeModule = typeof import('acme-client');
type AcmeClient = InstanceType<AcmeModule['Client']>;

/** Longest delay a Node timer takes (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
const MAX_TIMER_DELAY = 2_147_483_647;

/** Payload of `issued` (first certificate of this process) and `renewed` (a certificate replaced). */
export interface AcmeIssuedEvent {
  /** The new certificate. */
  info: TlsCertificateInfo;
  /** Time from starting the order to having the certificate, ms. */
  durationMs: number;
}

/** Payload of `failed`. */
export interface AcmeFailedEvent {
  /** What went wrong (code `NEXUS_ERR_ACME`). */
  error: AcmeError;
  /** The last problem document the ACME server sent during this attempt, if any (RFC 8555 §6.7). */
  problem: AcmeProblem | undefined;
  /** Consecutive failures so far (1 for the first). */
  attempt: number;
  /** When the next attempt runs. */
  retryAt: Date;
}

/** Payload of `scheduled`. */
export interface AcmeScheduledEvent {
  /** When the next issuance runs. */
  at: Date;
  /** `renewal` (the current certificate ages) or `retry` (after a failure). */
  reason: 'renewal' | 'retry';
}

/** Events of `AcmeCertificateManager`. None is `error`: failures never throw at the emitter. */
export interface AcmeCertificateManagerEvents {
  /** A valid cached certificate is being served (no order was placed). */
  loaded: [info: TlsCertificateInfo];
  /** The first certificate was issued (a temporary certificate was served before). */
  issued: [event: AcmeIssuedEvent];
  /** A certificate was replaced by a newly issued one. */
  renewed: [event: AcmeIssuedEvent];
  /** An issuance failed; another is scheduled. */
  failed: [event: AcmeFailedEvent];
  /** The next issuance was scheduled. */
  scheduled: [event: AcmeScheduledEvent];
}

/** Snapshot returned by `status()`. */
export interface AcmeStatus {
  /** `idle` before `start()`, `temporary` while serving the self-signed stand-in, `valid` with a real one. */
  state: 'idle' | 'temporary' | 'valid' | 'closed';
  /** The certificate being served. */
  certificate: TlsCertificateInfo | undefined;
  /** When the real certificate is due for renewal. */
  renewAt: Date | undefined;
  /** When the next issuance runs, if one is scheduled. */
  nextAttemptAt: Date | undefined;
  /** Consecutive failures. */
  failures: number;
  /** The last failure, cleared by a success. */
  lastError: AcmeError | undefined;
}

/**
 * Obtains and renews the hub's certificate for `hostname` from an ACME CA with the HTTP-01 challenge
 * (RFC 8555 §8.3), and swaps it into a `HubTlsContext`.
 *
 * - `start()` serves a cached certificate if it is valid (no order), else a temporary self-signed one
 *   (logged as a warning) so the hub can listen at once, and orders a certificate in the background.
 * - The node's HTTP relay listener answers `GET /.well-known/acme-challenge/<token>` for `hostname` with
 *   `challengeResponse(hostname, token)` (`answerAcmeChallenge` in `_acme-challenge.ts`, docs/protocol.md §4.2).
 * - Renewal runs once less than `renewBeforeFraction` (1/3) of the lifetime is left; a failure keeps the
 *   current certificate, emits `failed` and retries with exponential backoff (`retryMin` … `retryMax`).
 */
export class AcmeCertificateManager extends EventEmitter<AcmeCertificateManagerEvents> {
  /** The validated options. */
  readonly options: ResolvedAcmeCertificateManagerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #timers: AcmeTimers;
  readonly #cache: AcmeCache;
  readonly #challenges = new Map<string, string>();
  #tlsContext: HubTlsContext | undefined;
  #state: AcmeStatus['state'] = 'idle';
  #starting: Promise<HubTlsContext> | undefined;
  #certificate: TlsCertificateInfo | undefined;
  #inflight: Promise<TlsCertificateInfo> | undefined;
  #client: AcmeClient | undefined;
  #lastProblem: AcmeProblem | undefined;
  #failures = 0;
  #lastError: AcmeError | undefined;
  #timer: unknown;
  #nextAttemptAt: Date | undefined;
  #ready: {
    promise: Promise<TlsCertificateInfo>;
    resolve(info: TlsCertificateInfo): void;
    reject(e: Error): void;
  };

  /** Throws `InvalidConfigError` for invalid options. Does nothing until `start()`. */
  constructor(options: AcmeCertificateManagerOptions) {
    super();
    this.options = resolveAcmeCertificateManagerOptions(options);
    this.#log = (options.logger ?? noopLogger).child({ component: 'acme', host: this.options.hostname });
    this.#now = options.now ?? (() => Date.now());
    this.#timers = options.timers ?? {
      setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
      clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
    };
    this.#cache = new AcmeCache(this.options.cacheDir);
    this.#tlsContext = options.tlsContext;
    let resolve!: (info: TlsCertificateInfo) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<TlsCertificateInfo>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // ready() is optional to await: a rejection on close() must not become an unhandled rejection.
    promise.catch(() => {});
    this.#ready = { promise, resolve, reject };
  }

  /** The context this manager updates; defined once `start()` has resolved (or when passed in). */
  get tlsContext(): HubTlsContext | undefined {
    return this.#tlsContext;
  }

  /**
   * Serves a valid cached certificate or a temporary self-signed one, and schedules the next issuance
   * (at once when there is no valid certificate). Resolves with the context to serve from; never waits for
   * the CA. Rejects only when the cache directory or `caFile` cannot be used.
   */
  start(): Promise<HubTlsContext> {
    if (this.#state === 'closed') return Promise.reject(new AcmeError('ACME manager is closed'));
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /** Resolves with the first real (cached or issued) certificate; rejects if the manager closes first. */
  ready(): Promise<TlsCertificateInfo> {
    return this.#ready.promise;
  }

  /**
   * The key authorization for an HTTP-01 challenge (RFC 8555 §8.3), or `undefined` when `hostname` is not
   * this node's name or no such challenge is pending. Serve it as `text/plain` with status 200.
   */
  challengeResponse(hostname: string, token: string): string | undefined {
    const name = normalizeHostname(hostname);
    if (name !== this.options.hostname) return undefined;
    return this.#challenges.get(token);
  }

  /**
   * Orders a certificate now, whatever the current one's age (joins an order already running). Resolves
   * with the new certificate; rejects with `AcmeError` (a retry is scheduled as for any failure).
   */
  async renewNow(): Promise<TlsCertificateInfo> {
    await this.start();
    return this.#issue();
  }

  /** A snapshot of the manager's state. */
  status(): AcmeStatus {
    return {
      state: this.#state,
      certificate: this.#tlsContext?.info(),
      renewAt: this.#certificate === undefined ? undefined : this.#renewAt(this.#certificate),
      nextAttemptAt: this.#nextAttemptAt,
      failures: this.#failures,
      lastError: this.#lastError,
    };
  }

  /**
   * Stops timers and forgets pending challenges. An order still running finishes in the background but
   * its result is dropped. The context keeps serving the last certificate.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearTimer();
    this.#challenges.clear();
    this.#ready.reject(new AcmeError('ACME manager closed before a certificate was available'));
  }

  async #start(): Promise<HubTlsContext> {
    try {
      await this.#cache.prepare();
    } catch (cause) {
      throw new AcmeError(`cannot create ACME cache directory ${this.options.cacheDir}`, { cause });
    }
    if (this.options.caFile !== undefined) {
      try {
        await readFile(this.options.caFile, 'utf8');
      } catch (cause) {
        throw new AcmeError(`cannot read ACME CA file ${this.options.caFile}`, { cause });
      }
    }
    const cached = await this.#loadCached();
    if (cached !== undefined) {
      const info = this.#serve(cached);
      this.#state = 'valid';
      this.#certificate = info;
      this.#log.info(
        { serialNumber: info.serialNumber, notAfter: info.notAfter.toISOString() },
        'serving cached ACME certificate',
      );
      this.emit('loaded', info);
      this.#ready.resolve(info);
      this.#schedule(this.#renewAt(info), 'renewal');
    } else {
      const temporary = await createSelfSignedCertificate({
        dnsNames: [this.options.hostname],
        validityDays: TEMPORARY_CERTIFICATE_VALIDITY_DAYS,
      });
      this.#serve(temporary);
      this.#state = 'temporary';
      this.#log.warn(
        { directoryUrl: this.options.directoryUrl },
        'no ACME certificate yet: serving a TEMPORARY SELF-SIGNED certificate until one is issued',
      );
      this.#runInBackground();
    }
    return this.#tlsContext!;
  }

  /** A cached certificate for this name and directory that is not expired and matches its key. */
  async #loadCached(): Promise<CertificateAndKey | undefined> {
    let cached: Awaited<ReturnType<AcmeCache['readCertificate']>>;
    try {
      cached = await this.#cache.readCertificate(this.options.hostname);
    } catch (error) {
      this.#log.warn({ err: error }, 'cannot read the ACME certificate cache; ordering a new certificate');
      return undefined;
    }
    if (cached === undefined) return undefined;
    if (
      cached.meta.directoryUrl !== this.options.directoryUrl ||
      cached.meta.hostname !== this.options.hostname
    ) {
      this.#log.info(
        { cachedDirectoryUrl: cached.meta.directoryUrl },
        'cached certificate is for another CA',
      );
      return undefined;
    }
    try {
      const info = certificateInfo(cached.material.certPem);
      tls.createSecureContext({ cert: cached.material.certPem, key: cached.material.keyPem });
      if (info.notAfter.getTime() <= this.#now()) {
        this.#log.info({ notAfter: info.notAfter.toISOString() }, 'cached certificate has expired');
        return undefined;
      }
      if (!info.subjectAltNames.includes(`DNS:${this.options.hostname}`)) return undefined;
    } catch (error) {
      this.#log.warn({ err: error }, 'cached certificate is unusable; ordering a new certificate');
      return undefined;
    }
    return cached.material;
  }

  #serve(material: CertificateAndKey): TlsCertificateInfo {
    if (this.#tlsContext === undefined) {
      this.#tlsContext = new HubTlsContext(material, { logger: this.#log });
      return this.#tlsContext.info();
    }
    return this.#tlsContext.update(material);
  }

  #renewAt(info: TlsCertificateInfo): Date {
    const notBefore = info.notBefore.getTime();
    const notAfter = info.notAfter.getTime();
    return new Date(notAfter - (notAfter - notBefore) * this.options.renewBeforeFraction);
  }

  #runInBackground(): void {
    // Failures are reported through `failed` and rescheduled inside #issue.
    this.#issue().catch(() => {});
  }

  #schedule(at: Date, reason: AcmeScheduledEvent['reason']): void {
    this.#clearTimer();
    this.#nextAttemptAt = at;
    this.#log.info({ at: at.toISOString(), reason }, 'next ACME issuance scheduled');
    this.emit('scheduled', { at, reason });
    this.#arm(at);
  }

  #arm(at: Date): void {
    const delay = Math.max(0, at.getTime() - this.#now());
    // A renewal is often months away, beyond what one timer can wait: wait in steps.
    this.#timer = this.#timers.setTimeout(
      () => {
        this.#timer = undefined;
        if (this.#state === 'closed') return;
        if (at.getTime() > this.#now()) this.#arm(at);
        else this.#runInBackground();
      },
      Math.min(delay, MAX_TIMER_DELAY),
    );
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextAttemptAt = undefined;
  }

  #issue(): Promise<TlsCertificateInfo> {
    if (this.#state === 'closed') return Promise.reject(new AcmeError('ACME manager is closed'));
    if (this.#inflight !== undefined) return this.#inflight;
    this.#clearTimer();
    const started = this.#now();
    const inflight = this.#order().then(
      (material) => this.#onIssued(material, this.#now() - started),
      (error: unknown) => this.#onFailed(error),
    );
    this.#inflight = inflight.finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #order(): Promise<CertificateAndKey> {
    this.#lastProblem = undefined;
    const acme = await import('acme-client');
    const client = await this.#getClient(acme);
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    const [, csr] = await acme.crypto.createCsr(
      { commonName: this.options.hostname, altNames: [this.options.hostname] },
      key,
    );
    this.#log.info({ directoryUrl: this.options.directoryUrl }, 'ordering ACME certificate');
    const certPem = await client.auto({
      csr,
      ...(this.options.email === undefined ? {} : { email: this.options.email }),
      // Configuring an ACME directory is the operator's agreement to that CA's terms (documented).
      termsOfServiceAgreed: true,
      skipChallengeVerification: this.options.skipChallengeVerification,
      challengePriority: ['http-01'],
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
        if (challenge.type !== 'http-01') throw new AcmeError(`unsupported challenge type ${challenge.type}`);
        this.#challenges.set(challenge.token, keyAuthorization);
      },
      challengeRemoveFn: async (_authz, challenge) => {
        this.#challenges.delete(challenge.token);
      },
    });
    return { certPem: certPem.endsWith('\n') ? certPem : `${certPem}\n`, keyPem: key.toString('utf8') };
  }

  async #getClient(acme: AcmeModule): Promise<AcmeClient> {
    if (this.#client !== undefined) return this.#client;
    let accountKey = await this.#cache.readAccountKey();
    if (accountKey === undefined) {
      accountKey = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString('utf8');
      await this.#cache.writeAccountKey(accountKey);
      this.#log.info('created ACME account key');
    }
    const client = new acme.Client({
      directoryUrl: this.options.directoryUrl,
      accountKey,
      backoffMin: this.options.backoffMin,
      backoffMax: this.options.backoffMax,
      backoffAttempts: this.options.backoffAttempts,
    });
    const extraCa = [...this.options.ca];
    if (this.options.caFile !== undefined) extraCa.push(await readFile(this.options.caFile, 'utf8'));
    routeClientRequests(acme, client, {
      // Additive: the public roots stay trusted next to the extra CA.
      ...(extraCa.length === 0
        ? {}
        : { httpsAgent: new https.Agent({ ca: [...tls.rootCertificates, ...extraCa] }) }),
      timeout: this.options.requestTimeout,
      onProblem: (problem) => {
        this.#lastProblem = problem;
      },
    });
    this.#client = client;
    return client;
  }

  async #onIssued(material: CertificateAndKey, durationMs: number): Promise<TlsCertificateInfo> {
    if (this.#state === 'closed') throw new AcmeError('ACME manager closed while ordering');
    const info = this.#serve(material);
    const first = this.#state === 'temporary';
    this.#state = 'valid';
    this.#certificate = info;
    this.#failures = 0;
    this.#lastError = undefined;
    try {
      await this.#cache.writeCertificate(this.options.hostname, material, this.options.directoryUrl);
    } catch (error) {
      this.#log.error({ err: error }, 'cannot write the ACME certificate cache; the next start orders again');
    }
    this.#log.info(
      { serialNumber: info.serialNumber, notAfter: info.notAfter.toISOString(), durationMs },
      first ? 'ACME certificate issued' : 'ACME certificate renewed',
    );
    this.emit(first ? 'issued' : 'renewed', { info, durationMs });
    this.#ready.resolve(info);
    if (this.#state === 'valid') this.#schedule(this.#renewAt(info), 'renewal');
    return info;
  }

  #onFailed(cause: unknown): never {
    const problem = this.#lastProblem;
    const error = AcmeError.is(cause) && problem === undefined ? cause : this.#toAcmeError(cause, problem);
    // A fresh client next time: its account URL, nonce or directory may be what went wrong.
    this.#client = undefined;
    if (this.#state === 'closed') throw error;
    this.#failures += 1;
    this.#lastError = error;
    const delay = Math.min(this.options.retryMax, this.options.retryMin * 2 ** (this.#failures - 1));
    const retryAt = new Date(this.#now() + delay);
    this.#log.error(
      { err: error, problem, attempt: this.#failures, retryAt: retryAt.toISOString() },
      'ACME certificate issuance failed',
    );
    this.emit('failed', { error, problem, attempt: this.#failures, retryAt });
    this.#schedule(retryAt, 'retry');
    throw error;
  }

  #toAcmeError(cause: unknown, problem: AcmeProblem | undefined): AcmeError {
    const message = cause instanceof Error ? cause.message : String(cause);
    const detail =
      problem?.detail !== undefined && !message.includes(problem.detail) ? ` (${problem.detail})` : '';
    const type = problem?.type === undefined ? '' : ` [${problem.type}]`;
    return new AcmeError(
      `ACME issuance for ${this.options.hostname} via ${this.options.directoryUrl} failed: ${message}${detail}${type}`,
      { cause },
    );
  }
}
