/**
 * A `'stream-open'` / `'stream-close'` listener that throws runs inside the WebSocket's
 * message handler; it must not crash the device or cost the end user its stream.
 */
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ hookTimeout: 8_000 });
import { type BackendClient, createBackendClient } from '../../src/backend-client.js';
import type { BackendClientOptions } from '../../src/client-options.js';
import { resolvePortMappings } from '../../src/port-mappings.js';
import { startLocalService, waitFor } from './helpers.js';
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

describe('a throwing event listener on the backend client', () => {
  it('still relays the stream and keeps the session', async () => {
    const service = await startLocalService((socket) => socket.pipe(socket));
    cleanups.push(() => service.close());
    const c = client({ portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }) });
    let opens = 0;
    let closes = 0;
    c.on('stream-open', () => {
      opens++;
      throw new Error('observer bug');
    });
    c.on('stream-close', () => {
      closes++;
      throw new Error('observer bug');
    });
    const connected = once(c, 'connected');
    c.connect();
    const conn = await hub.connection();
    await connected;
    const stream = conn.openStream();
    stream.write('hello');
    expect((await stream.waitBytes(5)).toString()).toBe('hello');
    stream.disconnect();
    await waitFor(() => closes === 1, 5_000, 'stream-close');
    expect(opens).toBe(1);
    expect(c.stats().connectedNodes).toBe(1);
    // The session still serves the next stream.
    const next = conn.openStream();
    next.write('again');
    expect((await next.waitBytes(5)).toString()).toBe('again');
  }, 8_000);
});
