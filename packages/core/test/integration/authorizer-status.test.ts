/**
 * The authorizer status check (docs/protocol.md §1.10) against a real local HTTPS server that requires
 * the hub's certificate as its TLS client certificate (mutual TLS with a test CA): the certificate in force
 * at each check is presented, a check without one (or with a stranger's) is unhealthy, and the hub's
 * default check presents the certificate it serves before a re-authentication round.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { TEST_SECRET } from '@nexus-proxy/test-harness';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLocalTokenVerifier } from '../../src/auth.js';
import { checkAuthorizerStatus, createAuthorizerStatusCheck } from '../../src/authorizer-status.js';
import type { BackendSession } from '../../src/backend-session.js';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
} from '../../src/certificates.js';
import { BackendHub } from '../../src/hub.js';
import { HubTlsContext } from '../../src/hub-tls.js';
import { RoutingTable } from '../../src/routing-table.js';
import { connectCurrentEraBackend } from '../helpers/current-era-backend.js';

vi.setConfig({ testTimeout: 20_000 });

let ca: CertificateAndKey;
let hubCert: CertificateAndKey;
let renewedHubCert: CertificateAndKey;
let strangerCert: CertificateAndKey;
let server: https.Server;
let statusUri: string;
/** SHA-256 fingerprints of the client certificates presented, one per request answered. */
const presented: string[] = [];

const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256;

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'Authorizer Status Test CA' });
  const otherCa = await createCertificateAuthority({ commonName: 'Some Other CA' });
  const serverCert = await issueCertificate(ca, {
    dnsNames: ['authorizer.test'],
    ipAddresses: ['127.0.0.1'],
  });
  const hubOptions = {
    dnsNames: ['hub.test'],
    ipAddresses: ['127.0.0.1'],
    serverAuth: true,
    clientAuth: true,
  };
  hubCert = await issueCertificate(ca, hubOptions);
  renewedHubCert = await issueCertificate(ca, hubOptions);
  strangerCert = await issueCertificate(otherCa, hubOptions);
  server = https.createServer(
    {
      cert: serverCert.certPem,
      key: serverCert.keyPem,
      ca: [ca.certPem],
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      presented.push((req.socket as TLSSocket).getPeerCertificate().fingerprint256);
      res.writeHead(req.url === '/status' ? 200 : 503).end();
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  statusUri = `https://127.0.0.1:${(server.address() as AddressInfo).port}/status`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  presented.length = 0;
});

describe('authorizer status check: the hub certificate as the TLS client certificate', () => {
  it('presents the certificate in force at each check: healthy on 200, a renewed certificate at the next check', async () => {
    let current: CertificateAndKey = hubCert;
    const check = createAuthorizerStatusCheck({ ca: ca.certPem, clientCertificate: () => current });
    expect(await check(statusUri)).toBe(true);
    current = renewedHubCert;
    expect(await check(statusUri)).toBe(true);
    expect(await check(statusUri.replace('/status', '/other'))).toBe(false);
    expect(presented).toEqual([
      fingerprint(hubCert.certPem),
      fingerprint(renewedHubCert.certPem),
      fingerprint(renewedHubCert.certPem),
    ]);
  });

  it('is unhealthy when the server refuses the connection: no client certificate, or one from another CA', async () => {
    expect(await checkAuthorizerStatus(statusUri, { ca: ca.certPem })).toBe(false);
    expect(
      await checkAuthorizerStatus(statusUri, { ca: ca.certPem, clientCertificate: () => undefined }),
    ).toBe(false);
    expect(
      await checkAuthorizerStatus(statusUri, { ca: ca.certPem, clientCertificate: () => strangerCert }),
    ).toBe(false);
    // The server's own certificate is not trusted without the test CA, whatever the client presents.
    expect(await checkAuthorizerStatus(statusUri, { clientCertificate: () => hubCert })).toBe(false);
    expect(presented).toEqual([]);
  });

  it("the hub's default check presents the certificate it serves before a re-authentication round", async () => {
    const tls = new HubTlsContext(hubCert);
    const hub = new BackendHub({
      tls,
      verifyToken: createLocalTokenVerifier({ secrets: [TEST_SECRET] }),
      routes: new RoutingTable<BackendSession>(),
      reauth: { authorizerStatusCa: [ca.certPem] },
    });
    const { port } = await hub.listen('127.0.0.1');
    cleanups.push(() => hub.close());
    const registered = once(hub, 'backend-connected');
    const backend = await connectCurrentEraBackend({
      hubPort: port,
      ca: ca.certPem,
      secret: TEST_SECRET,
      claims: { hostnames: ['status.test'], reauth_interval_seconds: 1, authorizer_status_uri: statusUri },
    });
    cleanups.push(() => backend.close());
    await registered;
    // Healthy (200 with the hub certificate): the round is not deferred, so it comes within 1.2 s + margin.
    await vi.waitFor(() => expect(backend.reauthAnswers).toBeGreaterThanOrEqual(1), {
      timeout: 4_000,
      interval: 20,
    });
    expect(presented[0]).toBe(fingerprint(hubCert.certPem));
    // The served certificate is renewed: the next round's check presents the new one.
    tls.update(renewedHubCert);
    const before = presented.length;
    await vi.waitFor(() => expect(presented.length).toBeGreaterThan(before), {
      timeout: 4_000,
      interval: 20,
    });
    expect(presented.at(-1)).toBe(fingerprint(renewedHubCert.certPem));
    expect(hub.sessions).toHaveLength(1);
  });
});
