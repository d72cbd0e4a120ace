/**
 * The hub's handshake waits at their defaults (docs/protocol.md §1.9): 10 s for the (stage-0) token after
 * the upgrade, and 10 s again for the stage-1 token after the `handshake_challenge`; each ends with 1008
 * and its reason. Real sockets and TLS; the hub's timers are fake so the test does not sleep 20 s.
 */
import { once } from 'node:events';
import { createTestPki, TEST_SECRET, type TestPki } from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createLocalTokenVerifier } from '../../src/auth.js';
import type { BackendSession } from '../../src/backend-session.js';
import { BackendHub, DEFAULT_AUTH_TIMEOUT_MS } from '../../src/hub.js';
import { HubTlsContext } from '../../src/hub-tls.js';
import { RoutingTable } from '../../src/routing-table.js';
import { signCurrentToken } from '../helpers/current-era-backend.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A hub with the default limits, and an open WebSocket to it whose close is recorded. */
async function connect() {
  const hub = new BackendHub({
    tls: new HubTlsContext(pki.hub),
    verifyToken: createLocalTokenVerifier({ secrets: [TEST_SECRET] }),
    routes: new RoutingTable<BackendSession>(),
  });
  const { port } = await hub.listen('127.0.0.1');
  cleanups.push(() => hub.close());
  // Reported synchronously when the wait ends, before the close frame travels.
  const failed: string[] = [];
  hub.on('auth-failed', (e) => failed.push(e.reason));
  // From here on the hub's setTimeout is fake (sockets and TLS still run for real).
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  const ws = new WebSocket(`wss://127.0.0.1:${port}/connect`, { ca: pki.ca.certPem });
  ws.on('error', () => {});
  cleanups.push(() => ws.terminate());
  let closed: { code: number; reason: string } | undefined;
  ws.on('close', (code, reason) => {
    closed = { code, reason: reason.toString() };
  });
  await once(ws, 'open');
  return { ws, closed: () => closed, failed };
}

describe('hub handshake waits at their defaults', () => {
  it('is 10 s', () => {
    expect(DEFAULT_AUTH_TIMEOUT_MS).toBe(10_000);
  });

  it('closes 1008 `authentication timeout` 10 s after the upgrade without a token, not before', async () => {
    const { closed, failed } = await connect();
    await vi.advanceTimersByTimeAsync(DEFAULT_AUTH_TIMEOUT_MS - 1);
    expect(failed).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(failed).toEqual(['authentication timeout']);
    await vi.waitFor(() => expect(closed()).toEqual({ code: 1008, reason: 'authentication timeout' }));
  });

  it('waits 10 s again for the stage-1 token after the challenge, then closes 1008 with its reason', async () => {
    const { ws, closed, failed } = await connect();
    const challenge = once(ws, 'message');
    // Most of the first wait passes before the stage-0 token: the second wait starts at the challenge.
    await vi.advanceTimersByTimeAsync(DEFAULT_AUTH_TIMEOUT_MS - 1_000);
    ws.send(await signCurrentToken(TEST_SECRET, { hostnames: ['waits.test'] }));
    const [text] = (await challenge) as [Buffer];
    expect(JSON.parse(text.toString()).type).toBe('handshake_challenge');
    await vi.advanceTimersByTimeAsync(DEFAULT_AUTH_TIMEOUT_MS - 1);
    expect(failed).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(failed).toEqual(['handshake challenge not answered in time']);
    await vi.waitFor(() =>
      expect(closed()).toEqual({ code: 1008, reason: 'handshake challenge not answered in time' }),
    );
  });
});
