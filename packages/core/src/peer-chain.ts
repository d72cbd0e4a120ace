/**
 * Certification path validation for peer certificates (RFC 5280 §6). A leaf issued directly by a trusted CA
 * (the common case: a mesh with its own CA) is decided by `peer-chain-direct.ts` with Node's
 * `X509Certificate` and asn1js, to the same verdict; every other path goes to PKI.js's chain engine, loaded
 * the first time one is needed. The engine builds the path from the leaf through the presented
 * intermediates to a trust anchor and checks signatures, validity periods, that every issuer is a CA allowed
 * to sign certificates (basicConstraints, keyUsage), certificate policies and name constraints (permitted
 * and excluded subtrees, applied to the subject and the subjectAltNames of every certificate below them).
 * PKI.js leaves two checks to its caller, done here on the path it returns: `pathLenConstraint` (RFC 5280
 * §4.2.1.9) and extended key usage through the chain.
 *
 * Extended key usage: a peer presents its certificate as a TLS client on the peer listener and as a TLS
 * server when it is dialled, and ACME certificates list only serverAuth; so a path is accepted when there
 * is one purpose — serverAuth or clientAuth — that the leaf and every intermediate allow (an EKU extension
 * absent or listing anyExtendedKeyUsage allows every purpose). The trust anchor's own extensions, as in
 * RFC 5280, are not constraints.
 */
import { webcrypto, type X509Certificate } from 'node:crypto';
import type * as Pkijs from 'pkijs';
import {
  OID_ANY_EKU,
  OID_BASIC_CONSTRAINTS,
  OID_CLIENT_AUTH,
  OID_COMMON_NAME,
  OID_EXT_KEY_USAGE,
  OID_NAME_CONSTRAINTS,
  OID_SERVER_AUTH,
  OID_SUBJECT_ALT_NAME,
} from './peer-cert-fields.js';
import { directDnsNames, EKU_REFUSAL, verifyDirectlyIssued } from './peer-chain-direct.js';

/** Longest path (leaf and anchor included) that is validated. */
export const MAX_PEER_CHAIN_LENGTH = 8;

/** GeneralName tag of a dNSName (RFC 5280 §4.2.1.6). */
const GENERAL_NAME_DNS = 2;

interface FullValidation {
  pkijs: typeof Pkijs;
  engine: Pkijs.CryptoEngine;
}
let fullValidation: Promise<FullValidation> | undefined;

/** PKI.js and its crypto engine, imported the first time a path needs them. */
function loadFullValidation(): Promise<FullValidation> {
  fullValidation ??= import('pkijs').then((pkijs) => ({
    pkijs,
    engine: new pkijs.CryptoEngine({
      name: 'node',
      crypto: webcrypto as unknown as ConstructorParameters<typeof pkijs.CryptoEngine>[0]['crypto'],
    }),
  }));
  return fullValidation;
}

/** The outcome of {@link verifyCertificateChain}. */
export type ChainResult =
  | {
      ok: true;
      /** True when a certificate of the path carries name constraints. */
      nameConstrained: boolean;
    }
  | { ok: false; reason: string };

function toPkijs(pkijs: typeof Pkijs, cert: X509Certificate): Pkijs.Certificate {
  return pkijs.Certificate.fromBER(new Uint8Array(cert.raw));
}

function extension(cert: Pkijs.Certificate, oid: string): Pkijs.Extension | undefined {
  return cert.extensions?.find((e) => e.extnID === oid);
}

function isSelfIssued(cert: Pkijs.Certificate): boolean {
  return cert.issuer.isEqual(cert.subject);
}

/** Options of {@link verifyCertificateChain} and {@link certificateDnsNames}. */
export interface ChainOptions {
  /** `false` sends every certificate to PKI.js (tests compare the two paths). Default: `true`. */
  direct?: boolean;
}

/** Which validation decided: the direct path (`peer-chain-direct.ts`) or PKI.js's chain engine. */
export type ChainPath = 'direct' | 'full';

/**
 * Verifies that `leaf` chains to one of `anchors` through `intermediates` (in any order), at `now`, as
 * RFC 5280 §6 says (see the module comment for what is checked and by whom). A leaf that is itself one of
 * the anchors is accepted while valid. Revocation is not checked. Never throws.
 */
export async function verifyCertificateChain(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: Date = new Date(),
  options: ChainOptions = {},
): Promise<ChainResult> {
  return (await checkCertificateChain(leaf, intermediates, anchors, now, options)).result;
}

/**
 * {@link verifyCertificateChain}, also saying which validation decided (`path` is absent when the
 * certificate was settled before either: out of its validity period, a trust anchor itself, a chain too
 * long, no trusted CA of its issuer's name).
 */
export async function checkCertificateChain(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: Date = new Date(),
  options: ChainOptions = {},
): Promise<{ result: ChainResult; path?: ChainPath }> {
  const early = settleEarly(leaf, intermediates, anchors, now);
  if (!Array.isArray(early)) return { result: early };
  const direct = options.direct === false ? undefined : verifyDirectlyIssued(leaf, intermediates, early, now);
  if (direct !== undefined) return { result: direct, path: 'direct' };
  return { result: await verifyFull(leaf, intermediates, early, now), path: 'full' };
}

/**
 * What is settled before either validation (a refusal, or a leaf that is a trust anchor), or else the
 * trusted CAs that could issue a certificate of the chain (the engine compares every pair: only those).
 */
function settleEarly(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: Date,
): ChainResult | X509Certificate[] {
  const t = now.getTime();
  if (t < Date.parse(leaf.validFrom) || t > Date.parse(leaf.validTo)) {
    return { ok: false, reason: 'certificate expired or not yet valid' };
  }
  if (anchors.some((a) => a.fingerprint256 === leaf.fingerprint256))
    return { ok: true, nameConstrained: false };
  if (intermediates.length > MAX_PEER_CHAIN_LENGTH - 2)
    return { ok: false, reason: 'certificate chain too long' };
  const issuers = new Set([leaf, ...intermediates].map((c) => c.issuer));
  const candidates = anchors.filter((a) => issuers.has(a.subject));
  if (candidates.length === 0) {
    return {
      ok: false,
      reason: leaf.checkIssued(leaf) ? 'self-signed certificate' : 'untrusted certificate chain',
    };
  }
  return candidates;
}

/** PKI.js's chain engine on `candidates`, then the path length and extended key usage checks. */
async function verifyFull(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  candidates: readonly X509Certificate[],
  now: Date,
): Promise<ChainResult> {
  let path: Pkijs.Certificate[];
  try {
    const { pkijs, engine: cryptoEngine } = await loadFullValidation();
    const parse = (c: X509Certificate) => toPkijs(pkijs, c);
    const engine = new pkijs.CertificateChainValidationEngine({
      trustedCerts: candidates.map(parse),
      // The engine takes the last certificate as the one to validate.
      certs: [...intermediates.filter((c) => c.fingerprint256 !== leaf.fingerprint256), leaf].map(parse),
      checkDate: now,
    });
    const result = await engine.verify({}, cryptoEngine);
    if (!result.result || result.certificatePath === undefined) {
      return { ok: false, reason: `untrusted certificate chain: ${result.resultMessage}` };
    }
    path = result.certificatePath;
  } catch (err) {
    return { ok: false, reason: `untrusted certificate chain: ${(err as Error).message ?? String(err)}` };
  }
  if (path.length > MAX_PEER_CHAIN_LENGTH) return { ok: false, reason: 'certificate chain too long' };
  const pathLen = checkPathLength(path);
  if (pathLen !== undefined) return { ok: false, reason: pathLen };
  if (!hasCommonTlsPurpose(path.slice(0, -1))) return { ok: false, reason: EKU_REFUSAL };
  return { ok: true, nameConstrained: path.some((c) => extension(c, OID_NAME_CONSTRAINTS) !== undefined) };
}

/**
 * RFC 5280 §4.2.1.9: a CA's `pathLenConstraint` is the most non-self-issued intermediate certificates that
 * may follow it in a path. `path` runs from the leaf (index 0) to the anchor. Returns a reason, or
 * `undefined` when every constraint holds. (Checked on the anchor too, as OpenSSL does.)
 */
function checkPathLength(path: readonly Pkijs.Certificate[]): string | undefined {
  let below = 0; // non-self-issued intermediates between the leaf and the certificate at `i`
  for (let i = 1; i < path.length; i++) {
    const cert = path[i]!;
    const bc = extension(cert, OID_BASIC_CONSTRAINTS)?.parsedValue as Pkijs.BasicConstraints | undefined;
    const limit = bc?.pathLenConstraint;
    if (typeof limit === 'number' && below > limit) {
      return `certificate chain too long for its CA (pathLenConstraint ${limit})`;
    }
    if (!isSelfIssued(cert)) below++;
  }
  return undefined;
}

/** True when serverAuth or clientAuth is allowed by every certificate of `certs` (leaf and intermediates). */
function hasCommonTlsPurpose(certs: readonly Pkijs.Certificate[]): boolean {
  let allowed = [OID_SERVER_AUTH, OID_CLIENT_AUTH];
  for (const cert of certs) {
    const eku = extension(cert, OID_EXT_KEY_USAGE)?.parsedValue as Pkijs.ExtKeyUsage | undefined;
    if (eku === undefined || eku.keyPurposes.includes(OID_ANY_EKU)) continue;
    allowed = allowed.filter((p) => eku.keyPurposes.includes(p));
  }
  return allowed.length > 0;
}

/**
 * The DNS names of a certificate's subjectAltName, lower-case, read from its DER encoding (IP addresses
 * and other name types never count). When it has none, its subject CN (last one), as RFC 6125 allowed;
 * `includeCn: false` leaves the CN out. A subjectAltName with other name types than DNS and IP is read
 * with PKI.js.
 */
export async function certificateDnsNames(
  cert: X509Certificate,
  includeCn = true,
  options: ChainOptions = {},
): Promise<string[]> {
  const direct = options.direct === false ? undefined : directDnsNames(cert, includeCn);
  if (direct !== undefined) return direct;
  const { pkijs } = await loadFullValidation();
  let parsed: Pkijs.Certificate;
  try {
    parsed = toPkijs(pkijs, cert);
  } catch {
    return [];
  }
  const san = extension(parsed, OID_SUBJECT_ALT_NAME)?.parsedValue as Pkijs.AltName | undefined;
  const dns = (san?.altNames ?? [])
    .filter((n) => n.type === GENERAL_NAME_DNS && typeof n.value === 'string')
    .map((n) => (n.value as string).toLowerCase());
  if (dns.length > 0 || !includeCn) return dns;
  const cns = parsed.subject.typesAndValues.filter((tv) => tv.type === OID_COMMON_NAME);
  const cn = cns[cns.length - 1]?.value.valueBlock.value;
  return typeof cn === 'string' && cn !== '' ? [cn.toLowerCase()] : [];
}
