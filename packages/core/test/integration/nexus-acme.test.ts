/**
 * Automatic hub TLS through a whole node (`createNexus` with `hubPublicHostname`) against Debian's pebble on
 * loopback: pebble validates HTTP-01 on the node's own HTTP relay listener, real backend clients attach
 * over `wss` trusting only pebble's root, and end users reach them through the same listener.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tls from 'node:tls';
import {
  type BackendClient,
  createBackendClient,
  resolvePortMappings,
  type StreamOpenEvent as ClientStreamOpenEvent,
} from '@nexus-proxy/backend-client';
import * as acme from 'acme-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AcmeFailedEvent, AcmeIssuedEvent } from '../../src/acme.js';
import { mintBackendToken } from '../../src/auth.js';
import type { NexusConfigInput } from '../../src/config.js';
import type { BackendConnectedEvent, BackendDisconnectedEvent } from '../../src/hub.js';
import {
  type CreateNexusOptions,
  createNexus,
  type Nexus,
  type RouteMissEvent,
  type SniffFailedEvent,
} from '../../src/nexus.js';
import {
  httpGet,
  onHttpRequest,
  type LogLine,
  rawConnect,
  recordingLogger,
  startService,
  TEST_RECONNECT,
  type TestService,
} from '@nexus-proxy/test-harness';
import { freePort, type Pebble, startPebble } from '../helpers/pebble.js';

/** The node's public hostname; pebble's DNS (challtestsrv) resolves it to 127.0.0.1. */
const HUB = 'hub.nexus.test';
/** A site served by a backend through the node's relay listeners. */
const APP = 'app.nexus.test';
const SECRET = 'nexus-acme-test-secret-that-is-long-enough-0123456789';
const WAIT = { timeout: 15_000, interval: 20 };
/** Short test settings: pebble answers at once, and failures retry after 200 ms, 400 ms, … */
const ACME_TEST_OPTIONS: CreateNexusOptions['acme'] = {
  skipChallengeVerification: true,
  backoffMin: 100,
  backoffMax: 1000,
  retryMin: 200,
  retryMax: 1000,
};

let pebble: Pebble;
/** Why pebble could not start; every test then fails with it (a missing pebble must not skip tests). */
let pebbleError: unknown;
/** The node's HTTP relay port, which is also pebble's HTTP-01 validation port. */
let httpPort: number;
/** Pebble's issuing root (new on every pebble start): the only CA the backends trust. */
let rootPem: string;
const cleanups: Array<() => Promise<void> | void> = [];
/** Issuance times through the node: from `listen()` (or `renewNow()`) to the certificate, and the order alone. */
const timings: Array<{ label: string; wallMs: number; orderMs: number }> = [];

beforeAll(async () => {
  try {
    httpPort = await freePort();
    // No reuse of valid authorizations: every order (the renewal too) is validated on the node.
    pebble = await startPebble({ httpPort, authzReusePercent: 0 });
    rootPem = await pebble.rootCaPem();
  } catch (error) {
    pebbleError = error;
  }
});

beforeEach(() => {
  if (pebbleError !== undefined) throw pebbleError;
});

afterEach(() => {
  vi.restoreAllMocks();
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await pebble?.stop();
  if (timings.length > 0) {
    console.info(
      `ACME issuance through the node against pebble: ${timings
        .map((t) => `${t.label} ${t.wallMs} ms (order ${t.orderMs} ms)`)
        .join(', ')}`,
    );
  }
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// ───────────────────────────── node ─────────────────────────────

/** A backend client attached to an ACME node. */
interface TestBackend {
  client: BackendClient;
  /** Connection attempts that failed (e.g. the hub's certificate was refused). */
  errors: Error[];
  streams: ClientStreamOpenEvent[];
  /** Resolves with the node's registration of this client's session. */
  registered: Promise<BackendConnectedEvent>;
}

interface AcmeNode {
  nexus: Nexus;
  hubPort: number;
  httpPort: number;
  /** `performance.now()` when `listen()` was called. */
  listenCalledAt: number;
  issued: Array<{ event: AcmeIssuedEvent; at: number }>;
  /** `at`: `performance.now()`, `date`: `Date.now()` when it was emitted. */
  failed: Array<{ event: AcmeFailedEvent; at: number; date: number }>;
  routeMiss: RouteMissEvent[];
  sniffFailed: SniffFailedEvent[];
  backendConnected: BackendConnectedEvent[];
  backendDisconnected: BackendDisconnectedEvent[];
  /** Every HTTP-01 request the node answered itself. */
  challengeAnswers(): Array<{ token: string; found: boolean }>;
  /** Everything the node logged. */
  logLines(): readonly LogLine[];
  /**
   * Starts a backend client serving `hostnames` (the first one tells its registration apart) with
   * `site`, trusting `ca` for the hub, which it dials at 127.0.0.1 with SNI `hub.nexus.test`.
   */
  attach(hostnames: string[], site: TestService, ca: string): Promise<TestBackend>;
  close(): Promise<void>;
}

async function startAcmeNode(options: {
  cacheDir: string;
  httpPort: number;
  config?: Partial<NexusConfigInput>;
}): Promise<AcmeNode> {
  const lines: LogLine[] = [];
  const nexus = createNexus(
    {
      backendListenAddress: '127.0.0.1:0',
      backendsJWTSecret: SECRET,
      listeners: [{ port: options.httpPort, mode: 'http', host: '127.0.0.1' }],
      hubPublicHostname: HUB,
      acmeDirectoryUrl: pebble.directoryUrl,
      acmeCaFile: pebble.apiCaFile,
      acmeCacheDir: options.cacheDir,
      acmeEmail: 'ops@nexus.test',
      ...options.config,
    },
    { acme: ACME_TEST_OPTIONS, logger: recordingLogger(lines) },
  );
  const backends: BackendClient[] = [];
  const node: Omit<AcmeNode, 'hubPort' | 'httpPort'> = {
    nexus,
    listenCalledAt: 0,
    issued: [],
    failed: [],
    routeMiss: [],
    sniffFailed: [],
    backendConnected: [],
    backendDisconnected: [],
    challengeAnswers: () =>
      lines
        .filter((l) => l.msg === 'answering ACME HTTP-01 challenge')
        .map((l) => ({ token: String(l.fields.token), found: l.fields.found === true })),
    logLines: () => lines,
    attach: async () => {
      throw new Error('not listening');
    },
    close: async () => {
      await Promise.all(backends.map((b) => b.close({ graceMs: 0 })));
      await nexus.close({ graceMs: 0 });
    },
  };
  nexus.on('certificate-issued', (event) => node.issued.push({ event, at: performance.now() }));
  nexus.on('certificate-failed', (event) =>
    node.failed.push({ event, at: performance.now(), date: Date.now() }),
  );
  nexus.on('route-miss', (e) => node.routeMiss.push(e));
  nexus.on('sniff-failed', (e) => node.sniffFailed.push(e));
  nexus.on('backend-connected', (e) => node.backendConnected.push(e));
  nexus.on('backend-disconnected', (e) => node.backendDisconnected.push(e));
  cleanups.push(() => node.close());
  node.listenCalledAt = performance.now();
  const addresses = await nexus.listen();
  const hubPort = addresses.hub.port;
  const relayPort = addresses.listeners[0]!.address.port;

  const attach = async (hostnames: string[], site: TestService, ca: string): Promise<TestBackend> => {
    const client = createBackendClient({
      nodes: [`wss://127.0.0.1:${hubPort}/connect`],
      token: await mintBackendToken({ secret: SECRET, hostnames }),
      tls: { ca, servername: HUB },
      portMappings: resolvePortMappings({ [relayPort]: `127.0.0.1:${site.port}` }),
      reconnect: TEST_RECONNECT,
      closeGraceMs: 0,
    });
    backends.push(client);
    const backend: TestBackend = {
      client,
      errors: [],
      streams: [],
      registered: new Promise((resolve) => {
        const onConnected = (e: BackendConnectedEvent): void => {
          if (!e.hostnames.includes(hostnames[0]!)) return;
          nexus.off('backend-connected', onConnected);
          resolve(e);
        };
        nexus.on('backend-connected', onConnected);
      }),
    };
    client.on('error', (error) => backend.errors.push(error));
    client.on('stream-open', (e) => backend.streams.push(e));
    client.connect();
    return backend;
  };
  return { ...node, nexus, hubPort, httpPort: relayPort, attach };
}

// ───────────────────────────── sites and clients ─────────────────────────────

/**
 * A plain-HTTP site behind a backend: `GET /echo` answers `200` and then echoes every byte (a long-lived
 * stream); any other request gets `<label>: <request line>` and the connection closes.
 */
async function startSite(label: string): Promise<TestService> {
  const site = await startService((socket) =>
    onHttpRequest(socket, (head, rest) => {
      const requestLine = head.split('\r\n', 1)[0] ?? '';
      if (requestLine.startsWith('GET /echo ')) {
        socket.write('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n');
        if (rest.length > 0) socket.write(rest);
        socket.pipe(socket);
        return;
      }
      const body = `${label}: ${requestLine}\n`;
      socket.end(
        `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
          `connection: close\r\n\r\n${body}`,
      );
    }),
  );
  cleanups.push(() => site.close());
  return site;
}

/** A TLS handshake with the hub as a backend makes it: SNI `hub.nexus.test`, trusting only `ca`. */
async function hubHandshake(
  hubPort: number,
  ca: string,
): Promise<tls.DetailedPeerCertificate & { authorized: boolean }> {
  const socket = tls.connect({ host: '127.0.0.1', port: hubPort, servername: HUB, ca });
  try {
    await once(socket, 'secureConnect');
    return { ...socket.getPeerCertificate(true), authorized: socket.authorized };
  } finally {
    socket.destroy();
  }
}

/** Fingerprints of the chain the handshake verified, leaf first, up to the trust anchor. */
function chainFingerprints(peer: tls.DetailedPeerCertificate): string[] {
  const chain: string[] = [];
  let cert: tls.DetailedPeerCertificate | undefined = peer;
  while (cert !== undefined && !chain.includes(cert.fingerprint256)) {
    chain.push(cert.fingerprint256);
    cert = cert.issuerCertificate;
  }
  return chain;
}

/** An end user holding a `GET /echo` stream open to `host` through the relay listener. */
async function openEchoStream(port: number, host: string) {
  const user = await rawConnect(port);
  cleanups.push(() => {
    user.socket.destroy();
  });
  user.socket.write(`GET /echo HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  await vi.waitFor(() => expect(user.received().toString('latin1')).toContain('HTTP/1.1 200 OK'), WAIT);
  return {
    user,
    async roundTrip(text: string): Promise<void> {
      user.socket.write(text);
      await vi.waitFor(() => expect(user.received().toString('latin1')).toContain(text), WAIT);
    },
  };
}

// ───────────────────────────── tests ─────────────────────────────

describe('automatic hub TLS through a whole node, against pebble', () => {
  // One cache across the first four tests: issue, route, restart from it, renew.
  let cacheDir: string;
  /** The node of the test running now: the first one, then the one restarted from the cache. */
  let currentNode: AcmeNode;
  /** The backend attached to the restarted node. */
  let appBackend: TestBackend;
  let firstSerial: string;
  let appSite: TestService;

  beforeAll(async () => {
    if (pebbleError !== undefined) return;
    cacheDir = await tempDir('nexus-acme-cache-');
    appSite = await startSite('app');
  });

  it('obtains its certificate through its own HTTP relay listener; a backend then attaches over wss and serves a stream', async () => {
    const node = await startAcmeNode({ cacheDir, httpPort });
    currentNode = node;
    expect(node.httpPort).toBe(httpPort);
    // Listening at once, on a temporary self-signed certificate.
    const temporary = node.nexus.certificateInfo()!;
    expect(temporary.issuer).toBe(temporary.subject);
    expect(temporary.subjectAltNames).toEqual([`DNS:${HUB}`]);

    // A backend that trusts only pebble's root dials right away: refused until the real certificate is
    // served, then its reconnect backoff picks the certificate up without a restart.
    const backend = await node.attach([APP], appSite, rootPem);
    const [connected] = await Promise.all([
      backend.registered,
      vi.waitFor(() => expect(node.issued).toHaveLength(1), WAIT),
    ]);
    const issued = node.issued[0]!;
    timings.push({
      label: 'first',
      wallMs: Math.round(issued.at - node.listenCalledAt),
      orderMs: Math.round(issued.event.durationMs),
    });
    expect(backend.errors.length).toBeGreaterThan(0);
    expect(backend.errors[0]!.message).toMatch(/self[- ]signed/i);
    expect(node.failed).toHaveLength(0);
    expect(node.nexus.acme!.status().state).toBe('valid');

    // Pebble validated the challenge on the node's relay listener (no other HTTP server is running).
    expect(node.challengeAnswers().filter((a) => a.found).length).toBeGreaterThan(0);

    // What a backend sees: the issued leaf for hub.nexus.test, chained through pebble's intermediate to
    // the root of this pebble run.
    const info = node.nexus.certificateInfo()!;
    expect(info.serialNumber).toBe(issued.event.info.serialNumber);
    expect(info.subjectAltNames).toEqual([`DNS:${HUB}`]);
    expect(info.issuer).not.toBe(info.subject);
    const peer = await hubHandshake(node.hubPort, rootPem);
    expect(peer.authorized).toBe(true);
    expect(peer.serialNumber.toUpperCase()).toBe(info.serialNumber.toUpperCase());
    const chain = chainFingerprints(peer);
    expect(chain.length).toBeGreaterThanOrEqual(3);
    expect(chain.at(-1)).toBe(new X509Certificate(rootPem).fingerprint256);
    firstSerial = info.serialNumber;

    // An end user reaches the backend through the same listener pebble validated on.
    expect(connected.hostnames).toContain(APP);
    const response = await httpGet(httpPort, APP, '/hello');
    expect(response).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(response).toContain('app: GET /hello HTTP/1.1');
    expect(backend.streams.map((s) => s.hostname)).toEqual([APP]);
  });

  it('routes every other request on that listener to backends as usual', async () => {
    const node = currentNode;
    const answered = node.challengeAnswers().length;

    // A challenge path for another host is that host's business (its backend solves its own HTTP-01).
    const forApp = await httpGet(httpPort, APP, '/.well-known/acme-challenge/app-token');
    expect(forApp).toContain('app: GET /.well-known/acme-challenge/app-token HTTP/1.1');

    // The node answers challenges for its own name itself: an unknown token is a 404 from the node.
    const unknown = await httpGet(httpPort, HUB, '/.well-known/acme-challenge/no-such-token');
    expect(unknown).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
    expect(node.challengeAnswers().slice(answered)).toEqual([{ token: 'no-such-token', found: false }]);

    // Any other path for the node's own name goes to a backend; with none, the connection is closed.
    const missesBefore = node.routeMiss.length;
    const noRoute = await httpGet(httpPort, HUB, '/index.html');
    expect(noRoute).toBe('');
    expect(node.routeMiss.slice(missesBefore)).toEqual([
      { hostname: HUB, port: httpPort, isTls: false, reason: 'no-route' },
    ]);
    expect(node.sniffFailed.at(-1)).toMatchObject({ reason: 'no-route', port: httpPort });
    expect(node.challengeAnswers()).toHaveLength(answered + 1);
  });

  it('restarts from the cache without ordering: same serial, no certificate-issued', async () => {
    const order = vi.spyOn(acme.Client.prototype, 'auto');
    await currentNode.close();

    const node = await startAcmeNode({ cacheDir, httpPort });
    // `valid` at once: the cached certificate was loaded, and that start-up path places no order.
    expect(node.nexus.acme!.status().state).toBe('valid');
    expect(node.nexus.certificateInfo()!.serialNumber).toBe(firstSerial);
    await expect(node.nexus.acme!.ready()).resolves.toMatchObject({ serialNumber: firstSerial });
    // The next order is the renewal, years away with pebble's 5-year certificates.
    const renewAt = node.nexus.acme!.status().nextAttemptAt!;
    expect(renewAt.getTime()).toBeGreaterThan(Date.now() + 365 * 24 * 3600_000);

    // A backend trusting pebble's root gets on at the first attempt and serves.
    const backend = await node.attach([APP], appSite, rootPem);
    appBackend = backend;
    await backend.registered;
    expect(backend.errors).toEqual([]);
    expect((await hubHandshake(node.hubPort, rootPem)).serialNumber.toUpperCase()).toBe(
      firstSerial.toUpperCase(),
    );
    expect(await httpGet(httpPort, APP, '/after-restart')).toContain('app: GET /after-restart HTTP/1.1');

    // Meanwhile no order was started, none finished, and no challenge came in.
    expect(order).not.toHaveBeenCalled();
    expect(node.logLines().filter((l) => l.msg === 'ordering ACME certificate')).toEqual([]);
    expect(node.issued).toEqual([]);
    expect(node.challengeAnswers()).toEqual([]);
    currentNode = node;
  });

  it('renews early on demand: new handshakes get the new certificate, the backend session and its stream stay up', async () => {
    const node = currentNode;
    const order = vi.spyOn(acme.Client.prototype, 'auto');
    const createOrder = vi.spyOn(acme.Client.prototype, 'createOrder');
    const getAuthorizations = vi.spyOn(acme.Client.prototype, 'getAuthorizations');
    const appSession = node.backendConnected.find((e) => e.hostnames.includes(APP))!;

    // A backend also serving the node's own name: its site gets ordinary requests, never the challenge.
    const hubSite = await startSite('hub-site');
    const hubBackend = await node.attach([HUB], hubSite, rootPem);
    await hubBackend.registered;
    expect(await httpGet(httpPort, HUB, '/')).toContain('hub-site: GET / HTTP/1.1');

    // A stream opened before the renewal.
    const stream = await openEchoStream(httpPort, APP);
    await stream.roundTrip('before renewal;');

    const answered = node.challengeAnswers().filter((a) => a.found).length;
    const started = performance.now();
    const info = await node.nexus.acme!.renewNow();
    const wallMs = Math.round(performance.now() - started);
    expect(order).toHaveBeenCalledTimes(1);
    expect(createOrder).toHaveBeenCalledTimes(1);
    expect(info.serialNumber).not.toBe(firstSerial);
    expect(node.nexus.certificateInfo()!.serialNumber).toBe(info.serialNumber);
    // The challenge was validated on the node again, not handed to the backend serving its name. Pebble
    // reuses a valid authorization for about 1 order in 100 even with PEBBLE_AUTHZREUSE=0 (its test is
    // `rand.Intn(100) > percent`); then the order has no challenge to answer.
    const authorizations = (await getAuthorizations.mock.results[0]!.value) as { status: string }[];
    const reused = authorizations.every((a) => a.status === 'valid');
    if (!reused) expect(node.challengeAnswers().filter((a) => a.found).length).toBeGreaterThan(answered);
    expect(hubBackend.streams.map((s) => s.hostname)).toEqual([HUB]);
    // A renewal is an issuance too.
    expect(node.issued.map((i) => i.event.info.serialNumber)).toEqual([info.serialNumber]);
    timings.push({ label: 'renewal', wallMs, orderMs: Math.round(node.issued[0]!.event.durationMs) });

    // New handshakes see the new certificate, still chained to pebble's root.
    const peer = await hubHandshake(node.hubPort, rootPem);
    expect(peer.authorized).toBe(true);
    expect(peer.serialNumber.toUpperCase()).toBe(info.serialNumber.toUpperCase());

    // The backend session from before is the same one, and its open stream still carries bytes both ways.
    await stream.roundTrip('after renewal;');
    expect(node.backendDisconnected).toEqual([]);
    expect(node.backendConnected.filter((e) => e.hostnames.includes(APP)).map((e) => e.id)).toEqual([
      appSession.id,
    ]);
    expect(appBackend.client.stats().nodes[0]).toMatchObject({ state: 'connected', sessionsOpened: 1 });
    expect(await httpGet(httpPort, APP, '/after-renewal')).toContain('app: GET /after-renewal HTTP/1.1');
  });

  it('keeps listening and relaying when the ACME server is unreachable, and retries with backoff', async () => {
    const closedPort = await freePort();
    const directoryUrl = `https://127.0.0.1:${closedPort}/dir`;
    const node = await startAcmeNode({
      cacheDir: await tempDir('nexus-acme-unreachable-'),
      httpPort: 0,
      config: { acmeDirectoryUrl: directoryUrl, acmeCaFile: undefined },
    });
    await vi.waitFor(() => expect(node.failed.length).toBeGreaterThanOrEqual(2), WAIT);

    const [first, second] = node.failed;
    expect(first!.event.error.code).toBe('NEXUS_ERR_ACME');
    // The message names the URL and the socket error.
    expect(first!.event.error.message).toContain(directoryUrl);
    expect(first!.event.error.message).toMatch(/ECONNREFUSED/);
    expect(first!.event.problem).toBeUndefined();
    expect(first!.event.attempt).toBe(1);
    expect(second!.event.attempt).toBe(2);
    // Exponential backoff: 200 ms after the first failure, 400 ms after the second.
    const firstDelay = first!.event.retryAt.getTime() - first!.date;
    expect(firstDelay).toBeGreaterThan(150);
    expect(firstDelay).toBeLessThanOrEqual(250);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(195);
    const secondDelay = second!.event.retryAt.getTime() - first!.event.retryAt.getTime();
    expect(secondDelay).toBeGreaterThanOrEqual(400);
    expect(node.nexus.acme!.status()).toMatchObject({ state: 'temporary' });
    expect(node.issued).toEqual([]);

    // Relay traffic flows meanwhile: a backend that trusts the temporary certificate attaches and serves.
    const temporaryPem = node.nexus.tlsContext!.material.certPem;
    const backend = await node.attach([APP], appSite, temporaryPem);
    await backend.registered;
    expect(await httpGet(node.httpPort, APP, '/while-failing')).toContain('app: GET /while-failing HTTP/1.1');
    // The node still answers challenges for its own name (none pending: 404).
    expect(await httpGet(node.httpPort, HUB, '/.well-known/acme-challenge/t')).toMatch(/^HTTP\/1\.1 404/);
  });
});
