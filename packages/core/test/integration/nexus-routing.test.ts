import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
} from '../../src/certificates.js';
import {
  createTestPki,
  httpGet,
  type TestNode,
  type StartNodeOptions,
  onHttpRequest,
  rawConnect,
  startNode,
  startService,
  type TestPki,
  type TestService,
  tlsEndUser,
  TapDuplex,
} from '@nexus-proxy/test-harness';

vi.setConfig({ testTimeout: 20_000 });

let pki: TestPki;
/** A CA of the backend's own, unrelated to the node's: the end user trusts only this one. */
let serviceCa: CertificateAndKey;
let appCert: CertificateAndKey;
beforeAll(async () => {
  pki = await createTestPki();
  serviceCa = await createCertificateAuthority({ commonName: 'App Service CA' });
  appCert = await issueCertificate(serviceCa, { dnsNames: ['app.test'] });
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(options: Omit<StartNodeOptions, 'pki'> = {}): Promise<TestNode> {
  const n = await startNode({ pki, ...options });
  cleanups.push(() => n.close());
  return n;
}

async function service(...args: Parameters<typeof startService>): Promise<TestService> {
  const s = await startService(...args);
  cleanups.push(() => s.close());
  return s;
}

/** An HTTP service answering every request with `body` and closing. */
function answering(body: string): Promise<TestService> {
  return service((socket) =>
    onHttpRequest(socket, () =>
      socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`),
    ),
  );
}

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

describe('createNexus: passthrough', () => {
  it('passes TLS through: a Node TLS client sees the service certificate, never the hub certificate', async () => {
    const n = await node();
    const svc = await service((s) => s.pipe(s), { tls: appCert });
    await n.attachBackend({ hostnames: ['app.test'], service: svc.port });

    const client = await tlsEndUser(n.tlsPort, 'app.test', serviceCa.certPem);
    expect(client.authorized).toBe(true);
    const peer = client.getPeerX509Certificate();
    expect(peer?.fingerprint256).toBe(fingerprint(appCert.certPem));
    expect(peer?.fingerprint256).not.toBe(fingerprint(pki.hub.certPem));
    expect(peer?.checkIssued(new X509Certificate(serviceCa.certPem))).toBe(true);
    client.write('ping through the node');
    const [echo] = (await once(client, 'data')) as [Buffer];
    expect(echo.toString()).toBe('ping through the node');
    client.end();
    await once(client, 'close');
    await vi.waitFor(() => expect(n.events.streamClose).toHaveLength(1));
    expect(n.events.streamClose[0]).toMatchObject({ hostname: 'app.test', isTls: true });
    expect(n.events.streamClose[0]?.bytesDown).toBeGreaterThan(0);
  });

  it('serves curl --resolve app.test over HTTPS with the service certificate (exit 0, body intact)', async () => {
    const n = await node();
    const https = createHttpsServer({ cert: appCert.certPem, key: appCert.keyPem }, (req, res) => {
      res.end(`served ${req.headers.host} by the service`);
    });
    https.listen(0, '127.0.0.1');
    await once(https, 'listening');
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          https.closeAllConnections();
          https.close(() => r());
        }),
    );
    await n.attachBackend({ hostnames: ['app.test'], service: (https.address() as AddressInfo).port });
    const dir = mkdtempSync(join(tmpdir(), 'nexus-curl-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, serviceCa.certPem);

    // Async: the node runs in this process and must keep serving while curl waits.
    const { stdout } = await promisify(execFile)('curl', [
      '--silent',
      '--show-error',
      '--max-time',
      '10',
      '--noproxy',
      '*',
      '--resolve',
      `app.test:${n.tlsPort}:127.0.0.1`,
      '--cacert',
      caFile,
      '--write-out',
      '\n%{ssl_verify_result} %{http_code}',
      `https://app.test:${n.tlsPort}/`,
    ]);
    expect(stdout).toBe(`served app.test:${n.tlsPort} by the service\n0 200`);
  });
});

describe('createNexus: routing', () => {
  it('routes HTTP by Host on the HTTP listener, each name to its own backend', async () => {
    const n = await node();
    const a = await answering('from-a');
    const b = await answering('from-b');
    await n.attachBackend({ hostnames: ['app.test'], service: a.port });
    await n.attachBackend({ hostnames: ['other.test'], service: b.port });
    expect(await httpGet(n.httpPort, 'app.test')).toMatch(/\r\n\r\nfrom-a$/);
    expect(await httpGet(n.httpPort, 'OTHER.test:8080')).toMatch(/\r\n\r\nfrom-b$/);
    expect(await httpGet(n.httpPort, 'app.test')).toMatch(/\r\n\r\nfrom-a$/);
    expect(n.events.streamOpen.map((e) => [e.hostname, e.isTls])).toEqual([
      ['app.test', false],
      ['other.test', false],
      ['app.test', false],
    ]);
    expect(n.events.streamOpen.map((e) => [e.via, e.route])).toEqual([
      ['local', 'app.test'],
      ['local', 'other.test'],
      ['local', 'app.test'],
    ]);
  });

  it('routes a wildcard route (*.example.test) for one extra label only', async () => {
    const n = await node();
    const w = await answering('wild');
    await n.attachBackend({ hostnames: ['*.example.test'], service: w.port });
    expect(await httpGet(n.httpPort, 'foo.example.test')).toMatch(/wild$/);
    expect(await httpGet(n.httpPort, 'bar.example.test')).toMatch(/wild$/);
    // docs/protocol.md §3.2: a wildcard matches exactly one extra label.
    expect(await httpGet(n.httpPort, 'a.b.example.test')).toBe('');
    expect(await httpGet(n.httpPort, 'example.test')).toBe('');
    expect(n.events.routeMiss.map((e) => e.hostname)).toEqual(['a.b.example.test', 'example.test']);
    // The events carry the pattern the routing decision matched.
    expect(n.events.streamOpen.map((e) => [e.hostname, e.route])).toEqual([
      ['foo.example.test', '*.example.test'],
      ['bar.example.test', '*.example.test'],
    ]);
    await vi.waitFor(() => expect(n.events.streamClose).toHaveLength(2));
    expect(n.events.streamClose.map((e) => e.route)).toEqual(['*.example.test', '*.example.test']);
  });

  it('closes an unknown TLS name, an unknown Host and a ClientHello without SNI with 0 bytes written', async () => {
    const n = await node();
    const svc = await service((s) => s.pipe(s), { tls: appCert });
    await n.attachBackend({ hostnames: ['app.test'], service: svc.port });

    // Unknown SNI: the TLS handshake fails with nothing received (no alert, no ServerHello).
    const tap1 = new TapDuplex(netConnect({ host: '127.0.0.1', port: n.tlsPort }));
    tap1.on('error', () => {});
    const t1 = tlsConnect({ socket: tap1, servername: 'nobody.test', ca: serviceCa.certPem });
    const errors1: NodeJS.ErrnoException[] = [];
    t1.on('error', (err) => errors1.push(err));
    await new Promise((resolve) => t1.once('close', resolve));
    expect(errors1[0]?.code).toBe('ECONNRESET');
    expect(t1.authorized).toBe(false);
    expect(Buffer.concat(tap1.received).length).toBe(0);
    expect(Buffer.concat(tap1.sent).length).toBeGreaterThan(0);

    // No SNI (an IP-address target sends none).
    const tap2 = new TapDuplex(netConnect({ host: '127.0.0.1', port: n.tlsPort }));
    tap2.on('error', () => {});
    const t2 = tlsConnect({ socket: tap2, ca: serviceCa.certPem });
    t2.on('error', () => {});
    await new Promise((resolve) => t2.once('close', resolve));
    expect(Buffer.concat(tap2.received).length).toBe(0);

    // Unknown Host on the HTTP listener.
    const c3 = await rawConnect(n.httpPort);
    c3.socket.write('GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n');
    const end3 = await c3.closed;
    expect(c3.received().length).toBe(0);
    expect(end3.fin || end3.error !== undefined).toBe(true);

    await vi.waitFor(() => expect(n.events.sniffFailed).toHaveLength(3));
    expect(n.events.sniffFailed.map((e) => e.reason).sort()).toEqual(['no-route', 'no-route', 'no-sni']);
    expect(n.events.routeMiss.map((e) => [e.hostname, e.isTls])).toEqual([
      ['nobody.test', true],
      ['nobody.test', false],
    ]);
    expect(n.events.streamOpen).toHaveLength(0);
    expect(svc.accepted).toHaveLength(0);
  });

  it('spreads 600 connections 5:1 over two backends as 500:100 (±2 %), interleaved', async () => {
    const n = await node({ listeners: ['http'] });
    const a = await answering('A');
    const b = await answering('B');
    await n.attachBackend({ hostnames: ['app.test'], weight: 5, service: a.port });
    await n.attachBackend({ hostnames: ['app.test'], weight: 1, service: b.port });
    let picks = '';
    // Sequential, so the order of picks is the order of connections.
    for (let i = 0; i < 600; i++) picks += (await httpGet(n.httpPort, 'app.test')).slice(-1);
    const countA = picks.split('').filter((c) => c === 'A').length;
    const countB = picks.split('').filter((c) => c === 'B').length;
    expect(countA + countB).toBe(600);
    expect(Math.abs(countA - 500)).toBeLessThanOrEqual(10);
    expect(Math.abs(countB - 100)).toBeLessThanOrEqual(2);
    // Interleaved: every window of 6 consecutive picks holds exactly one B, and no period is
    // "5 A then 1 B" (smooth WRR gives A A B A A A).
    for (let i = 0; i + 6 <= picks.length; i++) {
      expect(picks.slice(i, i + 6).split('B').length - 1).toBe(1);
    }
    for (let i = 0; i + 6 <= picks.length; i += 6) expect(picks.slice(i, i + 6)).not.toBe('AAAAAB');
    expect(picks).not.toContain('AAAAAA');
  });

  it('R15 empty exact pool shadows wildcard: a.example.test falls back to *.example.test when the exact backend leaves', async () => {
    const n = await node({ listeners: ['http'] });
    const exact = await answering('exact');
    const wild = await answering('wild');
    const exactBackend = await n.attachBackend({ hostnames: ['a.example.test'], service: exact.port });
    await n.attachBackend({ hostnames: ['*.example.test'], service: wild.port });
    expect(await httpGet(n.httpPort, 'a.example.test')).toMatch(/exact$/);
    expect(await httpGet(n.httpPort, 'b.example.test')).toMatch(/wild$/);
    await exactBackend.close();
    await vi.waitFor(() => expect(n.events.backendDisconnected).toHaveLength(1));
    expect(await httpGet(n.httpPort, 'a.example.test')).toMatch(/wild$/);
    expect(n.events.routeMiss).toHaveLength(0);
    // Exact while the exact backend served it, the wildcard after: each stream names what matched.
    expect(n.events.streamOpen.map((e) => [e.hostname, e.route])).toEqual([
      ['a.example.test', 'a.example.test'],
      ['b.example.test', '*.example.test'],
      ['a.example.test', '*.example.test'],
    ]);
  });

  it('tells the backend the relay port the end user connected to (conn_port), not the configured 0', async () => {
    const n = await node();
    const a = await answering('ok');
    const backend = await n.attachBackend({ hostnames: ['app.test'], service: a.port });
    expect(await httpGet(n.httpPort, 'app.test')).toMatch(/ok$/);
    expect(backend.streams[0]).toMatchObject({ hostname: 'app.test', isTls: false, connPort: n.httpPort });
  });
});
