/**
 * The common case of peer certificate validation decided without PKI.js: a leaf issued directly by one of
 * the trusted CAs (a path of two: leaf and anchor), as a mesh with its own CA has it. The signature is
 * checked by OpenSSL (`X509Certificate.verify`), the rest on the fields `peer-cert-fields.ts` reads, and
 * the verdict is the one the full validation (`peer-chain.ts`, PKI.js's chain engine) reaches for such a
 * pair: the anchor it would pick (the first trusted CA whose key identifier, or name, matches the leaf's
 * issuer and whose signature verifies), valid now, a CA allowed to sign certificates (basicConstraints cA,
 * keyCertSign when keyUsage is present, no critical extension that is not valid DER); the leaf's policies
 * cannot fail a path of two; then the mesh's own check of extended key usage (serverAuth, clientAuth, an
 * absent extension or anyExtendedKeyUsage).
 *
 * Whatever is outside that profile — intermediates, a self-issued leaf, duplicate extensions, policy
 * constraints or mappings in the leaf, an authorityKeyIdentifier with more than a key identifier, a
 * subjectAltName with other name types than DNS and IP, key and signature algorithms other than ECDSA
 * P-256/P-384 and RSA with SHA-256/384/512, a signature OpenSSL refuses, a CA PKI.js would refuse — is
 * answered `undefined`, and the full validation decides, with its own reasons. The only refusal decided
 * here is the extended key usage one, which is the mesh's own check in both paths.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import {
  authorityKeyId,
  basicConstraints,
  type CertificateFields,
  commonNames,
  extensionOf,
  keyPurposes,
  keyUsageFirstOctet,
  OID_ANY_EKU,
  OID_AUTHORITY_KEY_ID,
  OID_BASIC_CONSTRAINTS,
  OID_CERTIFICATE_POLICIES,
  OID_CLIENT_AUTH,
  OID_EXT_KEY_USAGE,
  OID_KEY_USAGE,
  OID_NAME_CONSTRAINTS,
  OID_SERVER_AUTH,
  OID_SUBJECT_ALT_NAME,
  OID_SUBJECT_KEY_ID,
  readCertificate,
  subjectAltDnsNames,
  subjectKeyId,
} from './peer-cert-fields.js';
import type { ChainResult } from './peer-chain.js';

export const EKU_REFUSAL = 'certificate chain not usable for TLS (extended key usage)';

/** keyCertSign in the first octet of keyUsage. */
const KEY_CERT_SIGN = 0x04;

/** Signature algorithms the fast path takes, with the key type of the issuer that signs with them. */
const SIGNATURE_KEY_TYPES: Record<string, 'ec' | 'rsa'> = {
  '1.2.840.10045.4.3.2': 'ec', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': 'ec', // ecdsa-with-SHA384
  '1.2.840.10045.4.3.4': 'ec', // ecdsa-with-SHA512
  '1.2.840.113549.1.1.11': 'rsa', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': 'rsa', // sha384WithRSAEncryption
  '1.2.840.113549.1.1.13': 'rsa', // sha512WithRSAEncryption
};
const CURVES = new Set(['prime256v1', 'secp384r1']);

/** Leaf extensions that PKI.js reads in a path of two, and what each must be for it to read them as here. */
const LEAF_EXTENSIONS_READ = new Set([
  OID_SUBJECT_ALT_NAME,
  OID_NAME_CONSTRAINTS,
  OID_CERTIFICATE_POLICIES,
  OID_EXT_KEY_USAGE,
  OID_AUTHORITY_KEY_ID,
]);
/** Policy processing that a path of two may fail on: left to the full validation. */
const LEAF_EXTENSIONS_DEFERRED = new Set(['2.5.29.33', '2.5.29.36', '2.5.29.54']);

function keyType(key: KeyObject): 'ec' | 'rsa' | undefined {
  if (key.asymmetricKeyType === 'rsa') return 'rsa';
  if (key.asymmetricKeyType === 'ec' && CURVES.has(key.asymmetricKeyDetails?.namedCurve ?? '')) return 'ec';
  return undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** What an anchor is, once: readable, a CA PKI.js accepts as an issuer. Cached per certificate object. */
interface AnchorProfile {
  fields: CertificateFields;
  /** The subjectKeyIdentifier, `null` without one; `undefined` makes the anchor unusable here. */
  keyId: Uint8Array | null;
  /** basicConstraints cA, keyCertSign when keyUsage is present, no critical extension that is not BER. */
  signsCertificates: boolean;
  nameConstrained: boolean;
}
const anchorProfiles = new WeakMap<X509Certificate, AnchorProfile | null>();

function anchorProfile(anchor: X509Certificate): AnchorProfile | undefined {
  let profile = anchorProfiles.get(anchor);
  if (profile === undefined) {
    profile = readAnchor(anchor) ?? null;
    anchorProfiles.set(anchor, profile);
  }
  return profile ?? undefined;
}

function readAnchor(anchor: X509Certificate): AnchorProfile | undefined {
  const fields = readCertificate(anchor);
  if (fields === undefined || fields.duplicateExtensions || keyType(anchor.publicKey) === undefined)
    return undefined;
  const ski = extensionOf(fields, OID_SUBJECT_KEY_ID);
  const keyId = ski === undefined ? null : subjectKeyId(ski.value);
  if (keyId === undefined) return undefined;
  const bc = extensionOf(fields, OID_BASIC_CONSTRAINTS);
  const ca = bc === undefined ? { ca: false } : basicConstraints(bc.value);
  const ku = extensionOf(fields, OID_KEY_USAGE);
  const kuOctet = ku === undefined ? undefined : keyUsageFirstOctet(ku.value);
  if (ca === undefined || (ku !== undefined && kuOctet === undefined)) return undefined;
  const signsCertificates =
    ca.ca &&
    (kuOctet === undefined || (kuOctet & KEY_CERT_SIGN) !== 0) &&
    fields.extensions.every((e) => !e.critical || e.value !== null);
  return {
    fields,
    keyId,
    signsCertificates,
    nameConstrained: extensionOf(fields, OID_NAME_CONSTRAINTS) !== undefined,
  };
}

/**
 * The verdict on `leaf` when it is issued directly by one of `candidates` (the trusted CAs whose subject
 * names one of the presented certificates' issuers, in trust order) and every presented intermediate is
 * one of those CAs; `undefined` when the full validation must decide. `leaf` has been checked for its
 * validity period and for being a trust anchor itself.
 */
export function verifyDirectlyIssued(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  candidates: readonly X509Certificate[],
  now: Date,
): ChainResult | undefined {
  const presented = intermediates.filter((c) => c.fingerprint256 !== leaf.fingerprint256);
  if (!presented.every((c) => candidates.some((a) => a.fingerprint256 === c.fingerprint256)))
    return undefined;
  const fields = readCertificate(leaf);
  const signerKeyType = fields === undefined ? undefined : SIGNATURE_KEY_TYPES[fields.signatureAlgorithm];
  if (fields === undefined || signerKeyType === undefined || !leafInProfile(fields)) return undefined;
  if (keyType(leaf.publicKey) === undefined) return undefined;
  const t = now.getTime();
  // The validity as PKI.js reads it (the caller checked Node's reading).
  if (t < fields.notBefore.getTime() || t > fields.notAfter.getTime()) return undefined;
  const akid = extensionOf(fields, OID_AUTHORITY_KEY_ID);
  const leafKeyId = akid === undefined ? null : authorityKeyId(akid.value);
  if (leafKeyId === undefined) return undefined;

  // The issuer PKI.js would find first: by key identifier when both carry one, else by name.
  let anchor: X509Certificate | undefined;
  let profile: AnchorProfile | undefined;
  for (const candidate of candidates) {
    const p = anchorProfile(candidate);
    if (p === undefined || !sameBytes(p.fields.subject, fields.issuer)) return undefined;
    if (leafKeyId !== null && p.keyId !== null && !sameBytes(leafKeyId, p.keyId)) continue;
    if (keyType(candidate.publicKey) !== signerKeyType || leaf.publicKey.equals(candidate.publicKey)) {
      return undefined;
    }
    if (!verifySignature(leaf, candidate)) return undefined;
    anchor = candidate;
    profile = p;
    break;
  }
  if (anchor === undefined || profile === undefined) return undefined;
  if (t < profile.fields.notBefore.getTime() || t > profile.fields.notAfter.getTime()) return undefined;
  if (!profile.signsCertificates) return undefined;

  const eku = extensionOf(fields, OID_EXT_KEY_USAGE);
  if (eku !== undefined) {
    const purposes = keyPurposes(eku.value) ?? [];
    const usable =
      purposes.includes(OID_ANY_EKU) ||
      purposes.includes(OID_SERVER_AUTH) ||
      purposes.includes(OID_CLIENT_AUTH);
    if (!usable) return { ok: false, reason: EKU_REFUSAL };
  }
  return {
    ok: true,
    nameConstrained: profile.nameConstrained || extensionOf(fields, OID_NAME_CONSTRAINTS) !== undefined,
  };
}

function verifySignature(leaf: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return leaf.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * True when PKI.js reads the leaf's extensions as here and its policy processing cannot fail: no duplicate
 * extension, none of the policy constraints, mappings or inhibitAnyPolicy, the extensions it reads valid
 * DER, a subjectAltName of DNS names and IP addresses, an extended key usage of OIDs.
 */
function leafInProfile(fields: CertificateFields): boolean {
  if (fields.duplicateExtensions) return false;
  for (const e of fields.extensions) {
    if (LEAF_EXTENSIONS_DEFERRED.has(e.oid)) return false;
    if (LEAF_EXTENSIONS_READ.has(e.oid) && e.value === null) return false;
  }
  const san = extensionOf(fields, OID_SUBJECT_ALT_NAME);
  if (san !== undefined && subjectAltDnsNames(san.value) === undefined) return false;
  const eku = extensionOf(fields, OID_EXT_KEY_USAGE);
  return eku === undefined || keyPurposes(eku.value) !== undefined;
}

/**
 * The DNS names of `cert`'s subjectAltName, lower-case, or when it has none (and `includeCn`) its subject's
 * last CN; `undefined` when its subjectAltName holds other name types (the full reader decides then).
 */
export function directDnsNames(cert: X509Certificate, includeCn: boolean): string[] | undefined {
  const fields = readCertificate(cert);
  if (fields === undefined) return undefined;
  const san = extensionOf(fields, OID_SUBJECT_ALT_NAME);
  let dns: string[] = [];
  if (san !== undefined) {
    const names = subjectAltDnsNames(san.value);
    if (names === undefined) return undefined;
    dns = names.map((n) => n.toLowerCase());
  }
  if (dns.length > 0 || !includeCn) return dns;
  const cn = commonNames(fields).at(-1);
  return typeof cn === 'string' && cn !== '' ? [cn.toLowerCase()] : [];
}
