/**
 * Writes everything the example needs into certs/ (run once; `--force` starts over):
 *
 * - ca.pem, ca-key.pem        the mesh operator's CA (createCertificateAuthority). Every node trusts it
 *                             for peers (peerAuthentication.caFile) and the backend trusts it for hubs.
 * - node-{a,b,c}.pem / -key   each node's hub certificate, `<name>.mesh.localhost` + IP 127.0.0.1, signed
 *                             by that CA with the serverAuth usage only — exactly what ACME issues. The
 *                             node serves it on its hub and peer ports and presents it when it dials a peer.
 * - app.pem, app-key.pem      the device's own certificate for app.localhost, self-signed; only the device
 *                             and the end user ever see it (the nodes relay ciphertext).
 * - backend.jwt               the backend's token for app.localhost, signed with node-c.yaml's secret.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createCertificateAuthority,
  createSelfSignedCertificate,
  issueCertificate,
  loadConfig,
  mintBackendToken,
} from '@nexus-proxy/core';
import { here } from './ports.mjs';

export const CERTS_DIR = join(here, 'certs');
/** The hostname the device serves. */
export const APP_HOSTNAME = 'app.localhost';
export const NODES = ['a', 'b', 'c'];

const FILES = [
  'ca.pem',
  ...NODES.flatMap((n) => [`node-${n}.pem`, `node-${n}-key.pem`]),
  'app.pem',
  'app-key.pem',
  'backend.jwt',
];

/** Generates the files unless they all exist (or `force`). Returns true when it wrote them. */
export async function generateCerts({ force = false } = {}) {
  if (!force && FILES.every((f) => existsSync(join(CERTS_DIR, f)))) return false;
  mkdirSync(CERTS_DIR, { recursive: true });
  const write = (name, text) => writeFileSync(join(CERTS_DIR, name), text, { mode: 0o600 });

  const ca = await createCertificateAuthority({ commonName: 'Nexus mesh example CA' });
  write('ca.pem', ca.certPem);
  write('ca-key.pem', ca.keyPem);

  for (const n of NODES) {
    const cert = await issueCertificate(ca, {
      dnsNames: [`${n}.mesh.localhost`],
      ipAddresses: ['127.0.0.1'],
      serverAuth: true,
      clientAuth: false,
    });
    write(`node-${n}.pem`, cert.certPem);
    write(`node-${n}-key.pem`, cert.keyPem);
  }

  const app = await createSelfSignedCertificate({ dnsNames: [APP_HOSTNAME] });
  write('app.pem', app.certPem);
  write('app-key.pem', app.keyPem);

  const config = await loadConfig(join(here, 'node-c.yaml'));
  const token = await mintBackendToken({ secret: config.backendsJWTSecrets[0], hostnames: [APP_HOSTNAME] });
  write('backend.jwt', `${token}\n`);
  return true;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const wrote = await generateCerts({ force: process.argv.includes('--force') });
  console.log(
    wrote ? `wrote ${FILES.join(', ')} to ${CERTS_DIR}` : `${CERTS_DIR} is complete (--force to redo)`,
  );
}
