/**
 * Where the mesh's trust anchors come from, the way operators expect a TLS client to trust: Node's bundled
 * roots, the operating system's trust store, `NODE_EXTRA_CA_CERTS`, and `peerAuthentication.caFile`.
 *
 * The OS store: `tls.getCACertificates('system')` where Node has it (22.15 and later); on older Node the
 * first readable bundle among `SSL_CERT_FILE` and the usual distribution locations (the list Go's
 * crypto/x509 uses on Linux and the BSDs). `NODE_EXTRA_CA_CERTS`: `tls.getCACertificates('extra')` where
 * Node has it, else the file it names, read when the trust is built.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { unreadableFileDetail } from '@nexus-proxy/common';
import * as tls from 'node:tls';
import { TlsError } from './errors.js';

/** CA bundle files looked for, in order, when Node cannot list the OS trust store itself. */
export const SYSTEM_CA_BUNDLE_FILES: readonly string[] = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Gentoo, Arch
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL 6
  '/etc/ssl/ca-bundle.pem', // openSUSE
  '/etc/pki/tls/cacert.pem', // OpenELEC
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', // CentOS, RHEL 7
  '/etc/ssl/cert.pem', // Alpine, macOS, the BSDs
];

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

/**
 * Reads a CA bundle file (`peerAuthentication.caFile`). Throws `TlsError` when unreadable or empty; with
 * `key`, the message names that configuration key and the fix.
 */
export async function readPeerCaFile(path: string, key?: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (cause) {
    const detail = unreadableFileDetail(path, cause);
    throw new TlsError(key === undefined ? `peer CA file: ${detail}` : `${key} ${detail}`, { cause });
  }
  if (parsePemBundle(pem).length === 0) {
    throw new TlsError(`${key ?? 'peer CA file'} ${path} holds no PEM certificate`);
  }
  return pem;
}

type CaSource = 'system' | 'extra';
const getCACertificates = (tls as { getCACertificates?: (type: CaSource) => string[] }).getCACertificates;

function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function readPems(file: string | undefined): string[] | undefined {
  if (file === undefined || file === '') return undefined;
  try {
    return pemBlocks(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The OS trust store as PEM strings (empty when none is found). */
export function systemCaPems(env: NodeJS.ProcessEnv = process.env): string[] {
  if (typeof getCACertificates === 'function') {
    try {
      return getCACertificates('system');
    } catch {
      // fall through to the bundle files
    }
  }
  for (const file of [env.SSL_CERT_FILE, ...SYSTEM_CA_BUNDLE_FILES]) {
    const pems = readPems(file);
    if (pems !== undefined && pems.length > 0) return pems;
  }
  return [];
}

/** The certificates `NODE_EXTRA_CA_CERTS` names, as PEM strings (empty when unset or unreadable). */
export function extraCaPems(env: NodeJS.ProcessEnv = process.env): string[] {
  if (typeof getCACertificates === 'function' && env === process.env) {
    try {
      return getCACertificates('extra');
    } catch {
      // fall through to the file
    }
  }
  return readPems(env.NODE_EXTRA_CA_CERTS) ?? [];
}

/** A set of trust anchors, parsed once, without duplicates. */
export interface TrustAnchors {
  certificates: X509Certificate[];
  /** The same, as PEM, for the `ca` option of a TLS client or server. */
  pems: string[];
}

let defaultAnchors: TrustAnchors | undefined;

/**
 * Node's roots, the OS store and `NODE_EXTRA_CA_CERTS`, parsed once per process (unparseable entries are
 * skipped: a system bundle is not ours to refuse).
 */
export function defaultTrustAnchors(): TrustAnchors {
  defaultAnchors ??= buildAnchors([...tls.rootCertificates, ...systemCaPems(), ...extraCaPems()], true);
  return defaultAnchors;
}

/** Anchors from `pems` (deduplicated by fingerprint). `lenient` skips what cannot be parsed. */
export function buildAnchors(pems: readonly string[], lenient = false): TrustAnchors {
  const seen = new Set<string>();
  const out: TrustAnchors = { certificates: [], pems: [] };
  for (const pem of pems) {
    for (const block of pemBlocks(pem)) {
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(block);
      } catch (cause) {
        if (lenient) continue;
        throw new TlsError('a trusted CA is not a valid PEM certificate', { cause });
      }
      if (seen.has(cert.fingerprint256)) continue;
      seen.add(cert.fingerprint256);
      out.certificates.push(cert);
      out.pems.push(block);
    }
  }
  return out;
}
