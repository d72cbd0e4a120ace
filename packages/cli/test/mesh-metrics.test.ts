import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  attachMuxBackend,
  createTestPki,
  startNode,
  type TestNode,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { createNexusMetrics } from '../src/metrics.js';
import { sample } from './_metrics.js';

vi.setConfig({ testTimeout: 30_000 });

const nodes: TestNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0).reverse()) await n.close();
});

describe('mesh metrics', () => {
  it('exposes peer messages and bytes by type, announce apply time, routes per peer, dial contexts and certificate checks', async () => {
    const pki = await createTestPki();
    const a = await startNode({ pki, name: 'a' });
    nodes.push(a);
    const b = await startNode({ pki, name: 'b', peers: [a.meshUrl] });
    nodes.push(b);
    const metrics = createNexusMetrics(b.nexus, { defaultMetrics: false });
    await waitUntil(() => b.mesh.linkCount === 1);
    const backend = await attachMuxBackend(pki, a, ['one.scale.test', 'two.scale.test'], 9);
    await waitUntil(() => b.routes.peerRoutes().length === 2);
    const text = await metrics.metrics();
    // The link's first announce, then the backend's names as one route delta (both ends are Nexus).
    expect(sample(text, 'nexus_peer_messages_total{direction="in",type="announce"}')).toBe(1);
    expect(sample(text, 'nexus_peer_messages_total{direction="in",type="route_delta"}')).toBe(1);
    expect(sample(text, 'nexus_peer_messages_total{direction="out",type="announce"}')).toBe(1);
    expect(sample(text, 'nexus_peer_bytes_total{direction="in",type="route_delta"}')).toBeGreaterThan(40);
    expect(sample(text, 'nexus_peer_route_sync_total{event="delta_applied"}')).toBe(1);
    expect(sample(text, 'nexus_peer_route_sync_total{event="gap"}')).toBe(0);
    expect(sample(text, 'nexus_peer_announces_truncated_total')).toBe(0);
    expect(sample(text, 'nexus_peer_duplicate_links_closed_total')).toBe(0);
    expect(sample(text, 'nexus_peer_announces_applied_total')).toBe(2);
    expect(sample(text, 'nexus_peer_announce_apply_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, `nexus_peer_link_routes{peer="${a.meshUrl}"}`)).toBe(2);
    expect(sample(text, 'nexus_peer_dial_contexts_total')).toBe(1);
    expect(sample(text, 'nexus_peer_dial_failures_total{reason="timeout"}')).toBe(0);
    expect(sample(text, 'nexus_peer_dial_failures_total{reason="other"}')).toBe(0);
    // B dialled A: A's listener checked B's certificate, a leaf issued by the test CA (no PKI.js).
    expect(sample(text, 'nexus_peer_certificate_checks_total{path="direct"}')).toBe(0);
    const atA = createNexusMetrics(a.nexus, { defaultMetrics: false });
    const textA = await atA.metrics();
    expect(sample(textA, 'nexus_peer_certificate_checks_total{path="direct"}')).toBe(1);
    expect(sample(textA, 'nexus_peer_certificate_checks_total{path="full"}')).toBe(0);
    atA.close();
    metrics.close();
    await backend.close();
  });
});
