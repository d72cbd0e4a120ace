/**
 * A stand-in edge for running the device alone: a Nexus node on loopback with a self-signed hub
 * certificate and a token for the device. With a real node (`nexus-proxy serve`, or your own), set
 * NEXUS_NODE / NEXUS_TOKEN / NEXUS_CA instead and this file is not used.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNexus, createSelfSignedCertificate, mintBackendToken } from '@nexus-proxy/core';

/** Starts a node whose relay ports are `ports.tls` / `ports.http` and hub `ports.hub` (0 = any free port). */
export async function startEdge({ ports, hostnames, logger }) {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-edge-'));
  const cert = await createSelfSignedCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  writeFileSync(join(dir, 'hub.pem'), cert.certPem);
  writeFileSync(join(dir, 'hub-key.pem'), cert.keyPem, { mode: 0o600 });
  const secret = 'example-only-secret-change-me-0123456789abcdef';
  const nexus = createNexus(
    {
      backendListenAddress: `127.0.0.1:${ports.hub}`,
      listeners: [
        { port: ports.tls, mode: 'tls', host: '127.0.0.1' },
        { port: ports.http, mode: 'http', host: '127.0.0.1' },
      ],
      backendsJWTSecret: secret,
      hubTlsCertFile: join(dir, 'hub.pem'),
      hubTlsKeyFile: join(dir, 'hub-key.pem'),
    },
    { logger },
  );
  const addresses = await nexus.listen();
  return {
    nexus,
    hubUrl: `wss://127.0.0.1:${addresses.hub.port}/connect`,
    hubCa: cert.certPem,
    token: await mintBackendToken({ secret, hostnames }),
    relayPorts: {
      tls: addresses.listeners.find((l) => l.mode === 'tls').address.port,
      http: addresses.listeners.find((l) => l.mode === 'http').address.port,
    },
    async close() {
      await nexus.close({ graceMs: 1_000 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
