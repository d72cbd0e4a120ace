/**
 * A custom Node gateway that embeds a Nexus node instead of running `nexus-proxy serve`. The gateway
 * owns every socket: two `net.Server`s for end users that hand each connection to
 * `nexus.handleConnection(socket, { port, mode })`, and one HTTPS server of its own that serves
 * `/healthz` and passes WebSocket upgrades to `nexus.handleUpgrade(req, socket, head)`. It injects a
 * logger, subscribes to the node's typed events, and closes gracefully on SIGINT/SIGTERM.
 *
 *   npm start -w @nexus-proxy/example-embedding
 *
 * Environment: PORT_BASE=N puts the TLS, HTTP and hub ports on N, N+1, N+2 (default 28443; 0 = any free
 * ports, printed at start). LOG_LEVEL (default info). EXIT_AFTER_SELFTEST=1 runs requests through the
 * gateway, prints `SELFTEST OK` and exits.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer as createHttpsServer, get as httpsGet } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNexus, createSelfSignedCertificate, mintBackendToken } from '@nexus-proxy/core';
import { APP_HOSTNAME, startDevice } from './device.mjs';
import { createConsoleLogger } from './logger.mjs';

const base = Number(process.env.PORT_BASE ?? 28443);
const port = (offset) => (base === 0 ? 0 : base + offset);
const selftest = process.env.EXIT_AFTER_SELFTEST === '1';
const logger = createConsoleLogger(process.env.LOG_LEVEL ?? 'info');
const log = logger.child({ component: 'gateway' });

// --- The hub's certificate (a real gateway loads its own) ---------------------------------------------
const hubCert = await createSelfSignedCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const stateDir = mkdtempSync(join(tmpdir(), 'nexus-gateway-'));
writeFileSync(join(stateDir, 'hub.pem'), hubCert.certPem);
writeFileSync(join(stateDir, 'hub-key.pem'), hubCert.keyPem, { mode: 0o600 });

// --- The node: configuration input (reference keys), validated by createNexus -------------------------
const secret = 'example-only-secret-change-me-0123456789abcdef';
const nexus = createNexus(
  {
    backendsJWTSecret: secret,
    // Nothing binds these: the gateway never calls nexus.listen(). They are the relay ports the node
    // reports to backends (their port mappings are keyed by them), whatever port the gateway really uses.
    listeners: [
      { port: 443, mode: 'tls' },
      { port: 80, mode: 'http' },
    ],
    // The configuration needs one TLS mode; the gateway's own HTTPS server below uses the same files.
    hubTlsCertFile: join(stateDir, 'hub.pem'),
    hubTlsKeyFile: join(stateDir, 'hub-key.pem'),
    idleTimeoutSeconds: 300,
  },
  { logger },
);
log.info({ listeners: nexus.config.listeners, idleTimeoutMs: nexus.config.idleTimeoutMs }, 'node configured');

// --- Typed events --------------------------------------------------------------------------------------
const seen = { streamOpen: [], streamClose: [], routeMiss: [] };
nexus.on('backend-connected', (e) =>
  log.info({ id: e.id, hostnames: e.hostnames, weight: e.weight }, 'event: backend-connected'),
);
nexus.on('backend-disconnected', (e) =>
  log.info({ id: e.id, reason: e.reason }, 'event: backend-disconnected'),
);
nexus.on('auth-failed', (e) => log.warn({ reason: e.reason, from: e.remoteAddress }, 'event: auth-failed'));
nexus.on('stream-open', (e) => {
  seen.streamOpen.push(e);
  log.info({ id: e.id, hostname: e.hostname, port: e.port, isTls: e.isTls }, 'event: stream-open');
});
nexus.on('stream-close', (e) => {
  seen.streamClose.push(e);
  const { id, hostname, reason, bytesUp, bytesDown, durationMs } = e;
  log.info({ id, hostname, reason, bytesUp, bytesDown, durationMs }, 'event: stream-close');
});
nexus.on('route-miss', (e) => {
  seen.routeMiss.push(e);
  log.warn({ hostname: e.hostname, port: e.port, isTls: e.isTls }, 'event: route-miss');
});
nexus.on('sniff-failed', (e) => log.debug({ reason: e.reason, port: e.port }, 'event: sniff-failed'));

// --- End-user listeners: the gateway's own net.Servers -------------------------------------------------
// allowHalfOpen: an end user's FIN must not end the response still flowing back.
const tlsServer = createNetServer({ allowHalfOpen: true }, (socket) =>
  nexus.handleConnection(socket, { port: 443, mode: 'tls' }),
);
const httpServer = createNetServer({ allowHalfOpen: true }, (socket) =>
  nexus.handleConnection(socket, { port: 80, mode: 'http' }),
);

// --- The hub endpoint: the gateway's own HTTPS server --------------------------------------------------
const hubServer = createHttpsServer({ cert: hubCert.certPem, key: hubCert.keyPem }, (req, res) => {
  if (req.url === '/healthz') {
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        hub: nexus.hub.stats(),
        routes: nexus.routes.localPatterns(),
        activeStreams: nexus.activeStreams,
      }),
    );
    return;
  }
  res.writeHead(404).end();
});
hubServer.on('upgrade', (req, socket, head) => nexus.handleUpgrade(req, socket, head)); // /connect; others: 404

const listen = async (server, p) => {
  server.listen(p, '127.0.0.1');
  await once(server, 'listening');
  return server.address().port;
};
const ports = {
  tls: await listen(tlsServer, port(0)),
  http: await listen(httpServer, port(1)),
  hub: await listen(hubServer, port(2)),
};
const hubUrl = `wss://127.0.0.1:${ports.hub}/connect`;
log.info({ tls: ports.tls, http: ports.http, hub: hubUrl }, 'gateway listening');

// --- A stand-in device, so there is something to route to ----------------------------------------------
const token = await mintBackendToken({ secret, hostnames: [APP_HOSTNAME] });
const connected = once(nexus, 'backend-connected');
const device = await startDevice({
  hubUrl,
  hubCa: hubCert.certPem,
  token,
  logger: logger.child({ component: 'device' }),
});
const deviceCaFile = join(stateDir, 'app.pem');
writeFileSync(deviceCaFile, device.certPem);

// --- Graceful close ------------------------------------------------------------------------------------
let closing;
const shutdown = (code) => {
  closing ??= (async () => {
    log.info('closing');
    // 1. Stop accepting end users; 2. let relayed streams finish (up to 2 s) and end backend sessions;
    // 3. the stand-in device and the hub endpoint; 4. local state.
    await Promise.all([tlsServer, httpServer].map((s) => new Promise((resolve) => s.close(resolve))));
    await nexus.close({ graceMs: 2_000 });
    await device.close();
    hubServer.closeAllConnections();
    await new Promise((resolve) => hubServer.close(resolve));
    rmSync(stateDir, { recursive: true, force: true });
    log.info('closed');
    process.exit(code);
  })();
  return closing;
};
process.once('SIGINT', () => shutdown(0));
process.once('SIGTERM', () => shutdown(0));

// --- Self-test: the client side, as curl --resolve would do it -----------------------------------------
function get(tls, { hostname, port: p, path = '/', ca }) {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port: p, path, agent: false, headers: { host: `${hostname}:${p}` } };
    const req = (tls ? httpsGet : httpGet)(
      tls ? { ...options, servername: hostname, ca } : options,
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode, body }));
      },
    );
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
  });
}

async function selfTest() {
  await Promise.race([
    connected,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error('no backend attached within 10 s')), 10_000).unref(),
    ),
  ]);

  const https = await get(true, { hostname: APP_HOSTNAME, port: ports.tls, ca: device.certPem });
  if (https.status !== 200 || !https.body.includes('over HTTPS')) throw new Error(`HTTPS: ${https.body}`);
  log.info({ body: https.body.trim() }, 'selftest: HTTPS through the gateway');

  const http = await get(false, { hostname: APP_HOSTNAME, port: ports.http });
  if (http.status !== 200 || !http.body.includes('over HTTP')) throw new Error(`HTTP: ${http.body}`);
  log.info({ body: http.body.trim() }, 'selftest: HTTP through the gateway');

  // Nobody serves this name: the node closes the connection without answering, and says so.
  const miss = await get(false, { hostname: 'nobody.localhost', port: ports.http }).then(
    () => 'answered',
    () => 'closed',
  );
  if (miss !== 'closed' || !seen.routeMiss.some((e) => e.hostname === 'nobody.localhost')) {
    throw new Error(`route miss: ${miss}, events ${JSON.stringify(seen.routeMiss)}`);
  }

  const health = JSON.parse(
    (await get(true, { hostname: 'localhost', port: ports.hub, path: '/healthz', ca: hubCert.certPem })).body,
  );
  if (health.hub.sessions !== 1 || !health.routes.includes(APP_HOSTNAME))
    throw new Error(`healthz: ${JSON.stringify(health)}`);

  // Streams close asynchronously after the response; wait for both stream-close events.
  for (let i = 0; i < 100 && seen.streamClose.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  if (seen.streamOpen.length !== 2 || seen.streamClose.length !== 2) {
    throw new Error(`events: ${seen.streamOpen.length} stream-open, ${seen.streamClose.length} stream-close`);
  }
}

if (selftest) {
  try {
    await selfTest();
    console.log('SELFTEST OK');
    await shutdown(0);
  } catch (err) {
    console.error(`SELFTEST FAILED: ${err instanceof Error ? err.message : err}`);
    await shutdown(1);
  }
} else {
  console.log(
    [
      '',
      `Gateway up. The device's certificate (what curl checks) is in ${deviceCaFile}.`,
      `  curl --cacert ${deviceCaFile} --resolve ${APP_HOSTNAME}:${ports.tls}:127.0.0.1 https://${APP_HOSTNAME}:${ports.tls}/`,
      `  curl --resolve ${APP_HOSTNAME}:${ports.http}:127.0.0.1 http://${APP_HOSTNAME}:${ports.http}/`,
      `  curl --cacert ${join(stateDir, 'hub.pem')} https://127.0.0.1:${ports.hub}/healthz`,
      'Press Ctrl-C to stop.',
    ].join('\n'),
  );
}
