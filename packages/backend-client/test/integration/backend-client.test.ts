import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type net from 'node:net';
import { PassThrough } from 'node:stream';
import type { Logger } from '@nexus-proxy/common';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type BackendClient, createBackendClient } from '../../src/backend-client.js';
import type { BackendClientOptions, StreamRequest } from '../../src/client-options.js';
import type { DisconnectedEvent, StreamCloseEvent } from '../../src/node-connection.js';
import { resolvePortMappings } from '../../src/port-mappings.js';
import { closedPort, startLocalService, waitFor } from './helpers.js';
import { makeCertificate, TestHub } from './test-hub.js';

const cert = makeCertificate();
const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJob3N0bmFtZXMiOlsiYXBwLmV4YW1wbGUuY29tIl19.c2ln';

let hub: TestHub;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  hub = await TestHub.start(cert);
});
afterAll(async () => {
  await hub.close();
});
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  hub.connections.length = 0;
});

function client(options: Partial<BackendClientOptions>): BackendClient {
  const c = createBackendClient({
    nodes: [hub.url],
    token: TOKEN,
    tls: { ca: hub.ca },
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    closeGraceMs: 0,
    ...options,
  } as BackendClientOptions);
  cleanups.push(() => c.close());
  return c;
}

/** A logger that keeps every line (with its child bindings) in `lines`. */
function recorder(
  lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }>,
  bindings: Record<string, unknown> = {},
): Logger {
  const at =
    (level: string) =>
    (a: unknown, b?: unknown): void => {
      const fields = typeof a === 'object' && a !== null ? (a as Record<string, unknown>) : {};
      lines.push({
        level,
        msg: typeof a === 'string' ? a : String(b ?? ''),
        fields: { ...bindings, ...fields },
      });
    };
  return {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => recorder(lines, { ...bindings, ...more }),
  };
}

async function echoService() {
  const service = await startLocalService((socket) => socket.pipe(socket));
  cleanups.push(() => service.close());
  return service;
}

describe('createBackendClient (integration, TLS WebSocket hub)', () => {
  it('opens wss /connect and sends the token as the first text message', async () => {
    const c = client({ portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }) });
    const connected = once(c, 'connected');
    c.connect();
    const conn = await hub.connection();
    expect(await conn.token).toEqual({ text: TOKEN, binary: false });
    const [event] = await connected;
    expect(event).toEqual({ node: hub.url, era: 'seed' });
    expect(c.sessions.get(hub.url)).toBeDefined();
    expect(c.stats().connectedNodes).toBe(1);
  });

  it('warns once per session about text messages from a seed-era hub, however many come', async () => {
    const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
    const service = await echoService();
    const c = client({
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
      logger: recorder(lines),
    });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    for (let i = 0; i < 200; i++) conn.ws.send(`noise ${i}`);
    const stream = conn.openStream();
    stream.write('still serving');
    expect((await stream.waitBytes(13)).toString()).toBe('still serving');
    const ignored = lines.filter((l) => l.msg === 'ignoring a text message from the hub');
    expect(ignored.map((l) => l.level)).toEqual(['warn', ...Array(199).fill('debug')]);
  });

  it('asks a token provider again on every reconnect', async () => {
    let calls = 0;
    const c = client({
      token: async () => `token-${++calls}`,
      portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }),
    });
    c.connect();
    const first = await hub.connection(0);
    expect((await first.token).text).toBe('token-1');
    first.ws.terminate();
    const second = await hub.connection(1);
    expect((await second.token).text).toBe('token-2');
  });

  it('relays a stream to the mapped local service: prelude first, reply back to the hub', async () => {
    const service = await echoService();
    const c = client({ portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }) });
    const opened = once(c, 'stream-open');
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream({
      connPort: 443,
      hostname: 'app.example.com',
      clientIp: '198.51.100.4:4000',
    });
    stream.write('prelude: ClientHello');
    stream.write(' and more');
    const [open] = await opened;
    expect(open).toEqual({
      node: hub.url,
      id: stream.id,
      hostname: 'app.example.com',
      clientIp: '198.51.100.4:4000',
      connPort: 443,
      isTls: true,
    });
    const echoed = await stream.waitBytes('prelude: ClientHello and more'.length);
    expect(echoed.toString()).toBe('prelude: ClientHello and more');
  });

  it('routes by hostname through the port mappings', async () => {
    const a = await startLocalService((s) => s.end('service A'));
    const b = await startLocalService((s) => s.end('service B'));
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const c = client({
      portMappings: resolvePortMappings({
        443: { default: `127.0.0.1:${a.port}`, hosts: { '*.b.example.com': `127.0.0.1:${b.port}` } },
      }),
    });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const s1 = conn.openStream({ hostname: 'x.b.example.com' });
    const s2 = conn.openStream({ hostname: 'other.example.com' });
    await Promise.all([s1.disconnected(), s2.disconnected()]);
    expect(s1.data.toString()).toBe('service B');
    expect(s2.data.toString()).toBe('service A');
  });

  it('answers disconnect dial_failed when the local service refuses', async () => {
    const port = await closedPort();
    const c = client({ portMappings: resolvePortMappings({ 443: `127.0.0.1:${port}` }) });
    const closed = once(c, 'stream-close');
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream();
    stream.write('hello');
    const message = await stream.disconnected();
    expect(message.reason).toBe('dial_failed');
    expect(stream.chunks).toHaveLength(0);
    const [event] = (await closed) as [StreamCloseEvent];
    expect(event).toMatchObject({ id: stream.id, reason: 'dial_failed', bytesIn: 0, bytesOut: 0 });
    expect(c.stats().nodes[0]!.dialFailures).toBe(1);
  });

  it('answers disconnect dial_failed when no mapping serves the port', async () => {
    const c = client({ portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }) });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream({ connPort: 80, isTls: false });
    expect((await stream.disconnected()).reason).toBe('dial_failed');
  });

  it('falls back from an unmapped node port to the 443 mapping for TLS and the 80 mapping for HTTP, saying so once', async () => {
    const tlsService = await startLocalService((socket) => socket.pipe(socket));
    const httpService = await startLocalService((socket) => socket.end('http-service'));
    cleanups.push(
      () => tlsService.close(),
      () => httpService.close(),
    );
    const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
    const c = client({
      portMappings: resolvePortMappings({
        443: `127.0.0.1:${tlsService.port}`,
        80: `127.0.0.1:${httpService.port}`,
      }),
      logger: recorder(lines),
    });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const tls = conn.openStream({ connPort: 20443, isTls: true, hostname: 'app.example.com' });
    tls.write('hello over 20443');
    expect((await tls.waitBytes(16)).toString()).toBe('hello over 20443');
    const http = conn.openStream({ connPort: 20080, isTls: false, hostname: 'app.example.com' });
    http.write('GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
    expect((await http.waitBytes(12)).toString()).toBe('http-service');
    const again = conn.openStream({ connPort: 20443, isTls: true, hostname: 'app.example.com' });
    again.write('x');
    await again.waitBytes(1);
    const said = lines.filter((l) => l.level === 'info' && l.msg.startsWith('no port mapping for node port'));
    expect(said.map((l) => l.msg)).toEqual([
      'no port mapping for node port 20443: using the 443 mapping for TLS streams (add a mapping for 20443 to choose)',
      'no port mapping for node port 20080: using the 80 mapping for HTTP streams (add a mapping for 20080 to choose)',
    ]);
    expect(said[0]!.fields).toMatchObject({ connPort: 20443, mappedPort: 443, kind: 'tls' });
  });

  it('does not fall back for a node port that has a mapping, even when no host of it matches', async () => {
    const service = await echoService();
    const c = client({
      portMappings: resolvePortMappings({
        443: `127.0.0.1:${service.port}`,
        8443: { hosts: { 'only.example.com': `127.0.0.1:${service.port}` } },
      }),
    });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream({ connPort: 8443, isTls: true, hostname: 'other.example.com' });
    expect((await stream.disconnected()).reason).toBe('dial_failed');
  });

  it('delivers every byte of a service that writes and closes at once, then disconnect', async () => {
    const body = randomBytes(300_000);
    const service = await startLocalService((socket) => {
      socket.once('data', () => socket.end(body));
    });
    cleanups.push(() => service.close());
    const c = client({ portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }) });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream();
    stream.write('GET / HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n');
    const message = await stream.disconnected();
    expect(message.reason).toBe('normal');
    expect(sha256(stream.data)).toBe(sha256(body));
    expect(stream.timeline.at(-1)).toBe('disconnect');
    expect(stream.timeline.filter((e) => e === 'disconnect')).toHaveLength(1);
    // Every DATA frame fits the reference hub's 32 785-byte message limit.
    expect(Math.max(...stream.chunks.map((chunk) => chunk.length))).toBeLessThanOrEqual(32_768);
  });

  it('gives the local service every byte and then FIN when the hub disconnects', async () => {
    const received: Buffer[] = [];
    let ended!: () => void;
    const gotEnd = new Promise<void>((resolve) => {
      ended = resolve;
    });
    const service = await startLocalService((socket) => {
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('end', ended);
    });
    cleanups.push(() => service.close());
    const c = client({ portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }) });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream();
    const upload = randomBytes(200_000);
    for (let offset = 0; offset < upload.length; offset += 32_768)
      stream.write(upload.subarray(offset, offset + 32_768));
    stream.disconnect();
    await gotEnd;
    expect(sha256(Buffer.concat(received))).toBe(sha256(upload));
  });

  it('passes the stream request to a connect handler and falls back to mappings on undefined', async () => {
    const service = await echoService();
    const requests: StreamRequest[] = [];
    const c = client({
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
      connectHandler: (request) => {
        requests.push(request);
        if (request.hostname !== 'custom.example.com') return undefined;
        const duplex = new PassThrough(); // an in-process "service" that echoes
        return duplex;
      },
    });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const custom = conn.openStream({ hostname: 'custom.example.com', clientIp: '[2001:db8::9]:443' });
    custom.write('to the handler');
    expect((await custom.waitBytes(14)).toString()).toBe('to the handler');
    const mapped = conn.openStream({ hostname: 'app.example.com' });
    mapped.write('to the mapping');
    expect((await mapped.waitBytes(14)).toString()).toBe('to the mapping');
    expect(requests[0]).toMatchObject({
      id: custom.id,
      node: hub.url,
      hostname: 'custom.example.com',
      clientIp: '[2001:db8::9]:443',
      connPort: 443,
      isTls: true,
      transport: 'tcp',
    });
  });

  it('aborts a dial still in progress when the hub disconnects the stream, leaking nothing', async () => {
    let request!: StreamRequest;
    let release!: (d: PassThrough) => void;
    const late = new PassThrough();
    const c = client({
      connectHandler: (r) => {
        request = r;
        return new Promise<PassThrough>((resolve) => {
          release = resolve;
        });
      },
    });
    const closed = once(c, 'stream-close');
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream();
    await waitFor(() => request !== undefined);
    stream.disconnect();
    const [event] = await closed;
    expect(request.signal.aborted).toBe(true);
    expect(event.id).toBe(stream.id);
    release(late);
    await waitFor(() => late.destroyed, 1_000, 'the late duplex to be destroyed');
    expect(c.stats().streams).toBe(0);
  });

  it('reconnects after the hub kills the socket, closes old streams, and serves on the new session', async () => {
    const service = await echoService();
    const c = client({ portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }) });
    const disconnects: DisconnectedEvent[] = [];
    const closes: StreamCloseEvent[] = [];
    c.on('disconnected', (e) => disconnects.push(e));
    c.on('stream-close', (e) => closes.push(e));
    c.connect();
    const first = await hub.connection(0);
    await first.token;
    const old = first.openStream();
    old.write('before');
    await old.waitBytes(6);
    const oldLocal = service.sockets[0]!;
    const localClosed = once(oldLocal, 'close');
    first.ws.terminate();
    await localClosed; // the local socket of the dead session is gone
    const second = await hub.connection(1);
    await second.token;
    expect(disconnects).toEqual([{ node: hub.url, reason: 'connection_lost', code: 1006, message: '' }]);
    expect(closes).toEqual([{ node: hub.url, id: old.id, reason: 'session_ended', bytesIn: 6, bytesOut: 6 }]);
    // The old id means nothing to the new session: its DATA is answered with disconnect, never relayed.
    second.sendData(old.id, Buffer.from('stale'));
    const fresh = second.openStream();
    fresh.write('after');
    expect((await fresh.waitBytes(5)).toString()).toBe('after');
    await waitFor(() => second.strayControls.some((m) => m.client_id === old.id && m.event === 'disconnect'));
    expect(service.sockets).toHaveLength(2);
    expect(service.sockets[0]!.destroyed).toBe(true);
  });

  it('retries after a 1008 token rejection and reports auth_rejected', async () => {
    const rejecting = (conn: Awaited<ReturnType<TestHub['connection']>>) => {
      void conn.token.then(() => conn.ws.close(1008, 'invalid token'));
    };
    hub.on('connection', rejecting);
    cleanups.push(() => {
      hub.off('connection', rejecting);
    });
    const c = client({ portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }) });
    const [event] = await (async () => {
      const p = once(c, 'disconnected');
      c.connect();
      return p;
    })();
    expect(event).toMatchObject({ reason: 'auth_rejected', code: 1008, message: 'invalid token' });
    await hub.connection(1); // it tried again
    expect(c.stats().nodes[0]!.failedAttempts).toBeGreaterThanOrEqual(1);
  });

  it('emits error (when listened to) for a node that cannot be reached, and keeps retrying', async () => {
    const port = await closedPort();
    const c = client({
      nodes: [`wss://127.0.0.1:${port}/connect`],
      portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }),
    });
    const errors: Error[] = [];
    c.on('error', (err) => errors.push(err));
    c.connect();
    await waitFor(() => errors.length >= 2, 5_000, 'two failed attempts');
    expect(errors[0]).toMatchObject({ code: 'NEXUS_ERR_SESSION' });
    expect(c.stats().nodes[0]!.state).not.toBe('connected');
  });

  it('does not throw for connection errors when nobody listens for error', async () => {
    const port = await closedPort();
    const c = client({
      nodes: [`127.0.0.1:${port}`],
      portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }),
    });
    c.connect();
    await waitFor(() => c.stats().nodes[0]!.failedAttempts >= 2, 5_000, 'two failed attempts');
    await c.close();
    expect(c.stats().nodes[0]!.state).toBe('closed');
  });

  it('rejects a hub whose certificate is not trusted', async () => {
    const c = client({ tls: {}, portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }) });
    const errors: Error[] = [];
    c.on('error', (err) => errors.push(err));
    c.connect();
    await waitFor(() => errors.length >= 1);
    expect(errors[0]!.message).toMatch(/certificate/i);
    expect(hub.connections.filter((conn) => conn.ws.readyState === conn.ws.OPEN)).toHaveLength(0);
  });

  it('serves several nodes at once, each with its own session', async () => {
    const other = await TestHub.start(cert);
    cleanups.push(() => other.close());
    const service = await echoService();
    const c = client({
      nodes: [hub.url, other.url],
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
    });
    c.connect();
    const [a, b] = await Promise.all([hub.connection(), other.connection()]);
    await Promise.all([a.token, b.token]);
    await waitFor(() => c.sessions.size === 2);
    const sa = a.openStream();
    const sb = b.openStream();
    sa.write('via a');
    sb.write('via b');
    expect((await sa.waitBytes(5)).toString()).toBe('via a');
    expect((await sb.waitBytes(5)).toString()).toBe('via b');
    b.ws.terminate();
    await waitFor(() => c.sessions.size === 1);
    sa.write('!');
    expect((await sa.waitBytes(6)).toString()).toBe('via a!');
  });
});

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export type { net };
