/**
 * The direct path of peer certificate validation (a leaf issued by a trusted CA, decided with Node's
 * X509Certificate and asn1js) against the full one (PKI.js's chain engine): for every case both reach the
 * same verdict with the same reason, and the counters say which path decided. Certificates are made with
 * openssl (key types, raw extension lines) and with the in-process helpers (validity periods).
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, issueCertificate } from '../src/certificates.js';
import { PeerMesh } from '../src/mesh.js';
import { PeerAuthenticator } from '../src/peer-auth.js';
import { type ChainResult, certificateDnsNames, checkCertificateChain } from '../src/peer-chain.js';
import { createOpensslPki, type OpensslCert, type OpensslPki } from './helpers/openssl-pki.js';

const x509 = (c: { certPem: string }) => new X509Certificate(c.certPem);

let ossl: OpensslPki;
let root: OpensslCert;
beforeAll(() => {
  ossl = createOpensslPki();
  root = ossl.root('Mesh Direct CA');
});
afterAll(() => ossl.remove());

/** A leaf from `issuer` with the given extension lines (default: a serverAuth-only TLS leaf). */
function leaf(issuer: OpensslCert, lines?: string[], key?: 'ec-p256' | 'ec-p384' | 'rsa'): OpensslCert {
  return ossl.issue(issuer, {
    cn: 'a.mesh.test',
    dns: ['a.mesh.test'],
    ips: ['127.0.0.1'],
    ...(lines === undefined ? {} : { extensions: lines }),
    ...(key === undefined ? {} : { key }),
  });
}

const TLS_LEAF = [
  'basicConstraints=critical,CA:false',
  'keyUsage=critical,digitalSignature',
  'subjectAltName=DNS:a.mesh.test,IP:127.0.0.1',
];

/** Runs both paths; returns the direct path's result, and which path decided it. */
async function both(
  cert: X509Certificate,
  chain: X509Certificate[],
  anchors: X509Certificate[],
  now?: Date,
): Promise<{ result: ChainResult; path: 'direct' | 'full' | 'neither' }> {
  const { result, path } = await checkCertificateChain(cert, chain, anchors, now);
  const full = await checkCertificateChain(cert, chain, anchors, now, { direct: false });
  expect(result).toEqual(full.result);
  // Forced to the full validation, a certificate never takes the direct path.
  expect(full.path).not.toBe('direct');
  return { result, path: path ?? 'neither' };
}

/** The certificate with one bit of its signature flipped (still valid DER). */
function badSignature(cert: X509Certificate): X509Certificate {
  const der = Buffer.from(cert.raw);
  der.writeUInt8(der.readUInt8(der.length - 1) ^ 0x01, der.length - 1);
  return new X509Certificate(der);
}

describe('direct path: accepted as the full validation accepts', () => {
  it.each([
    ['serverAuth only (as ACME issues)', [...TLS_LEAF, 'extendedKeyUsage=serverAuth']],
    ['clientAuth only', [...TLS_LEAF, 'extendedKeyUsage=clientAuth']],
    ['serverAuth and clientAuth', [...TLS_LEAF, 'extendedKeyUsage=serverAuth,clientAuth']],
    ['anyExtendedKeyUsage', [...TLS_LEAF, 'extendedKeyUsage=anyExtendedKeyUsage']],
    ['no extended key usage', TLS_LEAF],
    ['certificate policies', [...TLS_LEAF, 'certificatePolicies=2.23.140.1.2.1']],
    ['a CA certificate as the leaf', ['basicConstraints=critical,CA:true', 'subjectAltName=DNS:a.mesh.test']],
    ['no key identifiers', [...TLS_LEAF, 'subjectKeyIdentifier=none', 'authorityKeyIdentifier=none']],
  ])('%s', async (_name, lines) => {
    const cert = x509(leaf(root, lines));
    expect(await both(cert, [], [x509(root)])).toEqual({
      result: { ok: true, nameConstrained: false },
      path: 'direct',
    });
    // With the CA presented too, as the listener's chain holds it.
    expect((await both(cert, [x509(root)], [x509(root)])).path).toBe('direct');
  });

  it.each(['rsa', 'ec-p384'] as const)('a %s CA (and leaf key)', async (key) => {
    const ca = ossl.root(`Mesh ${key} CA`, { key });
    const cert = x509(leaf(ca, undefined, key));
    expect(await both(cert, [], [x509(ca)])).toEqual({
      result: { ok: true, nameConstrained: false },
      path: 'direct',
    });
  });

  it('picks the issuer among trusted CAs of the same name by key identifier', async () => {
    const twin = ossl.root('Mesh Direct CA');
    const cert = x509(leaf(root));
    expect((await both(cert, [], [x509(twin), x509(root)])).result.ok).toBe(true);
  });

  it('reports a name-constrained CA', async () => {
    const ca = ossl.root('Mesh Constrained CA', {
      extensions: [
        'basicConstraints=critical,CA:true',
        'keyUsage=critical,keyCertSign',
        'nameConstraints=critical,permitted;DNS:.mesh.test',
      ],
    });
    expect(await both(x509(leaf(ca)), [], [x509(ca)])).toEqual({
      result: { ok: true, nameConstrained: true },
      path: 'direct',
    });
  });
});

describe('direct path: refused as the full validation refuses, with its reason', () => {
  it.each([
    ['emailProtection only', 'extendedKeyUsage=emailProtection'],
    ['codeSigning and emailProtection', 'extendedKeyUsage=codeSigning,emailProtection'],
  ])('extended key usage: %s', async (_name, eku) => {
    expect(await both(x509(leaf(root, [...TLS_LEAF, eku])), [], [x509(root)])).toEqual({
      result: { ok: false, reason: 'certificate chain not usable for TLS (extended key usage)' },
      path: 'direct',
    });
  });

  it('an expired or not yet valid leaf', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Mesh Validity CA' });
    const expired = await issueCertificate(ca, {
      dnsNames: ['a.mesh.test'],
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      validityDays: 1,
    });
    const future = await issueCertificate(ca, {
      dnsNames: ['a.mesh.test'],
      notBefore: new Date(Date.now() + 86_400_000),
    });
    for (const c of [expired, future]) {
      expect((await both(x509(c), [], [x509(ca)])).result).toEqual({
        ok: false,
        reason: 'certificate expired or not yet valid',
      });
    }
  });

  it('a leaf from another CA of the same name, with and without key identifiers', async () => {
    const impostor = ossl.root('Mesh Direct CA');
    for (const lines of [TLS_LEAF, [...TLS_LEAF, 'authorityKeyIdentifier=none']]) {
      const { result, path } = await both(x509(leaf(impostor, lines)), [], [x509(root)]);
      expect(result.ok).toBe(false);
      expect(path).toBe('full');
    }
  });

  it('a leaf whose signature does not verify', async () => {
    const { result, path } = await both(badSignature(x509(leaf(root))), [], [x509(root)]);
    expect(result.ok).toBe(false);
    expect(path).toBe('full');
  });

  it('an expired CA', async () => {
    const ca = await createCertificateAuthority({
      commonName: 'Mesh Old CA',
      notBefore: new Date(Date.now() - 20 * 86_400_000),
      validityDays: 10,
    });
    // The leaf itself is valid now.
    const cert = await issueCertificate(ca, { dnsNames: ['a.mesh.test'] });
    const { result, path } = await both(x509(cert), [], [x509(ca)]);
    expect(result.ok).toBe(false);
    expect(path).toBe('full');
  });

  it.each([
    ['not a CA', ['basicConstraints=critical,CA:false', 'keyUsage=critical,keyCertSign']],
    ['a CA without keyCertSign', ['basicConstraints=critical,CA:true', 'keyUsage=critical,digitalSignature']],
    ['no basicConstraints', ['keyUsage=critical,keyCertSign']],
  ])('a trusted certificate that is %s', async (_name, extensions) => {
    const ca = ossl.root('Mesh Odd CA', { extensions });
    const { result, path } = await both(x509(leaf(ca)), [], [x509(ca)]);
    expect(result.ok).toBe(false);
    expect(path).toBe('full');
  });

  it('a self-signed leaf and an unknown issuer, before either path', async () => {
    const other = ossl.root('Somebody Else');
    expect((await both(x509(other), [], [x509(root)])).result).toEqual({
      ok: false,
      reason: 'self-signed certificate',
    });
    expect((await both(x509(leaf(other)), [], [x509(root)])).result).toEqual({
      ok: false,
      reason: 'untrusted certificate chain',
    });
  });
});

describe('full path: what the direct one leaves to it', () => {
  it('a leaf issued through an intermediate', async () => {
    const intermediate = ossl.issue(root, { cn: 'Mesh Intermediate', ca: true, pathLen: 0 });
    const { result, path } = await both(x509(leaf(intermediate)), [x509(intermediate)], [x509(root)]);
    expect(result).toEqual({ ok: true, nameConstrained: false });
    expect(path).toBe('full');
  });

  it('policy constraints in the leaf', async () => {
    const lines = [...TLS_LEAF, 'certificatePolicies=1.2.3.4', 'policyConstraints=requireExplicitPolicy:0'];
    expect((await both(x509(leaf(root, lines)), [], [x509(root)])).path).toBe('full');
  });
});

describe('certificateDnsNames: the direct reader reads what PKI.js reads', () => {
  it.each([
    [
      'DNS names and an IP address',
      ['subjectAltName=DNS:A.mesh.test,DNS:b.mesh.test,IP:127.0.0.1'],
      'a.mesh.test',
    ],
    ['the CN without DNS names', ['subjectAltName=IP:127.0.0.1'], 'cn.mesh.test'],
    ['no subjectAltName', [], 'cn.mesh.test'],
    [
      'a URI among the names (read by PKI.js)',
      ['subjectAltName=DNS:a.mesh.test,URI:https://x.test/'],
      'a.mesh.test',
    ],
  ])('%s', async (_name, lines, first) => {
    const cert = x509(
      ossl.issue(root, { cn: 'CN.mesh.test', extensions: ['basicConstraints=CA:false', ...lines] }),
    );
    for (const includeCn of [true, false]) {
      const direct = await certificateDnsNames(cert, includeCn);
      expect(direct).toEqual(await certificateDnsNames(cert, includeCn, { direct: false }));
      if (includeCn) expect(direct[0]).toBe(first);
    }
  });
});

describe('on a real TLS connection, as the peer listener receives it', () => {
  it('a client certificate from the mesh CA takes the direct path, with or without the CA in its chain', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Mesh Listener CA' });
    const server = await issueCertificate(ca, { dnsNames: ['b.mesh.test'], ipAddresses: ['127.0.0.1'] });
    const client = await issueCertificate(ca, { dnsNames: ['a.mesh.test'] });
    const auth = new PeerAuthenticator({ trustedDomainSuffixes: ['mesh.test'], ca: ca.certPem });
    const verdicts: Array<Promise<unknown>> = [];
    const listener = createServer({
      cert: server.certPem,
      key: server.keyPem,
      ca: ca.certPem,
      ...PeerMesh.serverTlsOptions(),
    });
    listener.on('secureConnection', (socket: TLSSocket) => {
      verdicts.push(auth.verify(socket));
      socket.end();
    });
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    try {
      for (const cert of [client.certPem, client.certPem + ca.certPem]) {
        const socket = connect({
          port: (listener.address() as AddressInfo).port,
          host: '127.0.0.1',
          cert,
          key: client.keyPem,
          ca: ca.certPem,
          servername: 'b.mesh.test',
        });
        await once(socket, 'secureConnect');
        await once(socket, 'close');
      }
      expect(await Promise.all(verdicts)).toMatchObject([
        { ok: true, name: 'a.mesh.test', checkedBy: 'direct' },
        { ok: true, name: 'a.mesh.test', checkedBy: 'direct' },
      ]);
    } finally {
      listener.close();
    }
  });
});
