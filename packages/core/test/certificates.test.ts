import { createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  createSelfSignedCertificate,
  issueCertificate,
} from '../src/certificates.js';
import { TlsError } from '../src/errors.js';

const servers: tls.Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

async function listen(options: tls.TlsOptions): Promise<number> {
  const server = tls.createServer(options, (socket) => socket.end('hello'));
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function connect(
  port: number,
  options: tls.ConnectionOptions,
): Promise<{ peer: tls.PeerCertificate; data: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options }, () => {
      const peer = socket.getPeerCertificate();
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        data += chunk;
      });
      socket.on('end', () => resolve({ peer, data }));
    });
    socket.on('error', reject);
  });
}

describe('createCertificateAuthority', () => {
  it('makes a self-signed CA with a PKCS#8 EC P-256 key', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Test CA', validityDays: 10 });
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=Test CA');
    expect(cert.checkIssued(cert)).toBe(true);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const lifetime = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
    expect(lifetime).toBe(10 * 86_400_000);
  });
});

describe('issueCertificate', () => {
  let ca: CertificateAndKey;
  let leaf: CertificateAndKey;

  beforeAll(async () => {
    ca = await createCertificateAuthority({ commonName: 'Nexus Test CA' });
    leaf = await issueCertificate(ca, {
      dnsNames: ['hub.nexus.test', '*.mesh.nexus.test'],
      ipAddresses: ['127.0.0.1', '::1'],
      clientAuth: true,
      validityDays: 7,
    });
  });

  it('signs a leaf that chains to the CA and carries the SANs', () => {
    const caCert = new X509Certificate(ca.certPem);
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.ca).toBe(false);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.subject).toBe('CN=hub.nexus.test');
    expect(cert.subjectAltName).toBe(
      'DNS:hub.nexus.test, DNS:*.mesh.nexus.test, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(cert.checkPrivateKey(createPrivateKey(leaf.keyPem))).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(false);
  });

  it('serves a real TLS handshake to a client that trusts the CA', async () => {
    const port = await listen({ cert: leaf.certPem, key: leaf.keyPem });
    const { peer, data } = await connect(port, { ca: ca.certPem, servername: 'hub.nexus.test' });
    expect(data).toBe('hello');
    expect(peer.subjectaltname).toContain('DNS:hub.nexus.test');
    expect(peer.subjectaltname).toContain('IP Address:127.0.0.1');
  });

  it('matches a wildcard SAN and an IP SAN during hostname verification', async () => {
    const port = await listen({ cert: leaf.certPem, key: leaf.keyPem });
    await expect(
      connect(port, { ca: ca.certPem, servername: 'node1.mesh.nexus.test' }),
    ).resolves.toMatchObject({
      data: 'hello',
    });
    // No servername: Node checks the IP we dialled against the IP SANs.
    await expect(connect(port, { ca: ca.certPem })).resolves.toMatchObject({ data: 'hello' });
  });

  it('is rejected by a client that does not trust the CA', async () => {
    const other = await createCertificateAuthority({ commonName: 'Other CA' });
    const port = await listen({ cert: leaf.certPem, key: leaf.keyPem });
    await expect(connect(port, { ca: other.certPem, servername: 'hub.nexus.test' })).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
  });

  it('is rejected for a hostname that is not in its SANs', async () => {
    const port = await listen({ cert: leaf.certPem, key: leaf.keyPem });
    await expect(connect(port, { ca: ca.certPem, servername: 'other.nexus.test' })).rejects.toMatchObject({
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
  });

  it('works as a client certificate for mutual TLS', async () => {
    const port = await listen({
      cert: leaf.certPem,
      key: leaf.keyPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: true,
    });
    const client = await issueCertificate(ca, { dnsNames: ['node2.mesh.nexus.test'], clientAuth: true });
    const result = await connect(port, {
      ca: ca.certPem,
      servername: 'hub.nexus.test',
      cert: client.certPem,
      key: client.keyPem,
    });
    expect(result.data).toBe('hello');
  });

  it('adds only serverAuth by default and honours notBefore', async () => {
    const notBefore = new Date('2030-01-01T00:00:00Z');
    const issued = await issueCertificate(ca, { dnsNames: ['a.test'], notBefore, validityDays: 1 });
    const cert = new X509Certificate(issued.certPem);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(new Date(cert.validFrom).toISOString()).toBe('2030-01-01T00:00:00.000Z');
    expect(new Date(cert.validTo).toISOString()).toBe('2030-01-02T00:00:00.000Z');
  });

  it('gives every certificate a fresh key and serial', async () => {
    const a = await issueCertificate(ca, { dnsNames: ['a.test'] });
    const b = await issueCertificate(ca, { dnsNames: ['a.test'] });
    expect(new X509Certificate(a.certPem).serialNumber).not.toBe(new X509Certificate(b.certPem).serialNumber);
    expect(a.keyPem).not.toBe(b.keyPem);
  });

  it('throws NEXUS_ERR_TLS without any name', async () => {
    const error = await issueCertificate(ca, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TlsError);
    expect((error as TlsError).code).toBe('NEXUS_ERR_TLS');
  });

  it('throws NEXUS_ERR_TLS for an invalid IP address', async () => {
    await expect(issueCertificate(ca, { ipAddresses: ['300.1.1.1'] })).rejects.toMatchObject({
      code: 'NEXUS_ERR_TLS',
    });
  });

  it('throws NEXUS_ERR_TLS when the CA key is not a key', async () => {
    await expect(
      issueCertificate({ certPem: ca.certPem, keyPem: 'garbage' }, { dnsNames: ['a.test'] }),
    ).rejects.toMatchObject({ code: 'NEXUS_ERR_TLS' });
  });
});

describe('createSelfSignedCertificate', () => {
  it('makes a leaf that a client accepts only when it trusts that very certificate', async () => {
    const self = await createSelfSignedCertificate({
      dnsNames: ['hub.nexus.test'],
      ipAddresses: ['127.0.0.1'],
    });
    const cert = new X509Certificate(self.certPem);
    expect(cert.ca).toBe(false);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.subjectAltName).toBe('DNS:hub.nexus.test, IP Address:127.0.0.1');
    const port = await listen({ cert: self.certPem, key: self.keyPem });
    await expect(connect(port, { ca: self.certPem, servername: 'hub.nexus.test' })).resolves.toMatchObject({
      data: 'hello',
    });
    await expect(connect(port, { servername: 'hub.nexus.test' })).rejects.toMatchObject({
      code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    });
  });

  it('produces PEM that tls.createSecureContext loads', async () => {
    const self = await createSelfSignedCertificate({ dnsNames: ['x.test'] });
    expect(() => tls.createSecureContext({ cert: self.certPem, key: self.keyPem })).not.toThrow();
  });
});
