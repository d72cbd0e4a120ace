import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  createSelfSignedCertificate,
  issueCertificate,
} from '../src/certificates.js';
import { TlsError } from '../src/errors.js';
import { certificateInfo, HubTlsContext, type TlsCertificateInfo } from '../src/hub-tls.js';

let ca: CertificateAndKey;
let first: CertificateAndKey;
let second: CertificateAndKey;
let dir: string;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'Hub TLS Test CA' });
  first = await issueCertificate(ca, { dnsNames: ['hub.nexus.test'], ipAddresses: ['127.0.0.1'] });
  second = await issueCertificate(ca, { dnsNames: ['hub.nexus.test'], ipAddresses: ['127.0.0.1'] });
  dir = await mkdtemp(join(tmpdir(), 'hub-tls-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function serial(pem: string): string {
  return new X509Certificate(pem).serialNumber;
}

/** An echo server whose certificate comes from `context`. */
async function echoServer(context: HubTlsContext): Promise<number> {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(context.serverOptions(), (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  context.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

async function open(port: number, servername?: string): Promise<tls.TLSSocket> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ca: ca.certPem,
    ...(servername ? { servername } : {}),
  });
  cleanups.push(() => socket.destroy());
  await once(socket, 'secureConnect');
  return socket;
}

async function echo(socket: tls.TLSSocket, text: string): Promise<string> {
  socket.write(text);
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return chunk.toString('utf8');
}

describe('HubTlsContext', () => {
  it('serves the new certificate to new handshakes while an open connection stays usable', async () => {
    const context = new HubTlsContext(first);
    const port = await echoServer(context);
    const before = await open(port, 'hub.nexus.test');
    expect(before.getPeerX509Certificate()?.serialNumber).toBe(serial(first.certPem));

    const updates: TlsCertificateInfo[] = [];
    context.on('update', (info) => updates.push(info));
    const info = context.update(second);
    expect(info.serialNumber).toBe(serial(second.certPem));
    expect(updates).toEqual([info]);

    const after = await open(port, 'hub.nexus.test');
    expect(after.getPeerX509Certificate()?.serialNumber).toBe(serial(second.certPem));
    // The connection made before the swap still carries data both ways.
    expect(await echo(before, 'still here')).toBe('still here');
    expect(before.destroyed).toBe(false);
  });

  it('follows updates for clients that send no SNI once the server is attached', async () => {
    const context = new HubTlsContext(first);
    const port = await echoServer(context);
    expect((await open(port)).getPeerX509Certificate()?.serialNumber).toBe(serial(first.certPem));
    context.update(second);
    expect((await open(port)).getPeerX509Certificate()?.serialNumber).toBe(serial(second.certPem));
  });

  it('works as the SNICallback of an https server', async () => {
    const context = new HubTlsContext(first);
    const server = https.createServer(
      { SNICallback: (_name, cb) => cb(null, context.current) },
      (_req, res) => res.end('ok'),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const { port } = server.address() as AddressInfo;
    context.update(second);
    const peerSerial = await new Promise<string | undefined>((resolve, reject) => {
      const req = https.get(
        { host: '127.0.0.1', port, servername: 'hub.nexus.test', ca: ca.certPem, agent: false },
        (res) => {
          const socket = res.socket as tls.TLSSocket;
          const value = socket.getPeerX509Certificate()?.serialNumber;
          res.resume();
          res.on('end', () => resolve(value));
        },
      );
      req.on('error', reject);
    });
    expect(peerSerial).toBe(serial(second.certPem));
  });

  it('rejects a key that does not belong to the certificate and keeps serving the old one', async () => {
    const context = new HubTlsContext(first);
    const error = (() => {
      try {
        context.update({ certPem: second.certPem, keyPem: first.keyPem });
      } catch (e) {
        return e;
      }
    })();
    expect(TlsError.is(error)).toBe(true);
    expect((error as Error).message).toMatch(/does not match/);
    expect(context.info().serialNumber).toBe(serial(first.certPem));
  });

  it('rejects garbage PEM with TlsError', () => {
    expect(() => new HubTlsContext({ certPem: 'nope', keyPem: first.keyPem })).toThrow(TlsError);
    expect(() => new HubTlsContext({ certPem: first.certPem, keyPem: 'nope' })).toThrow(TlsError);
  });

  it('reports notBefore, notAfter, serial, SANs and fingerprint', async () => {
    const notBefore = new Date('2031-05-01T00:00:00Z');
    const material = await createSelfSignedCertificate({
      dnsNames: ['a.nexus.test', 'b.nexus.test'],
      ipAddresses: ['127.0.0.1'],
      notBefore,
      validityDays: 90,
    });
    const info = new HubTlsContext(material).info();
    const x509 = new X509Certificate(material.certPem);
    expect(info).toEqual({
      notBefore,
      notAfter: new Date('2031-07-30T00:00:00Z'),
      serialNumber: x509.serialNumber,
      subjectAltNames: ['DNS:a.nexus.test', 'DNS:b.nexus.test', 'IP Address:127.0.0.1'],
      fingerprint256: x509.fingerprint256,
      subject: 'CN=a.nexus.test',
      issuer: 'CN=a.nexus.test',
    });
    expect(certificateInfo(material.certPem)).toEqual(info);
  });

  it('applies contextOptions such as a client CA to every certificate', async () => {
    const client = await issueCertificate(ca, { dnsNames: ['peer.nexus.test'], clientAuth: true });
    const context = new HubTlsContext(first, { contextOptions: { ca: ca.certPem } });
    const server = tls.createServer(
      { ...context.serverOptions(), requestCert: true, rejectUnauthorized: true },
      (socket) => socket.end(String(socket.authorized)),
    );
    context.attach(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => server.close());
    context.update(second);
    const { port } = server.address() as AddressInfo;
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'hub.nexus.test',
      ca: ca.certPem,
      cert: client.certPem,
      key: client.keyPem,
    });
    cleanups.push(() => socket.destroy());
    const [data] = (await once(socket, 'data')) as [Buffer];
    expect(data.toString()).toBe('true');
  });

  describe('fromFiles', () => {
    it('loads PEM files and reloadFromFiles picks up replaced files', async () => {
      const certFile = join(dir, 'hub.crt');
      const keyFile = join(dir, 'hub.key');
      await writeFile(certFile, first.certPem);
      await writeFile(keyFile, first.keyPem);
      const context = await HubTlsContext.fromFiles(certFile, keyFile);
      expect(context.info().serialNumber).toBe(serial(first.certPem));

      await writeFile(certFile, second.certPem + ca.certPem);
      await writeFile(keyFile, second.keyPem);
      const info = await context.reloadFromFiles();
      expect(info.serialNumber).toBe(serial(second.certPem));
      expect(context.material.certPem).toContain(ca.certPem.trim());
    });

    it('keeps the old certificate when a reload finds a broken pair', async () => {
      const certFile = join(dir, 'broken.crt');
      const keyFile = join(dir, 'broken.key');
      await writeFile(certFile, first.certPem);
      await writeFile(keyFile, first.keyPem);
      const context = await HubTlsContext.fromFiles(certFile, keyFile);
      await writeFile(certFile, second.certPem); // key file not replaced yet
      await expect(context.reloadFromFiles()).rejects.toMatchObject({ code: 'NEXUS_ERR_TLS' });
      expect(context.info().serialNumber).toBe(serial(first.certPem));
    });

    it('throws TlsError for a missing file', async () => {
      await expect(
        HubTlsContext.fromFiles(join(dir, 'none.crt'), join(dir, 'none.key')),
      ).rejects.toBeInstanceOf(TlsError);
    });

    it('refuses reloadFromFiles on a context not made from files', async () => {
      await expect(new HubTlsContext(first).reloadFromFiles()).rejects.toBeInstanceOf(TlsError);
    });
  });
});
