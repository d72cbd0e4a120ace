/**
 * The device's local service: HTTPS for app.localhost with the device's own certificate (certs/app.pem)
 * and plain HTTP. It knows nothing about Nexus; the backend client dials it for each end-user stream.
 *   node service.mjs
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CERTS_DIR } from './generate-certs.mjs';
import { ports } from './ports.mjs';

const page = (kind) => (req, res) => {
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(`Hello from app.localhost over ${kind}\n${req.method} ${req.url} (Host: ${req.headers.host})\n`);
};

/** Starts both servers on 127.0.0.1; resolves with a `close()`. */
export async function startService(p = ports()) {
  const https = createHttpsServer(
    { cert: readFileSync(join(CERTS_DIR, 'app.pem')), key: readFileSync(join(CERTS_DIR, 'app-key.pem')) },
    page('HTTPS (end to end: the nodes only relayed ciphertext)'),
  );
  const http = createHttpServer(page('HTTP'));
  await Promise.all([
    new Promise((resolve) => https.listen(p.serviceHttps, '127.0.0.1', resolve)),
    new Promise((resolve) => http.listen(p.serviceHttp, '127.0.0.1', resolve)),
  ]);
  console.log(`service: https://127.0.0.1:${p.serviceHttps} and http://127.0.0.1:${p.serviceHttp}`);
  return {
    close: () =>
      Promise.all(
        [https, http].map((s) => {
          s.closeAllConnections();
          return new Promise((resolve) => s.close(resolve));
        }),
      ),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const service = await startService();
  const stop = () => service.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
