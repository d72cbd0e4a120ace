/** The UDP relay in the CLI: its Prometheus metrics and its part of `/status` and `nexus-proxy status`. */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { createBackendClient, resolvePortMappings } from '@nexus-proxy/backend-client';
import {
  createTestPki,
  freeUdpPort,
  startNode,
  TEST_RECONNECT,
  TEST_SECRET,
  type TestNode,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createNexusMetrics } from '../src/metrics.js';
import { buildStatus, formatStatus } from '../src/status.js';
import { sample } from './_metrics.js';

vi.setConfig({ testTimeout: 30_000 });

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function udpSocket(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket;
}

describe('UDP relay metrics and status', () => {
  it('count flows, datagrams each way and drops by reason, and list flows per backend', async () => {
    const pki = await createTestPki();
    const port = await freeUdpPort();
    const node: TestNode = await startNode({
      pki,
      listeners: ['tls'],
      config: {
        udpRelayPorts: [port],
        allowedUDPPortClaims: [port],
        bindHost: '127.0.0.1',
        udpMaxDatagramBytes: 100,
      },
    });
    cleanups.push(() => node.close());
    const echo = await udpSocket();
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    const registered = once(node.nexus, 'backend-connected');
    const client = createBackendClient({
      nodes: [node.hubUrl],
      tokenProvider: { hmacSecret: TEST_SECRET },
      backend: { name: 'dns-device', udpRoutes: [{ port, flowIdleTimeoutSeconds: 42 }] },
      tls: { ca: pki.ca.certPem },
      reconnect: TEST_RECONNECT,
      closeGraceMs: 0,
      portMappings: resolvePortMappings({ [port]: `127.0.0.1:${echo.address().port}` }),
    });
    cleanups.push(() => client.close());
    client.connect();
    await registered;
    const metrics = createNexusMetrics(node.nexus, { defaultMetrics: false });
    cleanups.push(() => metrics.close());

    const user = await udpSocket();
    let answers = 0;
    user.on('message', () => answers++);
    user.send(Buffer.alloc(101), port, '127.0.0.1'); // oversize
    for (let i = 0; i < 3; i++) {
      user.send(Buffer.from(`query ${i}`), port, '127.0.0.1');
      await waitUntil(() => answers === i + 1);
    }
    const text = await metrics.metrics();
    expect(sample(text, `nexus_udp_flows{port="${port}"}`)).toBe(1);
    expect(sample(text, `nexus_udp_datagrams_total{port="${port}",direction="in"}`)).toBe(3);
    expect(sample(text, `nexus_udp_datagrams_total{port="${port}",direction="out"}`)).toBe(3);
    expect(sample(text, `nexus_udp_bytes_total{port="${port}",direction="out"}`)).toBe(21);
    expect(sample(text, `nexus_udp_dropped_total{port="${port}",reason="oversize"}`)).toBe(1);
    expect(sample(text, `nexus_udp_dropped_total{port="${port}",reason="queue-full"}`)).toBe(0);
    expect(sample(text, `nexus_udp_flows_ended_total{port="${port}",reason="expired"}`)).toBe(0);

    const status = buildStatus({
      nexus: node.nexus,
      metrics,
      readiness: () => ({ ready: true, reasons: [] }),
      draining: () => false,
      version: 'test',
      startedAt: Date.now(),
    });
    const sessionId = node.hub.sessions[0]!.id;
    expect(status.udp).toEqual({
      ports: [{ port, flows: 1, idleTimeoutSeconds: 42, datagramsIn: 3, datagramsOut: 3, dropped: 1 }],
      flows: [{ port, target: sessionId, flows: 1 }],
    });
    const printed = formatStatus(status);
    expect(printed).toContain('UDP ports (1)');
    expect(printed).toMatch(new RegExp(`${port}\\s+1\\s+42s\\s+3\\s+3\\s+1`));
    expect(printed).toContain('UDP flows (1)');
    expect(printed).toMatch(new RegExp(`${port}\\s+${sessionId}\\s+1`));
  });

  it('has no UDP section and no UDP series on a node without udpRelayPorts', async () => {
    const pki = await createTestPki();
    const node = await startNode({ pki, listeners: ['tls'] });
    cleanups.push(() => node.close());
    const metrics = createNexusMetrics(node.nexus, { defaultMetrics: false });
    cleanups.push(() => metrics.close());
    expect(await metrics.metrics()).not.toContain('nexus_udp_flows{');
    const status = buildStatus({
      nexus: node.nexus,
      metrics,
      readiness: () => ({ ready: true, reasons: [] }),
      draining: () => false,
      version: 'test',
      startedAt: Date.now(),
    });
    expect(status.udp).toBeUndefined();
    expect(formatStatus(status)).not.toContain('UDP');
  });
});
