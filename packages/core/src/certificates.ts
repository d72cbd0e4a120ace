import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';
import { TlsError } from './errors.js';

/** A certificate and its private key, both PEM. The key is PKCS#8 (`-----BEGIN PRIVATE KEY-----`). */
export interface CertificateAndKey {
  /** The certificate, PEM. */
  certPem: string;
  /** Its private key, PKCS#8 PEM. */
  keyPem: string;
}

/** Default lifetime of a certificate authority made by `createCertificateAuthority`: `3650` days. */
export const DEFAULT_CA_VALIDITY_DAYS = 3650;
/** Default lifetime of a certificate made by `issueCertificate` / `createSelfSignedCertificate`: `365` days. */
export const DEFAULT_CERTIFICATE_VALIDITY_DAYS = 365;
/**
 * How far `notBefore` is back-dated by default: `300_000` ms (5 minutes), so that a peer whose clock is a
 * little behind does not reject a certificate made a moment ago.
 */
export const DEFAULT_CLOCK_SKEW_MS = 300_000;

const DAY_MS = 86_400_000;

/** Options of `createCertificateAuthority`. */
export interface CertificateAuthorityOptions {
  /** Subject and issuer common name of the CA. */
  commonName: string;
  /** Lifetime in days. Default: `3650`. */
  validityDays?: number;
  /** Start of validity. Default: now minus 5 minutes. */
  notBefore?: Date;
}

/** Options of `issueCertificate` and `createSelfSignedCertificate`. */
export interface CertificateOptions {
  /** DNS names for the subjectAltName extension (wildcards such as `*.example.com` allowed). */
  dnsNames?: readonly string[];
  /** IPv4 / IPv6 addresses for the subjectAltName extension. */
  ipAddresses?: readonly string[];
  /** Subject common name. Default: the first DNS name, else the first IP address. */
  commonName?: string;
  /** Add the serverAuth extended key usage. Default: `true`. */
  serverAuth?: boolean;
  /** Add the clientAuth extended key usage (mutual-TLS peers, docs/protocol.md §2.1). Default: `false`. */
  clientAuth?: boolean;
  /** Lifetime in days. Default: `365`. */
  validityDays?: number;
  /** Start of validity. Default: now minus 5 minutes. */
  notBefore?: Date;
}

// One explicit provider per call instead of the library's global registry: importing core stays
// free of side effects (package.json `sideEffects: false`).
const crypto = webcrypto;

// Loaded on first use: the library installs the reflect-metadata polyfill when imported, and most users of
// core never make a certificate.
let x509Module: Promise<typeof X509> | undefined;
function loadX509(): Promise<typeof X509> {
  x509Module ??= import('@peculiar/x509');
  return x509Module;
}

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type EcdsaParams = webcrypto.EcdsaParams;

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHMS: Record<string, { name: string; namedCurve: string; hash: string }> = {
  prime256v1: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  secp384r1: { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' },
};

/** Creates a self-signed certificate authority (ECDSA P-256) that `issueCertificate` can sign with. */
export async function createCertificateAuthority(
  options: CertificateAuthorityOptions,
): Promise<CertificateAndKey> {
  const x509 = await loadX509();
  const keys = await generateKeyPair();
  const { notBefore, notAfter } = validity(
    options.validityDays ?? DEFAULT_CA_VALIDITY_DAYS,
    options.notBefore,
  );
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: [options.commonName] }],
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: `${cert.toString('pem')}\n`, keyPem: `${await exportKeyPem(x509, keys.privateKey)}\n` };
}

/**
 * Issues a leaf certificate (fresh ECDSA P-256 key) signed by `ca`. The CA key may be ECDSA P-256 or P-384.
 * Throws a `TlsError` (code `NEXUS_ERR_TLS`) when no name is given or the CA cannot be used.
 */
export async function issueCertificate(
  ca: CertificateAndKey,
  options: CertificateOptions,
): Promise<CertificateAndKey> {
  const x509 = await loadX509();
  const caCert = parseCertificate(x509, ca.certPem);
  const caKey = await importSigningKey(ca.keyPem);
  const keys = await generateKeyPair();
  const { notBefore, notAfter } = validity(
    options.validityDays ?? DEFAULT_CERTIFICATE_VALIDITY_DAYS,
    options.notBefore,
  );
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: [{ CN: [leafCommonName(options)] }],
      issuer: caCert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: caKey.key,
      signingAlgorithm: caKey.algorithm,
      extensions: [
        ...(await leafExtensions(x509, options, keys.publicKey)),
        await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: `${cert.toString('pem')}\n`, keyPem: `${await exportKeyPem(x509, keys.privateKey)}\n` };
}

/**
 * Creates a self-signed leaf certificate (ECDSA P-256, serverAuth by default): the hub's temporary
 * certificate while ACME has not delivered one yet, and a handy fixture for tests.
 */
export async function createSelfSignedCertificate(options: CertificateOptions): Promise<CertificateAndKey> {
  const x509 = await loadX509();
  const keys = await generateKeyPair();
  const { notBefore, notAfter } = validity(
    options.validityDays ?? DEFAULT_CERTIFICATE_VALIDITY_DAYS,
    options.notBefore,
  );
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: [leafCommonName(options)] }],
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: await leafExtensions(x509, options, keys.publicKey, true),
    },
    crypto,
  );
  return { certPem: `${cert.toString('pem')}\n`, keyPem: `${await exportKeyPem(x509, keys.privateKey)}\n` };
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function exportKeyPem(x509: typeof X509, key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

function parseCertificate(x509: typeof X509, pem: string): X509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (cause) {
    throw new TlsError('CA certificate is not a valid PEM certificate', { cause });
  }
}

async function importSigningKey(pem: string): Promise<{ key: CryptoKey; algorithm: EcdsaParams }> {
  let curve: string | undefined;
  let der: Buffer;
  try {
    const keyObject = createPrivateKey(pem);
    curve = keyObject.asymmetricKeyDetails?.namedCurve;
    der = keyObject.export({ format: 'der', type: 'pkcs8' });
  } catch (cause) {
    throw new TlsError('CA key is not a valid PEM private key', { cause });
  }
  const algorithm = curve === undefined ? undefined : SIGNING_ALGORITHMS[curve];
  if (algorithm === undefined) {
    throw new TlsError('CA key must be an ECDSA P-256 or P-384 key');
  }
  const key = await crypto.subtle.importKey(
    'pkcs8',
    der,
    { name: algorithm.name, namedCurve: algorithm.namedCurve },
    false,
    ['sign'],
  );
  return { key, algorithm: { name: algorithm.name, hash: algorithm.hash } as EcdsaParams };
}

async function leafExtensions(
  x509: typeof X509,
  options: CertificateOptions,
  publicKey: CryptoKey,
  selfSigned = false,
): Promise<X509.Extension[]> {
  const names: X509.JsonGeneralName[] = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ipAddresses ?? []).map((value) => {
      if (isIP(value) === 0) throw new TlsError(`not an IP address: ${value}`);
      return { type: 'ip' as const, value };
    }),
  ];
  if (names.length === 0) {
    throw new TlsError('a certificate needs at least one DNS name or IP address');
  }
  const usages: string[] = [];
  if (options.serverAuth ?? true) usages.push(x509.ExtendedKeyUsage.serverAuth);
  if (options.clientAuth ?? false) usages.push(x509.ExtendedKeyUsage.clientAuth);
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    // RFC 5280 §4.2.1.6: with a non-empty SAN the subject may be anything; browsers only read the SAN.
    new x509.SubjectAlternativeNameExtension(names, false),
    await x509.SubjectKeyIdentifierExtension.create(publicKey, false, crypto),
  ];
  // A self-signed leaf gets no keyUsage: with one that lacks keyCertSign, OpenSSL no longer treats the
  // certificate as self-issued and a client that pins it as its `ca` cannot verify it.
  if (!selfSigned) extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true));
  if (usages.length > 0) extensions.push(new x509.ExtendedKeyUsageExtension(usages, false));
  return extensions;
}

function leafCommonName(options: CertificateOptions): string {
  const name = options.commonName ?? options.dnsNames?.[0] ?? options.ipAddresses?.[0];
  if (name === undefined) {
    throw new TlsError('a certificate needs at least one DNS name or IP address');
  }
  return name;
}

function validity(days: number, start: Date | undefined): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(days) || days <= 0) {
    throw new TlsError(`validityDays must be > 0, got ${days}`);
  }
  const notBefore = start ?? new Date(Date.now() - DEFAULT_CLOCK_SKEW_MS);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * DAY_MS) };
}

/** RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; 16 random bytes with the top bit clear. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}
