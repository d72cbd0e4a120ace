import { type BackendClient, createBackendClient, resolvePortMappings } from '@nexus-proxy/backend-client';
import type { MuxSession } from '@nexus-proxy/mux-protocol';
import {
  createTestPki,
  startNode,
  startService,
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

async function echoServer(): Promise<number> {
  const echo = await startService((socket) => socket.pipe(socket));
  cleanups.push(() => echo.close());
  return echo.port;
}

/** A node with outbound connections on, and a current-era backend client that claims them. */
async function outboundNode(echoPort: number): Promise<{ node: TestNode; session: MuxSession }> {
  const pki = await createTestPki();
  const node = await startNode({
    pki,
    listeners: ['http'],
    config: {
      allowOutbound: true,
      allowedOutboundPorts: [echoPort, 25],
      allowedOutboundNetworks: ['127.0.0.0/8'],
    },
  });
  cleanups.push(() => node.close());
  const client: BackendClient = createBackendClient({
    nodes: [node.hubUrl],
    tokenProvider: { hmacSecret: TEST_SECRET },
    backend: { name: 'device-7', hostnames: ['device.test'], outboundAllowed: true },
    tls: { ca: pki.ca.certPem },
    reconnect: TEST_RECONNECT,
    closeGraceMs: 0,
    portMappings: resolvePortMappings({ [node.httpPort]: `127.0.0.1:${echoPort}` }),
  });
  client.on('error', () => {});
  cleanups.push(() => client.close({ graceMs: 0 }));
  client.connect();
  await waitUntil(() => client.sessions.size === 1 && node.hub.sessions.length === 1, 10_000, 'the backend');
  return { node, session: client.sessions.get(node.hubUrl)! };
}

describe('outbound connections in metrics and status', () => {
  it('count opened and refused connections by result, policy refusals by reason, and open ones', async () => {
    const echoPort = await echoServer();
    const { node, session } = await outboundNode(echoPort);
    const metrics = createNexusMetrics(node.nexus, { defaultMetrics: false });
    cleanups.push(() => metrics.close());
    const stream = await session.openOutbound(`127.0.0.1:${echoPort}`, { timeoutMs: 10_000 });
    await expect(session.openOutbound('127.0.0.1:443', { timeoutMs: 10_000 })).rejects.toThrow(
      'outbound port 443 not allowed by server',
    );
    await expect(session.openOutbound('10.1.2.3:25', { timeoutMs: 10_000 })).rejects.toThrow(
      'target address not allowed (private)',
    );
    const text = await metrics.metrics();
    expect(sample(text, 'nexus_outbound_connections_total{result="opened"}')).toBe(1);
    expect(sample(text, 'nexus_outbound_connections_total{result="port-not-allowed-by-server"}')).toBe(1);
    expect(sample(text, 'nexus_outbound_connections_total{result="address-refused"}')).toBe(1);
    expect(sample(text, 'nexus_outbound_address_refusals_total{reason="private"}')).toBe(1);
    expect(sample(text, 'nexus_outbound_connections_open')).toBe(1);
    expect(sample(text, 'nexus_outbound_dials_in_flight')).toBe(0);

    const status = buildStatus({
      nexus: node.nexus,
      metrics,
      readiness: () => ({ ready: true, reasons: [] }),
      draining: () => false,
      version: '0.0.0-test',
      startedAt: Date.now(),
    });
    const id = node.hub.sessions[0]!.id;
    expect(status.backends[0]?.outbound).toEqual({
      open: 1,
      dialling: 0,
      opened: 1,
      refused: { 'port-not-allowed-by-server': 1, 'address-refused': 1 },
    });
    const printed = formatStatus(status);
    expect(printed).toContain('Outbound connections (1)');
    expect(printed).toMatch(
      new RegExp(`^${id}\\s+1\\s+0\\s+1\\s+2 \\(port-not-allowed-by-server=1, address-refused=1\\)$`, 'm'),
    );

    stream.destroy();
    await waitUntil(() => node.hub.outbound.stats().open === 0, 5_000, 'the connection to close');
    expect(sample(await metrics.metrics(), 'nexus_outbound_connections_open')).toBe(0);
  });

  it('leave a backend without outbound claims or requests out of the status', async () => {
    const pki = await createTestPki();
    const node = await startNode({ pki, listeners: ['http'] });
    cleanups.push(() => node.close());
    await node.attachBackend({ hostnames: ['seed.test'], service: await echoServer() });
    const metrics = createNexusMetrics(node.nexus, { defaultMetrics: false });
    cleanups.push(() => metrics.close());
    const status = buildStatus({
      nexus: node.nexus,
      metrics,
      readiness: () => ({ ready: true, reasons: [] }),
      draining: () => false,
      version: '0.0.0-test',
      startedAt: Date.now(),
    });
    expect(status.backends[0]).not.toHaveProperty('outbound');
    expect(formatStatus(status)).not.toContain('Outbound connections');
    expect(sample(await metrics.metrics(), 'nexus_outbound_connections_total{result="opened"}')).toBe(0);
  });
});
