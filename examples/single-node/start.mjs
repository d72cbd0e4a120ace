/**
 * Runs the whole example on one machine: the edge (`nexus-proxy serve -c node.yaml`), the device's local
 * service (service.mjs) and the backend (`nexus-backend -c client.yaml`), then prints the curl commands.
 *
 *   npm start -w @nexus-proxy/example-single-node
 *
 * Environment: PORT_BASE=N moves every port to N…N+4. EXIT_AFTER_SELFTEST=1 makes one HTTPS and one HTTP
 * request through the node, prints `SELFTEST OK` and exits (the test suite runs it this way).
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { APP_HOSTNAME, CERTS_DIR, generateCerts } from './generate-certs.mjs';
import { configFile, ports } from './ports.mjs';
import { startService } from './service.mjs';

const require = createRequire(import.meta.url);
const p = ports();
const selftest = process.env.EXIT_AFTER_SELFTEST === '1';

/** Path of the `name` executable of the installed package `pkg`. */
function bin(pkg, name) {
  const manifest = require.resolve(`${pkg}/package.json`);
  return join(dirname(manifest), JSON.parse(readFileSync(manifest, 'utf8')).bin[name]);
}

const LEVELS = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One pino JSON line as `LEVEL message key=value…`; other lines unchanged. */
function formatLine(line) {
  let entry;
  try {
    entry = JSON.parse(line);
  } catch {
    return line;
  }
  const { level, time, pid, hostname, name, msg, ...fields } = entry;
  const rest = Object.entries(fields).map(
    ([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`,
  );
  return [LEVELS[level] ?? level, msg, ...rest].join(' ');
}

/** Starts `node script args…`, printing its (pino JSON) log lines prefixed with `[label]`. */
function run(label, script, args) {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const line of lines) console.log(`[${label}] ${formatLine(line)}`);
    });
  }
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  return child;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
async function waitForPort(port, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const up = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** GET through the node, as `curl --resolve app.localhost:PORT:127.0.0.1` does. */
function request(tls) {
  const port = tls ? p.relayTls : p.relayHttp;
  const options = {
    host: '127.0.0.1',
    port,
    path: '/hello',
    agent: false, // one connection per request, closed after it
    headers: { host: `${APP_HOSTNAME}:${port}` },
    // TLS: SNI app.localhost, and trust only the device's own certificate.
    ...(tls ? { servername: APP_HOSTNAME, ca: readFileSync(join(CERTS_DIR, 'app.pem')) } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (tls ? httpsGet : httpGet)(options, (res) => {
      const peer = tls ? res.socket.getPeerX509Certificate() : undefined;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode, body, peer }));
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
  });
}

/** Retries while the backend is still attaching (the node closes unrouted connections). */
async function requestWithRetry(tls, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await request(tls);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function selfTest() {
  const https = await requestWithRetry(true);
  const own = new X509Certificate(readFileSync(join(CERTS_DIR, 'app.pem')));
  if (https.status !== 200 || !https.body.includes('over HTTPS')) throw new Error(`HTTPS: ${https.body}`);
  // Passthrough: the certificate the client saw is the device's, which the node never had.
  if (https.peer?.fingerprint256 !== own.fingerprint256) throw new Error('HTTPS: unexpected certificate');
  console.log(`[client] https://${APP_HOSTNAME}:${p.relayTls}/hello -> ${https.body.split('\n')[0]}`);
  const http = await requestWithRetry(false);
  if (http.status !== 200 || !http.body.includes('over HTTP')) throw new Error(`HTTP: ${http.body}`);
  console.log(`[client] http://${APP_HOSTNAME}:${p.relayHttp}/hello -> ${http.body.split('\n')[0]}`);
}

await generateCerts();
const nodeYaml = configFile('node.yaml', p);
const clientYaml = configFile('client.yaml', p);
const children = [];
let service;
let stopping;
const stop = (code) => {
  stopping ??= (async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => c.exited));
    await service?.close();
    nodeYaml.remove();
    clientYaml.remove();
    process.exit(code);
  })();
  return stopping;
};
/** A child that exits before we stop it ends the run with an error. */
const failIfExits = (child, label) =>
  child.exited.then((code) => {
    if (stopping !== undefined) return;
    console.error(`${label} exited (${code})`);
    stop(1);
  });
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
process.once('SIGINT', () => stop(0));
process.once('SIGTERM', () => stop(0));

try {
  // 1. The edge.
  const edge = run('edge', bin('nexus-proxy', 'nexus-proxy'), [
    'serve',
    '-c',
    nodeYaml.path,
    '--log-format',
    'json',
    '--grace',
    '1000',
  ]);
  children.push(edge);
  failIfExits(edge, 'edge');
  await waitForPort(p.hub);
  // 2. The device: its local service, then the backend client that attaches it to the edge.
  service = await startService(p);
  const backend = run('backend', bin('@nexus-proxy/backend-client', 'nexus-backend'), [
    '-c',
    clientYaml.path,
  ]);
  children.push(backend);
  failIfExits(backend, 'backend');
  // 3. The client.
  if (selftest) {
    await selfTest();
    console.log('SELFTEST OK');
    await stop(0);
  } else {
    console.log(
      [
        '',
        `Try (the certificate curl checks is the device's own, certs/app.pem):`,
        `  curl --cacert ${join(CERTS_DIR, 'app.pem')} --resolve ${APP_HOSTNAME}:${p.relayTls}:127.0.0.1 https://${APP_HOSTNAME}:${p.relayTls}/`,
        `  curl --resolve ${APP_HOSTNAME}:${p.relayHttp}:127.0.0.1 http://${APP_HOSTNAME}:${p.relayHttp}/`,
        'Press Ctrl-C to stop.',
      ].join('\n'),
    );
  }
} catch (err) {
  console.error(`${selftest ? 'SELFTEST FAILED' : 'failed'}: ${err instanceof Error ? err.message : err}`);
  await stop(1);
}
