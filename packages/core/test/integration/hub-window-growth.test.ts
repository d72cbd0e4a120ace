/**
 * Receive windows that grow with the round trip (docs/protocol.md §1.5, "Windows that grow"), on a whole
 * node and a Nexus backend client that reaches its hub through a delay line of 25 ms each way: both ends
 * grow their windows past the base 2 MiB while an end user's bytes go through both ways, every byte
 * intact; a client that keeps the base protocol's frames (as the reference does) grows nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { MAX_DATA_PAYLOAD } from '@nexus-proxy/mux-protocol';
import {
  backendClient,
  createTestPki,
  startDelayLine,
  startNode,
  startService,
  type TestPki,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 60_000 });

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A node, an echo service, and a backend client reaching the hub through a 25 ms delay line. */
async function farDevice(maxDataPayload?: number) {
  const node = await startNode({ pki, listeners: ['http'] });
  cleanups.push(() => node.close());
  const echo = await startService((socket) => socket.pipe(socket));
  cleanups.push(() => echo.close());
  const line = await startDelayLine(Number(new URL(node.hubUrl).port), 25);
  cleanups.push(() => line.close());
  const hubUrl = node.hubUrl.replace(/:\d+\//, `:${line.port}/`);
  const client = await backendClient(
    pki,
    { hubUrl, addresses: node.addresses },
    { hostnames: ['far.test'], service: echo.port, ...(maxDataPayload ? { maxDataPayload } : {}) },
  );
  cleanups.push(() => client.close());
  const registered = once(node.nexus, 'backend-connected');
  client.connect();
  await registered;
  return { node, client };
}

/** An end user sends `bytes` to the echo service through the node and reads them back; digests of both. */
async function echoThrough(httpPort: number, bytes: number) {
  const user = netConnect(httpPort, '127.0.0.1');
  await once(user, 'connect');
  const sent = createHash('sha256');
  const received = createHash('sha256');
  let receivedBytes = 0;
  user.on('data', (chunk: Buffer) => {
    received.update(chunk);
    receivedBytes += chunk.length;
  });
  const head = Buffer.from('POST /bulk HTTP/1.1\r\nHost: far.test\r\n\r\n');
  sent.update(head);
  user.write(head);
  let sentBytes = head.length;
  while (sentBytes < bytes) {
    const chunk = randomBytes(256 * 1024);
    sent.update(chunk);
    sentBytes += chunk.length;
    if (!user.write(chunk)) await once(user, 'drain');
  }
  await vi.waitFor(() => expect(receivedBytes).toBe(sentBytes), { timeout: 45_000, interval: 20 });
  user.destroy();
  return { sent: sent.digest('hex'), received: received.digest('hex') };
}

describe('windows that grow, through a node and a far backend client', () => {
  it('both ends grow their windows past 2 MiB, and every byte arrives', async () => {
    const { node, client } = await farDevice();
    const result = await echoThrough(node.httpPort, 48 * 1024 * 1024);
    expect(result.received).toBe(result.sent);
    // The node (receiving from the device) and the client (receiving from the node) each grew.
    const hubSide = node.nexus.hub.sessions.map((s) => s.mux.stats().windowGrowthPeak);
    const clientSide = [...client.sessions.values()].map((s) => s.stats().windowGrowthPeak);
    expect(Math.max(...hubSide)).toBeGreaterThan(0);
    expect(Math.max(...clientSide)).toBeGreaterThan(0);
    // Within a stream's 16 MiB: 14 MiB added at most per stream, one stream here.
    expect(Math.max(...hubSide, ...clientSide)).toBeLessThanOrEqual(14 * 1024 * 1024);
  });

  it('a client that keeps 32 768-byte frames (the reference’s wire) grows nothing', async () => {
    const { node } = await farDevice(MAX_DATA_PAYLOAD);
    const result = await echoThrough(node.httpPort, 8 * 1024 * 1024);
    expect(result.received).toBe(result.sent);
    // The node accepts 128 KiB from it but sends it 32 768: it keeps the base window toward this client;
    // the client, told the node accepts 128 KiB, may grow its own.
    expect(node.nexus.hub.sessions.map((s) => s.mux.stats().windowGrowthPeak)).toEqual([0]);
  });
});
