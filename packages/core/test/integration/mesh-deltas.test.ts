/**
 * Route deltas between Nexus nodes (docs/protocol.md §2.6) on real sockets: a mixed mesh with a
 * full-state-only node (the reference's behaviour), a hand-driven Nexus peer that skips a sequence number,
 * and announces split at the receiver's message limit.
 */
import { once } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import {
  attachMuxBackend,
  type LogLine,
  recordingLogger,
  type TestNode,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { useTestNodes } from '../helpers/test-nodes.js';

vi.setConfig({ testTimeout: 30_000 });

const nodes = useTestNodes();
const { cleanups, node } = nodes;

async function backend(at: TestNode, names: string[]) {
  const b = await attachMuxBackend(nodes.pki, at, names, 9);
  cleanups.push(() => b.close());
  return b;
}

const NIL = '00000000-0000-0000-0000-000000000000';
/** A stand-in local target for routes no tunnel will use (tests that only look at announces). */
const LOCAL_TARGET = {} as never;

/** A peer driven by the test: a real mutual-TLS WebSocket to a node's `/mesh`, every text message kept. */
async function handPeer(target: TestNode) {
  const cert = await nodes.pki.nodeCert('hand');
  const ws = new WebSocket(target.meshUrl, {
    cert: cert.certPem,
    key: cert.keyPem,
    ca: nodes.pki.ca.certPem,
  });
  ws.on('error', () => {});
  const received: Array<Record<string, unknown>> = [];
  ws.on('message', (data, isBinary) => {
    if (!isBinary) received.push(JSON.parse(String(data)) as Record<string, unknown>);
  });
  await once(ws, 'open');
  cleanups.push(() => ws.terminate());
  return {
    received,
    send: (message: Record<string, unknown>) => ws.send(JSON.stringify(message)),
    ofType: (type: string) => received.filter((m) => m.type === type),
  };
}

function peerNames(n: TestNode): string[] {
  return n.routes.peerRoutes().map((r) => r.pattern);
}

describe('route deltas between Nexus nodes', () => {
  it('speaks deltas with a Nexus node and full state with a full-state-only node, in one mesh', async () => {
    const a = await node('a');
    const full = await node('full', { peers: [a.meshUrl], mesh: { routeDeltas: false } });
    const nexus = await node('nexus', { peers: [a.meshUrl] });
    await waitUntil(() => a.mesh.links().filter((l) => l.routeSync !== 'pending').length === 2);
    await waitUntil(
      () => full.mesh.stats().in.announce.messages === 1 && nexus.mesh.stats().in.announce.messages === 1,
    );
    expect(Object.fromEntries(a.mesh.links().map((l) => [l.peer, l.routeSync]))).toEqual({
      'full.mesh.example.com': 'full',
      'nexus.mesh.example.com': 'delta',
    });
    expect(full.mesh.links()[0]!.routeSync).toBe('full');
    expect(nexus.mesh.links()[0]!.routeSync).toBe('delta');

    const names = Array.from({ length: 1_000 }, (_, i) => `host-${i}.mixed.example.com`);
    await backend(a, names);
    await waitUntil(
      () => full.routes.peerRoutes().length === 1_000 && nexus.routes.peerRoutes().length === 1_000,
    );

    // The full-state node got announces only: the first one and one for the backend's 1 000 names.
    const atFull = full.mesh.stats().in;
    expect(atFull.announce.messages).toBe(2);
    for (const type of ['route_delta', 'route_state', 'route_resync', 'other'] as const)
      expect(atFull[type].messages).toBe(0);
    // The Nexus node got the first announce and one delta, nothing else.
    const atNexus = nexus.mesh.stats().in;
    expect(atNexus.announce.messages).toBe(1);
    expect(atNexus.route_delta.messages).toBe(1);
    expect(atNexus.route_state.messages + atNexus.route_resync.messages + atNexus.other.messages).toBe(0);
    // The full-state node's own routes reach A as announces, and are routed there.
    await backend(full, ['only.full.example.com']);
    await waitUntil(() => a.routes.resolve('only.full.example.com').kind === 'peer');
    expect(a.mesh.stats().in.route_delta.messages).toBe(0);
  });

  it('sends a change as bytes that do not depend on how many routes the sender has', async () => {
    const a = await node('a');
    const b = await node('b', { peers: [a.meshUrl] });
    await waitUntil(
      () => b.mesh.links()[0]?.routeSync === 'delta' && a.mesh.links()[0]?.routeSync === 'delta',
    );
    const deltaBytes = async (name: string): Promise<number> => {
      const before = b.mesh.stats().in.route_delta;
      await backend(a, [name]);
      await waitUntil(() => b.routes.resolve(name).kind === 'peer');
      const after = b.mesh.stats().in.route_delta;
      expect(after.messages - before.messages).toBe(1);
      return after.bytes - before.bytes;
    };
    const small = await deltaBytes('one-00001.delta.example.com');
    await backend(
      a,
      Array.from({ length: 1_000 }, (_, i) => `bulk-${i}.delta.example.com`),
    );
    await waitUntil(() => b.routes.peerRoutes().length === 1_001);
    const large = await deltaBytes('one-00002.delta.example.com');
    // Equal but for the digits of the sender's counters (sequence and version).
    expect(Math.abs(large - small)).toBeLessThanOrEqual(2);
    expect(small).toBeLessThan(200);
    console.log(`one route added: ${small} bytes at the peer with 1 and with 1 001 routes at the sender`);
  });

  it('detects a gap in a peer’s sequence, asks for a resync and replaces the routes with the state it gets', async () => {
    const a = await node('a');
    const hand = await handPeer(a);
    await waitUntil(() => hand.ofType('announce').length === 1);
    const hello = hand.ofType('announce')[0]!;
    expect(hello).toMatchObject({
      type: 'announce',
      client_id: NIL,
      nexus: { deltas: 1, epoch: a.mesh.epoch, seq: expect.any(Number), max_message_bytes: 1_048_576 },
    });
    expect(Object.keys(hello)).toEqual(['version', 'type', 'client_id', 'nexus']);

    const epoch = 'ab'.repeat(16);
    hand.send({
      version: 1,
      type: 'announce',
      hostnames: ['one.hand.example.com'],
      client_id: NIL,
      nexus: { deltas: 1, epoch, seq: 5 },
    });
    await waitUntil(() => a.mesh.links()[0]?.routeSync === 'delta' && peerNames(a).length === 1);
    hand.send({ type: 'route_delta', epoch, seq: 6, added: ['two.hand.example.com'] });
    await waitUntil(() => peerNames(a).length === 2);

    // seq 8 after 6: 7 is missing. Nothing of it is applied, and A asks for the whole table.
    hand.send({ type: 'route_delta', epoch, seq: 8, added: ['three.hand.example.com'] });
    await waitUntil(() => hand.ofType('route_resync').length === 1);
    expect(hand.ofType('route_resync')[0]).toEqual({ type: 'route_resync', epoch, seq: 6 });
    hand.send({ type: 'route_delta', epoch, seq: 9, added: ['four.hand.example.com'] });
    expect(a.mesh.stats().routeSync).toMatchObject({ gaps: 1, resyncsRequested: 1 });

    // The state, in two parts, replaces everything the link had; deltas continue from its seq.
    hand.send({
      type: 'route_state',
      epoch,
      seq: 9,
      part: 0,
      hostnames: ['one.hand.example.com', 'four.hand.example.com'],
    });
    hand.send({
      type: 'route_state',
      epoch,
      seq: 9,
      part: 1,
      hostnames: ['five.hand.example.com'],
      last: true,
    });
    await waitUntil(() => peerNames(a).length === 3);
    expect(peerNames(a)).toEqual(['five.hand.example.com', 'four.hand.example.com', 'one.hand.example.com']);
    hand.send({ type: 'route_delta', epoch, seq: 10, removed: ['four.hand.example.com'] });
    await waitUntil(() => peerNames(a).length === 2);
    expect(peerNames(a)).toEqual(['five.hand.example.com', 'one.hand.example.com']);

    // A new epoch on the same link (the sender restarted its counter) is a gap too.
    hand.send({ type: 'route_delta', epoch: 'cd'.repeat(16), seq: 1, added: ['six.hand.example.com'] });
    await waitUntil(() => hand.ofType('route_resync').length === 2);
    expect(a.mesh.stats().routeSync.gaps).toBe(2);
    expect(peerNames(a)).not.toContain('six.hand.example.com');
  });

  it('answers a resync with its table, and sends its own changes as numbered deltas', async () => {
    // No coalescing window: the first backend is announced before the peer below connects.
    const a = await node('a', { mesh: { announceCoalesceMs: 0 } });
    await backend(a, ['x.a.example.com', '*.wild.example.com']);
    const hand = await handPeer(a);
    await waitUntil(() => hand.ofType('announce').length === 1);
    const caps = hand.ofType('announce')[0]!.nexus as { epoch: string; seq: number };
    hand.send({
      version: 1,
      type: 'announce',
      client_id: NIL,
      nexus: { deltas: 1, epoch: 'ef'.repeat(16), seq: 0 },
    });
    await waitUntil(() => a.mesh.links()[0]?.routeSync === 'delta');

    await backend(a, ['y.a.example.com']);
    await waitUntil(() => hand.ofType('route_delta').length === 1);
    expect(hand.ofType('route_delta')[0]).toEqual({
      type: 'route_delta',
      epoch: caps.epoch,
      seq: caps.seq + 1,
      version: expect.any(Number),
      added: expect.arrayContaining(['y.a.example.com']),
    });

    const states = hand.ofType('route_state').length;
    hand.send({ type: 'route_resync', epoch: caps.epoch, seq: caps.seq });
    await waitUntil(() => hand.ofType('route_state').length === states + 1);
    const state = hand.ofType('route_state')[states]!;
    expect(state).toMatchObject({
      epoch: caps.epoch,
      seq: hand.ofType('route_delta')[0]!.seq,
      part: 0,
      last: true,
    });
    expect(state.hostnames).toEqual(a.routes.localPatterns());
    expect(a.mesh.stats().routeSync.resyncsServed).toBe(1);
  });

  it('splits a table and a delta larger than the message limit into parts, and reassembles them', async () => {
    const limit = { maxPeerMessageBytes: 65_536 };
    const names = (tag: string) =>
      Array.from(
        { length: 1_000 },
        (_, i) =>
          `${tag}-${String(i).padStart(4, '0')}-long-enough-to-fill-a-message-of-sixty-four-kib.split.example.com`,
      );
    const a = await node('a', { mesh: limit });
    // 1 000 names of ~70 bytes: more than one message of 64 KiB (and more than one backend token holds, so
    // they go into the routing table directly, as one change).
    a.routes.addLocalMany(names('first'), LOCAL_TARGET);
    const b = await node('b', { peers: [a.meshUrl], mesh: limit });
    await waitUntil(() => b.routes.peerRoutes().length === 1_000, 10_000, 'the table at B');
    const first = b.mesh.stats().in;
    expect(first.route_state.messages).toBe(2);
    expect(first.announce.messages).toBe(1);
    expect(b.mesh.links()[0]!.routeSync).toBe('delta');

    a.routes.addLocalMany(names('second'), LOCAL_TARGET);
    await waitUntil(() => b.routes.peerRoutes().length === 2_000, 10_000, 'the delta at B');
    const after = b.mesh.stats().in;
    expect(after.route_delta.messages).toBe(2);
    expect(after.route_delta.bytes / 2).toBeLessThanOrEqual(65_536);
    expect(b.mesh.links()).toHaveLength(1); // nothing over the limit: no 1009 close
    expect(b.mesh.stats().routeSync.gaps).toBe(0);
  });

  it('sends a full-state peer the routes that fit one message, and says so in a warning and a counter', async () => {
    const limit = { maxPeerMessageBytes: 65_536 };
    const lines: LogLine[] = [];
    const a = await node('a', { mesh: limit, logger: recordingLogger(lines, 'warn') });
    a.routes.addLocalMany(
      Array.from(
        { length: 1_000 },
        (_, i) =>
          `name-${String(i).padStart(4, '0')}-long-enough-to-fill-a-message-of-sixty-four-kib.cut.example.com`,
      ),
      LOCAL_TARGET,
    );
    const full = await node('full', { peers: [a.meshUrl], mesh: { ...limit, routeDeltas: false } });
    await waitUntil(() => full.routes.peerRoutes().length > 0);
    await waitUntil(() => a.mesh.stats().routeSync.announcesTruncated === 1);
    const kept = full.routes.peerRoutes().length;
    expect(kept).toBeGreaterThan(600);
    expect(kept).toBeLessThan(1_000);
    expect(a.mesh.stats().routeSync.routesOmitted).toBe(1_000 - kept);
    expect(lines.some((l) => l.msg.startsWith('the route table does not fit one announce'))).toBe(true);
    expect(full.mesh.links()).toHaveLength(1);
  });
});
