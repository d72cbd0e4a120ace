/**
 * Peer certificate checks for the mesh listener (docs/protocol.md §2.1): the client certificate chain must
 * lead to a trusted CA and one of its DNS names must end with a trusted domain suffix at a label boundary.
 *
 * Why the chain is verified here and not only by OpenSSL: OpenSSL verifies a TLS *client* certificate for
 * the `sslclient` purpose and flags a certificate whose extended key usage lists only serverAuth (every
 * ACME certificate) as `INVALID_PURPOSE`. docs/protocol.md §2.1 requires accepting those. Node reports a
 * single `authorizationError`, which for a self-signed serverAuth-only certificate is also
 * `INVALID_PURPOSE` (the earlier "self signed" error is overwritten), so the OpenSSL verdict cannot be
 * refined after the fact. The listener therefore asks for the certificate without rejecting it in the
 * handshake (`requestCert: true, rejectUnauthorized: false`) and {@link PeerAuthenticator} decides alone.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { rootCertificates } from 'node:tls';
import { InvalidConfigError, TlsError } from './errors.js';

/** Longest chain (leaf included) {@link verifyCertificateChain} follows. */
export const MAX_PEER_CHAIN_LENGTH = 8;

/** Extended key usage OIDs a peer certificate may carry (RFC 5280 §4.2.1.12). */
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const OID_ANY_EKU = '2.5.29.37.0';

/** Options of {@link PeerAuthenticator}. */
export interface PeerAuthenticatorOptions {
  /**
   * Accepted domain suffixes (`peerAuthentication.trustedDomainSuffixes`): `mesh.example.com` accepts
   * `mesh.example.com` itself and every name below it, never `evilmesh.example.com`. A leading `.` (or
   * `*.`) is allowed and ignored, as in the configuration file. Required, at least one, each with a dot.
   */
  trustedDomainSuffixes: readonly string[];
  /** Extra trusted CA certificates, PEM (one string may hold several), e.g. `peerAuthentication.caFile`. */
  ca?: string | readonly string[];
  /** Also trust Node's bundled root CAs (`tls.rootCertificates`). Default: `true`. */
  systemCa?: boolean;
  /** Clock for validity checks. Default: `() => new Date()`. */
  now?: () => Date;
}

/** Result of {@link PeerAuthenticator.verify}. */
export type PeerAuthResult =
  | {
      ok: true;
      /** The certificate name that matched a trusted suffix. */
      name: string;
      /** Every DNS name of the certificate (or its CN when it has none). */
      names: string[];
      /** SHA-256 fingerprint of the leaf. */
      fingerprint256: string;
    }
  | {
      ok: false;
      /** Why, short and safe to log. */
      reason: string;
    };

/**
 * Normalises one configured suffix: trimmed, lower-case, a leading `.` or `*.` and one trailing dot
 * dropped. Returns `undefined` for an empty or malformed suffix, and for a single label (`.com` would
 * trust every certificate under a TLD).
 */
export function normalizeTrustedSuffix(suffix: string): string | undefined {
  let s = suffix.trim().toLowerCase();
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s.startsWith('*.')) s = s.slice(2);
  else if (s.startsWith('.')) s = s.slice(1);
  if (s === '' || !s.includes('.') || s.startsWith('.') || s.includes('..') || /[^a-z0-9._-]/.test(s)) {
    return undefined;
  }
  return s;
}

/**
 * True when `name` is one of `suffixes` or ends with `.` + one of them: the match is at a label boundary
 * (docs/protocol.md §2.1), so `mesh.example.com` matches `mesh.example.com` and `a.mesh.example.com` but not
 * `evilmesh.example.com`. `suffixes` must be normalised ({@link normalizeTrustedSuffix}); `name` is
 * compared case-insensitively, without a trailing dot.
 */
export function matchesTrustedSuffix(name: string, suffixes: readonly string[]): boolean {
  let n = name.trim().toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n === '') return false;
  for (const suffix of suffixes) {
    if (n === suffix) return true;
    const boundary = n.length - suffix.length - 1;
    if (boundary > 0 && n.endsWith(suffix) && n[boundary] === '.') return true;
  }
  return false;
}

/**
 * The names a peer certificate is checked by: its DNS subjectAltNames, or its subject CN when it has no
 * DNS name (docs/protocol.md §2.1). IP addresses never count.
 */
export function certificateNames(cert: X509Certificate): string[] {
  const dns: string[] = [];
  const san = cert.subjectAltName;
  if (san !== undefined) {
    // Node prints `DNS:a, DNS:b, IP Address:…`; quoted entries (with commas) are not DNS names we accept.
    for (const entry of san.split(', ')) {
      if (entry.startsWith('DNS:')) dns.push(entry.slice(4).toLowerCase());
    }
  }
  if (dns.length > 0) return dns;
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  return cn === undefined || cn === '' ? [] : [cn.toLowerCase()];
}

/**
 * Verifies that `leaf` chains to one of `anchors` through `intermediates` (in any order): every link is
 * signed by the next (`checkIssued` + signature), every issuer below the anchor is a CA, and every
 * certificate is valid at `now`. A leaf that is itself one of the anchors is accepted. Revocation and
 * name constraints are not checked.
 */
export function verifyCertificateChain(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: Date = new Date(),
): { ok: true } | { ok: false; reason: string } {
  if (!isValidAt(leaf, now)) return { ok: false, reason: 'certificate expired or not yet valid' };
  if (anchors.some((a) => a.fingerprint256 === leaf.fingerprint256)) return { ok: true };
  let current = leaf;
  for (let depth = 0; depth < MAX_PEER_CHAIN_LENGTH; depth++) {
    for (const anchor of anchors) {
      if (issuedBy(current, anchor) && isValidAt(anchor, now)) return { ok: true };
    }
    const next = intermediates.find(
      (c) => c.ca && c.fingerprint256 !== current.fingerprint256 && issuedBy(current, c) && isValidAt(c, now),
    );
    if (next === undefined) {
      return {
        ok: false,
        reason:
          current === leaf && issuedBy(leaf, leaf)
            ? 'self-signed certificate'
            : 'untrusted certificate chain',
      };
    }
    current = next;
  }
  return { ok: false, reason: 'certificate chain too long' };
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function isValidAt(cert: X509Certificate, now: Date): boolean {
  const t = now.getTime();
  return t >= Date.parse(cert.validFrom) && t <= Date.parse(cert.validTo);
}

/** True when the certificate may authenticate a TLS peer: no EKU, or serverAuth, clientAuth or any. */
function usableForTls(cert: X509Certificate): boolean {
  const eku = cert.keyUsage;
  if (eku === undefined || eku.length === 0) return true;
  return eku.includes(OID_SERVER_AUTH) || eku.includes(OID_CLIENT_AUTH) || eku.includes(OID_ANY_EKU);
}

/** Splits a PEM bundle into certificates. Throws `TlsError` when one cannot be parsed. */
export function parsePemBundle(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch (cause) {
      throw new TlsError('a trusted CA is not a valid PEM certificate', { cause });
    }
  });
}

/** Reads a CA bundle file (`peerAuthentication.caFile`). Throws `TlsError` when unreadable or empty. */
export async function readPeerCaFile(path: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (cause) {
    throw new TlsError(`cannot read peer CA file: ${(cause as Error).message}`, { cause });
  }
  if (parsePemBundle(pem).length === 0) throw new TlsError('peer CA file holds no PEM certificate');
  return pem;
}

let systemAnchors: X509Certificate[] | undefined;

/**
 * Decides whether a TLS peer may join the mesh (docs/protocol.md §2.1). Construct once; `verify()` is
 * synchronous and cheap enough to run on every upgrade.
 */
export class PeerAuthenticator {
  readonly #suffixes: string[];
  readonly #anchors: X509Certificate[];
  readonly #extraCaPem: string[];
  readonly #systemCa: boolean;
  readonly #now: () => Date;

  /** Throws `InvalidConfigError` for a missing or malformed suffix, `TlsError` for an unreadable CA. */
  constructor(options: PeerAuthenticatorOptions) {
    const raw = options.trustedDomainSuffixes;
    if (!Array.isArray(raw) || raw.length === 0) {
      throw new InvalidConfigError(
        'peerAuthentication.trustedDomainSuffixes',
        'must list at least one suffix',
      );
    }
    this.#suffixes = raw.map((s, i) => {
      const normalized = typeof s === 'string' ? normalizeTrustedSuffix(s) : undefined;
      if (normalized === undefined) {
        throw new InvalidConfigError(
          `peerAuthentication.trustedDomainSuffixes[${i}]`,
          'must be a domain such as .mesh.example.com (a bare TLD is too broad)',
        );
      }
      return normalized;
    });
    const ca =
      options.ca === undefined ? [] : typeof options.ca === 'string' ? [options.ca] : [...options.ca];
    this.#extraCaPem = ca;
    this.#systemCa = options.systemCa ?? true;
    this.#now = options.now ?? (() => new Date());
    this.#anchors = ca.flatMap((pem) => parsePemBundle(pem));
    if (this.#systemCa) {
      systemAnchors ??= rootCertificates.flatMap((pem) => {
        try {
          return [new X509Certificate(pem)];
        } catch {
          return [];
        }
      });
      this.#anchors.push(...systemAnchors);
    }
  }

  /** The normalised suffixes. */
  get trustedDomainSuffixes(): readonly string[] {
    return this.#suffixes;
  }

  /**
   * Trusted CAs as PEM strings, for `ca` of a TLS client (the dialer verifies listeners against the same
   * set) or a server; `undefined` when only the system CAs are trusted (Node's default).
   */
  caPem(): string[] | undefined {
    if (this.#extraCaPem.length === 0) return undefined;
    return this.#systemCa ? [...rootCertificates, ...this.#extraCaPem] : [...this.#extraCaPem];
  }

  /** Verifies a certificate and its presented chain. */
  verifyCertificate(leaf: X509Certificate, chain: readonly X509Certificate[] = []): PeerAuthResult {
    if (!usableForTls(leaf))
      return { ok: false, reason: 'certificate not usable for TLS (extended key usage)' };
    const chainResult = verifyCertificateChain(leaf, chain, this.#anchors, this.#now());
    if (!chainResult.ok) return chainResult;
    const names = certificateNames(leaf);
    const name = names.find((n) => matchesTrustedSuffix(n, this.#suffixes));
    if (name === undefined) {
      return {
        ok: false,
        reason: `certificate names ${JSON.stringify(names)} match no trusted domain suffix`,
      };
    }
    return { ok: true, name, names, fingerprint256: leaf.fingerprint256 };
  }

  /** Verifies the client certificate of an accepted TLS connection (or a dialled server's certificate). */
  verify(socket: TLSSocket): PeerAuthResult {
    let leaf: X509Certificate | undefined;
    try {
      leaf = socket.getPeerX509Certificate();
    } catch {
      leaf = undefined;
    }
    if (leaf === undefined) return { ok: false, reason: 'no client certificate' };
    return this.verifyCertificate(leaf, presentedChain(socket));
  }
}

/** The issuers Node knows for the peer's certificate (sent by the peer or found in the trust store). */
function presentedChain(socket: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  let cert: PeerCertificate | undefined;
  try {
    cert = socket.getPeerCertificate(true);
  } catch {
    return out;
  }
  const seen = new Set<string>();
  let issuer = (cert as { issuerCertificate?: PeerCertificate } | undefined)?.issuerCertificate;
  while (issuer !== undefined && issuer.raw !== undefined && out.length < MAX_PEER_CHAIN_LENGTH) {
    if (seen.has(issuer.fingerprint256)) break;
    seen.add(issuer.fingerprint256);
    try {
      out.push(new X509Certificate(issuer.raw));
    } catch {
      break;
    }
    issuer = (issuer as { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return out;
}
