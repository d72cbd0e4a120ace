/**
 * UDP flows through the mesh (docs/edge.md "UDP relay", docs/protocol.md §2.4): an end user's datagrams
 * reach node A, which has no backend for `udp:<port>`; node B announces it (its current-era backend client
 * claims the port), so A tunnels each flow to B with `transport: "udp"`, one TUNNEL_DATA per datagram and
 * no credits, and B relays it to the backend. Every datagram comes back; a flow ends at both nodes when
 * A ends it.
 */
import { once } from 'node:events';
import { createBackendClient, resolvePortMappings, type StreamCloseEvent } from '@nexus-proxy/backend-client';
import {
  createTestPki,
  startNode,
  TEST_RECONNECT,
  TEST_SECRET,
  type TestPki,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { echoRun, freeUdpPort, startUdpEcho, udpUser } from '../helpers/udp.js';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 30_000 });

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('UDP relay through the mesh', () => {
  it('tunnels flows to the node whose backend claims the port, datagram by datagram', async () => {
    const port = await freeUdpPort();
    const origin = await startNode({
      pki,
      name: 'a',
      listeners: ['tls'],
      config: {
        udpRelayPorts: [port],
        bindHost: '127.0.0.1',
        udpFlowIdleTimeoutMinSeconds: 1,
        udpFlowIdleTimeoutDefaultSeconds: 1,
      },
    });
    cleanups.push(() => origin.close());
    const destination = await startNode({
      pki,
      name: 'b',
      peers: [origin.meshUrl],
      listeners: ['tls'],
      config: { allowedUDPPortClaims: [port] },
    });
    cleanups.push(() => destination.close());
    const target = await startUdpEcho();
    cleanups.push(() => target.close());
    const registered = once(destination.nexus, 'backend-connected');
    const client = createBackendClient({
      nodes: [destination.hubUrl],
      tokenProvider: { hmacSecret: TEST_SECRET },
      backend: { name: 'udp-device', udpRoutes: [{ port, flowIdleTimeoutSeconds: 30 }] },
      tls: { ca: pki.ca.certPem },
      reconnect: TEST_RECONNECT,
      closeGraceMs: 0,
      portMappings: resolvePortMappings({ [port]: `127.0.0.1:${target.port}` }),
    });
    cleanups.push(() => client.close());
    const opened: Array<{ clientIp: string; connPort: number; hostname: string }> = [];
    const closes: StreamCloseEvent[] = [];
    client.on('stream-open', (e) => opened.push(e));
    client.on('stream-close', (e) => closes.push(e));
    client.connect();
    await registered;
    const key = `udp:${port}`;
    await waitUntil(() => origin.routes.has(key), 10_000, 'the announced UDP claim');
    expect(origin.routes.hasLocal(key)).toBe(false);

    const u1 = await udpUser();
    const u2 = await udpUser();
    cleanups.push(
      () => u1.close(),
      () => u2.close(),
    );
    const [run1, run2] = await Promise.all([
      echoRun(u1, port, { count: 2_000, window: 16 }),
      echoRun(u2, port, { count: 500, window: 8 }),
    ]);
    expect(run1).toMatchObject({ echoed: 2_000, lost: 0, corrupt: 0 });
    expect(run2).toMatchObject({ echoed: 500, lost: 0, corrupt: 0 });
    // Two flows at A, each a tunnel; B's backend saw each end user's address and A's port.
    expect(origin.nexus.udp?.flowsByTarget()).toEqual([{ port, target: 'peer', flows: 2 }]);
    expect(opened.map((o) => o.clientIp).sort()).toEqual(
      [`127.0.0.1:${u1.port}`, `127.0.0.1:${u2.port}`].sort(),
    );
    expect(opened.every((o) => o.connPort === port && o.hostname === key)).toBe(true);
    const link = destination.mesh.links()[0]!;
    expect(link.tunnels).toMatchObject({ accepted: 2 });
    expect(link.tunnels.framesReceived).toBe(2_500);
    // A ends idle flows (1 s here): the tunnels close, and B ends the backend streams.
    await waitUntil(() => origin.nexus.udp?.flowCount === 0, 5_000, 'the flows to idle out at A');
    await waitUntil(() => closes.length === 2, 5_000, 'the backend streams to end at B');
    expect(destination.mesh.links()[0]!.tunnels.tunnels).toBe(0);
  });

  it('drops the datagrams of a flow whose tunnel the peer refused, and ends the flow', async () => {
    const port = await freeUdpPort();
    const origin = await startNode({
      pki,
      name: 'a',
      listeners: ['tls'],
      config: { udpRelayPorts: [port], bindHost: '127.0.0.1' },
    });
    cleanups.push(() => origin.close());
    // B announces the route but then has no backend: it refuses the tunnel (0x12) at once.
    const destination = await startNode({
      pki,
      name: 'b',
      peers: [origin.meshUrl],
      listeners: ['tls'],
      config: { allowedUDPPortClaims: [port] },
    });
    cleanups.push(() => destination.close());
    // Once A has applied B's (empty) announce, A is told B serves the port: B has no backend for it.
    await waitUntil(() => origin.mesh.stats().announcesApplied >= 1, 10_000, 'B announce at A');
    origin.routes.setPeerRoutes(origin.mesh.links()[0]!.linkId, [`udp:${port}`]);
    expect(origin.routes.has(`udp:${port}`)).toBe(true);
    const u = await udpUser();
    cleanups.push(() => u.close());
    const run = await echoRun(u, port, { count: 3, lossAfterMs: 300 });
    expect(run).toMatchObject({ echoed: 0, lost: 3 });
    await waitUntil(() => origin.nexus.udp?.flowCount === 0, 5_000, 'the refused flow to end');
    expect(destination.mesh.links()[0]!.tunnels.refused).toBeGreaterThanOrEqual(1);
    const stats = origin.nexus.udp!.stats()[0]!;
    expect(stats.flowsOpened).toBeGreaterThanOrEqual(1);
    expect(stats.flowsEnded.backend).toBe(stats.flowsOpened);
  });
});
