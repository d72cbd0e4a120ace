/** Certificates for tests: one test CA, the hub's certificate, service leaves and mesh node certificates. */
import { type CertificateAndKey, createCertificateAuthority, issueCertificate } from '@nexus-proxy/core';

/** Domain suffix of mesh node names (`<name>.mesh.example.com`), trusted by mesh harness nodes. */
export const MESH_SUFFIX = '.mesh.example.com';

/** A test CA, the hub's certificate (127.0.0.1 + `hub.test`), and leaves signed by the CA. */
export interface TestPki {
  ca: CertificateAndKey;
  hub: CertificateAndKey;
  /** Issues a certificate for `dnsNames` (and `ipAddresses`), signed by the test CA. */
  issue(dnsNames: string[], ipAddresses?: string[]): Promise<CertificateAndKey>;
  /**
   * A mesh node certificate like ACME issues: serverAuth only, DNS `<name>.mesh.example.com`, IP
   * 127.0.0.1 (it is also the node's hub certificate).
   */
  nodeCert(name: string): Promise<CertificateAndKey>;
}

/** Makes a fresh CA and hub certificate (ECDSA P-256, ~50 ms). */
export async function createTestPki(commonName = 'Nexus Test CA'): Promise<TestPki> {
  const ca = await createCertificateAuthority({ commonName });
  const hub = await issueCertificate(ca, { dnsNames: ['hub.test'], ipAddresses: ['127.0.0.1'] });
  return {
    ca,
    hub,
    issue: (dnsNames, ipAddresses) =>
      issueCertificate(ca, { dnsNames, ...(ipAddresses !== undefined ? { ipAddresses } : {}) }),
    nodeCert: (name) =>
      issueCertificate(ca, {
        dnsNames: [`${name}${MESH_SUFFIX}`],
        ipAddresses: ['127.0.0.1'],
        serverAuth: true,
        clientAuth: false,
      }),
  };
}
