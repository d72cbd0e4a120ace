/**
 * The bandwidth cap on real sockets (docs/edge.md "Bandwidth fair share"): end users over real TLS to
 * services behind backend clients over the hub's WebSocket, through one node and through the mesh. The
 * bounds are generous (the machine is shared); the benchmark's `fairness` scenario measures precisely.
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createTestPki,
  delay,
  startNode,
  startService,
  type TestPki,
  type TestService,
  TEST_SECRET,
  tlsEndUser,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { connectCurrentEraBackend } from '../helpers/current-era-backend.js';

vi.setConfig({ testTimeout: 60_000 });

const CAP_MBPS = 40;
const CAP_BYTES_PER_SECOND = (CAP_MBPS * 1_000_000) / 8;
const HOSTS = ['greedy.bw.test', 'normal-1.bw.test', 'normal-2.bw.test'];

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A TLS service that sends to each end user without end, as fast as it is read. */
async function endlessService(): Promise<TestService> {
  const block = Buffer.alloc(64 * 1024, 0x5a);
  const svc = await startService(
    (socket: Socket) => {
      const write = (): void => {
        while (!socket.destroyed && socket.write(block));
      };
      socket.on('drain', write);
      socket.resume();
      write();
    },
    { tls: await pki.issue(HOSTS) },
  );
  cleanups.push(() => svc.close());
  return svc;
}

async function node(config: Record<string, unknown>, extra: { name?: string; peers?: string[] } = {}) {
  const n = await startNode({ pki, listeners: ['tls'], config, ...extra });
  cleanups.push(() => n.close());
  return n;
}

/** End users downloading from `host`: their byte count, summed. */
async function downloads(port: number, host: string, count: number): Promise<{ bytes: () => number }> {
  let bytes = 0;
  const sockets: TLSSocket[] = [];
  for (let i = 0; i < count; i++) {
    const s = await tlsEndUser(port, host, pki.ca.certPem);
    s.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    s.on('error', () => {});
    sockets.push(s);
  }
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
  });
  return { bytes: () => bytes };
}

/** Bytes each counter moved over `ms`. */
async function window(counters: Array<{ bytes: () => number }>, ms: number): Promise<number[]> {
  const before = counters.map((c) => c.bytes());
  await delay(ms);
  return counters.map((c, i) => c.bytes() - before[i]!);
}

function jain(xs: number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  return (sum * sum) / (xs.length * xs.reduce((a, b) => a + b * b, 0));
}

describe('totalBandwidthMbps through one node', () => {
  it('three backends, one greedy with four streams: the aggregate stays near the cap, the shares are fair', async () => {
    const n = await node({ totalBandwidthMbps: CAP_MBPS });
    const svc = await endlessService();
    for (const host of HOSTS) await n.attachBackend({ hostnames: [host], service: svc.port });
    const greedy = await downloads(n.tlsPort, HOSTS[0]!, 4);
    const normal1 = await downloads(n.tlsPort, HOSTS[1]!, 1);
    const normal2 = await downloads(n.tlsPort, HOSTS[2]!, 1);
    await delay(1_000);
    const sent = await window([greedy, normal1, normal2], 4_000);
    const rate = sent.reduce((a, b) => a + b, 0) / 4;
    console.log(
      `bandwidth cap ${CAP_MBPS} Mbit/s: aggregate ${(rate / CAP_BYTES_PER_SECOND).toFixed(3)} × cap, shares ${sent
        .map((b) => (b / 4 / 1e6).toFixed(2))
        .join(' / ')} MB/s, Jain ${jain(sent).toFixed(3)}`,
    );
    // Never far above the cap (the burst allowance is tens of ms); below only if the machine is starved.
    expect(rate).toBeLessThan(CAP_BYTES_PER_SECOND * 1.1);
    expect(rate).toBeGreaterThan(CAP_BYTES_PER_SECOND * 0.6);
    expect(jain(sent)).toBeGreaterThan(0.9);

    // The scheduler's view: one account per backend session, shown as its hostnames, all throttled.
    const stats = n.nexus.bandwidth.stats();
    expect(stats.totalBandwidthMbps).toBe(CAP_MBPS);
    const groups = stats.accounts.map((a) => a.group.split(',')[0]).sort();
    expect(groups).toEqual([...HOSTS].sort());
    for (const a of stats.accounts) {
      expect(a.throttledMs).toBeGreaterThan(0);
      expect(a.bytesSent).toBeGreaterThan(0);
    }
    expect(stats.accounts.find((a) => a.group.startsWith(HOSTS[0]!))?.users).toBe(4);
  });

  it('uploads toward a backend are capped too, and share the cap with another backend’s downloads', async () => {
    const n = await node({ totalBandwidthMbps: CAP_MBPS });
    let received = 0;
    const sink = await startService(
      (socket: Socket) => {
        socket.on('data', (chunk: Buffer) => {
          received += chunk.length;
        });
      },
      { tls: await pki.issue(HOSTS) },
    );
    cleanups.push(() => sink.close());
    const svc = await endlessService();
    await n.attachBackend({ hostnames: [HOSTS[1]!], service: sink.port });
    await n.attachBackend({ hostnames: [HOSTS[2]!], service: svc.port });
    const uploader = await tlsEndUser(n.tlsPort, HOSTS[1]!, pki.ca.certPem);
    uploader.on('error', () => {});
    cleanups.push(() => {
      uploader.destroy();
    });
    const block = Buffer.alloc(64 * 1024, 0x33);
    const push = (): void => {
      while (!uploader.destroyed && uploader.write(block));
    };
    uploader.on('drain', push);
    push();
    const download = await downloads(n.tlsPort, HOSTS[2]!, 1);
    await delay(1_000);
    const [up, down] = await window([{ bytes: () => received }, download], 3_000);
    expect((up! + down!) / 3).toBeLessThan(CAP_BYTES_PER_SECOND * 1.1);
    expect((up! + down!) / 3).toBeGreaterThan(CAP_BYTES_PER_SECOND * 0.6);
    expect(jain([up!, down!])).toBeGreaterThan(0.9);
  });

  it('an unlimited node meters nothing; a reload sets the cap on open connections, changes it, and lifts it again', async () => {
    const n = await node({});
    const svc = await endlessService();
    await n.attachBackend({ hostnames: [HOSTS[0]!], service: svc.port });
    const user = await downloads(n.tlsPort, HOSTS[0]!, 1);
    await delay(300);
    expect(n.nexus.bandwidth.enabled).toBe(false);
    expect(n.nexus.bandwidth.stats().accounts).toEqual([]);
    const config = n.nexus.config;
    const withCap = (totalBandwidthMbps: number) => Object.freeze({ ...config, totalBandwidthMbps });

    const capped = await n.nexus.reload(withCap(8));
    expect(capped.applied).toContain('totalBandwidthMbps');
    await delay(500);
    const [slow] = await window([user], 2_000);
    expect(slow! / 2).toBeLessThan(1_000_000 * 1.15);
    expect(n.nexus.bandwidth.stats().accounts).toHaveLength(1);

    // A new value applies at once to the same relay (still one account, held once).
    await n.nexus.reload(withCap(16));
    await delay(300);
    const [faster] = await window([user], 2_000);
    expect(faster! / 2).toBeGreaterThan(1_000_000 * 1.3);
    expect(faster! / 2).toBeLessThan(2_000_000 * 1.15);
    expect(n.nexus.bandwidth.stats().accounts.map((a) => a.users)).toEqual([1]);

    await n.nexus.reload(withCap(0));
    await waitUntil(() => n.nexus.bandwidth.stats().accounts.length === 0, 2_000, 'accounts released');
    const [fast] = await window([user], 1_000);
    expect(fast!).toBeGreaterThan(3 * 1_000_000);
  });
});

describe('totalBandwidthMbps and outbound connections', () => {
  it('charges an outbound connection to the backend that asked for it', async () => {
    const n = await node({
      totalBandwidthMbps: 8,
      allowOutbound: true,
      allowedOutboundNetworks: ['127.0.0.0/8'],
    });
    const block = Buffer.alloc(64 * 1024, 0x44);
    const target = createServer((socket) => {
      socket.on('error', () => {});
      const write = (): void => {
        while (!socket.destroyed && socket.write(block));
      };
      socket.on('drain', write);
      write();
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    cleanups.push(() => new Promise<void>((resolve) => target.close(() => resolve())));
    const registered = once(n.nexus, 'backend-connected');
    const b = await connectCurrentEraBackend({
      hubPort: n.hubPort,
      ca: pki.ca.certPem,
      secret: TEST_SECRET,
      claims: { hostnames: ['device.bw.test'], outbound_allowed: true },
    });
    cleanups.push(() => b.close());
    await registered;
    const stream = await b.mux.openOutbound(`127.0.0.1:${(target.address() as { port: number }).port}`, {
      timeoutMs: 10_000,
    });
    let bytes = 0;
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    stream.on('error', () => {});
    cleanups.push(() => {
      stream.destroy();
    });
    await delay(500);
    const [sent] = await window([{ bytes: () => bytes }], 2_000);
    // 8 Mbit/s = 1 MB/s.
    expect(sent! / 2).toBeLessThan(1_000_000 * 1.1);
    expect(sent! / 2).toBeGreaterThan(1_000_000 * 0.6);
    const session = n.nexus.hub.sessions[0]!;
    expect(n.nexus.bandwidth.stats().accounts).toEqual([
      expect.objectContaining({
        id: session.id,
        group: 'device.bw.test',
        users: 1,
        throttled: expect.any(Boolean),
      }),
    ]);
  });
});

describe('totalBandwidthMbps through the mesh', () => {
  it('charges a tunnel once, at the node the end user reached, to its route', async () => {
    const a = await node({ totalBandwidthMbps: CAP_MBPS }, { name: 'a' });
    const c = await node({ totalBandwidthMbps: CAP_MBPS }, { name: 'c', peers: [a.meshUrl] });
    const svc = await endlessService();
    // The tunnel names A's relay port (conn_port): the backend maps it too.
    await c.attachBackend({ hostnames: [HOSTS[0]!], service: svc.port, relayPorts: [a.tlsPort, c.tlsPort] });
    await waitUntil(() => a.routes.lookup(HOSTS[0]!)?.kind === 'peer', 10_000, 'route at A');
    const user = await downloads(a.tlsPort, HOSTS[0]!, 2);
    await delay(1_000);
    const [sent] = await window([user], 3_000);
    expect(sent! / 3).toBeLessThan(CAP_BYTES_PER_SECOND * 1.1);
    expect(sent! / 3).toBeGreaterThan(CAP_BYTES_PER_SECOND * 0.6);
    const origin = a.nexus.bandwidth.stats();
    expect(origin.accounts.map((x) => ({ id: x.id, users: x.users }))).toEqual([
      { id: `tunnel:${HOSTS[0]}`, users: 2 },
    ]);
    // The destination relays the tunnel to its backend without charging it again.
    const destination = c.nexus.bandwidth.stats();
    expect(destination.accounts).toEqual([]);
    expect(destination.bytesSent).toBe(0);
  });
});
