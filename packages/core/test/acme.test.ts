import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AcmeCache } from '../src/_acme-cache.js';
import {
  AcmeCertificateManager,
  type AcmeCertificateManagerOptions,
  type AcmeFailedEvent,
  type AcmeScheduledEvent,
  LETSENCRYPT_DIRECTORY_URL,
  LETSENCRYPT_STAGING_DIRECTORY_URL,
  resolveAcmeCertificateManagerOptions,
  resolveAcmeDirectoryUrl,
} from '../src/acme.js';
import { createCertificateAuthority, issueCertificate } from '../src/certificates.js';
import { AcmeError, InvalidConfigError } from '../src/errors.js';
import type { Logger } from '../src/logger.js';
import { freePort } from './helpers/pebble.js';

const DAY = 86_400_000;
const HOSTNAME = 'hub.nexus.test';

let dir: string;
/** An https directory URL on a loopback port nobody listens on: every request is refused. */
let refusedUrl: string;
const managers: AcmeCertificateManager[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acme-unit-'));
  refusedUrl = `https://127.0.0.1:${await freePort()}/dir`;
});

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(managers.splice(0).map((manager) => manager.close()));
  await rm(dir, { recursive: true, force: true });
});

function createManager(overrides: Partial<AcmeCertificateManagerOptions> = {}): AcmeCertificateManager {
  const manager = new AcmeCertificateManager({
    hostname: HOSTNAME,
    directoryUrl: refusedUrl,
    cacheDir: dir,
    skipChallengeVerification: true,
    retryMin: 1_000,
    retryMax: 4_000,
    ...overrides,
  });
  managers.push(manager);
  return manager;
}

/** Writes a certificate for HOSTNAME into the cache as if a previous run had obtained it from `directoryUrl`. */
async function writeCached(
  notBefore: Date,
  validityDays: number,
  directoryUrl = refusedUrl,
): Promise<string> {
  const ca = await createCertificateAuthority({ commonName: 'Cached Test CA' });
  const cert = await issueCertificate(ca, { dnsNames: [HOSTNAME], notBefore, validityDays });
  await new AcmeCache(dir).prepare();
  await new AcmeCache(dir).writeCertificate(HOSTNAME, cert, directoryUrl);
  return new (await import('node:crypto')).X509Certificate(cert.certPem).serialNumber;
}

function recordingLogger(): Logger & { lines: { level: string; msg: string | undefined }[] } {
  const lines: { level: string; msg: string | undefined }[] = [];
  const log =
    (level: string) =>
    (objOrMsg: unknown, msg?: unknown): void => {
      lines.push({ level, msg: typeof objOrMsg === 'string' ? objOrMsg : (msg as string | undefined) });
    };
  const logger: Logger & { lines: typeof lines } = {
    lines,
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: () => logger,
  };
  return logger;
}

describe('resolveAcmeDirectoryUrl', () => {
  it('defaults to Let’s Encrypt production and resolves shortcuts', () => {
    expect(resolveAcmeDirectoryUrl(undefined)).toBe(LETSENCRYPT_DIRECTORY_URL);
    expect(resolveAcmeDirectoryUrl('letsencrypt')).toBe(LETSENCRYPT_DIRECTORY_URL);
    expect(resolveAcmeDirectoryUrl('letsencrypt-staging')).toBe(LETSENCRYPT_STAGING_DIRECTORY_URL);
    expect(resolveAcmeDirectoryUrl('https://ca.example.com/acme/dir')).toBe(
      'https://ca.example.com/acme/dir',
    );
  });

  it('refuses plain http and non-URLs (RFC 8555 §6.1)', () => {
    expect(() => resolveAcmeDirectoryUrl('http://ca.example.com/dir')).toThrow(InvalidConfigError);
    expect(() => resolveAcmeDirectoryUrl('staging')).toThrow(/directoryUrl must be an https URL/);
  });
});

describe('resolveAcmeCertificateManagerOptions', () => {
  it('applies the documented defaults', () => {
    expect(resolveAcmeCertificateManagerOptions({ hostname: 'Hub.Example.COM' })).toEqual({
      hostname: 'hub.example.com',
      directoryUrl: LETSENCRYPT_DIRECTORY_URL,
      email: undefined,
      caFile: undefined,
      ca: [],
      cacheDir: 'acme_certs',
      skipChallengeVerification: false,
      backoffMin: 5_000,
      backoffMax: 30_000,
      backoffAttempts: 10,
      renewBeforeFraction: 1 / 3,
      retryMin: 300_000,
      retryMax: 3_600_000,
      requestTimeout: 30_000,
    });
  });

  it.each([
    [{ hostname: '192.0.2.1' }, 'hostname'],
    [{ hostname: '*.example.com' }, 'hostname'],
    [{ hostname: 'localhost' }, 'hostname'],
    [{ hostname: 'a.example.com', renewBeforeFraction: 1 }, 'renewBeforeFraction'],
    [{ hostname: 'a.example.com', retryMin: 0 }, 'retryMin'],
    [{ hostname: 'a.example.com', retryMin: 10, retryMax: 5 }, 'retryMax'],
    [{ hostname: 'a.example.com', email: 'not-an-address' }, 'email'],
  ] as [AcmeCertificateManagerOptions, string][])('rejects %o at %s', (options, path) => {
    const error = (() => {
      try {
        resolveAcmeCertificateManagerOptions(options);
      } catch (e) {
        return e;
      }
    })();
    expect(InvalidConfigError.is(error)).toBe(true);
    expect((error as InvalidConfigError).path).toBe(path);
  });
});

describe('AcmeCertificateManager', () => {
  it('serves a clearly logged temporary self-signed certificate until the first issuance', async () => {
    const logger = recordingLogger();
    const manager = createManager({ logger });
    const failed = once(manager, 'failed');
    const context = await manager.start();
    const info = context.info();
    expect(manager.status().state).toBe('temporary');
    expect(info.issuer).toBe(info.subject);
    expect(info.subjectAltNames).toEqual([`DNS:${HOSTNAME}`]);
    expect(logger.lines).toContainEqual({
      level: 'warn',
      msg: expect.stringMatching(/TEMPORARY SELF-SIGNED/),
    });
    await failed;
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'account-key.pem'))).mode & 0o777).toBe(0o600);
  });

  it('reports an unreachable ACME server, retries with exponential backoff and keeps running', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const manager = createManager();
    const scheduled: AcmeScheduledEvent[] = [];
    manager.on('scheduled', (event) => scheduled.push(event));
    let failed = once(manager, 'failed') as Promise<[AcmeFailedEvent]>;
    const context = await manager.start();

    const delays: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt += 1) {
      const [event] = await failed;
      expect(event.attempt).toBe(attempt);
      expect(event.error).toBeInstanceOf(AcmeError);
      expect(event.error.message).toContain(refusedUrl);
      expect(event.error.message).toContain('ECONNREFUSED');
      const delay = event.retryAt.getTime() - Date.now();
      delays.push(delay);
      expect(manager.status().nextAttemptAt).toEqual(event.retryAt);
      // Nothing happens one millisecond early…
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(manager.status().nextAttemptAt).toEqual(event.retryAt);
      // …and the next attempt starts on time.
      failed = once(manager, 'failed') as Promise<[AcmeFailedEvent]>;
      await vi.advanceTimersByTimeAsync(1);
      expect(manager.status().nextAttemptAt).toBeUndefined();
    }
    await failed;
    expect(delays).toEqual([1_000, 2_000, 4_000, 4_000]);
    expect(scheduled.map((event) => event.reason)).toEqual(['retry', 'retry', 'retry', 'retry', 'retry']);
    expect(manager.status()).toMatchObject({ state: 'temporary', failures: 5 });
    expect(context.info().subjectAltNames).toEqual([`DNS:${HOSTNAME}`]);
  });

  it('loads a valid cached certificate and schedules its renewal when 1/3 of its lifetime is left', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    // Certificates carry whole seconds.
    const notBefore = new Date(Math.floor((Date.now() - 10 * DAY) / 1000) * 1000);
    const serial = await writeCached(notBefore, 90);
    const manager = createManager();
    const loaded = vi.fn();
    const scheduled: AcmeScheduledEvent[] = [];
    const failures: AcmeFailedEvent[] = [];
    manager.on('loaded', loaded);
    manager.on('scheduled', (event) => scheduled.push(event));
    manager.on('failed', (event) => failures.push(event));

    const context = await manager.start();
    await expect(manager.ready()).resolves.toMatchObject({ serialNumber: serial });
    expect(context.info().serialNumber).toBe(serial);
    expect(loaded).toHaveBeenCalledTimes(1);
    const renewAt = new Date(notBefore.getTime() + 60 * DAY);
    expect(scheduled).toEqual([{ at: renewAt, reason: 'renewal' }]);
    expect(manager.status()).toMatchObject({ state: 'valid', renewAt, nextAttemptAt: renewAt });

    // 50 days is longer than one Node timer can wait (~24.8 days): it must neither fire early…
    await vi.advanceTimersByTimeAsync(renewAt.getTime() - Date.now() - 1_000);
    expect(manager.status().nextAttemptAt).toEqual(renewAt);
    expect(failures).toEqual([]);
    // …nor late.
    const failed = once(manager, 'failed');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(manager.status().nextAttemptAt).toBeUndefined();
    await failed;
    // A failed renewal keeps the cached certificate in service.
    expect(manager.status()).toMatchObject({ state: 'valid', failures: 1 });
    expect(context.info().serialNumber).toBe(serial);
  });

  it('renews at once when the cached certificate is already past its renewal time', async () => {
    await writeCached(new Date(Date.now() - 70 * DAY), 90);
    const manager = createManager();
    const scheduled = once(manager, 'scheduled') as Promise<[AcmeScheduledEvent]>;
    const failed = once(manager, 'failed');
    await manager.start();
    const [event] = await scheduled;
    expect(event.at.getTime()).toBeLessThan(Date.now());
    await failed;
  });

  it('ignores an expired cached certificate and one from another directory', async () => {
    await writeCached(new Date(Date.now() - 100 * DAY), 90);
    const expired = createManager();
    expect((await expired.start()).info().issuer).toBe(`CN=${HOSTNAME}`);
    expect(expired.status().state).toBe('temporary');
    await expired.close();

    await writeCached(new Date(Date.now() - DAY), 90, LETSENCRYPT_STAGING_DIRECTORY_URL);
    const otherCa = createManager();
    await otherCa.start();
    expect(otherCa.status().state).toBe('temporary');
  });

  it('stops retrying after close() and rejects ready()', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const manager = createManager();
    const failed = vi.fn();
    manager.on('failed', failed);
    const first = once(manager, 'failed');
    await manager.start();
    await first;
    await manager.close();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(failed).toHaveBeenCalledTimes(1);
    expect(manager.status()).toMatchObject({ state: 'closed', nextAttemptAt: undefined });
    await expect(manager.ready()).rejects.toBeInstanceOf(AcmeError);
    await expect(manager.renewNow()).rejects.toBeInstanceOf(AcmeError);
  });

  it('renewNow() rejects with the failure and schedules a retry', async () => {
    await writeCached(new Date(Date.now() - DAY), 90);
    const manager = createManager();
    await manager.start();
    const error = await manager.renewNow().catch((e: unknown) => e);
    expect(AcmeError.is(error)).toBe(true);
    expect(manager.status().nextAttemptAt).toBeInstanceOf(Date);
  });

  it('answers challenges only for its own hostname and known tokens', async () => {
    const manager = createManager();
    expect(manager.challengeResponse(HOSTNAME, 'unknown-token')).toBeUndefined();
    expect(manager.challengeResponse('other.nexus.test', 'unknown-token')).toBeUndefined();
    expect(manager.challengeResponse('not a host', 'x')).toBeUndefined();
  });

  it('fails start() with AcmeError when caFile cannot be read', async () => {
    const manager = createManager({ caFile: join(dir, 'missing-ca.pem') });
    await expect(manager.start()).rejects.toMatchObject({ code: 'NEXUS_ERR_ACME' });
  });
});
