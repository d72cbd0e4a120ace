/**
 * The UDP relay through one node on real sockets (docs/edge.md "UDP relay"): an end user's datagrams reach
 * a UDP echo target behind the Nexus backend client (current era, `udpRoutes`, a port mapping to the
 * target) and every answer comes back. 10 000 datagrams in a row on one flow all arrive; a flow whose
 * backend stopped reading does not hold back another flow on the port; oversize datagrams are dropped and
 * counted; a small `udpMaxFlows` evicts the least recently used flow with a `disconnect`; flows idle out on
 * the timeout the claims set; and a backend that grants credits once and never again (what the reference
 * backend does for UDP) does not stall its flow.
 */
import { once } from 'node:events';
import {
  type BackendClient,
  createBackendClient,
  resolvePortMappings,
  type StreamCloseEvent,
} from '@nexus-proxy/backend-client';
import { decodeBackendMessage, encodeControlMessage, encodeDataFrame } from '@nexus-proxy/mux-protocol';
import {
  createTestPki,
  startNode,
  TEST_RECONNECT,
  TEST_SECRET,
  type TestNode,
  type TestPki,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectCurrentEraBackend } from '../helpers/current-era-backend.js';
import { echoRun, freeUdpPort, startUdpEcho, type UdpTarget, udpUser } from '../helpers/udp.js';

vi.setConfig({ testTimeout: 60_000 });

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A node relaying UDP port `port` (on 127.0.0.1 unless `bindHost` says otherwise). */
async function udpNode(port: number, config: Record<string, unknown> = {}): Promise<TestNode> {
  const node = await startNode({
    pki,
    listeners: ['tls'],
    config: { udpRelayPorts: [port], allowedUDPPortClaims: [port], bindHost: '127.0.0.1', ...config },
  });
  cleanups.push(() => node.close());
  return node;
}

/** A current-era backend client claiming `udp:<port>` and mapping it to `target`. */
async function udpBackend(
  node: TestNode,
  port: number,
  target: UdpTarget,
  options: { name?: string; flowIdleTimeoutSeconds?: number } = {},
): Promise<BackendClient> {
  const registered = once(node.nexus, 'backend-connected');
  const client = createBackendClient({
    nodes: [node.hubUrl],
    tokenProvider: { hmacSecret: TEST_SECRET },
    backend: {
      name: options.name ?? 'udp-device',
      udpRoutes: [{ port, flowIdleTimeoutSeconds: options.flowIdleTimeoutSeconds ?? 30 }],
    },
    tls: { ca: pki.ca.certPem },
    reconnect: TEST_RECONNECT,
    closeGraceMs: 0,
    portMappings: resolvePortMappings({ [port]: `127.0.0.1:${target.port}` }),
  });
  cleanups.push(() => client.close());
  client.connect();
  await registered;
  return client;
}

async function echoTarget(options: { silent?: boolean } = {}): Promise<UdpTarget> {
  const target = await startUdpEcho(options);
  cleanups.push(() => target.close());
  return target;
}

async function user(host = '127.0.0.1') {
  const u = await udpUser(host);
  cleanups.push(() => u.close());
  return u;
}

function portStats(node: TestNode) {
  const stats = node.nexus.udp?.stats()[0];
  if (stats === undefined) throw new Error('the node runs no UDP relay');
  return stats;
}

describe('UDP relay through one node', () => {
  it('10 000 datagrams in a row on one flow are all echoed', async () => {
    const port = await freeUdpPort();
    const node = await udpNode(port);
    const target = await echoTarget();
    const client = await udpBackend(node, port, target);
    const opened: string[] = [];
    client.on('stream-open', (e) => opened.push(`${e.hostname} ${e.connPort}`));
    const u = await user();
    const run = await echoRun(u, port, { count: 10_000, window: 32, size: 200 });
    console.log(
      `UDP, one flow through one node: ${run.echoed} of ${run.sent} datagrams echoed in ${run.ms.toFixed(0)} ms ` +
        `(${Math.round((run.echoed / run.ms) * 1000)} round trips/s, 32 in flight)`,
    );
    expect(run).toMatchObject({ sent: 10_000, echoed: 10_000, lost: 0, corrupt: 0 });
    // One flow: one stream, one local socket at the target, and nothing dropped anywhere.
    expect(opened).toEqual([`udp:${port} ${port}`]);
    expect(target.sources.size).toBe(1);
    expect(target.received).toBe(10_000);
    const stats = portStats(node);
    expect(stats).toMatchObject({ flows: 1, flowsOpened: 1, datagramsIn: 10_000, datagramsOut: 10_000 });
    expect(Object.values(stats.dropped).every((n) => n === 0)).toBe(true);
    expect(node.nexus.udp?.flowsByTarget()).toEqual([{ port, target: node.hub.sessions[0]!.id, flows: 1 }]);
  });

  it('serves IPv4 and IPv6 end users on one dual-stack socket when no bindHost is set', async () => {
    const port = await freeUdpPort('::');
    const node = await udpNode(port, { bindHost: null });
    const target = await echoTarget();
    const client = await udpBackend(node, port, target);
    const ips: string[] = [];
    client.on('stream-open', (e) => ips.push(e.clientIp));
    const v4 = await user('127.0.0.1');
    const v6 = await user('::1');
    expect(await echoRun(v4, port, { count: 50 })).toMatchObject({ echoed: 50, lost: 0 });
    expect(await echoRun(v6, port, { count: 50, host: '::1' })).toMatchObject({ echoed: 50, lost: 0 });
    expect(ips).toEqual([`127.0.0.1:${v4.port}`, `[::1]:${v6.port}`]);
  });

  it('a flow whose backend stopped reading does not hold back another flow on the port', async () => {
    const port = await freeUdpPort();
    const node = await udpNode(port);
    // Backend 1 takes flows and never reads again; backend 2 echoes. Flows alternate between them (WRR).
    const stalled = await connectCurrentEraBackend({
      hubPort: node.hubPort,
      ca: pki.ca.certPem,
      secret: TEST_SECRET,
      claims: { udp_routes: [{ port }] },
      onBinary: () => {},
    });
    // Its socket is paused below: no close handshake can complete, so it is cut.
    cleanups.push(() => stalled.ws.terminate());
    await waitUntil(() => node.hub.sessions.length === 1);
    const target = await echoTarget();
    await udpBackend(node, port, target);
    await waitUntil(() => node.routes.localPool(`udp:${port}`)?.size === 2);
    (stalled.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    // Find which of two end users landed on the stalled backend: the one that gets no answer.
    const a = await user();
    const b = await user();
    const probeA = await echoRun(a, port, { count: 1, lossAfterMs: 500 });
    const probeB = await echoRun(b, port, { count: 1, lossAfterMs: 500 });
    expect(probeA.echoed + probeB.echoed).toBe(1);
    const [blocked, healthy] = probeA.echoed === 0 ? [a, b] : [b, a];
    // The blocked flow is flooded (20 MiB in 1 KiB datagrams, more than the stalled WebSocket and the
    // kernel buffers under it can hold) while the healthy one runs 1 000 round trips: all of them come back.
    const payload = Buffer.alloc(1_024, 7);
    const flood = (async () => {
      for (let i = 0; i < 20_000; i++) {
        blocked.socket.send(payload, port, '127.0.0.1');
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    const run = await echoRun(healthy, port, { count: 1_000, window: 16 });
    await flood;
    expect(run).toMatchObject({ echoed: 1_000, lost: 0, corrupt: 0 });
    // The stalled flow's queue filled and its datagrams were dropped, never waited for.
    await waitUntil(() => portStats(node).dropped['queue-full'] > 0, 5_000, 'the stalled flow to drop');
    expect(portStats(node).flows).toBe(2);
  });

  it('drops and counts datagrams over udpMaxDatagramBytes, and relays the next one', async () => {
    const port = await freeUdpPort();
    const node = await udpNode(port, { udpMaxDatagramBytes: 1_000 });
    const target = await echoTarget();
    await udpBackend(node, port, target);
    const u = await user();
    u.socket.send(Buffer.alloc(1_001, 1), port, '127.0.0.1');
    u.socket.send(Buffer.alloc(1_001, 2), port, '127.0.0.1');
    await waitUntil(() => portStats(node).dropped.oversize === 2);
    expect(await echoRun(u, port, { count: 3, size: 1_000 })).toMatchObject({ echoed: 3, lost: 0 });
    expect(target.received).toBe(3);
    expect(portStats(node)).toMatchObject({ datagramsIn: 3, flowsOpened: 1 });
  });

  it('charges datagrams to the backend under the bandwidth cap, dropping what is over its share', async () => {
    const port = await freeUdpPort();
    // 0.2 Mbit/s: 25 000 bytes a second, far below 300 datagrams of 1 000 bytes sent at once.
    const node = await udpNode(port, { totalBandwidthMbps: 0.2 });
    const target = await echoTarget();
    await udpBackend(node, port, target);
    const u = await user();
    let answers = 0;
    u.socket.on('message', () => answers++);
    for (let i = 0; i < 300; i++) u.socket.send(Buffer.alloc(1_000, i & 0xff), port, '127.0.0.1');
    await waitUntil(() => portStats(node).dropped.bandwidth > 0, 5_000, 'datagrams over the cap');
    const stats = portStats(node);
    // What went through was charged to the backend's account; nothing waited.
    const account = node.nexus.bandwidth.stats().accounts.find((a) => a.id === node.hub.sessions[0]!.id);
    expect(account?.bytesSent).toBeGreaterThanOrEqual(stats.bytesIn);
    expect(stats.datagramsIn).toBeLessThan(300);
    expect(stats.dropped['queue-full']).toBe(0);
    expect(answers).toBeLessThanOrEqual(stats.datagramsOut);
  });

  it('evicts the least recently used flow past udpMaxFlows, with a disconnect to its backend', async () => {
    const port = await freeUdpPort();
    const node = await udpNode(port, { udpMaxFlows: 2 });
    const target = await echoTarget();
    const client = await udpBackend(node, port, target);
    const closes: StreamCloseEvent[] = [];
    client.on('stream-close', (e) => closes.push(e));
    const [u1, u2, u3] = [await user(), await user(), await user()];
    expect(await echoRun(u1, port, { count: 5 })).toMatchObject({ echoed: 5 });
    expect(await echoRun(u2, port, { count: 5 })).toMatchObject({ echoed: 5 });
    expect(await echoRun(u3, port, { count: 5 })).toMatchObject({ echoed: 5 });
    expect(portStats(node)).toMatchObject({ flows: 2, flowsOpened: 3 });
    expect(portStats(node).flowsEnded.evicted).toBe(1);
    await waitUntil(() => closes.length === 1, 5_000, 'the evicted flow to close at the backend');
    expect(closes[0]!.reason).toBe('flow_evicted');
    // The evicted end user is a new flow when it speaks again (and evicts the next oldest, u2).
    expect(await echoRun(u1, port, { count: 5 })).toMatchObject({ echoed: 5 });
    expect(portStats(node)).toMatchObject({ flows: 2, flowsOpened: 4 });
  });

  it('times flows out on the longest timeout the port’s backends claim, within the bounds', async () => {
    const port = await freeUdpPort();
    const node = await udpNode(port, {
      udpFlowIdleTimeoutMinSeconds: 1,
      udpFlowIdleTimeoutMaxSeconds: 20,
      udpFlowIdleTimeoutDefaultSeconds: 7,
    });
    const relay = node.nexus.udp!;
    expect(relay.idleTimeoutSeconds(port)).toBe(7); // no backend: the default
    const target = await echoTarget();
    const one = await udpBackend(node, port, target, { name: 'one', flowIdleTimeoutSeconds: 1 });
    expect(relay.idleTimeoutSeconds(port)).toBe(1);
    const two = await udpBackend(node, port, target, { name: 'two', flowIdleTimeoutSeconds: 600 });
    expect(relay.idleTimeoutSeconds(port)).toBe(20); // the longest, clamped to the maximum
    await two.close();
    await waitUntil(() => node.routes.localPool(`udp:${port}`)?.size === 1);
    expect(relay.idleTimeoutSeconds(port)).toBe(1);
    const closes: StreamCloseEvent[] = [];
    one.on('stream-close', (e) => closes.push(e));
    const u = await user();
    expect(await echoRun(u, port, { count: 3 })).toMatchObject({ echoed: 3 });
    expect(relay.flowCount).toBe(1);
    // One reaper for the table: within a second of the timeout the flow is gone, at both ends.
    await waitUntil(() => relay.flowCount === 0, 5_000, 'the idle flow to end');
    await waitUntil(() => closes.length === 1, 5_000, 'the backend to see the flow end');
    expect(closes[0]!.reason).toBe('timeout');
    expect(portStats(node).flowsEnded.expired).toBe(1);
  });

  it('does not stall a flow whose backend grants credits once and never again (the reference backend)', async () => {
    const port = await freeUdpPort();
    const node = await udpNode(port);
    // The reference backend for UDP: grants 64 forward credits at connect, never replenishes them; it
    // echoes each datagram, spending one of the hub's credits per frame and waiting at zero.
    let streamId = '';
    let credits = 0;
    let granted = 0;
    const waiting: Buffer[] = [];
    let send: (m: Uint8Array) => void = () => {};
    const flush = () => {
      while (credits > 0 && waiting.length > 0) {
        credits--;
        send(encodeDataFrame(streamId, waiting.shift()!));
      }
    };
    const reference = await connectCurrentEraBackend({
      hubPort: node.hubPort,
      ca: pki.ca.certPem,
      secret: TEST_SECRET,
      claims: { udp_routes: [{ port }] },
      onBinary: (message, out) => {
        send = out;
        const decoded = decodeBackendMessage(message);
        if (!decoded.ok) return;
        const frame = decoded.value;
        if (frame.type === 'data') {
          waiting.push(Buffer.from(frame.payload));
          flush();
          return;
        }
        if (frame.type !== 'control') return;
        const m = frame.message;
        if (m.event === 'connect') {
          expect(m).toMatchObject({ transport: 'udp', hostname: `udp:${port}`, conn_port: port });
          streamId = m.client_id;
          credits = m.credits ?? 0;
          out(encodeControlMessage({ event: 'resume_stream', client_id: streamId, credits: 64 }));
        } else if (m.event === 'resume_stream' && m.client_id === streamId) {
          granted += m.credits ?? 0;
          credits += m.credits ?? 0;
          flush();
        }
      },
    });
    cleanups.push(() => reference.close());
    await waitUntil(() => node.routes.hasLocal(`udp:${port}`));
    const u = await user();
    const run = await echoRun(u, port, { count: 2_000, window: 16 });
    expect(run).toMatchObject({ echoed: 2_000, lost: 0, corrupt: 0 });
    // The hub sent 2 000 frames on a window of 64 that was never refilled, and returned credits for the
    // backend's answers as it delivered them.
    expect(granted).toBeGreaterThanOrEqual(2_000 - 64);
  });
});
