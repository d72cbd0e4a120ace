#!/usr/bin/env node
/**
 * Live interoperability of the edge features (docs/edge.md) with the Go reference's current backend
 * client (not part of `npm test`; see docs/compatibility.md): the reference client, configured as its own
 * example configuration shows (`tcpPorts`, `udpRoutes`, `attestation.outboundAllowed`,
 * `socks5ListenAddr`), attaches to this repository's node (`nexus-proxy serve`) and
 *
 * - a raw TCP connection on the claimed port reaches the local service, when the end user speaks first
 *   and when it waits for the server's banner;
 * - a UDP flow on the claimed UDP port is echoed, NEXUS_INTEROP_DATAGRAMS datagrams (default 2 000) in a
 *   row, every one of them;
 * - `curl --socks5-hostname` through the client's SOCKS5 listener reaches an allowed target through the
 *   node, a 20 MiB download arrives byte for byte, and the node refuses a port it does not allow and an
 *   address its address policy refuses (each a SOCKS5 error for curl).
 *
 *   NEXUS_GO_CLIENT_BIN=/path/to/reference-backend-client node scripts/interop-go-edge.mjs
 *
 * Everything runs on loopback (the outbound targets are loopback addresses the node's
 * `allowedOutboundNetworks` lets through). Uses the current dist/ (run `npm run build` first). Prints a
 * PASS/FAIL table; exit code 1 if anything failed.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCertificateAuthority, issueCertificate } from '@nexus-proxy/core';
import { createHarness, freePort, retryUntil, waitForTcp } from './lib/interop-harness.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NODE_CLI = join(ROOT, 'packages/cli/dist/cli.js');
const GO_CLIENT = process.env.NEXUS_GO_CLIENT_BIN;
const SECRET = 'interop-secret-that-is-long-enough-0123456789abcdef';
const BANNER = '220 edge.test ready\r\n';
const DATAGRAMS = Number(process.env.NEXUS_INTEROP_DATAGRAMS ?? 2_000);
/** Datagrams in flight at once on the UDP flow (loopback socket buffers hold far more). */
const UDP_WINDOW = 32;
const DOWNLOAD_BYTES = 20 * 1024 * 1024;
/** The reference client retries every 5 s; attaching may take a few rounds. */
const ATTACH_TIMEOUT_MS = 30_000;

if (!GO_CLIENT) {
  console.error('set NEXUS_GO_CLIENT_BIN to the reference backend client (see docs/compatibility.md)');
  process.exit(2);
}
if (!existsSync(NODE_CLI)) {
  console.error(`${NODE_CLI} is missing: run npm run build first`);
  process.exit(2);
}

const { work, check, run, stop, stopAll, report } = createHarness('nexus-interop-edge-');
const half = `Go client (${basename(GO_CLIENT)}) → Nexus node, port claims and egress`;

// ───────────────────────────── local services ─────────────────────────────

/** A TCP service that greets with a banner, then echoes. */
async function startBannerEcho() {
  const server = createNetServer((socket) => {
    socket.write(BANNER);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('error', () => socket.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** A UDP echo service. */
async function startUdpEcho() {
  const socket = createSocket('udp4');
  socket.on('message', (msg, from) => socket.send(msg, from.port, from.address));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return socket;
}

/** The outbound target: `/hello`, and `/download?bytes=N` with the SHA-256 of what it sent. */
async function startTarget(host, port = 0) {
  const digests = new Map();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://target');
    if (url.pathname === '/download') {
      const total = Number(url.searchParams.get('bytes'));
      const hash = createHash('sha256');
      res.setHeader('content-length', String(total));
      let left = total;
      const pump = () => {
        while (left > 0) {
          const chunk = randomBytes(Math.min(left, 64 * 1024));
          left -= chunk.length;
          hash.update(chunk);
          if (left === 0) digests.set(url.searchParams.get('id'), hash.digest('hex'));
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else res.end(`hello from ${host}`);
  });
  server.listen(port, host);
  await once(server, 'listening');
  return { server, port: server.address().port, digests };
}

// ───────────────────────────── end-user side ─────────────────────────────

/** Connects to the claimed TCP port, optionally sends `hello`, and reads until `expected` bytes arrived. */
function tcpExchange(port, hello, expected, timeoutMs = 20_000) {
  return new Promise((done, fail) => {
    const socket = netConnect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      fail(
        new Error(`got ${JSON.stringify(got)} after ${timeoutMs} ms, expected ${JSON.stringify(expected)}`),
      );
    }, timeoutMs);
    socket.once('connect', () => {
      if (hello !== undefined) socket.write(hello);
    });
    socket.on('data', (chunk) => {
      got += chunk.toString();
      if (got.length >= expected.length) {
        clearTimeout(timer);
        socket.destroy();
        if (got === expected) done(got);
        else fail(new Error(`got ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`));
      }
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
  });
}

/**
 * Sends `count` numbered datagrams on one flow (one source port), at most UDP_WINDOW unanswered at a
 * time; resolves with how many distinct ones came back. A datagram not answered within 2 s is counted lost
 * and its slot freed, so a loss shows as a shortfall rather than a hang.
 */
async function udpFlow(port, count) {
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const answered = new Set();
  let next = 0;
  let lost = 0;
  const pending = new Map();
  return new Promise((done) => {
    const finish = () => {
      socket.close();
      done({ answered: answered.size, lost });
    };
    const send = () => {
      while (next < count && pending.size < UDP_WINDOW) {
        const n = next++;
        const payload = Buffer.alloc(512, n % 251);
        payload.writeUInt32BE(n, 0);
        pending.set(
          n,
          setTimeout(() => {
            pending.delete(n);
            lost++;
            send();
          }, 2_000),
        );
        socket.send(payload, port, '127.0.0.1');
      }
      if (next >= count && pending.size === 0) finish();
    };
    socket.on('message', (msg) => {
      const n = msg.readUInt32BE(0);
      const timer = pending.get(n);
      if (timer === undefined) return;
      clearTimeout(timer);
      pending.delete(n);
      if (msg.length === 512 && msg[511] === n % 251) answered.add(n);
      send();
    });
    send();
  });
}

/** Runs curl through the SOCKS5 listener; resolves with its exit code, stdout and stderr. */
function curl(socksPort, url, extra = []) {
  return new Promise((done) => {
    execFile(
      'curl',
      ['-sS', '--max-time', '30', '--socks5-hostname', `127.0.0.1:${socksPort}`, ...extra, url],
      { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        done({ code: err ? (err.code ?? 1) : 0, stdout, stderr: stderr.toString().trim() }),
    );
  });
}

/**
 * A refusal by the node: curl fails with SOCKS5 reply 5 ("connection refused"), which the reference client
 * sends for an `outbound_result` failure (1, "general failure", would be a time-out or no session).
 */
function refused(r) {
  if (r.code === 0) throw new Error(`curl reached the target: ${r.stdout.toString().slice(0, 80)}`);
  const reply = /\((\d+)\)\s*$/.exec(r.stderr)?.[1];
  if (reply !== '5') throw new Error(`SOCKS5 reply ${reply ?? '?'} (expected 5, refused): ${r.stderr}`);
  return `SOCKS5 reply 5: ${r.stderr}`;
}

// ───────────────────────────── main ─────────────────────────────

const hubCa = await createCertificateAuthority({ commonName: 'Nexus interop hub CA' });
const hubCert = await issueCertificate(hubCa, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
writeFileSync(join(work, 'hub-ca.pem'), hubCa.certPem);
writeFileSync(join(work, 'hub.crt'), hubCert.certPem);
writeFileSync(join(work, 'hub.key'), hubCert.keyPem, { mode: 0o600 });

const tcpService = await startBannerEcho();
const udpService = await startUdpEcho();
const target = await startTarget('127.0.0.1');
// A loopback address outside the networks the node lets outbound connections reach.
const refusedTarget = await startTarget('127.0.0.2', target.port);

try {
  const hubPort = await freePort();
  const tcpClaimPort = await freePort();
  const udpClaimPort = await freePort();
  const socksPort = await freePort();
  const deniedPort = await freePort();
  writeFileSync(
    join(work, 'node.yaml'),
    [
      `backendListenAddress: "127.0.0.1:${hubPort}"`,
      `backendsJWTSecret: "${SECRET}"`,
      'hubTlsCertFile: "hub.crt"',
      'hubTlsKeyFile: "hub.key"',
      'listeners:',
      `  - { port: ${tcpClaimPort}, mode: tls, host: "127.0.0.1" }`,
      `allowedTCPPortClaims: [${tcpClaimPort}]`,
      `udpRelayPorts: [${udpClaimPort}]`,
      `allowedUDPPortClaims: [${udpClaimPort}]`,
      'allowOutbound: true',
      `allowedOutboundPorts: [${target.port}]`,
      'allowedOutboundNetworks: ["127.0.0.1/32"]',
      'limits:',
      // The banner test waits out the first-byte deadline before the claim takes the connection.
      '  sniffFirstByteTimeoutMs: 2000',
      'idleTimeoutSeconds: 0',
      '',
    ].join('\n'),
  );
  // As the reference's client example shows: claims, attestation with outbound, and a SOCKS5 listener.
  writeFileSync(
    join(work, 'go-client.yaml'),
    [
      'backends:',
      '  - name: "edge"',
      `    tcpPorts: [${tcpClaimPort}]`,
      '    udpRoutes:',
      `      - port: ${udpClaimPort}`,
      '        flowIdleTimeoutSeconds: 60',
      `    nexusAddresses: ["wss://127.0.0.1:${hubPort}/connect"]`,
      '    attestation:',
      `      hmacSecret: "${SECRET}"`,
      '      outboundAllowed: true',
      `      allowedOutboundPorts: [${target.port}]`,
      '    portMappings:',
      `      ${tcpClaimPort}:`,
      `        default: "127.0.0.1:${tcpService.address().port}"`,
      `      ${udpClaimPort}:`,
      `        default: "127.0.0.1:${udpService.address().port}"`,
      `    socks5ListenAddr: "127.0.0.1:${socksPort}"`,
      '',
    ].join('\n'),
  );
  const node = run('nexus-node', process.execPath, [
    NODE_CLI,
    'serve',
    '-c',
    join(work, 'node.yaml'),
    '--log-format',
    'json',
  ]);
  await waitForTcp(hubPort, 15_000);
  // The reference client trusts the system roots only; SSL_CERT_FILE points Go at the test CA.
  const client = run('go-client', GO_CLIENT, ['-config', join(work, 'go-client.yaml')], {
    SSL_CERT_FILE: join(work, 'hub-ca.pem'),
  });
  try {
    const attached = await check(half, 'attaches; raw TCP on the claimed port, end user speaks first', () =>
      retryUntil(async () => {
        if (client.exitCode !== null)
          throw new Error(`the client exited (${client.exitCode}); see ${client.logFile}`);
        await tcpExchange(tcpClaimPort, 'PING edge\r\n', `${BANNER}PING edge\r\n`, 5_000);
        return 'banner and echo received';
      }, ATTACH_TIMEOUT_MS),
    );
    if (attached) {
      await check(half, 'raw TCP on the claimed port, server speaks first (banner)', async () => {
        const started = Date.now();
        await tcpExchange(tcpClaimPort, undefined, BANNER);
        return `banner after ${Date.now() - started} ms (first-byte deadline 2 000 ms)`;
      });
      await check(half, `UDP claim: ${DATAGRAMS} datagrams in a row on one flow, all echoed`, async () => {
        const started = Date.now();
        const { answered, lost } = await udpFlow(udpClaimPort, DATAGRAMS);
        const ms = Date.now() - started;
        if (answered !== DATAGRAMS) throw new Error(`${answered} of ${DATAGRAMS} echoed, ${lost} lost`);
        return `${answered} echoed in ${ms} ms (${Math.round((answered / ms) * 1000)} datagrams/s)`;
      });
      await check(half, 'SOCKS5 egress: curl --socks5-hostname reaches an allowed target', async () => {
        const r = await curl(socksPort, `http://127.0.0.1:${target.port}/hello`);
        if (r.code !== 0 || r.stdout.toString() !== 'hello from 127.0.0.1')
          throw new Error(`curl exit ${r.code}: ${r.stderr || r.stdout.toString().slice(0, 80)}`);
        return `"${r.stdout.toString()}"`;
      });
      await check(half, 'SOCKS5 egress: 20 MiB download, SHA-256', async () => {
        const id = randomBytes(8).toString('hex');
        const started = Date.now();
        const r = await curl(
          socksPort,
          `http://127.0.0.1:${target.port}/download?bytes=${DOWNLOAD_BYTES}&id=${id}`,
        );
        const ms = Date.now() - started;
        if (r.code !== 0) throw new Error(`curl exit ${r.code}: ${r.stderr}`);
        const got = createHash('sha256').update(r.stdout).digest('hex');
        if (r.stdout.length !== DOWNLOAD_BYTES)
          throw new Error(`${r.stdout.length} of ${DOWNLOAD_BYTES} bytes`);
        if (got !== target.digests.get(id)) throw new Error('SHA-256 differs');
        return `${DOWNLOAD_BYTES} bytes in ${ms} ms`;
      });
      await check(half, 'SOCKS5 egress: a port the node does not allow is refused', async () => {
        return refused(await curl(socksPort, `http://127.0.0.1:${deniedPort}/hello`));
      });
      await check(half, 'SOCKS5 egress: an address outside allowedOutboundNetworks is refused', async () => {
        return refused(await curl(socksPort, `http://127.0.0.2:${refusedTarget.port}/hello`));
      });
    }
  } finally {
    await stop(client);
    await stop(node);
  }
} catch (err) {
  await check('setup', 'harness', () => Promise.reject(err));
} finally {
  await stopAll();
  tcpService.close();
  udpService.close();
  target.server.close();
  refusedTarget.server.close();
}

report();
