/**
 * Receive windows that grow with the round trip (docs/protocol.md §1.5, "Windows that grow"), on a whole
 * node and a Nexus backend client that reaches its hub through a delay line of 25 ms each way: both ends
 * grow their windows past the base 2 MiB while an end user's bytes go through both ways, every byte
 * intact; a client that keeps the base protocol's frames (as the reference does) makes the node grow nothing.
 */
import { once } from 'node:events';
import { MAX_DATA_PAYLOAD } from '@nexus-proxy/mux-protocol';
import {
  backendClient,
  exchangeThrough,
  MiB,
  startDelayLine,
  startExchangeService,
} from '@nexus-proxy/test-harness';
import { describe, expect, it, vi } from 'vitest';
import { useTestNodes } from '../helpers/test-nodes.js';

vi.setConfig({ testTimeout: 60_000 });

const nodes = useTestNodes();
const { cleanups } = nodes;
const prelude = Buffer.from('POST /bulk HTTP/1.1\r\nHost: far.test\r\n\r\n');

/**
 * A node, a service that sends `bytes` while it reads as many, and a backend client for it that reaches the
 * hub through a 25 ms delay line; an end user's exchange through the node, checked byte for byte.
 */
async function farExchange(bytes: number, maxDataPayload?: number) {
  const node = await nodes.node('far', { listeners: ['http'] });
  const svc = await startExchangeService(bytes, prelude.length);
  cleanups.push(() => svc.close());
  const line = await startDelayLine(Number(new URL(node.hubUrl).port), 25);
  cleanups.push(() => line.close());
  const hubUrl = node.hubUrl.replace(/:\d+\//, `:${line.port}/`);
  const client = await backendClient(
    nodes.pki,
    { hubUrl, addresses: node.addresses },
    { hostnames: ['far.test'], service: svc.port, ...(maxDataPayload ? { maxDataPayload } : {}) },
  );
  cleanups.push(() => client.close());
  const registered = once(node.nexus, 'backend-connected');
  client.connect();
  await registered;
  const user = await exchangeThrough(node.httpPort, prelude, bytes);
  expect(await svc.receivedDigest).toBe(user.sent);
  expect(user.received).toBe(svc.sentDigest());
  return {
    node: node.nexus.hub.sessions.map((s) => s.mux.stats().windowGrowthPeak),
    client: [...client.sessions.values()].map((s) => s.stats().windowGrowthPeak),
  };
}

describe('windows that grow, through a node and a far backend client', () => {
  it('both ends grow their windows past 2 MiB, and every byte arrives', async () => {
    const peaks = await farExchange(48 * MiB);
    // The node (receiving from the device) and the client (receiving from the node) each grew, within a
    // stream's 16 MiB: 14 MiB added at most, one stream here.
    for (const side of [peaks.node, peaks.client]) {
      expect(Math.max(...side)).toBeGreaterThan(0);
      expect(Math.max(...side)).toBeLessThanOrEqual(14 * MiB);
    }
  });

  it('a client that keeps 32 768-byte frames (the reference’s wire) makes the node grow nothing', async () => {
    // The node sends it 32 768-byte frames and keeps the base window toward it; the client, told the node
    // accepts 128 KiB, may grow its own.
    const peaks = await farExchange(8 * MiB, MAX_DATA_PAYLOAD);
    expect(peaks.node).toEqual([0]);
  });
});
