/**
 * Peer certificate checks for the mesh listener (docs/protocol.md §2.1): the client certificate chain must
 * lead to a trusted CA (RFC 5280 path validation, `peer-chain.ts`) and one of its DNS names must end with a
 * trusted domain suffix at a label boundary.
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
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { InvalidConfigError } from './errors.js';
import {
  type ChainPath,
  certificateDnsNames,
  checkCertificateChain,
  MAX_PEER_CHAIN_LENGTH,
} from './peer-chain.js';
import { buildAnchors, defaultTrustAnchors, type TrustAnchors } from './peer-trust.js';

export { type ChainPath, MAX_PEER_CHAIN_LENGTH, verifyCertificateChain } from './peer-chain.js';
export { parsePemBundle, readPeerCaFile } from './peer-trust.js';

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
  /**
   * Also trust what a TLS client trusts: Node's bundled roots, the operating system's trust store and
   * `NODE_EXTRA_CA_CERTS` (see `peer-trust.ts`). Default: `true`.
   */
  systemCa?: boolean;
  /** Clock for validity checks. Default: `() => new Date()`. */
  now?: () => Date;
}

/** Result of {@link PeerAuthenticator.verify}. */
export type PeerAuthResult = (
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
    }
) & {
  /**
   * Which validation of the chain decided: `direct` (a leaf issued directly by a trusted CA, checked
   * without PKI.js) or `full` (PKI.js's chain engine); absent when settled before either (no certificate,
   * out of its validity period, no trusted CA of its issuer's name).
   */
  checkedBy?: ChainPath;
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
 * DNS name (docs/protocol.md §2.1). IP addresses never count. Read from the certificate's DER encoding.
 */
export function certificateNames(cert: X509Certificate): Promise<string[]> {
  return certificateDnsNames(cert);
}

/**
 * Decides whether a TLS peer may join the mesh (docs/protocol.md §2.1). Construct once (the trust stores are
 * read then); `verify()` runs on every upgrade.
 */
export class PeerAuthenticator {
  readonly #suffixes: string[];
  readonly #anchors: TrustAnchors;
  readonly #hasExtraCa: boolean;
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
    const own = buildAnchors(ca);
    this.#hasExtraCa = own.certificates.length > 0;
    this.#now = options.now ?? (() => new Date());
    this.#anchors =
      (options.systemCa ?? true) ? buildAnchors([...defaultTrustAnchors().pems, ...own.pems]) : own;
  }

  /** The normalised suffixes. */
  get trustedDomainSuffixes(): readonly string[] {
    return this.#suffixes;
  }

  /**
   * Trusted CAs as PEM strings, for `ca` of a TLS client (the dialer verifies listeners against the same
   * set) or a server: Node's roots, the OS store, `NODE_EXTRA_CA_CERTS` and `ca`, as configured.
   * `undefined` when nothing is trusted at all (`systemCa: false` and no `ca`).
   */
  caPem(): string[] | undefined {
    if (this.#anchors.pems.length === 0 && !this.#hasExtraCa) return undefined;
    return [...this.#anchors.pems];
  }

  /** Verifies a certificate and the chain the peer presented with it. */
  async verifyCertificate(
    leaf: X509Certificate,
    chain: readonly X509Certificate[] = [],
  ): Promise<PeerAuthResult> {
    const { result: chainResult, path } = await checkCertificateChain(
      leaf,
      chain,
      this.#anchors.certificates,
      this.#now(),
    );
    const checkedBy = path === undefined ? {} : { checkedBy: path };
    if (!chainResult.ok) return { ...chainResult, ...checkedBy };
    // Name constraints bind subjectAltNames, not a CN: under a constrained CA only SAN names count.
    const names = await certificateDnsNames(leaf, !chainResult.nameConstrained);
    const name = names.find((n) => matchesTrustedSuffix(n, this.#suffixes));
    if (name === undefined) {
      return {
        ok: false,
        reason: `certificate names ${JSON.stringify(names)} match no trusted domain suffix`,
        ...checkedBy,
      };
    }
    return { ok: true, name, names, fingerprint256: leaf.fingerprint256, ...checkedBy };
  }

  /** Verifies the client certificate of an accepted TLS connection (or a dialled server's certificate). */
  verify(socket: TLSSocket): Promise<PeerAuthResult> {
    const presented = presentedChain(socket);
    if (presented === undefined) return Promise.resolve({ ok: false, reason: 'no client certificate' });
    return this.verifyCertificate(presented.leaf, presented.chain);
  }
}

/**
 * The peer's certificate and the issuers Node knows for it (sent by the peer). Asked with
 * `getPeerCertificate(true)` alone: on Node 20 a `getPeerX509Certificate()` call before it leaves the
 * detailed certificate without its issuer chain, and every intermediate-issued certificate was refused.
 */
function presentedChain(socket: TLSSocket): { leaf: X509Certificate; chain: X509Certificate[] } | undefined {
  let cert: PeerCertificate | undefined;
  try {
    cert = socket.getPeerCertificate(true);
  } catch {
    return undefined;
  }
  if (cert?.raw === undefined) return undefined;
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert.raw);
  } catch {
    return undefined;
  }
  const chain: X509Certificate[] = [];
  const seen = new Set<string>([leaf.fingerprint256]);
  let issuer = (cert as { issuerCertificate?: PeerCertificate }).issuerCertificate;
  while (issuer?.raw !== undefined && chain.length < MAX_PEER_CHAIN_LENGTH) {
    let next: X509Certificate;
    try {
      next = new X509Certificate(issuer.raw);
    } catch {
      break;
    }
    if (seen.has(next.fingerprint256)) break; // a self-signed root points at itself
    seen.add(next.fingerprint256);
    chain.push(next);
    issuer = (issuer as { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return { leaf, chain };
}
