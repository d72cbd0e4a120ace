import { once } from 'node:events';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { attachMuxBackend, waitUntil } from '@nexus-proxy/test-harness';
import { createSelfSignedCertificate } from '../../src/certificates.js';
import { HubTlsContext } from '../../src/hub-tls.js';
import { PeerMesh } from '../../src/mesh.js';
import { RoutingTable } from '../../src/routing-table.js';
import { useTestNodes } from '../helpers/test-nodes.js';

vi.setConfig({ testTimeout: 30_000 });

const nodes = useTestNodes();
const { cleanups, node } = nodes;

describe('mesh at scale', () => {
  it.each([
    ['route deltas between Nexus nodes', 'route_delta', {}],
    ['full-state announces (a full-state-only peer)', 'announce', { routeDeltas: false }],
  ] as const)(
    'announces a backend with 1 000 names once per link, with %s, and the peer routes all of them',
    async (_mode, type, mesh) => {
      const a = await node('a', { mesh });
      const b = await node('b', { peers: [a.meshUrl], mesh });
      await waitUntil(() => a.mesh.linkCount === 1 && b.mesh.linkCount === 1);
      // The link's own first announce has arrived before the backend attaches.
      await waitUntil(() => b.mesh.stats().in.announce.messages === 1);
      const before = b.mesh.stats().in;

      const names = Array.from({ length: 1_000 }, (_, i) => `host-${i}.scale.example.com`);
      const backend = await attachMuxBackend(nodes.pki, a, names, 9);
      cleanups.push(() => backend.close());
      await waitUntil(() => b.routes.peerRoutes().length === 1_000);
      // Past the coalescing window: nothing else arrives.
      await new Promise((r) => setTimeout(r, 200));

      const after = b.mesh.stats();
      // Counted as /metrics counts them: nexus_peer_messages_total{direction="in",type}.
      const messages = (s: typeof before) =>
        Object.values(s).reduce((sum, counts) => sum + counts.messages, 0);
      expect(messages(after.in) - messages(before)).toBe(1);
      expect(after.in[type].messages - before[type].messages).toBe(1);
      const bytes = after.in[type].bytes - before[type].bytes;
      // One message of 1 000 names (~30 B each), not 1 000 growing ones (~15 MB).
      expect(bytes).toBeGreaterThan(1_000 * 25);
      expect(bytes).toBeLessThan(1_000 * 60);
      expect(a.mesh.stats().out[type].messages).toBe(type === 'announce' ? 2 : 1);
      for (const name of names) expect(b.routes.resolve(name).kind).toBe('peer');
      expect(after.routesPerLink).toEqual([expect.objectContaining({ routes: 1_000 })]);
      expect(after.announcesApplied).toBe(2);
      expect(after.announceApplyMs).toBeGreaterThan(0);
      console.log(`${type} at the peer for 1 000 names: 1 message, ${bytes} bytes`);
    },
  );

  it('builds one TLS context for all dials, and a new one only when the trust changes', async () => {
    const a = await node('a');
    const c = await node('c');
    const d = await node('d');
    const b = await node('b', { peers: [a.meshUrl, c.meshUrl] });
    await waitUntil(() => b.mesh.linkCount === 2);
    expect(b.mesh.stats().dialContextsCreated).toBe(1);
    b.mesh.setTrust({ trustedDomainSuffixes: ['.mesh.example.com'], ca: nodes.pki.ca.certPem });
    b.mesh.setPeers([a.meshUrl, c.meshUrl, d.meshUrl]);
    await waitUntil(() => b.mesh.linkCount === 3);
    expect(b.mesh.stats().dialContextsCreated).toBe(2);
  });

  it('never has more initial dials in flight than the bound', async () => {
    // A TCP server that accepts and never answers: every dial holds its slot until the time-out.
    let total = 0;
    const sockets = new Set<Socket>();
    const server = createNetServer((s) => {
      sockets.add(s);
      total++;
      s.on('error', () => {});
      s.once('close', () => {
        sockets.delete(s);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          server.close(() => r());
          for (const s of sockets) s.destroy();
        }),
    );
    const url = `wss://127.0.0.1:${(server.address() as AddressInfo).port}/mesh`;
    const tls = new HubTlsContext(await createSelfSignedCertificate({ dnsNames: ['a.mesh.example.com'] }));
    const mesh = new PeerMesh({
      routes: new RoutingTable<string>(),
      tls,
      trustedDomainSuffixes: ['.mesh.example.com'],
      systemCa: false,
      peers: Array.from({ length: 12 }, () => url),
      maxConcurrentDials: 3,
      initialDialJitterMs: 50,
      connectTimeoutMs: 1_000,
      reconnect: { initialDelayMs: 60_000 },
    });
    cleanups.push(() => mesh.close());
    mesh.start();
    // Time-outs are 1 s: until the first one, only the first three dials may have reached the server.
    await waitUntil(() => total >= 3);
    await new Promise((r) => setTimeout(r, 300));
    expect(total).toBe(3);
    expect(mesh.stats().dialsInFlight).toBe(3);
    await waitUntil(() => total >= 12, 10_000);
    // Twelve dials started, three at a time: the first nine have timed out, each counted once.
    await waitUntil(() => mesh.stats().dialTimeouts >= 9);
    expect(mesh.stats().dialTimeouts).toBeLessThanOrEqual(12);
    expect(mesh.stats().dialFailures).toBe(mesh.stats().dialTimeouts);
    expect(mesh.stats().dialsInFlightPeak).toBe(3);
    expect(mesh.stats().dialContextsCreated).toBe(1);
  });
});
