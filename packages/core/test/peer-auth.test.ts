import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  createSelfSignedCertificate,
  issueCertificate,
} from '../src/certificates.js';
import { InvalidConfigError } from '../src/errors.js';
import {
  certificateNames,
  matchesTrustedSuffix,
  normalizeTrustedSuffix,
  PeerAuthenticator,
  verifyCertificateChain,
} from '../src/peer-auth.js';

const x509 = (c: CertificateAndKey) => new X509Certificate(c.certPem);

describe('normalizeTrustedSuffix', () => {
  it.each([
    ['mesh.example.com', 'mesh.example.com'],
    [' .Mesh.Example.COM. ', 'mesh.example.com'],
    ['*.mesh.example.com', 'mesh.example.com'],
    ['', undefined],
    ['.', undefined],
    ['.com', undefined],
    ['..example.com', undefined],
    ['mesh example.com', undefined],
  ])('normalises %j to %j', (input, expected) => {
    expect(normalizeTrustedSuffix(input)).toBe(expected);
  });
});

describe('matchesTrustedSuffix', () => {
  const cases: { suffix: string; name: string; expected: boolean }[] = [
    { suffix: '.mesh.example.com', name: 'a.mesh.example.com', expected: true },
    { suffix: '.mesh.example.com', name: 'x.y.mesh.example.com', expected: true },
    { suffix: '.mesh.example.com', name: 'mesh.example.com', expected: true },
    { suffix: 'mesh.example.com', name: '.mesh.example.com', expected: false },
    { suffix: '.mesh.example.com', name: 'evilmesh.example.com', expected: false },
    { suffix: '.mesh.example.com', name: 'a.mesh.example.com.evil.org', expected: false },
    { suffix: 'mesh.example.com', name: 'mesh.example.com', expected: true },
    { suffix: 'mesh.example.com', name: 'A.MESH.example.com.', expected: true },
    { suffix: 'mesh.example.com', name: 'evilmesh.example.com', expected: false },
    { suffix: 'mesh.example.com', name: 'example.com', expected: false },
    { suffix: 'mesh.example.com', name: '', expected: false },
  ];
  it.each(cases)('suffix $suffix vs $name → $expected', ({ suffix, name, expected }) => {
    expect(matchesTrustedSuffix(name, [normalizeTrustedSuffix(suffix)!])).toBe(expected);
  });

  it('accepts a match on any of several suffixes', () => {
    expect(matchesTrustedSuffix('n1.other.org', ['mesh.example.com', 'other.org'])).toBe(true);
  });
});

describe('certificateNames', () => {
  it('returns the DNS subjectAltNames and ignores IP addresses', async () => {
    const c = await createSelfSignedCertificate({
      dnsNames: ['A.mesh.example.com', 'b.mesh.example.com'],
      ipAddresses: ['127.0.0.1'],
    });
    expect(await certificateNames(x509(c))).toEqual(['a.mesh.example.com', 'b.mesh.example.com']);
  });

  it('falls back to the CN when there is no DNS name', async () => {
    const c = await createSelfSignedCertificate({
      ipAddresses: ['127.0.0.1'],
      commonName: 'cn.mesh.example.com',
    });
    expect(await certificateNames(x509(c))).toEqual(['cn.mesh.example.com']);
  });

  it('ignores the CN when a DNS name exists', async () => {
    const c = await createSelfSignedCertificate({
      dnsNames: ['x.other.org'],
      commonName: 'cn.mesh.example.com',
    });
    expect(await certificateNames(x509(c))).toEqual(['x.other.org']);
  });
});

describe('verifyCertificateChain', () => {
  it('accepts a leaf issued by an anchor and refuses one from another CA', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Mesh CA' });
    const other = await createCertificateAuthority({ commonName: 'Other CA' });
    const leaf = await issueCertificate(ca, { dnsNames: ['a.mesh.example.com'] });
    expect(await verifyCertificateChain(x509(leaf), [], [x509(ca)])).toMatchObject({ ok: true });
    expect(await verifyCertificateChain(x509(leaf), [], [x509(other)])).toMatchObject({ ok: false });
  });

  it('refuses an intermediate that is not a CA', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Mesh CA' });
    const notCa = await issueCertificate(ca, { dnsNames: ['b.mesh.example.com'] });
    // Signed with the key of a leaf that chains to the CA: that leaf may not issue certificates.
    const leaf = await issueCertificate(notCa, { dnsNames: ['a.mesh.example.com'] });
    expect(x509(leaf).verify(x509(notCa).publicKey)).toBe(true);
    expect((await verifyCertificateChain(x509(leaf), [x509(notCa)], [x509(ca)])).ok).toBe(false);
  });

  it('refuses an expired leaf', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Mesh CA' });
    const leaf = await issueCertificate(ca, {
      dnsNames: ['a.mesh.example.com'],
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      validityDays: 1,
    });
    expect(await verifyCertificateChain(x509(leaf), [], [x509(ca)])).toEqual({
      ok: false,
      reason: 'certificate expired or not yet valid',
    });
  });

  it('calls a self-signed leaf by its name', async () => {
    const leaf = await createSelfSignedCertificate({ dnsNames: ['a.mesh.example.com'] });
    const ca = await createCertificateAuthority({ commonName: 'Mesh CA' });
    expect(await verifyCertificateChain(x509(leaf), [x509(leaf)], [x509(ca)])).toEqual({
      ok: false,
      reason: 'self-signed certificate',
    });
  });
});

describe('PeerAuthenticator', () => {
  it('throws InvalidConfigError without suffixes or with a malformed one', () => {
    expect(() => new PeerAuthenticator({ trustedDomainSuffixes: [] })).toThrow(InvalidConfigError);
    try {
      new PeerAuthenticator({ trustedDomainSuffixes: ['ok.example.com', 'bad suffix'] });
      expect.unreachable();
    } catch (err) {
      expect(InvalidConfigError.is(err)).toBe(true);
      expect((err as InvalidConfigError).path).toBe('peerAuthentication.trustedDomainSuffixes[1]');
    }
  });

  it('accepts a serverAuth-only (ACME-style) certificate from the trusted CA', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Mesh CA' });
    const leaf = await issueCertificate(ca, { dnsNames: ['a.mesh.example.com'], serverAuth: true });
    const auth = new PeerAuthenticator({
      trustedDomainSuffixes: ['.mesh.example.com'],
      ca: ca.certPem,
      systemCa: false,
    });
    expect(await auth.verifyCertificate(x509(leaf))).toMatchObject({ ok: true, name: 'a.mesh.example.com' });
  });

  it('refuses names outside the suffixes, evilmesh, and certificates with an unrelated usage', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Mesh CA' });
    const auth = new PeerAuthenticator({
      trustedDomainSuffixes: ['mesh.example.com'],
      ca: ca.certPem,
      systemCa: false,
    });
    const outside = await issueCertificate(ca, { dnsNames: ['a.other.org'] });
    const evil = await issueCertificate(ca, { dnsNames: ['evilmesh.example.com'] });
    const noTls = await issueCertificate(ca, {
      dnsNames: ['a.mesh.example.com'],
      serverAuth: false,
      clientAuth: false,
    });
    expect((await auth.verifyCertificate(x509(outside))).ok).toBe(false);
    expect((await auth.verifyCertificate(x509(evil))).ok).toBe(false);
    // No EKU extension at all is allowed (RFC 5280: any usage).
    expect((await auth.verifyCertificate(x509(noTls))).ok).toBe(true);
  });

  it('trusts Node root CAs by default and exposes the CA list for dialers', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Mesh CA' });
    const auth = new PeerAuthenticator({ trustedDomainSuffixes: ['mesh.example.com'], ca: ca.certPem });
    const pems = auth.caPem()!;
    expect(pems.length).toBeGreaterThan(10);
    expect(pems).toContain(ca.certPem.trim());
    // The dialer trusts what the listener trusts, system stores included, even without a caFile.
    expect(new PeerAuthenticator({ trustedDomainSuffixes: ['mesh.example.com'] }).caPem()?.length).toBe(
      pems.length - 1,
    );
    expect(
      new PeerAuthenticator({ trustedDomainSuffixes: ['mesh.example.com'], systemCa: false }).caPem(),
    ).toBeUndefined();
  });
});
