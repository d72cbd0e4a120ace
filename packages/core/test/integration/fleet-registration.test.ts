/**
 * Fleet registration against a real local HTTPS orchestrator that requires a client certificate
 * (docs/edge.md "Fleet registration"): the body and headers, heartbeats at the interval the orchestrator
 * asks for (5 s at least), the backoff, permanent refusals, Retry-After, bounded replies, stop. Timers
 * are fake (setTimeout, clearTimeout, Date), so minutes of backoff take no time; sockets stay real.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestPki, type TestPki } from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type CertificateAndKey, issueCertificate } from '../../src/certificates.js';
import {
  FleetRegistration,
  type FleetRegistrationEvents,
  type FleetRegistrationOptions,
} from '../../src/fleet-registration.js';
import { createNexus } from '../../src/nexus.js';

vi.setConfig({ testTimeout: 30_000 });

interface Received {
  body: string;
  headers: IncomingMessage['headers'];
  /** Subject CN of the client certificate. */
  client: string | undefined;
  at: number;
}

type Reply = (req: IncomingMessage, res: ServerResponse) => void;

interface Orchestrator {
  url: string;
  received: Received[];
  /** Resolves with the next request (or one already received and not yet taken). */
  next(): Promise<Received>;
  reply: Reply;
}

let pki: TestPki;
/** The hub certificate, with clientAuth: the orchestrator verifies it as a client certificate. */
let hub: CertificateAndKey;
beforeAll(async () => {
  pki = await createTestPki();
  hub = await issueCertificate(pki.ca, {
    dnsNames: ['hub.test'],
    ipAddresses: ['127.0.0.1'],
    clientAuth: true,
  });
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

const json =
  (status: number, body: unknown, headers: Record<string, string> = {}): Reply =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };

async function orchestrator(reply: Reply): Promise<Orchestrator> {
  const cert = await pki.issue(['orchestrator.test'], ['127.0.0.1']);
  const waiting: Array<(r: Received) => void> = [];
  const queue: Received[] = [];
  const o: Orchestrator = {
    url: '',
    received: [],
    reply,
    next: () =>
      new Promise<Received>((resolve) => {
        const r = queue.shift();
        if (r !== undefined) resolve(r);
        else waiting.push(resolve);
      }),
  };
  const server: Server = createServer(
    { cert: cert.certPem, key: cert.keyPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
        const r: Received = {
          body: Buffer.concat(chunks).toString('utf8'),
          headers: req.headers,
          client: typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined,
          at: Date.now(),
        };
        o.received.push(r);
        const w = waiting.shift();
        if (w !== undefined) w(r);
        else queue.push(r);
        o.reply(req, res);
      });
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  o.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/api/relays/register`;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return o;
}

function registration(o: Orchestrator, extra: Partial<FleetRegistrationOptions> = {}): FleetRegistration {
  const r = new FleetRegistration({
    url: o.url,
    region: 'eu-west',
    backendPort: 8443,
    stunPort: 3478,
    clientCertificate: () => hub,
    ca: pki.ca.certPem,
    // No jitter: every delay is exact.
    random: () => 0.5,
    ...extra,
  });
  cleanups.push(() => r.stop());
  return r;
}

/**
 * Every `registered` and `failed` event of `r`, in a queue per name: `next(name)` takes the oldest one not
 * taken yet, or waits for it, so an event emitted while the clock was advanced is never missed.
 */
function events(r: FleetRegistration) {
  const queues = { registered: [] as unknown[], failed: [] as unknown[] };
  const waiting = {
    registered: [] as Array<(e: unknown) => void>,
    failed: [] as Array<(e: unknown) => void>,
  };
  for (const name of ['registered', 'failed'] as const) {
    r.on(name, (e: unknown) => {
      const w = waiting[name].shift();
      if (w !== undefined) w(e);
      else queues[name].push(e);
    });
  }
  return {
    next<K extends 'registered' | 'failed'>(name: K): Promise<FleetRegistrationEvents[K][0]> {
      return new Promise((resolve) => {
        if (queues[name].length > 0) resolve(queues[name].shift() as FleetRegistrationEvents[K][0]);
        else waiting[name].push(resolve as (e: unknown) => void);
      });
    },
  };
}

const fake = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });

/** Advances the fake clock by `ms` and returns the attempts made meanwhile. */
async function advance(r: FleetRegistration, ms: number): Promise<number> {
  const before = r.stats().attempts;
  await vi.advanceTimersByTimeAsync(ms);
  return r.stats().attempts - before;
}

describe('fleet registration', () => {
  it('POSTs the reference body with the hub certificate, then heartbeats at the interval asked for', async () => {
    fake();
    const o = await orchestrator(json(200, { heartbeat_interval: 30 }));
    const r = registration(o);
    const ev = events(r);
    r.start();
    const first = await o.next();
    expect(first.body).toBe('{"region":"eu-west","backendPort":8443,"services":{"stunPort":3478}}');
    expect(first.headers['content-type']).toBe('application/json');
    expect(first.client).toBe('hub.test');
    expect(await ev.next('registered')).toEqual({ heartbeatIntervalMs: 30_000 });
    expect(r.stats()).toMatchObject({ state: 'registered', successes: 1, heartbeatIntervalMs: 30_000 });
    expect(await advance(r, 29_999)).toBe(0);
    expect(await advance(r, 1)).toBe(1);
    await o.next();
    await ev.next('registered');
    expect(r.stats().successes).toBe(2);
  });

  it('follows a changed interval, and never goes below 5 s', async () => {
    fake();
    let interval: unknown = 60;
    const o = await orchestrator((req, res) => json(200, { heartbeat_interval: interval })(req, res));
    const r = registration(o);
    const ev = events(r);
    r.start();
    await ev.next('registered');
    interval = 1;
    expect(await advance(r, 60_000)).toBe(1);
    expect(await ev.next('registered')).toEqual({ heartbeatIntervalMs: 5_000 });
    expect(await advance(r, 4_999)).toBe(0);
    interval = 'soon';
    expect(await advance(r, 1)).toBe(1);
    // Not a number: the floor again.
    expect(await ev.next('registered')).toEqual({ heartbeatIntervalMs: 5_000 });
  });

  it('backs off 5 s, 10 s, 20 s … up to 2 min while the orchestrator fails, then heartbeats again', async () => {
    fake();
    let fail = true;
    const o = await orchestrator((req, res) =>
      fail ? json(503, 'maintenance')(req, res) : json(200, { heartbeat_interval: 10 })(req, res),
    );
    const r = registration(o);
    const ev = events(r);
    const delays: number[] = [];
    r.on('failed', (e) => delays.push(e.retryInMs ?? -1));
    r.start();
    await ev.next('failed');
    for (const delay of [5_000, 10_000, 20_000, 40_000, 80_000, 120_000, 120_000]) {
      expect(await advance(r, delay - 1)).toBe(0);
      expect(await advance(r, 1)).toBe(1);
      await ev.next('failed');
    }
    expect(delays).toEqual([5_000, 10_000, 20_000, 40_000, 80_000, 120_000, 120_000, 120_000]);
    expect(r.stats()).toMatchObject({ state: 'retrying', failures: 8, lastError: 'HTTP 503: maintenance' });
    fail = false;
    await advance(r, 120_000);
    await ev.next('registered');
    // After a success the backoff starts over.
    fail = true;
    await advance(r, 10_000);
    expect(await ev.next('failed')).toMatchObject({ retryInMs: 5_000, status: 503 });
  });

  it('jitters each delay by up to ±20 %', async () => {
    fake();
    const o = await orchestrator(json(502, {}));
    for (const [random, delay] of [
      [0, 4_000],
      [0.999_999, 6_000],
    ] as const) {
      const r = registration(o, { random: () => random });
      const ev = events(r);
      r.start();
      expect((await ev.next('failed')).retryInMs).toBe(delay);
      r.stop();
    }
  });

  it.each([400, 401])('stops for good on HTTP %i', async (status) => {
    fake();
    const o = await orchestrator(json(status, { error: 'unknown relay' }));
    const r = registration(o);
    const ev = events(r);
    r.start();
    const event = await ev.next('failed');
    expect(event).toEqual({ status, reason: `HTTP ${status}: {"error":"unknown relay"}`, permanent: true });
    expect(r.stats().state).toBe('failed');
    expect(await advance(r, 3_600_000)).toBe(0);
    expect(o.received).toHaveLength(1);
  });

  it('honours Retry-After on 429, in seconds or as a date, jitter only adding to it', async () => {
    fake();
    // A whole second: an HTTP date has no milliseconds.
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    let retryAfter = '30';
    const o = await orchestrator((req, res) =>
      json(429, 'slow down', { 'retry-after': retryAfter })(req, res),
    );
    const r = registration(o, { random: () => 0 });
    const ev = events(r);
    r.start();
    expect(await ev.next('failed')).toMatchObject({ status: 429, retryInMs: 30_000 });
    retryAfter = new Date(Date.now() + 30_000 + 90_000).toUTCString();
    expect(await advance(r, 29_999)).toBe(0);
    expect(await advance(r, 1)).toBe(1);
    expect(await ev.next('failed')).toMatchObject({ status: 429, retryInMs: 90_000 });
  });

  it('counts a reply larger than 4 KiB, or not JSON, as a failed attempt', async () => {
    fake();
    let body = JSON.stringify({ heartbeat_interval: 30, padding: 'x'.repeat(10_000) });
    const o = await orchestrator((req, res) => json(200, body)(req, res));
    const r = registration(o);
    const ev = events(r);
    r.start();
    expect(await ev.next('failed')).toMatchObject({ reason: 'reply too large', permanent: false });
    body = '{"heartbeat_interval": 30';
    await advance(r, 5_000);
    expect(await ev.next('failed')).toMatchObject({ reason: 'malformed reply', status: 200 });
    body = JSON.stringify({ heartbeat_interval: 30 });
    await advance(r, 10_000);
    await ev.next('registered');
    expect(r.stats()).toMatchObject({ attempts: 3, successes: 1, failures: 2 });
  });

  it('gives up on a request after 15 s, and stop() cancels one in flight', async () => {
    fake();
    const hung: ServerResponse[] = [];
    const o = await orchestrator((_req, res) => hung.push(res));
    const r = registration(o);
    const ev = events(r);
    r.start();
    await o.next();
    await vi.advanceTimersByTimeAsync(15_000);
    expect(await ev.next('failed')).toMatchObject({ reason: 'timeout' });
    await advance(r, 5_000);
    await o.next();
    r.stop();
    expect(r.stats().state).toBe('stopped');
    expect(await advance(r, 3_600_000)).toBe(0);
    expect(o.received).toHaveLength(2);
  });

  it('a server certificate the node does not trust is a failed attempt, retried', async () => {
    fake();
    const o = await orchestrator(json(200, { heartbeat_interval: 30 }));
    const r = registration(o, { ca: undefined });
    const ev = events(r);
    r.start();
    const event = await ev.next('failed');
    expect(event.permanent).toBe(false);
    expect(event.reason).toMatch(/certificate/i);
    expect(o.received).toHaveLength(0);
  });
});

describe('a node with registrationURL', () => {
  it('registers its hub port and STUN port with its hub certificate, and stops on close', async () => {
    const o = await orchestrator(json(200, { heartbeat_interval: 3_600 }));
    const dir = mkdtempSync(join(tmpdir(), 'nexus-registration-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'hub.crt'), hub.certPem);
    writeFileSync(join(dir, 'hub.key'), hub.keyPem);
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    const stunPort = probe.address().port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const nexus = createNexus(
      {
        backendListenAddress: '127.0.0.1:0',
        backendsJWTSecret: 'a-very-strong-jwt-secret-from-the-central-authorizer',
        hubTlsCertFile: join(dir, 'hub.crt'),
        hubTlsKeyFile: join(dir, 'hub.key'),
        listeners: [{ port: 0, host: '127.0.0.1' }],
        bindHost: '127.0.0.1',
        stunPort,
        registrationURL: o.url,
        region: 'ap-south',
      },
      { registration: { ca: pki.ca.certPem } },
    );
    let closed = false;
    cleanups.push(() => (closed ? undefined : nexus.close({ graceMs: 0 })));
    const addresses = await nexus.listen();
    const first = await o.next();
    expect(JSON.parse(first.body)).toEqual({
      region: 'ap-south',
      backendPort: addresses.hub.port,
      services: { stunPort },
    });
    expect(first.client).toBe('hub.test');
    await vi.waitFor(() => expect(nexus.registration?.stats().state).toBe('registered'));
    await nexus.close({ graceMs: 0 });
    closed = true;
    expect(nexus.registration?.stats().state).toBe('stopped');
  });
});
