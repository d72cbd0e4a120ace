/**
 * An observer of the node's events (metrics, embedding code) that throws must not cost an
 * end user its connection, leak a backend stream, or crash the process.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createTestPki,
  delay,
  httpGet,
  type TestNode,
  onHttpRequest,
  startNode,
  startService,
  type TestService,
} from '@nexus-proxy/test-harness';

vi.setConfig({ testTimeout: 15_000 });

let pki: Awaited<ReturnType<typeof createTestPki>>;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function nodeWithApp(): Promise<TestNode> {
  const n = await startNode({ pki, listeners: ['http'] });
  cleanups.push(() => n.close());
  const svc: TestService = await startService((socket) =>
    onHttpRequest(socket, () =>
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'),
    ),
  );
  cleanups.push(() => svc.close());
  await n.attachBackend({ hostnames: ['app.test'], service: svc.port });
  return n;
}

describe('a throwing event listener on the node', () => {
  it("'stream-open': the end user is still served and no backend stream is leaked", async () => {
    const n = await nodeWithApp();
    n.nexus.on('stream-open', () => {
      throw new Error('observer bug');
    });
    const response = await httpGet(n.httpPort, 'app.test');
    expect(response).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(response.endsWith('ok')).toBe(true);
    await vi.waitFor(() => expect(n.nexus.hub.stats().streams).toBe(0));
  });

  it("'stream-close': the process does not crash and the next end user is served", async () => {
    const n = await nodeWithApp();
    let thrown = 0;
    n.nexus.on('stream-close', () => {
      thrown++;
      throw new Error('observer bug');
    });
    expect(await httpGet(n.httpPort, 'app.test')).toMatch(/ok$/);
    await vi.waitFor(() => expect(thrown).toBe(1));
    await delay(20);
    expect(await httpGet(n.httpPort, 'app.test')).toMatch(/ok$/);
    await vi.waitFor(() => expect(thrown).toBe(2));
  });
});
