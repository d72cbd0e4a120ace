/**
 * `nexus-proxy serve --demo`: a backend client and a small HTTPS + HTTP service for `demo.localhost`,
 * started in the node's own process, so a person can see passthrough work with two `curl` commands.
 * The HTTPS service has its own self-signed certificate: what curl sees is the service's certificate,
 * never the node's.
 */
import { writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { type AddressInfo, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { type BackendClient, createBackendClient } from '@nexus-proxy/backend-client';
import { createSelfSignedCertificate, type Logger, mintBackendToken } from '@nexus-proxy/core';

/** Hostname served by the demo backend. */
export const DEMO_HOSTNAME = 'demo.localhost';

export interface DemoOptions {
  /** State directory (the demo service's certificate is written there for `curl --cacert`). */
  stateDir: string;
  /** Hub URL, e.g. `wss://127.0.0.1:8444/connect`. */
  hubUrl: string;
  /** PEM of the hub certificate the backend client trusts. */
  hubCaPem: string;
  /** Node secret, to mint the demo backend's token. */
  secret: string;
  /** Relay ports of the node: the TLS one maps to the HTTPS service, the HTTP one to the HTTP service. */
  tlsPort: number;
  httpPort: number;
  logger: Logger;
}

export interface Demo {
  client: BackendClient;
  /** File with the demo service's certificate (trust it with `curl --cacert`). */
  serviceCaFile: string;
  close(): Promise<void>;
}

function page(
  kind: string,
  req: { method?: string; url?: string; headers: Record<string, unknown> },
): string {
  return `Hello from the Nexus demo backend over ${kind}!\n${req.method} ${req.url} (Host: ${String(req.headers.host)})\n`;
}

/** Starts the demo services and attaches a backend client for {@link DEMO_HOSTNAME} to the node. */
export async function startDemo(options: DemoOptions): Promise<Demo> {
  const cert = await createSelfSignedCertificate({ dnsNames: [DEMO_HOSTNAME], commonName: DEMO_HOSTNAME });
  const serviceCaFile = join(options.stateDir, 'demo-service-cert.pem');
  writeFileSync(serviceCaFile, cert.certPem);

  const https: HttpsServer = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    res.end(page('HTTPS (TLS end to end; the node never saw the plaintext)', req));
  });
  const http: HttpServer = createHttpServer((req, res) => {
    res.end(page('HTTP', req));
  });
  await Promise.all([
    new Promise<void>((r) => https.listen(0, '127.0.0.1', r)),
    new Promise<void>((r) => http.listen(0, '127.0.0.1', r)),
  ]);
  const httpsPort = (https.address() as AddressInfo).port;
  const httpPort = (http.address() as AddressInfo).port;

  const token = await mintBackendToken({ secret: options.secret, hostnames: [DEMO_HOSTNAME] });
  const client = createBackendClient({
    nodes: [options.hubUrl],
    token,
    tls: { ca: options.hubCaPem },
    logger: options.logger.child({ demo: 'backend' }),
    connectHandler: (request) =>
      netConnect({ host: '127.0.0.1', port: request.isTls ? httpsPort : httpPort, allowHalfOpen: true }),
  });
  client.connect();

  return {
    client,
    serviceCaFile,
    async close() {
      await client.close();
      https.closeAllConnections();
      http.closeAllConnections();
      await Promise.all([
        new Promise<void>((r) => https.close(() => r())),
        new Promise<void>((r) => http.close(() => r())),
      ]);
    },
  };
}
