import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { bindingRequest } from '@nexus-proxy/core';
import { createTestPki, freeUdpPort, startNode, type TestNode, waitUntil } from '@nexus-proxy/test-harness';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createNexusMetrics } from '../src/metrics.js';
import { sample } from './_metrics.js';

vi.setConfig({ testTimeout: 30_000 });

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('STUN metrics', () => {
  it('count requests, answers and drops by reason', async () => {
    const pki = await createTestPki();
    const stunPort = await freeUdpPort();
    const node: TestNode = await startNode({
      pki,
      listeners: ['tls'],
      config: { stunPort, bindHost: '127.0.0.1' },
    });
    cleanups.push(() => node.close());
    const metrics = createNexusMetrics(node.nexus, { defaultMetrics: false });
    cleanups.push(() => metrics.close());
    const socket = dgram.createSocket('udp4');
    cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
    let answers = 0;
    socket.on('message', () => answers++);
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    socket.send(bindingRequest(randomBytes(12)), stunPort, '127.0.0.1');
    socket.send(Buffer.alloc(8), stunPort, '127.0.0.1');
    await waitUntil(() => answers === 1 && node.nexus.stun?.stats().received === 2);
    const text = await metrics.metrics();
    expect(sample(text, 'nexus_stun_requests_total')).toBe(2);
    expect(sample(text, 'nexus_stun_responses_total{result="success"}')).toBe(1);
    expect(sample(text, 'nexus_stun_responses_total{result="error"}')).toBe(0);
    expect(sample(text, 'nexus_stun_dropped_total{reason="malformed"}')).toBe(1);
    expect(sample(text, 'nexus_stun_dropped_total{reason="rate-limited"}')).toBe(0);
  });

  it('are zero on a node without stunPort', async () => {
    const pki = await createTestPki();
    const node = await startNode({ pki, listeners: ['tls'] });
    cleanups.push(() => node.close());
    const metrics = createNexusMetrics(node.nexus, { defaultMetrics: false });
    cleanups.push(() => metrics.close());
    const text = await metrics.metrics();
    expect(sample(text, 'nexus_stun_requests_total')).toBe(0);
    expect(text).not.toContain('nexus_stun_dropped_total{');
  });
});
