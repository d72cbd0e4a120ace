/**
 * The fields of an X.509 certificate that the peer checks read and Node's `X509Certificate` does not expose
 * (the exact encodings of the issuer and subject names, every extension with its critical flag, the values
 * of basicConstraints, keyUsage, extended key usage, subjectAltName, the key identifiers, the subject's
 * common names). Read with asn1js, the DER parser PKI.js is built on, so a value reads here as it reads in
 * the full chain validation (`peer-chain.ts`), with much less code loaded.
 *
 * Every reader is strict: a structure that is not exactly the expected one reads as `undefined`, and the
 * callers then leave the decision to the full validation. Never throws.
 */
import type { X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';

export const OID_BASIC_CONSTRAINTS = '2.5.29.19';
export const OID_KEY_USAGE = '2.5.29.15';
export const OID_EXT_KEY_USAGE = '2.5.29.37';
export const OID_SUBJECT_ALT_NAME = '2.5.29.17';
export const OID_SUBJECT_KEY_ID = '2.5.29.14';
export const OID_AUTHORITY_KEY_ID = '2.5.29.35';
export const OID_NAME_CONSTRAINTS = '2.5.29.30';
export const OID_CERTIFICATE_POLICIES = '2.5.29.32';
export const OID_COMMON_NAME = '2.5.4.3';
/** Extended key usages: serverAuth, clientAuth, anyExtendedKeyUsage. */
export const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
export const OID_ANY_EKU = '2.5.29.37.0';

/** ASN.1 tag classes as asn1js numbers them. */
const UNIVERSAL = 1;
const CONTEXT = 3;

/** One extension of a certificate. */
export interface CertificateExtension {
  oid: string;
  critical: boolean;
  /** The extension's value decoded, or `null` when it is not valid BER (as PKI.js reads it). */
  value: asn1js.AsnType | null;
}

/** What {@link readCertificate} returns. */
export interface CertificateFields {
  /** DER of the issuer and subject names. */
  issuer: Uint8Array;
  subject: Uint8Array;
  /** The subject as decoded, for its common names. */
  subjectName: asn1js.Sequence;
  notBefore: Date;
  notAfter: Date;
  /** OID of the outer signature algorithm. */
  signatureAlgorithm: string;
  extensions: CertificateExtension[];
  /** True when an extension OID appears more than once. */
  duplicateExtensions: boolean;
}

const cache = new WeakMap<X509Certificate, CertificateFields | null>();

/** The certificate's fields, or `undefined` when its structure is not the X.509 one. Cached per object. */
export function readCertificate(cert: X509Certificate): CertificateFields | undefined {
  let fields = cache.get(cert);
  if (fields === undefined) {
    fields = parseCertificate(new Uint8Array(cert.raw)) ?? null;
    cache.set(cert, fields);
  }
  return fields ?? undefined;
}

function isUniversal<T extends asn1js.AsnType>(
  block: asn1js.AsnType | null | undefined,
  type: new (...args: never[]) => T,
): block is T {
  return block instanceof type && block.idBlock.tagClass === UNIVERSAL;
}

function isContext(
  block: asn1js.AsnType | undefined,
  tag: number,
  constructed: boolean,
): block is asn1js.Primitive | asn1js.Constructed {
  return (
    block !== undefined &&
    block.idBlock.tagClass === CONTEXT &&
    block.idBlock.tagNumber === tag &&
    block.idBlock.isConstructed === constructed
  );
}

function items(block: asn1js.AsnType | null | undefined): asn1js.AsnType[] | undefined {
  if (
    !(block instanceof asn1js.Sequence || block instanceof asn1js.Set || block instanceof asn1js.Constructed)
  ) {
    return undefined;
  }
  return block.valueBlock.value as asn1js.AsnType[];
}

function time(block: asn1js.AsnType | undefined): Date | undefined {
  if (block instanceof asn1js.GeneralizedTime || block instanceof asn1js.UTCTime) return block.toDate();
  return undefined;
}

function algorithmOid(block: asn1js.AsnType | undefined): string | undefined {
  const oid = items(block)?.[0];
  return oid instanceof asn1js.ObjectIdentifier ? oid.valueBlock.toString() : undefined;
}

function parseCertificate(der: Uint8Array): CertificateFields | undefined {
  try {
    const parsed = asn1js.fromBER(der);
    if (parsed.offset === -1) return undefined;
    const top = items(parsed.result);
    if (top?.length !== 3 || !isUniversal(top[2], asn1js.BitString)) return undefined;
    const signatureAlgorithm = algorithmOid(top[1]);
    const tbs = items(top[0]);
    if (tbs === undefined || signatureAlgorithm === undefined) return undefined;
    let i = isContext(tbs[0], 0, true) ? 1 : 0; // version
    const [serial, signature, issuer, validity, subject, spki] = tbs.slice(i, i + 6);
    i += 6;
    const dates = items(validity);
    const notBefore = time(dates?.[0]);
    const notAfter = time(dates?.[1]);
    if (
      !isUniversal(serial, asn1js.Integer) ||
      algorithmOid(signature) === undefined ||
      !isName(issuer) ||
      !isName(subject) ||
      dates?.length !== 2 ||
      notBefore === undefined ||
      notAfter === undefined ||
      items(spki)?.length !== 2
    ) {
      return undefined;
    }
    if (isContext(tbs[i], 1, false)) i++; // issuerUniqueID
    if (isContext(tbs[i], 2, false)) i++; // subjectUniqueID
    let extensions: CertificateExtension[] = [];
    if (i < tbs.length) {
      if (!isContext(tbs[i], 3, true) || i !== tbs.length - 1) return undefined;
      const list = items(tbs[i])?.[0];
      const read = items(list)?.map(readExtension);
      if (read === undefined || read.some((e) => e === undefined)) return undefined;
      extensions = read as CertificateExtension[];
    }
    return {
      issuer: new Uint8Array(issuer.valueBeforeDecodeView),
      subject: new Uint8Array(subject.valueBeforeDecodeView),
      subjectName: subject,
      notBefore,
      notAfter,
      signatureAlgorithm,
      extensions,
      duplicateExtensions: new Set(extensions.map((e) => e.oid)).size !== extensions.length,
    };
  } catch {
    return undefined;
  }
}

/** A Name: a SEQUENCE of SETs of SEQUENCE { OID, value }. */
function isName(block: asn1js.AsnType | undefined): block is asn1js.Sequence {
  if (!isUniversal(block, asn1js.Sequence)) return false;
  return (items(block) ?? []).every(
    (rdn) =>
      isUniversal(rdn, asn1js.Set) &&
      (items(rdn) ?? []).every((atv) => {
        const pair = items(atv);
        return (
          isUniversal(atv, asn1js.Sequence) &&
          pair?.length === 2 &&
          pair[0] instanceof asn1js.ObjectIdentifier
        );
      }),
  );
}

function readExtension(block: asn1js.AsnType): CertificateExtension | undefined {
  const parts = items(block);
  if (!isUniversal(block, asn1js.Sequence) || parts === undefined) return undefined;
  const [oid, second, third] = parts;
  if (!(oid instanceof asn1js.ObjectIdentifier)) return undefined;
  let critical = false;
  let octets = second;
  if (parts.length === 3) {
    if (!isUniversal(second, asn1js.Boolean)) return undefined;
    critical = second.valueBlock.value;
    octets = third;
  } else if (parts.length !== 2) {
    return undefined;
  }
  if (!isUniversal(octets, asn1js.OctetString) || octets.idBlock.isConstructed) return undefined;
  const decoded = asn1js.fromBER(octets.valueBlock.valueHexView);
  return { oid: oid.valueBlock.toString(), critical, value: decoded.offset === -1 ? null : decoded.result };
}

/** The extension `oid` of `fields` (the first one). */
export function extensionOf(fields: CertificateFields, oid: string): CertificateExtension | undefined {
  return fields.extensions.find((e) => e.oid === oid);
}

/** basicConstraints' `cA`, or `undefined` when it is not exactly SEQUENCE { BOOLEAN?, INTEGER? }. */
export function basicConstraints(value: asn1js.AsnType | null): { ca: boolean } | undefined {
  const parts = items(value);
  if (!isUniversal(value, asn1js.Sequence) || parts === undefined || parts.length > 2) return undefined;
  let ca = false;
  let rest = parts;
  if (isUniversal(parts[0], asn1js.Boolean)) {
    ca = parts[0].valueBlock.value;
    rest = parts.slice(1);
  }
  if (rest.length > 1 || (rest.length === 1 && !isUniversal(rest[0], asn1js.Integer))) return undefined;
  return { ca };
}

/** The first octet of a keyUsage BIT STRING (keyCertSign is 0x04), or `undefined` when not a BIT STRING. */
export function keyUsageFirstOctet(value: asn1js.AsnType | null): number | undefined {
  if (!isUniversal(value, asn1js.BitString) || value.idBlock.isConstructed) return undefined;
  return value.valueBlock.valueHexView[0] ?? 0;
}

/** The key purposes of an extended key usage: a SEQUENCE of OIDs, else `undefined`. */
export function keyPurposes(value: asn1js.AsnType | null): string[] | undefined {
  const parts = items(value);
  if (!isUniversal(value, asn1js.Sequence) || parts === undefined) return undefined;
  if (!parts.every((p) => p instanceof asn1js.ObjectIdentifier)) return undefined;
  return parts.map((p) => (p as asn1js.ObjectIdentifier).valueBlock.toString());
}

/**
 * The dNSNames of a subjectAltName as they are encoded (bytes as characters), when it holds only dNSNames
 * and iPAddresses, both primitive; else `undefined`.
 */
export function subjectAltDnsNames(value: asn1js.AsnType | null): string[] | undefined {
  const parts = items(value);
  if (!isUniversal(value, asn1js.Sequence) || parts === undefined) return undefined;
  const names: string[] = [];
  for (const part of parts) {
    if (isContext(part, 2, false)) {
      names.push(Buffer.from((part as asn1js.Primitive).valueBlock.valueHexView).toString('latin1'));
    } else if (!isContext(part, 7, false)) {
      return undefined;
    }
  }
  return names;
}

/** The keyIdentifier of an authorityKeyIdentifier that holds only that, else `undefined`. */
export function authorityKeyId(value: asn1js.AsnType | null): Uint8Array | undefined {
  const parts = items(value);
  if (!isUniversal(value, asn1js.Sequence) || parts?.length !== 1 || !isContext(parts[0], 0, false)) {
    return undefined;
  }
  return (parts[0] as asn1js.Primitive).valueBlock.valueHexView;
}

/** A subjectKeyIdentifier's octets, or `undefined` when it is not a primitive OCTET STRING. */
export function subjectKeyId(value: asn1js.AsnType | null): Uint8Array | undefined {
  if (!isUniversal(value, asn1js.OctetString) || value.idBlock.isConstructed) return undefined;
  return value.valueBlock.valueHexView;
}

/** The decoded values of the subject's common names, in order (asn1js's `valueBlock.value`, as PKI.js reads them). */
export function commonNames(fields: CertificateFields): unknown[] {
  const values: unknown[] = [];
  for (const rdn of items(fields.subjectName) ?? []) {
    for (const atv of items(rdn) ?? []) {
      const [type, value] = items(atv) ?? [];
      if ((type as asn1js.ObjectIdentifier).valueBlock.toString() === OID_COMMON_NAME) {
        values.push((value as asn1js.BaseBlock<asn1js.ValueBlock & { value?: unknown }>).valueBlock.value);
      }
    }
  }
  return values;
}
