import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { type BackendClient, createBackendClient } from '@nexus-proxy/backend-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mintBackendToken } from '../../src/auth.js';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
} from '../../src/certificates.js';
import type { NexusConfigInput } from '../../src/config.js';
import { InvalidConfigError, TlsError } from '../../src/errors.js';
import type { AuthFailedEvent } from '../../src/hub.js';
import { createNexus, type Nexus, type SniffFailedEvent } from '../../src/nexus.js';

const SECRET_A = 'reload-secret-a-0123456789-0123456789-01';
const SECRET_B = 'reload-secret-b-0123456789-0123456789-02';

let ca: CertificateAndKey;
let hubCert: CertificateAndKey;
beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'Reload Test CA' });
  hubCert = await issueCertificate(ca, { dnsNames: ['hub.test'], ipAddresses: ['127.0.0.1'] });
});

describe('Nexus.reload', () => {
  let dir: string;
  let nexus: Nexus | undefined;
  const clients: BackendClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await nexus?.close({ graceMs: 0 });
    nexus = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const config = (extra: Partial<NexusConfigInput> = {}): NexusConfigInput => ({
    backendListenAddress: '127.0.0.1:0',
    listeners: [{ port: 0, mode: 'http', host: '127.0.0.1' }],
    backendsJWTSecrets: [SECRET_A],
    hubTlsCertFile: join(dir, 'hub.crt'),
    hubTlsKeyFile: join(dir, 'hub.key'),
    ...extra,
  });

  const start = async (extra: Partial<NexusConfigInput> = {}) => {
    dir = mkdtempSync(join(tmpdir(), 'nexus-reload-'));
    writeFileSync(join(dir, 'hub.crt'), hubCert.certPem);
    writeFileSync(join(dir, 'hub.key'), hubCert.keyPem);
    nexus = createNexus(config(extra));
    const addresses = await nexus.listen();
    return { n: nexus, hubPort: addresses.hub.port, httpPort: addresses.listeners[0]!.address.port };
  };

  const attach = async (
    n: Nexus,
    hubPort: number,
    secret: string,
    hostname: string,
  ): Promise<'ok' | string> => {
    const outcome = new Promise<'ok' | string>((resolve) => {
      const onOk = (e: { hostnames: readonly string[] }) => {
        if (!e.hostnames.includes(hostname)) return;
        n.off('auth-failed', onFail);
        n.off('backend-connected', onOk);
        resolve('ok');
      };
      const onFail = (e: AuthFailedEvent) => {
        n.off('auth-failed', onFail);
        n.off('backend-connected', onOk);
        resolve(e.reason);
      };
      n.on('backend-connected', onOk);
      n.on('auth-failed', onFail);
    });
    const client = createBackendClient({
      nodes: [`wss://127.0.0.1:${hubPort}/connect`],
      token: await mintBackendToken({ secret, hostnames: [hostname] }),
      tls: { ca: ca.certPem },
      reconnect: { initialDelayMs: 5_000, maxDelayMs: 5_000, jitter: 0 },
      connectHandler: () => undefined,
    });
    clients.push(client);
    client.connect();
    return outcome;
  };

  const servedSerial = (port: number) =>
    new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'hub.test' }, () => {
        resolve(s.getPeerX509Certificate()?.serialNumber ?? '');
        s.destroy();
      });
      s.on('error', reject);
    });

  it('rotates backend secrets without dropping sessions', async () => {
    const { n, hubPort } = await start();
    expect(await attach(n, hubPort, SECRET_A, 'a.test')).toBe('ok');
    expect(await attach(n, hubPort, SECRET_B, 'b1.test')).toBe('invalid token signature');

    expect(await n.reload(config({ backendsJWTSecrets: [SECRET_B, SECRET_A] }))).toEqual({
      applied: ['backendsJWTSecrets'],
      restartRequired: [],
    });
    expect(await attach(n, hubPort, SECRET_B, 'b2.test')).toBe('ok');

    await n.reload(config({ backendsJWTSecrets: [SECRET_B] }));
    expect(await attach(n, hubPort, SECRET_A, 'a2.test')).toBe('invalid token signature');
    expect(n.hub.sessions.flatMap((s) => s.hostnames).sort()).toEqual(['a.test', 'b2.test']);
    expect(n.config.backendsJWTSecrets).toEqual([SECRET_B]);
  });

  it('applies live limits to new connections and reports the rest as restart-only', async () => {
    const { n, httpPort } = await start();
    const result = await n.reload(
      config({
        limits: {
          sniffFirstByteTimeoutMs: 100,
          maxSessions: 3,
          maxStreamsPerSession: 2,
          maxPendingConnects: 5,
          maxBufferedUploadBytes: 1_048_576,
        },
        keepalive: { hubPingIntervalMs: 5_000, hubDeadAfterMs: 9_000, peerPingIntervalMs: 1_000 },
        idleTimeoutSeconds: 30,
        auth: { requireExp: true },
        backendListenAddress: '127.0.0.1:9', // a bound address: restart-only
      }),
    );
    expect(result.applied.sort()).toEqual([
      'auth',
      'idleTimeoutSeconds',
      'keepalive.hubDeadAfterMs',
      'keepalive.hubPingIntervalMs',
      'keepalive.peerPingIntervalMs',
      'limits.maxBufferedUploadBytes',
      'limits.maxPendingConnects',
      'limits.maxSessions',
      'limits.maxStreamsPerSession',
      'limits.sniffFirstByteTimeoutMs',
    ]);
    expect(result.restartRequired.sort()).toEqual(['backendListenAddress']);
    expect(n.bufferedUploads).toEqual({ bytes: 0, max: 1_048_576 });
    // The new first-byte deadline (100 ms instead of 15 s) holds for the next end user.
    const failed = new Promise<SniffFailedEvent>((r) => n.once('sniff-failed', r));
    const silent = netConnect({ host: '127.0.0.1', port: httpPort });
    silent.on('error', () => {});
    const started = Date.now();
    expect((await failed).reason).toBe('sniff-timeout');
    expect(Date.now() - started).toBeLessThan(2_000);
    silent.destroy();
  });

  it('reports listener and TLS-mode changes, and a mesh on a node started without one, as restart-only', async () => {
    const { n } = await start();
    const result = await n.reload(
      config({
        listeners: [{ port: 0, mode: 'tls', host: '127.0.0.1' }],
        peers: ['wss://peer.test:8444/mesh'],
        peerAuthentication: { trustedDomainSuffixes: ['mesh.test'] },
        hubTlsCertFile: undefined,
        hubTlsKeyFile: undefined,
        hubPublicHostname: 'hub.example.com',
      }),
    );
    expect(result.applied).toEqual([]);
    expect(result.restartRequired.sort()).toEqual([
      'listeners',
      'peerAuthentication.trustedDomainSuffixes',
      'peerListenAddress',
      'peers',
      'tls',
    ]);
  });

  it('serves re-read certificate files to new handshakes; existing sessions stay', async () => {
    const { n, hubPort } = await start();
    expect(await attach(n, hubPort, SECRET_A, 'a.test')).toBe('ok');
    expect(await servedSerial(hubPort)).toBe(new X509Certificate(hubCert.certPem).serialNumber);
    const next = await issueCertificate(ca, { dnsNames: ['hub.test'], ipAddresses: ['127.0.0.1'] });
    writeFileSync(join(dir, 'hub.crt'), next.certPem);
    writeFileSync(join(dir, 'hub.key'), next.keyPem);
    expect((await n.reload(config())).applied).toEqual(['tls']);
    expect(await servedSerial(hubPort)).toBe(new X509Certificate(next.certPem).serialNumber);
    expect(n.certificateInfo()?.serialNumber).toBe(new X509Certificate(next.certPem).serialNumber);
    expect(n.hub.sessions).toHaveLength(1);
  });

  it('changes nothing when the configuration or the certificate files are invalid', async () => {
    const { n, hubPort } = await start();
    const serial = await servedSerial(hubPort);
    await expect(n.reload({ ...config(), limits: { maxSessions: -1 } })).rejects.toBeInstanceOf(
      InvalidConfigError,
    );
    // A key that does not match the certificate: the secret change in the same file is not applied either.
    const other = await issueCertificate(ca, { dnsNames: ['hub.test'] });
    writeFileSync(join(dir, 'hub.key'), other.keyPem);
    await expect(n.reload(config({ backendsJWTSecrets: [SECRET_B] }))).rejects.toBeInstanceOf(TlsError);
    // A file that cannot be read: the error names the key and the file.
    await expect(n.reload(config({ hubTlsCertFile: join(dir, 'missing.crt') }))).rejects.toThrow(
      expect.objectContaining({
        code: 'NEXUS_ERR_INVALID_CONFIG',
        path: 'hubTlsCertFile',
        message: `hubTlsCertFile cannot read ${join(dir, 'missing.crt')} (no such file): fix the path or create the file`,
      }),
    );
    expect(await servedSerial(hubPort)).toBe(serial);
    expect(n.config.backendsJWTSecrets).toEqual([SECRET_A]);
    expect(await attach(n, hubPort, SECRET_A, 'a.test')).toBe('ok');
  });

  it('exposes live values through the handle getters', async () => {
    const { n, hubPort, httpPort } = await start();
    expect(n.tlsContext).toBeDefined();
    expect(n.mesh).toBeUndefined();
    expect(n.activeStreams).toBe(0);
    // A backend whose service never answers holds the stream open.
    const client = createBackendClient({
      nodes: [`wss://127.0.0.1:${hubPort}/connect`],
      token: await mintBackendToken({ secret: SECRET_A, hostnames: ['held.test'] }),
      tls: { ca: ca.certPem },
      connectHandler: () => new PassThrough(),
    });
    clients.push(client);
    const registered = new Promise((r) => n.once('backend-connected', r));
    client.connect();
    await registered;
    const opened = new Promise((r) => n.once('stream-open', r));
    const user = netConnect({ host: '127.0.0.1', port: httpPort });
    user.on('error', () => {});
    user.write('GET / HTTP/1.1\r\nHost: held.test\r\n\r\n');
    await opened;
    expect(n.activeStreams).toBe(1);
    user.destroy();
  });
});
