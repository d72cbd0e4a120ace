/** The bandwidth cap in metrics, `/status` and `nexus-proxy status` (docs/edge.md "Bandwidth fair share"). */
import type { Socket } from 'node:net';
import {
  createTestPki,
  delay,
  startNode,
  startService,
  type TestNode,
  tlsEndUser,
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

describe('bandwidth metrics and status', () => {
  it('count bytes and throttled time per backend, and show each backend’s rate', async () => {
    const pki = await createTestPki();
    const node: TestNode = await startNode({ pki, listeners: ['tls'], config: { totalBandwidthMbps: 8 } });
    cleanups.push(() => node.close());
    const metrics = createNexusMetrics(node.nexus, { defaultMetrics: false });
    cleanups.push(() => metrics.close());
    const block = Buffer.alloc(64 * 1024, 1);
    const svc = await startService(
      (socket: Socket) => {
        const write = (): void => {
          while (!socket.destroyed && socket.write(block));
        };
        socket.on('drain', write);
        write();
      },
      { tls: await pki.issue(['bw.test']) },
    );
    cleanups.push(() => svc.close());
    const backend = await node.attachBackend({ hostnames: ['bw.test'], service: svc.port });
    const user = await tlsEndUser(node.tlsPort, 'bw.test', pki.ca.certPem);
    user.on('error', () => {});
    user.resume();
    cleanups.push(() => {
      user.destroy();
    });
    const status = () =>
      buildStatus({
        nexus: node.nexus,
        metrics,
        readiness: () => ({ ready: true, reasons: [] }),
        draining: () => false,
        version: '0.0.0',
        startedAt: Date.now(),
      });
    status(); // the first reading starts the rate sample
    await delay(1_500);
    await waitUntil(() => node.nexus.bandwidth.stats().throttledMs > 0, 5_000, 'throttled time');

    const text = await metrics.metrics();
    const label = `backend="bw.test,${backend.tag}"`;
    expect(sample(text, 'nexus_bandwidth_cap_bytes_per_second')).toBe(1_000_000);
    expect(sample(text, `nexus_bandwidth_sent_bytes_total{${label}}`)).toBeGreaterThan(500_000);
    expect(sample(text, `nexus_bandwidth_throttled_seconds_total{${label}}`)).toBeGreaterThan(0);
    expect(sample(text, 'nexus_bandwidth_throttled_backends')).toBeGreaterThanOrEqual(0);

    const snapshot = status();
    const session = node.nexus.hub.sessions[0]!;
    expect(snapshot.bandwidth?.totalBandwidthMbps).toBe(8);
    const account = snapshot.bandwidth?.accounts.find((a) => a.id === session.id);
    expect(account?.shownAs).toBe(`bw.test,${backend.tag}`);
    // 8 Mbit/s = 1 MB/s, measured over the ≥ 1 s between the two readings.
    expect(account?.bytesPerSecond).toBeGreaterThan(600_000);
    expect(account?.bytesPerSecond).toBeLessThan(1_200_000);
    const printed = formatStatus(snapshot);
    expect(printed).toMatch(/^Bandwidth: cap 8 Mbit\/s, [01] waiting for their share$/m);
    expect(printed).toMatch(
      new RegExp(`^${session.id}\\s+bw\\.test,\\S+\\s+[\\d.]+ (kB|MB)/s\\s+[\\d.]+ MB\\s+[\\d.]+s`, 'm'),
    );
  });

  it('an unlimited node has no bandwidth section and a cap of 0', async () => {
    const pki = await createTestPki();
    const node = await startNode({ pki, listeners: ['tls'] });
    cleanups.push(() => node.close());
    const metrics = createNexusMetrics(node.nexus, { defaultMetrics: false });
    cleanups.push(() => metrics.close());
    const text = await metrics.metrics();
    expect(sample(text, 'nexus_bandwidth_cap_bytes_per_second')).toBe(0);
    expect(text).not.toContain('nexus_bandwidth_sent_bytes_total{');
    const snapshot = buildStatus({
      nexus: node.nexus,
      metrics,
      readiness: () => ({ ready: true, reasons: [] }),
      draining: () => false,
      version: '0.0.0',
      startedAt: Date.now(),
    });
    expect(snapshot).not.toHaveProperty('bandwidth');
    expect(formatStatus(snapshot)).not.toContain('Bandwidth');
  });
});
