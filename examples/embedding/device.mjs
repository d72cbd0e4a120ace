/**
 * Stands in for a real device so the gateway has something to route to: an HTTPS + HTTP service for
 * app.localhost (with its own self-signed certificate) and a backend client that attaches it to the
 * gateway's hub. A real device runs `nexus-backend` or the SDK (see examples/backend-sdk).
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect } from 'node:net';
import { createBackendClient } from '@nexus-proxy/backend-client';
import { createSelfSignedCertificate } from '@nexus-proxy/core';

export const APP_HOSTNAME = 'app.localhost';

/**
 * Starts the service and attaches it. `hubUrl`: the gateway's hub; `hubCa`: PEM to trust for it;
 * `token`: a backend JWT for app.localhost.
 */
export async function startDevice({ hubUrl, hubCa, token, logger }) {
  const cert = await createSelfSignedCertificate({ dnsNames: [APP_HOSTNAME] });
  const page = (kind) => (req, res) => res.end(`Hello from ${req.headers.host} over ${kind}\n`);
  const https = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, page('HTTPS'));
  const http = createHttpServer(page('HTTP'));
  const servers = [https, http];
  await Promise.all(servers.map((s) => new Promise((resolve) => s.listen(0, '127.0.0.1', resolve))));
  const client = createBackendClient({
    nodes: [hubUrl],
    token,
    tls: { ca: hubCa },
    logger,
    // TLS streams go to the HTTPS service, plain HTTP to the HTTP one, whatever the relay port.
    connectHandler: ({ isTls }) =>
      connect({ host: '127.0.0.1', port: (isTls ? https : http).address().port, allowHalfOpen: true }),
  });
  client.connect();
  return {
    client,
    /** The service's certificate: what an end user sees (and trusts) through the gateway. */
    certPem: cert.certPem,
    async close() {
      await client.close({ graceMs: 1_000 });
      for (const s of servers) s.closeAllConnections();
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    },
  };
}
