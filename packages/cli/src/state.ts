/**
 * The embedded default's state directory: a random backend secret and a self-signed hub certificate,
 * generated on first run and reused afterwards, so a node started without a config file keeps accepting
 * the tokens it printed before.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createSelfSignedCertificate } from '@nexus-proxy/core';

/** Default state directory, relative to the working directory. */
export const DEFAULT_STATE_DIR = '.nexus';

/** Files of the state directory. */
export interface NodeState {
  /** Absolute path of the directory. */
  dir: string;
  /** Backend JWT secret (hex, 256 bits). */
  secret: string;
  /** Self-signed hub certificate (PEM file path); backends pin it with `--ca`. */
  certFile: string;
  /** Its private key (PEM file path, mode 0600). */
  keyFile: string;
}

/** Loads the state directory, creating the secret and certificate if they are missing. */
export async function ensureNodeState(dir: string = DEFAULT_STATE_DIR): Promise<NodeState> {
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true, mode: 0o700 });
  const secretFile = join(abs, 'backend-secret');
  const certFile = join(abs, 'hub-cert.pem');
  const keyFile = join(abs, 'hub-key.pem');
  if (!existsSync(secretFile)) {
    writeFileSync(secretFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  }
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    const cert = await createSelfSignedCertificate({
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
      commonName: 'nexus-proxy local hub',
    });
    writeFileSync(keyFile, cert.keyPem, { mode: 0o600 });
    chmodSync(keyFile, 0o600);
    writeFileSync(certFile, cert.certPem);
  }
  return { dir: abs, secret: readFileSync(secretFile, 'utf8').trim(), certFile, keyFile };
}
