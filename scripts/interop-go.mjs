#!/usr/bin/env node
/**
 * Live interoperability check against the Go reference implementation (not part of `npm test`; see
 * docs/compatibility.md). Everything runs on loopback; the Go binaries are built elsewhere and passed in:
 *
 *   NEXUS_GO_CLIENT_BIN=/path/to/reference-backend-client   the reference backend client (`-config <yaml>`)
 *   NEXUS_GO_SERVER_BIN=/path/to/reference-server           the reference server (`-config <yaml>`)
 *
 * At least one must be set; each enables one half:
 *
 * 1. reference backend client → this repository's node (`nexus-proxy serve`): attach with a token minted by
 *    `nexus-proxy token`, then a TLS client (SNI app.test) must see the local service's own certificate, an
 *    HTTP client routed by Host must reach the plain service, and a transfer of NEXUS_INTEROP_MB MiB
 *    (default 100) each way must arrive with the same SHA-256.
 * 2. this repository's backend client (`nexus-backend`) → reference server: the same checks through it.
 *    The reference server speaks HTTP only on relay port 80, so the HTTP check needs port 80 (root); it is
 *    reported as SKIP otherwise. It also binds its relay ports on every interface.
 *
 * NEXUS_INTEROP_ERA=current runs both halves in the current protocol era (attested handshake and
 * re-authentication; the default, `seed`, keeps the one-token era): the backend clients get an
 * `attestation` block (HMAC with the node's secret, `reauthIntervalSeconds` = NEXUS_INTEROP_REAUTH_SECONDS,
 * default 1) instead of a token; the bulk transfers are paced (NEXUS_INTEROP_PACE_MIBPS, default 25 in
 * the current era) so that each spans several re-authentication rounds, and the Nexus side's log must show
 * at least two rounds during each transfer and one session throughout (the Nexus backend client's answers;
 * the Nexus node's completed rounds, logged at debug level, when the reference client is the backend).
 *
 * Prints a PASS/FAIL/SKIP table; exit code 1 if anything failed. Uses the current dist/ (run
 * `npm run build` first). Logs of every process are kept in the printed work directory on failure (or
 * always with NEXUS_INTEROP_KEEP=1).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCertificateAuthority, issueCertificate } from '@nexus-proxy/core';
import { createHarness, freePort, isPortFree, retryUntil, waitForTcp } from './lib/interop-harness.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NODE_CLI = join(ROOT, 'packages/cli/dist/cli.js');
const BACKEND_CLI = join(ROOT, 'packages/backend-client/dist/cli.js');
const GO_CLIENT = process.env.NEXUS_GO_CLIENT_BIN;
const GO_SERVER = process.env.NEXUS_GO_SERVER_BIN;
const MiB = 1024 * 1024;
const TRANSFER_BYTES = Math.round(Number(process.env.NEXUS_INTEROP_MB ?? 100) * MiB);
/** How long a backend may take to attach (the reference client retries every 5 s), ms. */
const ATTACH_TIMEOUT_MS = 30_000;
/** A bulk transfer without progress for this long fails, ms. */
const STALL_MS = 30_000;
const HOST = 'app.test';
const SECRET = 'interop-secret-that-is-long-enough-0123456789abcdef';
const HELLO = 'hello from the local service';
const ERA = process.env.NEXUS_INTEROP_ERA ?? 'seed';
const REAUTH_SECONDS = Number(process.env.NEXUS_INTEROP_REAUTH_SECONDS ?? 1);
/** Pace of the bulk transfers, bytes/s (0 = as fast as they go); the current era paces them so that each
 * spans several re-authentication rounds. */
const PACE = Number(process.env.NEXUS_INTEROP_PACE_MIBPS ?? (ERA === 'current' ? 25 : 0)) * 1024 * 1024;
if (ERA !== 'seed' && ERA !== 'current') {
  console.error(`NEXUS_INTEROP_ERA must be seed or current (got ${ERA})`);
  process.exit(2);
}
/** How a backend block authenticates: the seed era's token, or the current era's attestation. */
const credentials = (token) =>
  ERA === 'seed'
    ? [`    authToken: "${token}"`]
    : [
        '    attestation:',
        `      hmacSecret: "${SECRET}"`,
        '      handshakeMaxAgeSeconds: 60',
        `      reauthIntervalSeconds: ${REAUTH_SECONDS}`,
        '      reauthGraceSeconds: 10',
      ];

if (!GO_CLIENT && !GO_SERVER) {
  console.error('set NEXUS_GO_CLIENT_BIN and/or NEXUS_GO_SERVER_BIN (see docs/compatibility.md)');
  process.exit(2);
}
for (const file of [NODE_CLI, BACKEND_CLI]) {
  if (!existsSync(file)) {
    console.error(`${file} is missing: run npm run build first`);
    process.exit(2);
  }
}

const { work, record, check, run, stop, stopAll, report } = createHarness('nexus-interop-');

/** One HTTPS request through a TLS relay port, SNI = Host = app.test; resolves with body and peer cert. */
function httpsRequest(port, ca, { method = 'GET', path = '/hello', body, onData } = {}) {
  return new Promise((done, fail) => {
    const req = https.request({
      host: '127.0.0.1',
      port,
      servername: HOST,
      headers: { host: HOST },
      method,
      path,
      ca,
      agent: false,
    });
    req.setTimeout(STALL_MS, () => req.destroy(new Error(`no progress for ${STALL_MS} ms`)));
    req.once('error', fail);
    req.once('response', (res) => {
      const cert = res.socket.getPeerCertificate();
      const chunks = [];
      res.on('data', (c) => (onData ? onData(c) : chunks.push(c)));
      res.once('error', fail);
      res.once('end', () => done({ status: res.statusCode, body: Buffer.concat(chunks), cert }));
    });
    if (body) body(req);
    else req.end();
  });
}

function httpRequest(port, path = '/hello') {
  return new Promise((done, fail) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host: HOST }, agent: false });
    req.setTimeout(STALL_MS, () => req.destroy(new Error(`no progress for ${STALL_MS} ms`)));
    req.once('error', fail);
    req.once('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.once('end', () => done({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.end();
  });
}

/** With PACE set: ms to wait before sending more, `sent` bytes after `startedAt`. */
const aheadBy = (startedAt, sent) =>
  PACE > 0 ? Math.max(0, (sent / PACE) * 1000 - (Date.now() - startedAt)) : 0;

const mbps = (bytes, ms) => `${((bytes / MiB / ms) * 1000).toFixed(1)} MiB/s`;

// ───────────────────────────── local services ─────────────────────────────

/** Downloads the service sent, by id: the SHA-256 of exactly what went onto its socket. */
const sentDigests = new Map();

function serviceHandler(scheme) {
  return (req, res) => {
    const url = new URL(req.url, `${scheme}://${HOST}`);
    if (req.method === 'GET' && url.pathname === '/hello') {
      res.setHeader('content-type', 'text/plain');
      res.end(`${HELLO} over ${scheme} for ${req.headers.host}`);
    } else if (req.method === 'GET' && url.pathname === '/download') {
      const total = Number(url.searchParams.get('bytes'));
      const id = url.searchParams.get('id');
      const hash = createHash('sha256');
      res.setHeader('content-length', String(total));
      let left = total;
      const startedAt = Date.now();
      const pump = () => {
        while (left > 0) {
          const wait = aheadBy(startedAt, total - left);
          if (wait > 0) return void setTimeout(pump, wait);
          const chunk = randomBytes(Math.min(left, 64 * 1024));
          left -= chunk.length;
          hash.update(chunk);
          // Record the digest before the last byte leaves: the end user may finish reading at once.
          if (left === 0) sentDigests.set(id, hash.digest('hex'));
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (req.method === 'POST' && url.pathname === '/upload') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c) => {
        bytes += c.length;
        hash.update(c);
      });
      req.once('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
    } else {
      res.statusCode = 404;
      res.end();
    }
  };
}

async function startServices(serviceCert) {
  const tlsService = https.createServer(
    { cert: serviceCert.certPem, key: serviceCert.keyPem },
    serviceHandler('https'),
  );
  const httpService = http.createServer(serviceHandler('http'));
  tlsService.listen(0, '127.0.0.1');
  httpService.listen(0, '127.0.0.1');
  await Promise.all([once(tlsService, 'listening'), once(httpService, 'listening')]);
  return {
    tlsAddr: `127.0.0.1:${tlsService.address().port}`,
    httpAddr: `127.0.0.1:${httpService.address().port}`,
    close: () => {
      tlsService.closeAllConnections?.();
      httpService.closeAllConnections?.();
      tlsService.close();
      httpService.close();
    },
  };
}

// ───────────────────────────── the checks of one half ─────────────────────────────

/**
 * Current era: where the rounds are logged — the Nexus backend client's answers, or the Nexus node's
 * completed rounds (at debug level) when the reference client is the backend.
 */
const CLIENT_ROUNDS = 'answered the hub’s re-authentication challenge';
const NODE_ROUNDS = 'backend re-authenticated';

/** Lines of a pino JSON log with message `msg`, between `from` and `to` (ms since the epoch). */
function logged(reauthLog, from = 0, to = Number.POSITIVE_INFINITY) {
  return readFileSync(reauthLog.file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.msg === reauthLog.msg && l.time >= from && l.time <= to).length;
}

/** The detail of a transfer check, with its re-authentication rounds when they are counted (≥ 2 required). */
function withRounds(detail, reauthLog, from) {
  if (reauthLog === undefined) return detail;
  const rounds = logged(reauthLog, from, Date.now());
  if (rounds < 2)
    throw new Error(`${detail}, but only ${rounds} re-authentication rounds answered during it`);
  return `${detail}, ${rounds} re-authentication rounds during it`;
}

async function endToEnd(half, { tlsPort, httpPort, serviceCa, serviceFingerprint, proc, reauthLog }) {
  const mb = `${(TRANSFER_BYTES / MiB).toFixed(0)} MiB`;
  const names = {
    cert: 'TLS certificate is the service’s (end-to-end, not terminated)',
    http: 'HTTP by Host reaches the plain service',
    down: `download ${mb} (service → end user), SHA-256`,
    up: `upload ${mb} (end user → service), SHA-256`,
  };
  const attached = await check(half, 'backend attaches; HTTPS by SNI reaches the service', async () => {
    const res = await retryUntil(async () => {
      if (proc.exitCode !== null)
        throw new Error(`${proc.spawnfile} exited (${proc.exitCode}); see ${proc.logFile}`);
      return httpsRequest(tlsPort, serviceCa);
    }, ATTACH_TIMEOUT_MS);
    if (res.status !== 200 || !res.body.toString().startsWith(HELLO)) {
      throw new Error(`unexpected answer ${res.status} ${JSON.stringify(res.body.toString().slice(0, 80))}`);
    }
    return `HTTP ${res.status}: "${res.body.toString()}"`;
  });
  if (!attached) {
    for (const name of Object.values(names)) record(half, name, 'FAIL', 'backend never attached');
    return;
  }
  await check(half, names.cert, async () => {
    const { cert } = await httpsRequest(tlsPort, serviceCa);
    if (cert.fingerprint256 !== serviceFingerprint) {
      throw new Error(`peer certificate ${cert.fingerprint256} is not the service's ${serviceFingerprint}`);
    }
    return `CN=${cert.subject?.CN}, SHA-256 fingerprint matches`;
  });
  if (httpPort === undefined) {
    record(half, names.http, 'SKIP', 'the reference server speaks HTTP only on port 80 (run as root)');
  } else {
    await check(half, names.http, async () => {
      const res = await httpRequest(httpPort);
      if (res.status !== 200 || res.body !== `${HELLO} over http for ${HOST}`) {
        throw new Error(`unexpected answer ${res.status} ${JSON.stringify(res.body.slice(0, 80))}`);
      }
      return `HTTP ${res.status}: "${res.body}"`;
    });
  }
  await check(half, names.down, async () => {
    const id = randomBytes(8).toString('hex');
    const hash = createHash('sha256');
    let bytes = 0;
    const started = Date.now();
    await httpsRequest(tlsPort, serviceCa, {
      path: `/download?bytes=${TRANSFER_BYTES}&id=${id}`,
      onData: (c) => {
        bytes += c.length;
        hash.update(c);
      },
    });
    const ms = Date.now() - started;
    const got = hash.digest('hex');
    const sent = sentDigests.get(id);
    if (bytes !== TRANSFER_BYTES) throw new Error(`received ${bytes} of ${TRANSFER_BYTES} bytes`);
    if (got !== sent) throw new Error(`SHA-256 differs: sent ${sent}, received ${got}`);
    return withRounds(
      `${bytes} bytes, sha256 ${got.slice(0, 16)}…, ${(ms / 1000).toFixed(1)} s, ${mbps(bytes, ms)}`,
      reauthLog,
      started,
    );
  });
  await check(half, names.up, async () => {
    const hash = createHash('sha256');
    const started = Date.now();
    const res = await httpsRequest(tlsPort, serviceCa, {
      method: 'POST',
      path: '/upload',
      body: (req) => {
        req.setHeader('content-length', String(TRANSFER_BYTES));
        let left = TRANSFER_BYTES;
        const pump = () => {
          while (left > 0) {
            const wait = aheadBy(started, TRANSFER_BYTES - left);
            if (wait > 0) return void setTimeout(pump, wait);
            const chunk = randomBytes(Math.min(left, 64 * 1024));
            left -= chunk.length;
            hash.update(chunk);
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      },
    });
    const ms = Date.now() - started;
    const sent = hash.digest('hex');
    const answer = JSON.parse(res.body.toString());
    if (answer.bytes !== TRANSFER_BYTES)
      throw new Error(`service received ${answer.bytes} of ${TRANSFER_BYTES} bytes`);
    if (answer.sha256 !== sent)
      throw new Error(`SHA-256 differs: sent ${sent}, service got ${answer.sha256}`);
    return withRounds(
      `${answer.bytes} bytes, sha256 ${sent.slice(0, 16)}…, ${(ms / 1000).toFixed(1)} s, ${mbps(answer.bytes, ms)}`,
      reauthLog,
      started,
    );
  });
}

/** Current era: the Nexus backend client's session stayed up while it answered re-authentication rounds. */
async function reauthRounds(half, reauthLog, sessionMsg) {
  await check(
    half,
    `re-authentication every ${REAUTH_SECONDS} s answered, one session throughout`,
    async () => {
      const sessions = logged({ file: reauthLog.file, msg: sessionMsg });
      const answered = logged(reauthLog);
      if (sessions !== 1) throw new Error(`${sessions} sessions opened (expected 1); see ${reauthLog.file}`);
      if (answered < 3) throw new Error(`only ${answered} re-authentication rounds; see ${reauthLog.file}`);
      return `${answered} rounds in all, 1 session`;
    },
  );
}

// ───────────────────────────── main ─────────────────────────────

const hubCa = await createCertificateAuthority({ commonName: 'Nexus interop hub CA' });
const serviceCa = await createCertificateAuthority({ commonName: 'Nexus interop service CA' });
const hubCert = await issueCertificate(hubCa, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const serviceCert = await issueCertificate(serviceCa, { dnsNames: [HOST] });
const serviceFingerprint = new X509Certificate(serviceCert.certPem).fingerprint256;
writeFileSync(join(work, 'hub-ca.pem'), hubCa.certPem);
writeFileSync(join(work, 'hub.crt'), hubCert.certPem);
writeFileSync(join(work, 'hub.key'), hubCert.keyPem, { mode: 0o600 });
const services = await startServices(serviceCert);
const mintToken = () =>
  execFileSync(process.execPath, [NODE_CLI, 'token', '--secret', SECRET, '--hostname', HOST], {
    encoding: 'utf8',
  }).trim();

try {
  if (GO_CLIENT) {
    const half = `Go client (${basename(GO_CLIENT)}) → Nexus node, ${ERA} era`;
    const hubPort = await freePort();
    const tlsPort = await freePort();
    const httpPort = await freePort();
    writeFileSync(
      join(work, 'node.yaml'),
      [
        `backendListenAddress: "127.0.0.1:${hubPort}"`,
        `backendsJWTSecret: "${SECRET}"`,
        'hubTlsCertFile: "hub.crt"',
        'hubTlsKeyFile: "hub.key"',
        'listeners:',
        `  - { port: ${tlsPort}, mode: tls, host: "127.0.0.1" }`,
        `  - { port: ${httpPort}, mode: http, host: "127.0.0.1" }`,
        'idleTimeoutSeconds: 0',
        '',
      ].join('\n'),
    );
    const token = mintToken();
    writeFileSync(
      join(work, 'go-client.yaml'),
      [
        'backends:',
        '  - name: "interop"',
        `    hostnames: ["${HOST}"]`,
        `    nexusAddresses: ["wss://127.0.0.1:${hubPort}/connect"]`,
        ...credentials(token),
        '    portMappings:',
        `      ${tlsPort}:`,
        `        default: "${services.tlsAddr}"`,
        `      ${httpPort}:`,
        `        default: "${services.httpAddr}"`,
        '',
      ].join('\n'),
    );
    const node = run('nexus-node', process.execPath, [
      NODE_CLI,
      'serve',
      '-c',
      join(work, 'node.yaml'),
      '--log-level',
      ERA === 'current' ? 'debug' : 'info',
      '--log-format',
      'json',
    ]);
    try {
      await waitForTcp(hubPort, 15_000);
      // The reference client trusts the system roots only; SSL_CERT_FILE points Go at the test CA.
      const client = run('go-client', GO_CLIENT, ['-config', join(work, 'go-client.yaml')], {
        SSL_CERT_FILE: join(work, 'hub-ca.pem'),
      });
      try {
        await endToEnd(half, {
          tlsPort,
          httpPort,
          serviceCa: serviceCa.certPem,
          serviceFingerprint,
          proc: client,
          reauthLog: ERA === 'current' ? { file: node.logFile, msg: NODE_ROUNDS } : undefined,
        });
        if (ERA === 'current')
          await reauthRounds(half, { file: node.logFile, msg: NODE_ROUNDS }, 'backend connected');
      } finally {
        await stop(client);
      }
    } finally {
      await stop(node);
    }
  }

  if (GO_SERVER) {
    const half = `Nexus backend → Go server (${basename(GO_SERVER)}), ${ERA} era`;
    const hubPort = await freePort();
    const peerPort = await freePort();
    const tlsPort = await freePort();
    // The reference routes by Host only on relay port 80 and binds relay ports on all interfaces.
    const httpPort = (await isPortFree(80, '0.0.0.0')) ? 80 : undefined;
    writeFileSync(
      join(work, 'go-server.yaml'),
      [
        `backendListenAddress: "127.0.0.1:${hubPort}"`,
        `peerListenAddress: "127.0.0.1:${peerPort}"`,
        `backendsJWTSecret: "${SECRET}"`,
        `hubTlsCertFile: "${join(work, 'hub.crt')}"`,
        `hubTlsKeyFile: "${join(work, 'hub.key')}"`,
        `relayPorts: [${[tlsPort, httpPort].filter((p) => p !== undefined).join(', ')}]`,
        'idleTimeoutSeconds: 0',
        '',
      ].join('\n'),
    );
    const token = mintToken();
    const mappings = [`      ${tlsPort}: "${services.tlsAddr}"`];
    if (httpPort !== undefined) mappings.push(`      ${httpPort}: "${services.httpAddr}"`);
    writeFileSync(
      join(work, 'backend.yaml'),
      [
        'backends:',
        '  - name: "interop"',
        `    hostnames: ["${HOST}"]`,
        `    nexusAddresses: ["wss://127.0.0.1:${hubPort}/connect"]`,
        ...credentials(token),
        `    caFile: "${join(work, 'hub-ca.pem')}"`,
        '    portMappings:',
        ...mappings,
        '',
      ].join('\n'),
    );
    const server = run('go-server', GO_SERVER, ['-config', join(work, 'go-server.yaml')]);
    try {
      await waitForTcp(hubPort, 15_000);
      const backend = run('nexus-backend', process.execPath, [
        BACKEND_CLI,
        '-c',
        join(work, 'backend.yaml'),
        '--log-level',
        'debug',
      ]);
      try {
        await endToEnd(half, {
          tlsPort,
          httpPort,
          serviceCa: serviceCa.certPem,
          serviceFingerprint,
          proc: backend,
          reauthLog: ERA === 'current' ? { file: backend.logFile, msg: CLIENT_ROUNDS } : undefined,
        });
        if (ERA === 'current')
          await reauthRounds(half, { file: backend.logFile, msg: CLIENT_ROUNDS }, 'connected');
      } finally {
        await stop(backend);
      }
    } finally {
      await stop(server);
    }
  }
} catch (err) {
  record('setup', 'harness', 'FAIL', err instanceof Error ? err.message : String(err));
} finally {
  await stopAll();
  services.close();
}

report();
