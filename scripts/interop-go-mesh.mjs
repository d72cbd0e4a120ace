#!/usr/bin/env node
/**
 * Live mesh interoperability with the Go reference node (docs/compatibility.md, docs/protocol.md §2.6): a
 * Nexus node and a reference node list each other. The Nexus node's first announce carries its `nexus`
 * capabilities, which the reference must ignore: it must still route the Nexus node's hostname (an
 * end user at the reference's relay port reaches a backend attached to the Nexus node), log no decoding
 * error or unknown message type, and the Nexus node must treat it as a full-state peer (no route deltas,
 * both links kept).
 *
 *   NEXUS_GO_SERVER_BIN=/path/to/nexus-proxy-server   the reference node (current era, `-config <yaml>`)
 *
 * The reference binds its relay ports on every interface: run it in a network namespace with only
 * loopback, as root: `unshare -n sh -c 'ip link set lo up; NEXUS_GO_SERVER_BIN=… node scripts/interop-go-mesh.mjs'`.
 * Needs `npm run build`. Prints one line per check and a table; exits 1 when a check fails.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { createBackendClient, resolvePortMappings } from '@nexus-proxy/backend-client';
import {
  createCertificateAuthority,
  createNexus,
  issueCertificate,
  mintBackendToken,
} from '@nexus-proxy/core';
import { createHarness, freePort, retryUntil, waitForTcp } from './lib/interop-harness.mjs';

const GO_SERVER = process.env.NEXUS_GO_SERVER_BIN;
if (!GO_SERVER) {
  console.error('set NEXUS_GO_SERVER_BIN to the reference node binary (see docs/compatibility.md)');
  process.exit(2);
}
const HOST = 'app.test';
const SECRET = 'interop-mesh-secret-that-is-long-enough-0123456789';
const HELLO = 'hello through the mesh';
const HALF = 'Nexus node ↔ Go node mesh';

const { work, check, run, stop, stopAll, report } = createHarness('nexus-interop-mesh-');
const write = (name, text) => {
  writeFileSync(join(work, name), text);
  return join(work, name);
};

const ca = await createCertificateAuthority({ commonName: 'Interop Mesh CA' });
const caFile = write('ca.pem', ca.certPem);
const nodeCert = (name) =>
  issueCertificate(ca, { dnsNames: [`${name}.mesh.test`], ipAddresses: ['127.0.0.1'] });
const goCert = await nodeCert('go');
const nexusCert = await nodeCert('nexus');
const serviceCert = await issueCertificate(ca, { dnsNames: [HOST] });

// The local service behind the Nexus node's backend: TLS, answers one line.
const service = createTlsServer({ cert: serviceCert.certPem, key: serviceCert.keyPem }, (socket) => {
  socket.on('error', () => {});
  socket.end(`${HELLO}\n`);
});
await new Promise((r) => service.listen(0, '127.0.0.1', r));
const servicePort = service.address().port;

const [goHub, goPeer, goRelay, nexusPeer, nexusRelay] = await Promise.all(
  Array.from({ length: 5 }, () => freePort()),
);

let nexus;
let backend;
let go;
try {
  write(
    'go-server.yaml',
    [
      `backendListenAddress: "127.0.0.1:${goHub}"`,
      `peerListenAddress: "127.0.0.1:${goPeer}"`,
      `backendsJWTSecret: "${SECRET}"`,
      `hubTlsCertFile: "${write('go.crt', goCert.certPem)}"`,
      `hubTlsKeyFile: "${write('go.key', goCert.keyPem)}"`,
      `relayPorts: [${goRelay}]`,
      'idleTimeoutSeconds: 0',
      `peers: ["wss://127.0.0.1:${nexusPeer}/mesh"]`,
      'peerAuthentication:',
      '  trustedDomainSuffixes: [".mesh.test"]',
      '',
    ].join('\n'),
  );
  // The reference trusts the system roots only: the test CA through SSL_CERT_FILE.
  go = run('go-server', GO_SERVER, ['-config', join(work, 'go-server.yaml')], { SSL_CERT_FILE: caFile });
  await waitForTcp(goHub, 15_000);

  nexus = createNexus({
    backendListenAddress: '127.0.0.1:0',
    backendsJWTSecret: SECRET,
    hubTlsCertFile: write('nexus.crt', nexusCert.certPem),
    hubTlsKeyFile: write('nexus.key', nexusCert.keyPem),
    listeners: [{ port: nexusRelay, mode: 'tls', host: '127.0.0.1' }],
    peerListenAddress: `127.0.0.1:${nexusPeer}`,
    peers: [`wss://127.0.0.1:${goPeer}/mesh`],
    peerAuthentication: { trustedDomainSuffixes: ['.mesh.test'], caFile },
    // The reference's tunnels carry its own relay port.
    peerTunnelPorts: [nexusRelay, goRelay],
  });
  const addresses = await nexus.listen();

  await check(HALF, 'both links up (each node dials the other)', async () => {
    await retryUntil(() => {
      if (nexus.mesh.linkCount !== 2) throw new Error(`${nexus.mesh.linkCount} links`);
    }, 20_000);
    return nexus.mesh
      .links()
      .map((l) => l.direction)
      .sort()
      .join(' + ');
  });

  await check(HALF, 'the reference is a full-state peer (no capabilities in its announce)', async () => {
    await retryUntil(() => {
      const modes = nexus.mesh.links().map((l) => l.routeSync);
      if (!modes.every((m) => m === 'full')) throw new Error(`modes ${modes.join(', ')}`);
    }, 10_000);
    return 'routeSync full on both links';
  });

  backend = createBackendClient({
    nodes: [`wss://127.0.0.1:${addresses.hub.port}/connect`],
    token: await mintBackendToken({ secret: SECRET, hostnames: [HOST] }),
    tls: { ca: ca.certPem },
    portMappings: resolvePortMappings({
      [goRelay]: `127.0.0.1:${servicePort}`,
      [nexusRelay]: `127.0.0.1:${servicePort}`,
    }),
  });
  backend.on('error', () => {});
  backend.connect();

  await check(HALF, 'an end user at the reference node reaches the backend of the Nexus node', async () =>
    retryUntil(
      () =>
        new Promise((resolve, reject) => {
          const socket = tlsConnect({ host: '127.0.0.1', port: goRelay, servername: HOST, ca: ca.certPem });
          let text = '';
          socket.setEncoding('utf8');
          socket.on('data', (d) => {
            text += d;
          });
          socket.on('error', reject);
          socket.on('close', () =>
            text.startsWith(HELLO)
              ? resolve(`"${text.trim()}" via the reference's relay port`)
              : reject(new Error(`got "${text}"`)),
          );
        }),
      30_000,
    ),
  );

  await check(HALF, 'full-state announces only toward the reference', async () => {
    const out = nexus.mesh.stats().out;
    const sync = out.route_delta.messages + out.route_state.messages + out.route_resync.messages;
    if (sync !== 0) throw new Error(`${sync} route-sync messages sent`);
    return `${out.announce.messages} announces sent, 0 route deltas`;
  });

  await check(HALF, 'the reference logged no decoding error or unknown message type', async () => {
    const log = readFileSync(go.logFile, 'utf8');
    const bad = log.split('\n').filter((l) => /unknown text message type|Failed to unmarshal/i.test(l));
    if (bad.length > 0) throw new Error(bad[0]);
    const updates = log.split('\n').filter((l) => l.includes('Routing table updated for peer')).length;
    return `${updates} routing table updates from the Nexus node's announces`;
  });
} catch (err) {
  await check(HALF, 'harness', async () => {
    throw err;
  });
} finally {
  await backend?.close({ graceMs: 0 });
  await nexus?.close({ graceMs: 0 });
  if (go) await stop(go);
  await stopAll();
  service.close();
}
report();
