/**
 * Writes everything the example needs into certs/ (run once; `--force` starts over):
 *
 * - ca.pem, ca-key.pem    the node operator's CA (createCertificateAuthority)
 * - hub.pem, hub-key.pem  the hub's certificate for 127.0.0.1 / localhost, signed by that CA
 *                         (issueCertificate); the backend trusts ca.pem (client.yaml caFile)
 * - app.pem, app-key.pem  the device's own certificate for app.localhost, self-signed
 *                         (createSelfSignedCertificate); only the device and the end user ever see it
 * - backend.jwt           the backend's token for app.localhost, signed with node.yaml's secret
 *                         (same as: npx nexus-proxy token -c node.yaml --hostname app.localhost)
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

const FILES = ['ca.pem', 'hub.pem', 'hub-key.pem', 'app.pem', 'app-key.pem', 'backend.jwt'];

/** Generates the files unless they all exist (or `force`). Returns true when it wrote them. */
export async function generateCerts({ force = false } = {}) {
  if (!force && FILES.every((f) => existsSync(join(CERTS_DIR, f)))) return false;
  mkdirSync(CERTS_DIR, { recursive: true });
  const write = (name, text) => writeFileSync(join(CERTS_DIR, name), text, { mode: 0o600 });

  const ca = await createCertificateAuthority({ commonName: 'Nexus example CA' });
  write('ca.pem', ca.certPem);
  write('ca-key.pem', ca.keyPem);

  const hub = await issueCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
  write('hub.pem', hub.certPem);
  write('hub-key.pem', hub.keyPem);

  const app = await createSelfSignedCertificate({ dnsNames: [APP_HOSTNAME] });
  write('app.pem', app.certPem);
  write('app-key.pem', app.keyPem);

  const config = await loadConfig(join(here, 'node.yaml'));
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
