/**
 * Runs the whole example on one machine: three nodes (`nexus-proxy serve -c node-{a,b,c}.yaml`) that mesh
 * with each other, the device's local service (service.mjs) and its backend (`nexus-backend -c
 * client.yaml`) attached to node C only; then prints curl commands that reach the device through A and B.
 *
 *   npm start -w @nexus-proxy/example-mesh
 *
 * Environment: PORT_BASE=N moves every port to N…N+13. EXIT_AFTER_SELFTEST=1 makes an HTTPS request
 * through A, an HTTP request through B and one at C, prints `SELFTEST OK` and exits.
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

/** Stops everything when `child` exits on its own (not while stopping). */
function exitTogether(child, label) {
  child.exited.then((code) => {
    if (stopping !== undefined) return;
    console.error(`${label} exited (${code})`);
    stop(1);
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
async function waitForPort(port, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const up = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1', () => resolve(socket.destroy() && true));
      socket.on('error', () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** GET through a node, as `curl --resolve app.localhost:PORT:127.0.0.1` does. */
function request(tls, port) {
  const options = {
    host: '127.0.0.1',
    port,
    path: '/hello',
    agent: false,
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

/** Retries while the backend attaches and the announce travels (the nodes close unrouted connections). */
async function requestWithRetry(tls, port, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await request(tls, port);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function selfTest() {
  const own = new X509Certificate(readFileSync(join(CERTS_DIR, 'app.pem')));
  const https = await requestWithRetry(true, p.aTls);
  if (https.status !== 200 || !https.body.includes('over HTTPS'))
    throw new Error(`HTTPS via A: ${https.body}`);
  // Passthrough across two nodes: the certificate the client saw is the device's.
  if (https.peer?.fingerprint256 !== own.fingerprint256)
    throw new Error('HTTPS via A: unexpected certificate');
  console.log(
    `[client] https://${APP_HOSTNAME}:${p.aTls}/hello (node A → tunnel → C) -> ${https.body.split('\n')[0]}`,
  );
  const viaB = await requestWithRetry(false, p.bHttp);
  if (viaB.status !== 200 || !viaB.body.includes('over HTTP')) throw new Error(`HTTP via B: ${viaB.body}`);
  console.log(
    `[client] http://${APP_HOSTNAME}:${p.bHttp}/hello (node B → tunnel → C) -> ${viaB.body.split('\n')[0]}`,
  );
  const atC = await requestWithRetry(false, p.cHttp);
  if (atC.status !== 200) throw new Error(`HTTP at C: ${atC.body}`);
  console.log(
    `[client] http://${APP_HOSTNAME}:${p.cHttp}/hello (node C, local backend) -> ${atC.body.split('\n')[0]}`,
  );
}

await generateCerts();
const files = ['node-a.yaml', 'node-b.yaml', 'node-c.yaml', 'client.yaml'].map((f) => configFile(f, p));
const children = [];
let service;
let stopping;
const stop = (code) => {
  stopping ??= (async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => c.exited));
    await service?.close();
    for (const f of files) f.remove();
    process.exit(code);
  })();
  return stopping;
};
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
process.once('SIGINT', () => stop(0));
process.once('SIGTERM', () => stop(0));

try {
  // 1. The three nodes. B and C dial A (and C dials B) with backoff, so the start order does not matter.
  for (const [i, label] of ['a', 'b', 'c'].entries()) {
    const node = run(`node-${label}`, bin('nexus-proxy', 'nexus-proxy'), [
      'serve',
      '-c',
      files[i].path,
      '--log-format',
      'json',
      '--grace',
      '1000',
    ]);
    children.push(node);
    exitTogether(node, `node ${label}`);
  }
  await Promise.all([p.aHub, p.bHub, p.cHub].map((port) => waitForPort(port)));
  // 2. The device: its local service, then the backend client that attaches it to node C.
  service = await startService(p);
  const backend = run('backend', bin('@nexus-proxy/backend-client', 'nexus-backend'), ['-c', files[3].path]);
  children.push(backend);
  exitTogether(backend, 'backend');
  // 3. The client, at A and B: neither has the backend.
  if (selftest) {
    await selfTest();
    console.log('SELFTEST OK');
    await stop(0);
  } else {
    console.log(
      [
        '',
        'The backend is attached to node C only. Reach it through node A (TLS) and node B (HTTP):',
        `  curl --cacert ${join(CERTS_DIR, 'app.pem')} --resolve ${APP_HOSTNAME}:${p.aTls}:127.0.0.1 https://${APP_HOSTNAME}:${p.aTls}/`,
        `  curl --resolve ${APP_HOSTNAME}:${p.bHttp}:127.0.0.1 http://${APP_HOSTNAME}:${p.bHttp}/`,
        'Press Ctrl-C to stop.',
      ].join('\n'),
    );
  }
} catch (err) {
  console.error(`SELFTEST FAILED: ${err instanceof Error ? err.message : err}`);
  await stop(1);
}
