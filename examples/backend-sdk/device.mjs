/**
 * A device built on the SDK. `createBackendClient` attaches it to a Nexus node; a `connectHandler` serves
 * api.localhost from a server inside this process and returns `undefined` for every other name, which
 * falls back to the port mappings (web.localhost → a local web server, as nginx would be).
 *
 *   npm start -w @nexus-proxy/example-backend-sdk
 *
 * Without NEXUS_NODE it starts a stand-in edge in-process (edge.mjs). With a real node:
 *   NEXUS_NODE=wss://127.0.0.1:8444/connect NEXUS_CA=.nexus/hub-cert.pem NEXUS_TOKEN=<jwt> \
 *   RELAY_TLS_PORT=8443 RELAY_HTTP_PORT=8080 npm start -w @nexus-proxy/example-backend-sdk
 * (the token must list api.localhost and web.localhost: nexus-proxy token --hostname …).
 *
 * Environment: PORT_BASE=N puts the stand-in edge on N (TLS), N+1 (HTTP), N+2 (hub); default 38443.
 * EXIT_AFTER_SELFTEST=1 makes requests through the node, prints `SELFTEST OK` and exits.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, get as httpGet } from 'node:http';
import { createServer as createHttpsServer, get as httpsGet } from 'node:https';
import { connect } from 'node:net';
import { createBackendClient, resolvePortMappings } from '@nexus-proxy/backend-client';
import { createSelfSignedCertificate } from '@nexus-proxy/core';
import pino from 'pino';

const API = 'api.localhost';
const WEB = 'web.localhost';
const selftest = process.env.EXIT_AFTER_SELFTEST === '1';
const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });
const log = logger.child({ role: 'device' });

/** An HTTPS and an HTTP server on ephemeral loopback ports, answering `text` for `hostname`. */
async function startServers(hostname, text) {
  const cert = await createSelfSignedCertificate({ dnsNames: [hostname] });
  const handler = (req, res) =>
    res.end(`${text} (${req.socket.encrypted ? 'HTTPS' : 'HTTP'}, Host: ${req.headers.host})\n`);
  const https = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, handler);
  const http = createHttpServer(handler);
  await Promise.all([https, http].map((s) => new Promise((resolve) => s.listen(0, '127.0.0.1', resolve))));
  return {
    certPem: cert.certPem,
    https: https.address().port,
    http: http.address().port,
    close: () =>
      Promise.all(
        [https, http].map((s) => {
          s.closeAllConnections();
          return new Promise((resolve) => s.close(resolve));
        }),
      ),
  };
}

// --- The node to attach to ------------------------------------------------------------------------------
let edge;
let node;
if (process.env.NEXUS_NODE) {
  node = {
    hubUrl: process.env.NEXUS_NODE,
    token: process.env.NEXUS_TOKEN,
    hubCa: process.env.NEXUS_CA ? readFileSync(process.env.NEXUS_CA, 'utf8') : undefined,
    relayPorts: {
      tls: Number(process.env.RELAY_TLS_PORT ?? 443),
      http: Number(process.env.RELAY_HTTP_PORT ?? 80),
    },
  };
} else {
  const { startEdge } = await import('./edge.mjs');
  const base = Number(process.env.PORT_BASE ?? 38443);
  const ports = base === 0 ? { tls: 0, http: 0, hub: 0 } : { tls: base, http: base + 1, hub: base + 2 };
  edge = await startEdge({ ports, hostnames: [API, WEB], logger: logger.child({ role: 'edge' }) });
  node = edge;
}

// --- Local services ---------------------------------------------------------------------------------------
// api.localhost: part of this program; the connectHandler picks its HTTPS or HTTP side per stream.
const api = await startServers(API, 'api: served in-process by the connectHandler');
// web.localhost: a separate local web server in real life (nginx, …); reached through the port mappings.
const web = await startServers(WEB, 'web: reached through the port mappings');

// --- The backend client ---------------------------------------------------------------------------------
const client = createBackendClient({
  nodes: [node.hubUrl],
  token: node.token, // or a function, re-evaluated before every reconnect: () => fetchToken()
  tls: node.hubCa === undefined ? undefined : { ca: node.hubCa },
  logger, // any pino-compatible logger; the client logs under component=backend-client
  // Consulted first for every stream. Return a Duplex (here a socket to the in-process API server), or
  // undefined to use portMappings. Throwing refuses the stream (reason dial_failed).
  connectHandler: (stream) => {
    if (stream.hostname !== API) return undefined;
    log.info(
      { id: stream.id, clientIp: stream.clientIp, connPort: stream.connPort, isTls: stream.isTls },
      'api stream',
    );
    // The stream carries the end user's bytes as they are: a ClientHello when isTls, else an HTTP request.
    return connect({ host: '127.0.0.1', port: stream.isTls ? api.https : api.http, allowHalfOpen: true });
  },
  // Keyed by the node's relay port (the port the end user connected to), as in the reference client.
  portMappings: resolvePortMappings({
    [node.relayPorts.tls]: `127.0.0.1:${web.https}`,
    [node.relayPorts.http]: `127.0.0.1:${web.http}`,
  }),
  reconnect: { initialDelayMs: 500, maxDelayMs: 30_000 },
});

const streams = [];
client.on('connected', ({ node: url }) => log.info({ node: url }, 'attached'));
client.on('disconnected', ({ node: url, reason, code }) => {
  if (reason === 'client_closed') log.info({ node: url }, 'detached');
  else log.warn({ node: url, reason, code }, 'detached; reconnecting'); // auth_rejected: the token was refused
});
client.on('stream-open', (s) =>
  log.info({ id: s.id, hostname: s.hostname, clientIp: s.clientIp, connPort: s.connPort }, 'stream open'),
);
client.on('stream-close', (s) => {
  streams.push(s);
  log.info({ id: s.id, reason: s.reason, bytesIn: s.bytesIn, bytesOut: s.bytesOut }, 'stream closed');
});
// With an 'error' listener, failed attempts are also reported here (they are logged either way).
client.on('error', (err) => log.warn({ code: err.code, err: err.message }, 'connection attempt failed'));
const attached = once(client, 'connected');
client.connect();

// --- Shutdown ---------------------------------------------------------------------------------------------
let closing;
const shutdown = (code) => {
  closing ??= (async () => {
    await client.close({ graceMs: 2_000 }); // lets open streams finish, then ends the session
    await Promise.all([api.close(), web.close()]);
    await edge?.close();
    process.exit(code);
  })();
  return closing;
};
process.once('SIGINT', () => shutdown(0));
process.once('SIGTERM', () => shutdown(0));

// --- Self-test: requests through the node, as curl --resolve would make them -------------------------------
function get(tls, hostname, ca) {
  const port = tls ? node.relayPorts.tls : node.relayPorts.http;
  const options = { host: '127.0.0.1', port, agent: false, headers: { host: `${hostname}:${port}` } };
  return new Promise((resolve, reject) => {
    const req = (tls ? httpsGet : httpGet)(
      tls ? { ...options, servername: hostname, ca } : options,
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => resolve(body));
      },
    );
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
  });
}

async function selfTest() {
  await Promise.race([
    attached,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error('no backend attached within 10 s')), 10_000).unref(),
    ),
  ]);
  const checks = [
    [true, API, api.certPem, 'api: served in-process by the connectHandler (HTTPS'],
    [false, API, undefined, 'api: served in-process by the connectHandler (HTTP'],
    [true, WEB, web.certPem, 'web: reached through the port mappings (HTTPS'],
    [false, WEB, undefined, 'web: reached through the port mappings (HTTP'],
  ];
  for (const [tls, hostname, ca, expected] of checks) {
    const body = await get(tls, hostname, ca);
    if (!body.startsWith(expected)) throw new Error(`${hostname} (${tls ? 'TLS' : 'HTTP'}): ${body}`);
    console.log(`[client] ${body.trim()}`);
  }
  for (let i = 0; i < 100 && streams.length < checks.length; i++) await new Promise((r) => setTimeout(r, 20));
  if (streams.length !== checks.length) throw new Error(`${streams.length} stream-close events`);
  const stats = client.stats();
  if (stats.connectedNodes !== 1 || stats.bytesIn === 0) throw new Error(`stats: ${JSON.stringify(stats)}`);
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
  const { tls, http } = node.relayPorts;
  console.log(
    [
      '',
      `Device attaching to ${node.hubUrl}. Try:`,
      `  curl -k --resolve ${API}:${tls}:127.0.0.1 https://${API}:${tls}/   # -k: the API's certificate is self-signed`,
      `  curl --resolve ${API}:${http}:127.0.0.1 http://${API}:${http}/`,
      `  curl -k --resolve ${WEB}:${tls}:127.0.0.1 https://${WEB}:${tls}/`,
      `  curl --resolve ${WEB}:${http}:127.0.0.1 http://${WEB}:${http}/`,
      'Press Ctrl-C to stop.',
    ].join('\n'),
  );
}
