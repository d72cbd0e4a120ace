/**
 * One link per pair of Nexus nodes (docs/mesh.md "One link per pair"): two nodes that list each other keep
 * the link dialled by the smaller identity, close the other once, and do not flap; with a full-state-only
 * node (as the reference is) both links stay.
 */
import { describe, expect, it, vi } from 'vitest';
import { attachMuxBackend, delay, type TestNode, waitUntil } from '@nexus-proxy/test-harness';
import type { PeerMeshOptions } from '../../src/mesh.js';
import { portsToBind } from '@nexus-proxy/test-harness/ports';
import { useTestNodes } from '../helpers/test-nodes.js';

vi.setConfig({ testTimeout: 30_000 });

const nodes = useTestNodes();
const { cleanups, node } = nodes;

/** Two nodes, each listing the other, started together. */
async function listingEachOther(meshA: Partial<PeerMeshOptions> = {}, meshB: Partial<PeerMeshOptions> = {}) {
  const [portA, portB] = (await portsToBind(2)) as [number, number];
  const url = (port: number) => `wss://127.0.0.1:${port}/mesh`;
  const [a, b] = await Promise.all([
    node('a', { meshPort: portA, peers: [url(portB)], mesh: meshA }),
    node('b', { meshPort: portB, peers: [url(portA)], mesh: meshB }),
  ]);
  const events = { a: { up: 0, down: 0 }, b: { up: 0, down: 0 } };
  for (const [n, e] of [
    [a, events.a],
    [b, events.b],
  ] as const) {
    n.mesh.on('peer-connected', () => e.up++);
    n.mesh.on('peer-disconnected', () => e.down++);
  }
  return { a, b, events };
}

/** `node`'s identity as both sides order it: its certificate's fingerprint, then its epoch. */
function identity(n: TestNode): string {
  const link = n.mesh.getLink(n.mesh.links()[0]!.linkId)!;
  return `${link.localFingerprint}/${n.mesh.epoch}`;
}

describe('one link per pair', () => {
  it('keeps the link dialled by the smaller identity when two Nexus nodes dial each other, without flapping', async () => {
    const { a, b, events } = await listingEachOther();
    await waitUntil(
      () => a.mesh.stats().duplicateLinksClosed + b.mesh.stats().duplicateLinksClosed === 1,
      10_000,
      'one side to give its link up',
    );
    await waitUntil(() => a.mesh.linkCount === 1 && b.mesh.linkCount === 1, 10_000, 'one link each');
    const [winner, loser] = identity(a) < identity(b) ? [a, b] : [b, a];
    expect(winner.mesh.links()[0]!.direction).toBe('outbound');
    expect(loser.mesh.links()[0]!.direction).toBe('inbound');
    expect(loser.mesh.stats().duplicateLinksClosed).toBe(1);
    expect(winner.mesh.stats().duplicateLinksClosed).toBe(0);
    // Both see the same fingerprints on the kept link.
    const kept = (n: TestNode) => n.mesh.getLink(n.mesh.links()[0]!.linkId)!;
    expect(kept(a).localFingerprint).toBe(kept(b).remoteFingerprint);
    expect(kept(b).localFingerprint).toBe(kept(a).remoteFingerprint);

    // Several reconnect delays later (the harness redials after 50–200 ms): still the same one link.
    const settled = structuredClone(events);
    await delay(1_000);
    expect(events).toEqual(settled);
    expect(a.mesh.linkCount + b.mesh.linkCount).toBe(2);

    // Routes and the one link: a backend at the loser is routed at the winner.
    const backend = await attachMuxBackend(nodes.pki, loser, ['paired.example.com'], 9);
    cleanups.push(() => backend.close());
    await waitUntil(() => winner.routes.resolve('paired.example.com').kind === 'peer');

    // The kept link dies: the side that gave its link up dials again, and the pair ends with one link.
    const down = events.a.down + events.b.down;
    loser.mesh.getLink(loser.mesh.links()[0]!.linkId)!.terminate('connection_lost');
    await waitUntil(() => events.a.down + events.b.down >= down + 2, 5_000, 'both ends to see it');
    await waitUntil(
      () =>
        a.mesh.linkCount === 1 &&
        b.mesh.linkCount === 1 &&
        a.mesh.links()[0]!.routeSync === 'delta' &&
        b.mesh.links()[0]!.routeSync === 'delta',
      10_000,
      'the pair linked again',
    );
    await waitUntil(() => winner.routes.resolve('paired.example.com').kind === 'peer');
    await delay(500);
    expect(a.mesh.linkCount + b.mesh.linkCount).toBe(2);
  });

  it('keeps both links with a full-state-only node, as the reference expects', async () => {
    const { a, b, events } = await listingEachOther({}, { routeDeltas: false });
    await waitUntil(() => a.mesh.linkCount === 2 && b.mesh.linkCount === 2, 10_000, 'two links each');
    await waitUntil(() => a.mesh.links().every((l) => l.routeSync === 'full'));
    const settled = structuredClone(events);
    await delay(1_000);
    expect(events).toEqual(settled);
    expect(a.mesh.stats().duplicateLinksClosed + b.mesh.stats().duplicateLinksClosed).toBe(0);
    expect(
      a.mesh
        .links()
        .map((l) => l.direction)
        .sort(),
    ).toEqual(['inbound', 'outbound']);
  });
});
