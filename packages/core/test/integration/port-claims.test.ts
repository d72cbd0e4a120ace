/**
 * TCP port claims through a node on real sockets (docs/edge.md "TCP port claims"): on a TLS relay port
 * that a backend claims, an SSH-like client that speaks first, an IMAP-like service that speaks first
 * (the client waits for its banner), and a ClientHello without SNI all reach the backend's service as
 * route `tcp:<port>`; a name still wins; without the claim the rule stays "no name → close".
 *
 * The claim is a current-era backend's `tcp_ports`, checked against the node's `allowedTCPPortClaims`.
 */
import type { Socket } from 'node:net';
import {
  clientHello,
  createTestPki,
  rawConnect,
  startNode,
  startService,
  TEST_SECRET,
  type TestNode,
  type TestPki,
  type TestService,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectCurrentEraBackend } from '../helpers/current-era-backend.js';
import { portsToBind } from '@nexus-proxy/test-harness/ports';

vi.setConfig({ testTimeout: 30_000 });

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A service that greets first (`* OK ready`), then echoes; it records every byte it received. */
async function bannerEcho(): Promise<TestService & { received: () => Buffer }> {
  const chunks: Buffer[] = [];
  const s = await startService((socket: Socket) => {
    socket.write('* OK ready\r\n');
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      socket.write(c);
    });
    socket.on('end', () => socket.end());
  });
  cleanups.push(() => s.close());
  return { ...s, received: () => Buffer.concat(chunks) };
}

/** A free TCP port on 127.0.0.1 (bound once and released): the relay port the claim names. */
async function freePort(): Promise<number> {
  // Below the ephemeral range: no outbound socket can take it before it is bound.
  return (await portsToBind(1))[0]!;
}

/**
 * A node whose TLS relay port may be claimed, and a current-era backend claiming it (and serving
 * `app.claims.test`) that relays every stream to `service`.
 */
async function claimedNode(
  service: number,
): Promise<{ node: TestNode; key: string; release: () => Promise<void> }> {
  const port = await freePort();
  // A short first-byte deadline: the server-first case waits it out instead of 15 s.
  const node = await startNode({
    pki,
    listeners: ['tls'],
    config: {
      listeners: [{ port, host: '127.0.0.1', mode: 'tls' }],
      allowedTCPPortClaims: [port],
      limits: { sniffFirstByteTimeoutMs: 400, sniffFirstByteTimeoutBusyMs: 400 },
    },
  });
  cleanups.push(() => node.close());
  const key = `tcp:${port}`;
  const backend = await connectCurrentEraBackend({
    hubPort: node.hubPort,
    ca: pki.ca.certPem,
    secret: TEST_SECRET,
    claims: { hostnames: ['app.claims.test'], tcp_ports: [port] },
    servicePort: service,
  });
  cleanups.push(() => backend.close());
  await waitUntil(() => node.routes.hasLocal(key) && node.routes.hasLocal('app.claims.test'));
  return { node, key, release: () => backend.close() };
}

describe('TCP port claims', () => {
  it('a client that speaks first (SSH) reaches the claim', async () => {
    const service = await bannerEcho();
    const { node, key } = await claimedNode(service.port);
    const client = await rawConnect(node.tlsPort);
    client.socket.write('SSH-2.0-OpenSSH_9.6\r\n');
    await waitUntil(() => client.received().toString().includes('SSH-2.0-OpenSSH_9.6\r\n'));
    expect(client.received().toString()).toBe('* OK ready\r\nSSH-2.0-OpenSSH_9.6\r\n');
    expect(node.events.streamOpen.at(-1)).toMatchObject({
      hostname: key,
      route: key,
      isTls: false,
      via: 'local',
    });
    client.socket.destroy();
  });

  it('a client that waits for the banner (IMAP) reaches the claim at the first-byte deadline', async () => {
    const service = await bannerEcho();
    const { node, key } = await claimedNode(service.port);
    const client = await rawConnect(node.tlsPort);
    await waitUntil(() => client.received().toString() === '* OK ready\r\n');
    client.socket.write('a1 CAPABILITY\r\n');
    await waitUntil(() => client.received().toString().endsWith('a1 CAPABILITY\r\n'));
    expect(service.received().toString()).toBe('a1 CAPABILITY\r\n');
    expect(node.events.streamOpen.at(-1)).toMatchObject({ hostname: key, isTls: false });
    client.socket.destroy();
  });

  it('a ClientHello without SNI reaches the claim whole, as TLS; a name still wins', async () => {
    const service = await bannerEcho();
    const { node, key } = await claimedNode(service.port);
    const hello = clientHello(undefined);
    const client = await rawConnect(node.tlsPort);
    client.socket.write(hello);
    await waitUntil(() => service.received().length >= hello.length);
    expect(service.received().equals(hello)).toBe(true);
    expect(node.events.streamOpen.at(-1)).toMatchObject({ hostname: key, isTls: true });
    client.socket.destroy();

    const named = await rawConnect(node.tlsPort);
    named.socket.write(clientHello('app.claims.test'));
    await waitUntil(() => node.events.streamOpen.length === 2);
    expect(node.events.streamOpen[1]).toMatchObject({
      hostname: 'app.claims.test',
      route: 'app.claims.test',
    });
    named.socket.destroy();
  });

  it('without the claim (its backend left), a connection with no name is closed as before', async () => {
    const service = await bannerEcho();
    const { node, key, release } = await claimedNode(service.port);
    await release();
    await waitUntil(() => !node.routes.has(key));
    const client = await rawConnect(node.tlsPort);
    client.socket.write('SSH-2.0-OpenSSH_9.6\r\n');
    await client.closed;
    expect(client.received().length).toBe(0);
    expect(node.events.sniffFailed.at(-1)).toMatchObject({ reason: 'not-tls' });
    expect(service.accepted).toHaveLength(0);
  });
});

describe('TCP port claims through the mesh', () => {
  it('a node without the claim tunnels a no-name connection to the peer whose backend claims the port', async () => {
    const service = await bannerEcho();
    const port = await freePort();
    const origin = await startNode({
      pki,
      name: 'a',
      listeners: ['tls'],
      config: { listeners: [{ port, host: '127.0.0.1', mode: 'tls' }] },
    });
    cleanups.push(() => origin.close());
    const destination = await startNode({
      pki,
      name: 'b',
      peers: [origin.meshUrl],
      listeners: ['tls'],
      config: { allowedTCPPortClaims: [port] },
    });
    cleanups.push(() => destination.close());
    const backend = await connectCurrentEraBackend({
      hubPort: destination.hubPort,
      ca: pki.ca.certPem,
      secret: TEST_SECRET,
      claims: { tcp_ports: [port] },
      servicePort: service.port,
    });
    cleanups.push(() => backend.close());
    const key = `tcp:${port}`;
    await waitUntil(() => origin.routes.has(key), 10_000, 'the announced claim');
    expect(origin.routes.hasLocal(key)).toBe(false);
    const client = await rawConnect(port);
    client.socket.write('SSH-2.0-OpenSSH_9.6\r\n');
    await waitUntil(() => client.received().toString() === '* OK ready\r\nSSH-2.0-OpenSSH_9.6\r\n');
    expect(origin.events.streamOpen.at(-1)).toMatchObject({
      hostname: key,
      route: key,
      via: 'peer',
      isTls: false,
    });
    client.socket.destroy();
  });
});
