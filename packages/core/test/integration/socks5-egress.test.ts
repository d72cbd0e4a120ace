/**
 * SOCKS5 egress end to end (docs/edge.md "Outbound connections"): curl and a raw RFC 1928 client →
 * the backend client's SOCKS5 listener → `outbound_connect` over the backend's session → a Nexus node →
 * a target on loopback (which the test node lets through with `allowedOutboundNetworks`). Each of the
 * node's refusals reaches the SOCKS5 client as a clean error reply, and the node logs and counts it.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { type BackendClient, createBackendClient, resolvePortMappings } from '@nexus-proxy/backend-client';
import {
  createTestPki,
  type LogLine,
  recordingLogger,
  startNode,
  startService,
  TEST_RECONNECT,
  TEST_SECRET,
  type TestNode,
  type TestPki,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { NexusConfigInput } from '../../src/config.js';

vi.setConfig({ testTimeout: 60_000 });

const run = promisify(execFile);

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const LOOPBACK: Partial<NexusConfigInput> = {
  allowOutbound: true,
  allowedOutboundNetworks: ['127.0.0.0/8', '::1/128'],
};

function closing(server: Server | HttpServer): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      (server as HttpServer).closeAllConnections?.();
      server.close(() => resolve());
    });
}

/** An HTTP server on `host` answering `GET /big` with `size` random bytes and anything else with a greeting. */
async function httpTarget(
  host = '127.0.0.1',
  size = 0,
): Promise<{ port: number; body: Buffer; requests: number }> {
  const body = randomBytes(size);
  const state = { port: 0, body, requests: 0 };
  const server = createHttpServer((req, res) => {
    state.requests++;
    if (req.url === '/big') res.end(body);
    else res.end(`hello from ${host}\n`);
  });
  server.listen(0, host);
  await once(server, 'listening');
  cleanups.push(closing(server));
  state.port = (server.address() as { port: number }).port;
  return state;
}

/** A TCP echo service on 127.0.0.1. */
async function echoTarget(): Promise<number> {
  const echo = await startService((socket) => socket.pipe(socket));
  cleanups.push(() => echo.close());
  return echo.port;
}

interface Egress {
  node: TestNode;
  client: BackendClient;
  socksPort: number;
  lines: LogLine[];
}

/** A node with `config` and a current-era backend client that offers SOCKS5 on 127.0.0.1:0. */
async function egress(
  config: Partial<NexusConfigInput>,
  claims: { outboundAllowed?: boolean; allowedOutboundPorts?: number[] } = { outboundAllowed: true },
): Promise<Egress> {
  const logger = recordingLogger();
  const node = await startNode({ pki, listeners: ['http'], config, logger });
  cleanups.push(() => node.close());
  const client = createBackendClient({
    nodes: [node.hubUrl],
    tokenProvider: { hmacSecret: TEST_SECRET },
    backend: { name: 'device-7', hostnames: ['device.test'], ...claims },
    tls: { ca: pki.ca.certPem },
    reconnect: TEST_RECONNECT,
    closeGraceMs: 0,
    portMappings: resolvePortMappings({ [node.httpPort]: '127.0.0.1:9' }),
    socks5ListenAddr: '127.0.0.1:0',
  });
  client.on('error', () => {});
  cleanups.push(() => client.close({ graceMs: 0 }));
  client.connect();
  await waitUntil(
    () => client.sessions.size === 1 && client.socks5Address !== undefined,
    10_000,
    'the client',
  );
  await waitUntil(() => node.hub.sessions.length === 1, 10_000, 'the session');
  return { node, client, socksPort: client.socks5Address!.port, lines: logger.lines };
}

/** curl through the SOCKS5 listener; the host name is resolved by the node (`--socks5-hostname`). */
async function curl(
  socksPort: number,
  url: string,
  extra: string[] = [],
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  try {
    const { stdout, stderr } = await run(
      'curl',
      ['-sS', '--max-time', '30', '--socks5-hostname', `127.0.0.1:${socksPort}`, ...extra, url],
      { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
    );
    return { code: 0, stdout, stderr: stderr.toString() };
  } catch (err) {
    const e = err as { code: number; stdout: Buffer; stderr: Buffer };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr.toString() };
  }
}

/** A raw RFC 1928 client: greeting, CONNECT, then the reply; the socket is left open after a success. */
async function socksConnect(
  socksPort: number,
  atyp: 'ipv4' | 'ipv6' | 'domain',
  host: string,
  port: number,
  command = 0x01,
): Promise<{ reply: number; socket: Socket }> {
  const socket = connect(socksPort, '127.0.0.1');
  socket.on('error', () => {});
  cleanups.push(() => {
    socket.destroy();
  });
  await once(socket, 'connect');
  let address: Buffer;
  if (atyp === 'ipv4') address = Buffer.from([0x01, ...host.split('.').map(Number)]);
  else if (atyp === 'ipv6') address = Buffer.from([0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  else address = Buffer.concat([Buffer.from([0x03, host.length]), Buffer.from(host, 'latin1')]);
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  // Greeting and request in one write, as many clients do.
  socket.write(Buffer.concat([Buffer.from([5, 1, 0, 5, command, 0]), address, portBytes]));
  let got = Buffer.alloc(0);
  while (got.length < 12) {
    const chunk = await Promise.race([
      once(socket, 'data').then(([c]) => c as Buffer),
      once(socket, 'close').then(() => undefined),
    ]);
    if (chunk === undefined) break;
    got = Buffer.concat([got, chunk]);
  }
  expect(got.subarray(0, 2)).toEqual(Buffer.from([5, 0]));
  const reply = got.subarray(2, 12);
  expect(reply.length).toBe(10);
  expect([reply[0], reply[2], reply[3]]).toEqual([5, 0, 1]);
  if (got.length > 12) socket.unshift(got.subarray(12));
  return { reply: reply[1]!, socket };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('SOCKS5 egress through a Nexus node', () => {
  it('curl --socks5-hostname reaches an allowed target by name and by address', async () => {
    const target = await httpTarget();
    const { node, socksPort } = await egress(LOOPBACK);
    const byName = await curl(socksPort, `http://localhost:${target.port}/`);
    expect(byName.stderr).toBe('');
    expect(byName.code).toBe(0);
    expect(byName.stdout.toString()).toBe('hello from 127.0.0.1\n');
    const byAddress = await curl(socksPort, `http://127.0.0.1:${target.port}/`);
    expect(byAddress.stdout.toString()).toBe('hello from 127.0.0.1\n');
    expect(target.requests).toBe(2);
    expect(node.hub.outbound.stats()).toMatchObject({ opened: 2 });
  });

  it('reaches an IPv6 target and downloads 20 MiB byte-exact with curl', async () => {
    const target = await httpTarget('::1', 20 * 1024 * 1024);
    const { socksPort } = await egress(LOOPBACK);
    const big = await curl(socksPort, `http://[::1]:${target.port}/big`);
    expect(big.code).toBe(0);
    expect(big.stdout.length).toBe(target.body.length);
    expect(sha(big.stdout)).toBe(sha(target.body));
    const raw = await socksConnect(socksPort, 'ipv6', '::1', target.port);
    expect(raw.reply).toBe(0x00);
  });

  it('carries 20 MiB both ways byte-exact (raw client, IPv4 address, to an echo target)', async () => {
    const echoPort = await echoTarget();
    const { socksPort, node } = await egress(LOOPBACK);
    const { reply, socket } = await socksConnect(socksPort, 'ipv4', '127.0.0.1', echoPort);
    expect(reply).toBe(0x00);
    const payload = randomBytes(20 * 1024 * 1024);
    const received: Buffer[] = [];
    let length = 0;
    const echoed = new Promise<void>((resolve) => {
      socket.on('data', (c: Buffer) => {
        received.push(c);
        length += c.length;
        if (length >= payload.length) resolve();
      });
    });
    socket.write(payload);
    await echoed;
    expect(sha(Buffer.concat(received))).toBe(sha(payload));
    socket.destroy();
    await waitUntil(() => node.hub.outbound.stats().open === 0, 5_000, 'the connection to close');
  });

  it('refuses a loopback target without allowedOutboundNetworks: a SOCKS5 error, a log line and a count', async () => {
    const target = await httpTarget();
    const { node, socksPort, lines } = await egress({ allowOutbound: true });
    const result = await curl(socksPort, `http://localhost:${target.port}/`);
    // curl 7.88: exit 97 (proxy handshake error), the reply code in parentheses.
    expect(result.code).toBe(97);
    expect(result.stderr).toMatch(/SOCKS5 connection to localhost.*\(2\)/);
    const raw = await socksConnect(socksPort, 'ipv4', '127.0.0.1', target.port);
    expect(raw.reply).toBe(0x02); // connection not allowed by ruleset
    expect(target.requests).toBe(0);
    expect(node.hub.outbound.stats().refused).toEqual({ 'address-refused': 2 });
    expect(node.hub.outbound.stats().addressRefusals.loopback).toBeGreaterThanOrEqual(2);
    expect(
      lines.filter((l) => l.msg === 'outbound connection refused: target address not allowed (loopback)'),
    ).toHaveLength(2);
  });

  it('refuses ports outside allowedOutboundPorts and outside the claim with 0x02', async () => {
    const target = await httpTarget();
    const other = await httpTarget();
    const { node, socksPort } = await egress(
      { ...LOOPBACK, allowedOutboundPorts: [target.port, other.port] },
      { outboundAllowed: true, allowedOutboundPorts: [target.port] },
    );
    expect((await socksConnect(socksPort, 'ipv4', '127.0.0.1', target.port)).reply).toBe(0x00);
    expect((await socksConnect(socksPort, 'ipv4', '127.0.0.1', other.port)).reply).toBe(0x02);
    expect((await socksConnect(socksPort, 'ipv4', '127.0.0.1', 9)).reply).toBe(0x02);
    const result = await curl(socksPort, `http://127.0.0.1:${other.port}/`);
    expect(result.code).not.toBe(0);
    expect(node.hub.outbound.stats().refused).toEqual({
      'port-not-allowed-for-backend': 2,
      'port-not-allowed-by-server': 1,
    });
    expect(other.requests).toBe(0);
  });

  it('refuses past maxOutboundConnsPerBackend with 0x05, and an unreachable target with 0x05', async () => {
    const echoPort = await echoTarget();
    const { node, socksPort } = await egress({ ...LOOPBACK, maxOutboundConnsPerBackend: 2 });
    const a = await socksConnect(socksPort, 'ipv4', '127.0.0.1', echoPort);
    const b = await socksConnect(socksPort, 'domain', 'localhost', echoPort);
    expect([a.reply, b.reply]).toEqual([0x00, 0x00]);
    expect((await socksConnect(socksPort, 'ipv4', '127.0.0.1', echoPort)).reply).toBe(0x05);
    a.socket.destroy();
    await waitUntil(() => node.hub.outbound.stats().open === 1, 5_000, 'a free slot');
    const closedPort = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    expect((await socksConnect(socksPort, 'ipv4', '127.0.0.1', closedPort)).reply).toBe(0x05);
    expect(node.hub.outbound.stats().refused).toEqual({ 'connection-limit': 1, 'dial-failed': 1 });
  });

  it('refuses with 0x02 when the node has allowOutbound off, and for a token without outbound_allowed', async () => {
    const echoPort = await echoTarget();
    const off = await egress({ allowOutbound: false }, {});
    expect((await socksConnect(off.socksPort, 'ipv4', '127.0.0.1', echoPort)).reply).toBe(0x02);
    expect(off.node.hub.outbound.stats().refused).toEqual({ disabled: 1 });
    const noClaim = await egress(LOOPBACK, {});
    expect((await socksConnect(noClaim.socksPort, 'ipv4', '127.0.0.1', echoPort)).reply).toBe(0x02);
    expect(noClaim.node.hub.outbound.stats().refused).toEqual({ 'not-allowed-for-backend': 1 });
    expect(
      noClaim.lines.some(
        (l) => l.msg === 'outbound connection refused: outbound connections not allowed for this backend',
      ),
    ).toBe(true);
  });

  it('answers 0x07 for BIND, and 0x01 when the node is not connected', async () => {
    const echoPort = await echoTarget();
    const { node, client, socksPort } = await egress(LOOPBACK);
    expect((await socksConnect(socksPort, 'ipv4', '127.0.0.1', echoPort, 0x02)).reply).toBe(0x07);
    await node.close();
    await waitUntil(() => client.sessions.size === 0, 10_000, 'the session to end');
    expect((await socksConnect(socksPort, 'ipv4', '127.0.0.1', echoPort)).reply).toBe(0x01);
    expect(client.stats().socks5).toMatchObject({ accepted: 0, failed: { 1: 1 } });
  });
});
