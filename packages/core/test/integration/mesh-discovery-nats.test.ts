/**
 * Route discovery on NATS JetStream key-value (docs/mesh.md "Discovery on NATS") with a real `nats-server`
 * (`startNatsServer` of the test harness), whole nodes from the harness and real backend clients. No node lists a
 * peer: they find each other's routes in the bucket, open a link when an end user needs one, and close it
 * when it has been idle. Also: a node killed without a goodbye (its own process, SIGKILL) loses its routes
 * within the TTL; a NATS restart during churn keeps the last known routes and converges afterwards; hostile
 * values written straight into the bucket are refused with a log line.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  backendClient,
  createTempDir,
  createTestPki,
  httpGet,
  type LogLine,
  MESH_SUFFIX,
  type NatsServer,
  recordingLogger,
  startHttpService,
  startNatsServer,
  startNode,
  type TestNode,
  type TestPki,
  type TestService,
  waitUntil,
  writeCertificateFiles,
} from '@nexus-proxy/test-harness';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { discoveryRouteKey } from '../../src/mesh-discovery.js';
import { discoveryNodeId } from '../../src/mesh-discovery-records.js';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

const BUCKET = 'nexus-discovery-test';
const TTL_SECONDS = 2;
const IDLE_SECONDS = 1;
const APP = 'app.nats.test';

let pki: TestPki;
let nats: NatsServer;
let service: TestService;
const lines: Record<string, LogLine[]> = { a: [], b: [], c: [] };
const nodes: Record<string, TestNode> = {};
const cleanups: Array<() => Promise<unknown> | unknown> = [];

function discoveryConfig(maxPeerRoutes?: number) {
  return {
    meshDiscovery: {
      nats: { servers: [nats.url], bucket: BUCKET, ttlSeconds: TTL_SECONDS, linkIdleSeconds: IDLE_SECONDS },
    },
    ...(maxPeerRoutes !== undefined ? { limits: { maxPeerRoutes } } : {}),
  };
}

async function discoveryNode(name: string): Promise<TestNode> {
  lines[name] = [];
  const node = await startNode({
    pki,
    name,
    config: discoveryConfig(),
    logger: recordingLogger(lines[name], 'info'),
  });
  cleanups.push(() => node.close());
  nodes[name] = node;
  return node;
}

/** Attaches a backend to `at` for `hostnames`, reachable from the relay ports of every node listed. */
async function attach(at: TestNode, hostnames: string[], from: TestNode[]) {
  const backend = await at.attachBackend({
    hostnames,
    service: service.port,
    relayPorts: from.flatMap((n) => [n.httpPort, n.tlsPort]),
  });
  cleanups.push(() => backend.close());
  return backend;
}

const routedToPeer = (node: TestNode, host: string) => node.routes.resolve(host).kind === 'peer';
const logged = (name: string, msg: string) => (lines[name] ?? []).filter((l) => l.msg === msg);

beforeAll(async () => {
  pki = await createTestPki();
  nats = await startNatsServer();
  cleanups.push(() => nats.remove());
  service = await startHttpService('discovered');
  cleanups.push(() => service.close());
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(discoveryNode));
  await attach(b as TestNode, [APP], [a as TestNode, c as TestNode]);
  await waitUntil(() => routedToPeer(nodes.a!, APP) && routedToPeer(nodes.c!, APP), 10_000, 'discovery');
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe('route discovery on NATS', () => {
  it('routes a discovered name, opens a link only when an end user needs it, and closes it when idle', async () => {
    const { a, b, c } = nodes as Record<string, TestNode>;
    const decision = a!.routes.resolve(APP);
    expect(decision.kind === 'peer' && decision.linkIds).toEqual([
      discoveryRouteKey(discoveryNodeId(b!.meshUrl)),
    ]);
    // Discovered, not linked: no node holds a link yet.
    expect([a!.mesh.linkCount, b!.mesh.linkCount, c!.mesh.linkCount]).toEqual([0, 0, 0]);
    expect(a!.nexus.discovery?.status()).toMatchObject({ state: 'connected', nodes: 2 });

    expect(await httpGet(a!.httpPort, APP)).toContain('served-by discovered');
    // A dialled B for that tunnel; C never tunnelled, so it holds no link.
    expect(a!.mesh.links().map((l) => [l.direction, l.peer])).toEqual([['outbound', b!.meshUrl]]);
    expect(b!.mesh.linkCount).toBe(1);
    expect(c!.mesh.linkCount).toBe(0);
    expect(a!.events.streamOpen.at(-1)).toMatchObject({ hostname: APP, via: 'peer' });

    // Idle for linkIdleSeconds (plus the sweep): the link closes at both ends.
    await waitUntil(() => a!.mesh.linkCount === 0 && b!.mesh.linkCount === 0, 5_000, 'the idle close');
    expect(logged('a', 'closing idle on-demand peer link')).toHaveLength(1);
    // The route stays (discovered, not learned on the link), and the next end user links again.
    expect(routedToPeer(a!, APP)).toBe(true);
    expect(await httpGet(a!.httpPort, APP)).toContain('served-by discovered');
    expect(logged('a', 'opening on-demand peer link')).toHaveLength(2);
  });

  it('refuses hostile values in the bucket with a log line and keeps serving', async () => {
    const { a } = nodes as Record<string, TestNode>;
    const nc: NatsConnection = await connect({ servers: [nats.url] });
    try {
      const kv = await new Kvm(nc).open(BUCKET);
      const refusedBefore = a!.nexus.discovery?.status().refused ?? 0;
      const record = (gen: string, chunks: number, routes: number, url = 'wss://127.0.0.1:1/mesh') =>
        JSON.stringify({ v: 1, url, gen, chunks, routes });
      await kv.put('nodes.hostile1', '{"v":1,"url":');
      await kv.put('nodes.hostile2', JSON.stringify({ pad: 'x'.repeat(300 * 1024) }));
      await kv.put('nodes.hostile3', record('g1', 0, 0, 'https://evil.example/mesh'));
      await kv.put('nodes.hostile4', record('g1', 1, 20_000));
      // 10 001 names in one chunk: over the node's 10 000 routes per peer.
      const many = Array.from({ length: 10_001 }, (_, i) => `h${i}.hostile.test`);
      await kv.put('routes.hostile5.0', JSON.stringify({ gen: 'g1', routes: many }));
      await kv.put('nodes.hostile5', record('g1', 1, 10));
      // A valid first chunk and a second that is not one: the list never completes.
      await kv.put('routes.hostile6.0', JSON.stringify({ gen: 'g1', routes: ['ok.hostile.test'] }));
      await kv.put('routes.hostile6.1', '[1,2,3]');
      await kv.put('nodes.hostile6', record('g1', 2, 2));
      await kv.put('routes.hostile7.99', '{}'); // not a key discovery uses
      await kv.put('nodes.hostile8', record('g1', 99, 1));

      const reasons = () =>
        logged('a', 'refusing discovery value').map((l) => `${l.fields.key}: ${l.fields.reason}`);
      await waitUntil(() => reasons().length >= 7, 5_000, 'the refusals');
      const all = reasons().join('\n');
      expect(all).toContain('nodes.hostile1: value is not JSON');
      expect(all).toMatch(/nodes\.hostile2: value of \d+ bytes exceeds 262144/);
      expect(all).toContain('nodes.hostile3: url is not a wss:// URL');
      expect(all).toContain('nodes.hostile4: 20000 routes exceed the cap of 10000');
      expect(all).toContain('routes.hostile5.0: 10001 routes exceed the cap of 10000');
      expect(all).toContain('routes.hostile6.1: value is not a JSON object');
      expect(all).toContain('nodes.hostile8: chunks is not an integer in [0, 32]');
      expect(a!.nexus.discovery?.status().refused).toBeGreaterThanOrEqual(refusedBefore + 7);
      // Nothing of theirs is routed; the real routes still are, and still carry end users.
      for (const host of ['ok.hostile.test', 'h1.hostile.test'])
        expect(a!.routes.resolve(host).kind).toBe('none');
      expect(a!.nexus.discovery?.status()).toMatchObject({ state: 'connected', nodes: 2 });
      expect(await httpGet(a!.httpPort, APP)).toContain('served-by discovered');
      for await (const key of await kv.keys()) if (key.includes('hostile')) await kv.purge(key);
    } finally {
      await nc.close();
    }
  });

  it('drops the routes of a node killed without a goodbye within the TTL', async () => {
    const { a } = nodes as Record<string, TestNode>;
    const files = createTempDir('nexus-discovery-child-');
    cleanups.push(() => files.remove());
    const { certFile, keyFile } = writeCertificateFiles(files, await pki.nodeCert('d'));
    const config = {
      backendListenAddress: '127.0.0.1:0',
      backendsJWTSecret: 'node-harness-secret-that-is-long-enough-0123456789',
      hubTlsCertFile: certFile,
      hubTlsKeyFile: keyFile,
      listeners: [{ port: 0, mode: 'http', host: '127.0.0.1' }],
      peerListenAddress: '127.0.0.1:0',
      peerAuthentication: {
        trustedDomainSuffixes: [MESH_SUFFIX],
        caFile: files.write('ca.pem', pki.ca.certPem),
      },
      logLevel: 'silent',
      ...discoveryConfig(),
    };
    const script = fileURLToPath(new URL('../helpers/discovery-node-child.mjs', import.meta.url));
    const child: ChildProcess = spawn(process.execPath, [script, JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(() => child.kill('SIGKILL'));
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const ports = JSON.parse(line.toString()) as { hub: number; peer: number };
    const backend = await backendClient(
      pki,
      { hubUrl: `wss://127.0.0.1:${ports.hub}/connect`, addresses: { hub: {}, listeners: [] } as never },
      { hostnames: ['dead.nats.test'], service: service.port, relayPorts: [a!.httpPort] },
    );
    cleanups.push(() => backend.close());
    backend.connect();
    await waitUntil(() => routedToPeer(a!, 'dead.nats.test'), 10_000, 'the child node routes');
    expect(await httpGet(a!.httpPort, 'dead.nats.test')).toContain('served-by discovered');

    await backend.close();
    const killedAt = performance.now();
    child.kill('SIGKILL');
    await waitUntil(() => !routedToPeer(a!, 'dead.nats.test'), 10_000, 'the expiry');
    const tookMs = performance.now() - killedAt;
    // Its last heartbeat came at most TTL/3 before the kill; expiry is judged every TTL/10.
    expect(tookMs).toBeGreaterThanOrEqual((TTL_SECONDS * 1_000 * 2) / 3 - 200);
    expect(tookMs).toBeLessThanOrEqual(TTL_SECONDS * 1_000 * 1.1 + 1_000);
    expect(logged('a', 'discovered node gone: routes removed').at(-1)?.fields).toMatchObject({
      why: 'expired',
    });
    expect(routedToPeer(a!, APP)).toBe(true);
  });

  it('keeps the last known routes through a NATS restart during churn, then converges', async () => {
    const { a, b, c } = nodes as Record<string, TestNode>;
    await nats.stop();
    await waitUntil(() => a!.nexus.discovery?.status().state === 'degraded', 5_000, 'degraded');
    expect(a!.nexus.discovery?.status().reason).toBe('NATS connection lost');
    expect(logged('a', 'route discovery degraded: keeping the last known routes').length).toBeGreaterThan(0);

    // Churn while NATS is down: B gains a name, and a whole TTL passes without heartbeats.
    await attach(b!, ['churn.nats.test'], [a!, c!]);
    await new Promise((resolve) => setTimeout(resolve, TTL_SECONDS * 1_000 * 1.5));
    expect(routedToPeer(a!, APP)).toBe(true); // kept: nobody is judged on the outage's silence
    expect(routedToPeer(a!, 'churn.nats.test')).toBe(false);
    expect(await httpGet(a!.httpPort, APP)).toContain('served-by discovered');

    await nats.start();
    await waitUntil(
      () => [a, b, c].every((n) => n!.nexus.discovery?.status().state === 'connected'),
      15_000,
      'reconnected',
    );
    await waitUntil(
      () => routedToPeer(a!, 'churn.nats.test') && routedToPeer(c!, 'churn.nats.test'),
      10_000,
      'convergence',
    );
    expect(await httpGet(c!.httpPort, 'churn.nats.test')).toContain('served-by discovered');
    expect(routedToPeer(a!, APP)).toBe(true);
    expect(logged('a', 'route discovery connected').length).toBeGreaterThan(0);
  });
});

describe('route discovery, leaving', () => {
  it('drops a node that closes gracefully at once: it withdraws its records', async () => {
    const { a, c } = nodes as Record<string, TestNode>;
    expect(a!.nexus.discovery?.status().nodes).toBe(2);
    const closing = performance.now();
    await c!.close();
    await waitUntil(() => a!.nexus.discovery?.status().nodes === 1, 5_000, 'the withdrawal');
    // Well inside the TTL: the purge, not the expiry.
    expect(performance.now() - closing).toBeLessThan((TTL_SECONDS * 1_000) / 2);
    expect(logged('a', 'discovered node gone: routes removed').at(-1)?.fields).toMatchObject({
      why: 'withdrawn',
    });
  });
});

describe('route discovery without NATS at start', () => {
  it('starts serving while NATS is down (connecting), and publishes once it comes up', async () => {
    const late = await startNatsServer();
    await late.stop();
    try {
      lines.late = [];
      const node = await startNode({
        pki,
        name: 'late',
        config: { meshDiscovery: { nats: { servers: [late.url], bucket: BUCKET } } },
        logger: recordingLogger(lines.late, 'info'),
      });
      cleanups.push(() => node.close());
      expect(node.nexus.discovery?.status()).toMatchObject({
        state: 'connecting',
        reason: 'connecting to NATS',
      });
      await late.start();
      await waitUntil(() => node.nexus.discovery?.status().state === 'connected', 15_000, 'connected');
      await node.close();
    } finally {
      await late.remove();
    }
  });
});

describe('route discovery credentials', () => {
  it('authenticates with a token file, and reports a refused one as degraded', async () => {
    const secured = await startNatsServer({ token: 'discovery-test-token-0123456789' });
    const files = createTempDir('nexus-discovery-creds-');
    try {
      const start = async (name: string, token: string) => {
        lines[name] = [];
        const node = await startNode({
          pki,
          name,
          config: {
            meshDiscovery: {
              nats: {
                servers: [secured.url],
                bucket: BUCKET,
                credentialsFile: files.write(`${name}.token`, `${token}\n`),
              },
            },
          },
          logger: recordingLogger(lines[name], 'info'),
        });
        cleanups.push(() => node.close());
        return node;
      };
      const good = await start('t1', 'discovery-test-token-0123456789');
      await waitUntil(() => good.nexus.discovery?.status().state === 'connected', 10_000, 'connected');
      const bad = await start('t2', 'not-the-token');
      await waitUntil(() => bad.nexus.discovery?.status().state === 'degraded', 10_000, 'refused');
      expect(bad.nexus.discovery?.status().reason).toMatch(/authorization/i);
      await good.close();
      await bad.close();
    } finally {
      files.remove();
      await secured.remove();
    }
  });
});
