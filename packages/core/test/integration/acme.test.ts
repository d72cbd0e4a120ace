import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import * as acme from 'acme-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AcmeCertificateManager,
  type AcmeCertificateManagerOptions,
  type AcmeFailedEvent,
  type AcmeIssuedEvent,
} from '../../src/acme.js';
import type { HubTlsContext } from '../../src/hub-tls.js';
import { type Pebble, startPebble } from '../helpers/pebble.js';

const HOSTNAME = 'hub.nexus.test';

let pebble: Pebble;
/** Why pebble could not start; every test then fails with it (a missing pebble must not skip tests). */
let pebbleError: unknown;
let challengeServer: http.Server;
let challengeRequests = 0;
/** The managers whose challenges the HTTP-01 server answers (like the node's HTTP relay listener). */
const managers = new Set<AcmeCertificateManager>();
const cleanups: (() => Promise<void> | void)[] = [];
const timings: number[] = [];

beforeAll(async () => {
  challengeServer = http.createServer((req, res) => {
    challengeRequests += 1;
    const match = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '');
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    for (const manager of managers) {
      const answer = match?.[1] === undefined ? undefined : manager.challengeResponse(host, match[1]);
      if (answer !== undefined) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
        return;
      }
    }
    res.writeHead(404).end();
  });
  challengeServer.listen(0, '127.0.0.1');
  await once(challengeServer, 'listening');
  try {
    pebble = await startPebble({ httpPort: (challengeServer.address() as AddressInfo).port });
  } catch (error) {
    pebbleError = error;
  }
});

beforeEach(() => {
  if (pebbleError !== undefined) throw pebbleError;
});

afterAll(async () => {
  await pebble?.stop();
  await new Promise((resolve) => challengeServer?.close(resolve));
  if (timings.length > 0) {
    console.info(`ACME issuance against pebble: ${timings.map((ms) => `${ms} ms`).join(', ')}`);
  }
});

afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'acme-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function createManager(overrides: Partial<AcmeCertificateManagerOptions> & { cacheDir: string }) {
  const manager = new AcmeCertificateManager({
    hostname: HOSTNAME,
    directoryUrl: pebble.directoryUrl,
    ca: pebble.apiCaPem,
    email: 'ops@nexus.test',
    skipChallengeVerification: true,
    backoffMin: 100,
    backoffMax: 1000,
    retryMin: 200,
    retryMax: 1000,
    ...overrides,
  });
  managers.add(manager);
  cleanups.push(async () => {
    managers.delete(manager);
    await manager.close();
  });
  return manager;
}

async function tlsServer(context: HubTlsContext): Promise<number> {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(context.serverOptions(), (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  context.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

async function connect(port: number, rootPem: string): Promise<{ socket: tls.TLSSocket; serial: string }> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: HOSTNAME, ca: rootPem });
  cleanups.push(() => {
    socket.destroy();
  });
  await once(socket, 'secureConnect');
  expect(socket.authorized).toBe(true);
  const serial = socket.getPeerX509Certificate()?.serialNumber;
  if (serial === undefined) throw new Error('no peer certificate');
  return { socket, serial };
}

async function echo(socket: tls.TLSSocket, text: string): Promise<string> {
  socket.write(text);
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return chunk.toString('utf8');
}

function leafOf(chainPem: string): X509Certificate {
  return new X509Certificate(chainPem);
}

describe('AcmeCertificateManager against pebble', () => {
  // One cache shared by the first three tests: issue, restart from it, renew.
  let cacheDir: string;
  let firstSerial: string;

  beforeAll(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'acme-cache-'));
  });

  afterAll(async () => {
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('serves a temporary certificate, then issues one that chains to pebble’s root', async () => {
    const manager = createManager({ cacheDir });
    const issued = once(manager, 'issued') as Promise<[AcmeIssuedEvent]>;
    const context = await manager.start();
    expect(manager.status().state).toBe('temporary');
    const temporary = context.info();
    expect(temporary.issuer).toBe(temporary.subject);

    const [event] = await issued;
    timings.push(event.durationMs);
    expect(manager.status().state).toBe('valid');
    expect(event.info.subjectAltNames).toEqual([`DNS:${HOSTNAME}`]);
    expect(challengeRequests).toBeGreaterThan(0);

    // The leaf chains (through pebble's intermediate) to the root of this pebble run.
    const root = new X509Certificate(await pebble.rootCaPem());
    const chain = context.material.certPem.split(/(?<=-----END CERTIFICATE-----)\s*/).filter((p) => p.trim());
    const certs = chain.map((pem) => new X509Certificate(pem));
    expect(certs.length).toBeGreaterThanOrEqual(2);
    for (let i = 0; i + 1 < certs.length; i += 1) expect(certs[i]!.checkIssued(certs[i + 1]!)).toBe(true);
    expect(certs.at(-1)!.checkIssued(root)).toBe(true);
    expect(certs.at(-1)!.verify(root.publicKey)).toBe(true);

    // A real TLS client trusting only pebble's root accepts the served certificate for HOSTNAME.
    const port = await tlsServer(context);
    const { serial } = await connect(port, root.toString());
    expect(serial).toBe(certs[0]!.serialNumber);
    firstSerial = serial;

    // Cache: directory 0700, key files 0600.
    expect((await stat(cacheDir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(cacheDir, 'account-key.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(cacheDir, `${HOSTNAME}.key`))).mode & 0o777).toBe(0o600);
    expect(manager.status().renewAt!.getTime()).toBeGreaterThan(Date.now());
    // The extra CA for pebble's API stayed private to this manager's client.
    expect(acme.axios.defaults.httpsAgent).toBeUndefined();
  });

  it('restarts from the cache without placing an order', async () => {
    const createOrder = vi.spyOn(acme.Client.prototype, 'createOrder');
    const manager = createManager({ cacheDir });
    const issued = vi.fn();
    manager.on('issued', issued);
    manager.on('renewed', issued);
    const loaded = once(manager, 'loaded');
    const context = await manager.start();
    await loaded;
    expect(context.info().serialNumber).toBe(firstSerial);
    expect(manager.status().state).toBe('valid');
    await expect(manager.ready()).resolves.toMatchObject({ serialNumber: firstSerial });
    // Give any (wrongly) started order the time a pebble issuance takes.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(createOrder).not.toHaveBeenCalled();
    expect(issued).not.toHaveBeenCalled();
  });

  it('renews early on demand: new handshakes get the new certificate, open connections stay up', async () => {
    const createOrder = vi.spyOn(acme.Client.prototype, 'createOrder');
    // Trust pebble's API through a CA file this time (the `acmeCaFile` path).
    const manager = createManager({ cacheDir, ca: undefined, caFile: pebble.apiCaFile });
    const context = await manager.start();
    const root = await pebble.rootCaPem();
    const port = await tlsServer(context);
    const before = await connect(port, root);
    expect(before.serial).toBe(firstSerial);

    const renewed = once(manager, 'renewed') as Promise<[AcmeIssuedEvent]>;
    const info = await manager.renewNow();
    const [event] = await renewed;
    timings.push(event.durationMs);
    expect(createOrder).toHaveBeenCalledTimes(1);
    expect(info.serialNumber).not.toBe(firstSerial);

    const after = await connect(port, root);
    expect(after.serial).toBe(info.serialNumber);
    expect(await echo(before.socket, 'ping over the old connection')).toBe('ping over the old connection');

    // The renewed certificate is what the next restart loads.
    const restarted = createManager({ cacheDir });
    expect((await restarted.start()).info().serialNumber).toBe(info.serialNumber);
    expect(leafOf(context.material.certPem).serialNumber).toBe(info.serialNumber);
  });

  it('reports the ACME problem when validation fails, retries with backoff and keeps serving', async () => {
    const dir = await tempDir();
    // Nobody answers the challenge for this name: pebble marks the authorization invalid.
    const manager = createManager({
      cacheDir: dir,
      hostname: 'unanswered.nexus.test',
      retryMin: 200,
      retryMax: 1000,
    });
    managers.delete(manager);
    const failures: AcmeFailedEvent[] = [];
    const scheduled = vi.fn();
    manager.on('scheduled', scheduled);
    const seenAt: number[] = [];
    const twoFailures = new Promise<void>((resolve) => {
      manager.on('failed', (event) => {
        failures.push(event);
        seenAt.push(Date.now());
        if (failures.length === 2) resolve();
      });
    });
    const context = await manager.start();
    await twoFailures;

    const [first, second] = failures;
    expect(first!.error.code).toBe('NEXUS_ERR_ACME');
    expect(first!.problem?.type).toBe('urn:ietf:params:acme:error:unauthorized');
    expect(first!.error.message).toContain('unanswered.nexus.test');
    expect(first!.attempt).toBe(1);
    expect(second!.attempt).toBe(2);
    expect(scheduled).toHaveBeenCalledWith(expect.objectContaining({ reason: 'retry' }));
    // The delay doubles: 200 ms after the first failure, 400 ms after the second.
    expect(first!.retryAt.getTime() - seenAt[0]!).toBeGreaterThan(150);
    expect(first!.retryAt.getTime() - seenAt[0]!).toBeLessThanOrEqual(200);
    expect(second!.retryAt.getTime() - seenAt[1]!).toBeGreaterThan(350);
    expect(second!.retryAt.getTime() - seenAt[1]!).toBeLessThanOrEqual(400);
    expect(seenAt[1]! - seenAt[0]!).toBeGreaterThanOrEqual(200);
    expect(manager.status()).toMatchObject({ state: 'temporary', failures: 2 });
    expect(manager.status().nextAttemptAt!.getTime()).toBeGreaterThan(Date.now() + 200);
    // The hub keeps serving its temporary certificate.
    expect(context.info().subjectAltNames).toEqual(['DNS:unanswered.nexus.test']);
  });
});
