/**
 * Larger TUNNEL_DATA frames between Nexus nodes (docs/protocol.md §2.6, §1.11) on real mutual-TLS links:
 * two Nexus nodes say in their first announces that they accept 128 KiB and carry larger frames both ways;
 * a peer whose announce says nothing (the reference) gets payloads of at most 32 768 bytes and 64 credits;
 * a frame over what a node said it accepts closes its tunnel.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import {
  DATA_HEADER_LENGTH,
  FrameType,
  MAX_DATA_PAYLOAD,
  NEXUS_DATA_PAYLOAD,
  streamIdFromBytes,
  streamIdToBytes,
} from '@nexus-proxy/mux-protocol';
import {
  attachMuxBackend,
  MiB,
  pump,
  RandomSource,
  startDelayLine,
  startExchangeService,
  exchangeThrough,
  type TestNode,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { InvalidConfigError } from '../../src/errors.js';
import { resolveMeshSettings } from '../../src/mesh-options.js';
import { useTestNodes } from '../helpers/test-nodes.js';

vi.setConfig({ testTimeout: 60_000 });

const nodes = useTestNodes();
const { cleanups, node } = nodes;

const NIL = '00000000-0000-0000-0000-000000000000';
const head = (host: string) => Buffer.from(`PUT /up HTTP/1.1\r\nHost: ${host}\r\n\r\n`);

/** A 0x15 grant of `credits` for tunnel `id` (docs/protocol.md §2.3). */
function grant(id: string, credits: number): Buffer {
  const frame = Buffer.alloc(DATA_HEADER_LENGTH + 8);
  frame[0] = FrameType.TunnelCredits;
  frame.set(streamIdToBytes(id), 1);
  frame.writeBigUInt64BE(BigInt(credits), DATA_HEADER_LENGTH);
  return frame;
}

/** A TUNNEL_DATA frame of `length` payload bytes, whatever the limit. */
function tunnelData(id: string, length: number): Buffer {
  const frame = Buffer.alloc(DATA_HEADER_LENGTH + length, 1);
  frame[0] = FrameType.TunnelData;
  frame.set(streamIdToBytes(id), 1);
  return frame;
}

/**
 * A peer driven by the test on a real mutual-TLS WebSocket to `target`'s `/mesh`: its first announce
 * serves `hand.test` and carries `nexus` when given; it grants 64 credits on every tunnel request and one
 * per TUNNEL_DATA received, and records the payload sizes, the node's grants and its closes.
 */
async function handPeer(target: TestNode, nexus?: Record<string, unknown>) {
  const cert = await nodes.pki.nodeCert('hand');
  const ws = new WebSocket(target.meshUrl, {
    cert: cert.certPem,
    key: cert.keyPem,
    ca: nodes.pki.ca.certPem,
  });
  ws.on('error', () => {});
  cleanups.push(() => ws.terminate());
  const payloads: number[] = [];
  const grants: number[] = [];
  const closes: string[] = [];
  const tunnels: string[] = [];
  ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) {
      const m = JSON.parse(String(data)) as Record<string, unknown>;
      if (m.type === 'tunnel_request') {
        tunnels.push(m.client_id as string);
        ws.send(grant(m.client_id as string, 64));
      }
      return;
    }
    const id = streamIdFromBytes(data, 1);
    if (data[0] === FrameType.TunnelData) {
      payloads.push(data.length - DATA_HEADER_LENGTH);
      ws.send(grant(id, 1));
    } else if (data[0] === FrameType.TunnelCredits) {
      grants.push(Number(data.readBigUInt64BE(DATA_HEADER_LENGTH)));
    } else if (data[0] === FrameType.TunnelClose) {
      closes.push(id);
    }
  });
  await once(ws, 'open');
  ws.send(
    JSON.stringify({
      version: 1,
      type: 'announce',
      hostnames: ['hand.test'],
      client_id: NIL,
      ...(nexus !== undefined ? { nexus } : {}),
    }),
  );
  await waitUntil(() => target.routes.lookup('hand.test')?.kind === 'peer', 5_000, 'the route');
  return { ws, payloads, grants, closes, tunnels };
}

/** An end user at `at` for `host` sending `bytes` after the HTTP head; stays open. */
async function endUser(at: TestNode, host: string, bytes: number) {
  const socket = netConnect({ host: '127.0.0.1', port: at.httpPort });
  socket.on('error', () => {});
  cleanups.push(() => {
    socket.destroy();
  });
  await once(socket, 'connect');
  await pump(new RandomSource(bytes, { prefix: head(host) }), socket);
  return socket;
}

describe('the mesh option tunnelMaxDataPayload', () => {
  it('accepts 128 KiB by default, takes 32 768 … 1 MiB, and names itself in the error otherwise', () => {
    const settings = (tunnelMaxDataPayload?: number) =>
      resolveMeshSettings({
        ...(tunnelMaxDataPayload !== undefined ? { tunnelMaxDataPayload } : {}),
      } as never);
    expect(settings().tunnelMaxDataPayload).toBe(NEXUS_DATA_PAYLOAD);
    expect(settings(MAX_DATA_PAYLOAD).tunnelMaxDataPayload).toBe(MAX_DATA_PAYLOAD);
    for (const bad of [MAX_DATA_PAYLOAD - 1, 2 * MiB, 40_000.5]) {
      expect(() => settings(bad)).toThrow(InvalidConfigError);
      try {
        settings(bad);
      } catch (err) {
        expect((err as InvalidConfigError).path).toBe('tunnelMaxDataPayload');
      }
    }
  });
});

describe('larger tunnel frames between Nexus nodes', () => {
  /**
   * Node c, peered with node a (through a delay line of `delayMs` each way when given), serves `host` with
   * an exchange service behind the mux engine alone; an end user's exchange of `transfer` bytes each way
   * through a, checked byte for byte.
   */
  async function exchangeOverLink(host: string, transfer: number, delayMs?: number) {
    const a = await node('a');
    let meshUrl = a.meshUrl;
    if (delayMs !== undefined) {
      const line = await startDelayLine(Number(new URL(meshUrl).port), delayMs);
      cleanups.push(() => line.close());
      meshUrl = meshUrl.replace(/:\d+\//, `:${line.port}/`);
    }
    const c = await node('c', { peers: [meshUrl] });
    const prelude = head(host);
    const svc = await startExchangeService(transfer, prelude.length);
    cleanups.push(() => svc.close());
    // The mux engine alone behind c: it carries every stream to the service, whatever the origin's port.
    const backend = await attachMuxBackend(nodes.pki, c, [host], svc.port);
    cleanups.push(() => backend.close());
    await waitUntil(() => a.routes.lookup(host)?.kind === 'peer', 10_000, 'the route at a');

    const user = await exchangeThrough(a.httpPort, prelude, transfer);
    expect(await svc.receivedDigest).toBe(user.sent);
    expect(user.received).toBe(svc.sentDigest());
    return { a, c };
  }

  it('two Nexus nodes that accept 128 KiB carry frames larger than 32 768 bytes both ways, every byte intact', async () => {
    const { a } = await exchangeOverLink('big.test', 16 * MiB);
    const link = a.mesh.links()[0]!.tunnels;
    expect(link.bytesSent / link.framesSent).toBeGreaterThan(MAX_DATA_PAYLOAD);
    expect(link.bytesReceived / link.framesReceived).toBeGreaterThan(MAX_DATA_PAYLOAD);
  });

  it('over a link with a 50 ms round trip (a delay line), both nodes grow their tunnels’ windows, every byte intact', async () => {
    const { a, c } = await exchangeOverLink('far.test', 32 * MiB, 25);
    // a received the download over the link, c the upload: each grew the tunnel's window, within 16 MiB.
    for (const n of [a, c]) {
      const peak = n.mesh.links()[0]!.tunnels.windowGrowthPeak;
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThanOrEqual(14 * MiB);
    }
  });

  it('a peer that says nothing (the reference) gets payloads of at most 32 768 bytes and 64 credits; a larger frame closes its tunnel', async () => {
    const a = await node('a');
    const peer = await handPeer(a);
    await endUser(a, 'hand.test', 4 * MiB);
    await waitUntil(() => peer.payloads.reduce((s, n) => s + n, 0) >= 4 * MiB, 10_000, 'the upload');
    expect(Math.max(...peer.payloads)).toBe(MAX_DATA_PAYLOAD);
    expect(peer.grants[0]).toBe(64);
    const id = peer.tunnels[0]!;
    peer.ws.send(tunnelData(id, MAX_DATA_PAYLOAD));
    expect(peer.closes).toEqual([]);
    peer.ws.send(tunnelData(id, MAX_DATA_PAYLOAD + 1));
    await waitUntil(() => peer.closes.includes(id), 5_000, 'the tunnel close');
    expect(a.mesh.linkCount).toBe(1);
  });

  it('a node that accepts 32 768 (tunnelMaxDataPayload) still sends up to 128 KiB to a peer that accepts it, and grants 64', async () => {
    const a = await node('a', { mesh: { tunnelMaxDataPayload: MAX_DATA_PAYLOAD } });
    const peer = await handPeer(a, { deltas: 0, epoch: '', seq: 0, max_data_payload: NEXUS_DATA_PAYLOAD });
    await endUser(a, 'hand.test', 2 * MiB);
    await waitUntil(() => peer.payloads.reduce((s, n) => s + n, 0) >= 2 * MiB, 10_000, 'the upload');
    expect(Math.max(...peer.payloads)).toBeGreaterThan(MAX_DATA_PAYLOAD);
    expect(Math.max(...peer.payloads)).toBeLessThanOrEqual(NEXUS_DATA_PAYLOAD);
    expect(peer.grants[0]).toBe(64);
    // What it accepts is 32 768: one byte more closes the tunnel.
    const id = peer.tunnels[0]!;
    peer.ws.send(tunnelData(id, MAX_DATA_PAYLOAD + 1));
    await waitUntil(() => peer.closes.includes(id), 5_000, 'the tunnel close');
  });

  it('a node accepts no more than its peer message limit takes (maxPeerMessageBytes − 17)', async () => {
    const a = await node('a', { mesh: { tunnelMaxDataPayload: 1024 * 1024, maxPeerMessageBytes: 100_000 } });
    const peer = await handPeer(a, { deltas: 0, epoch: '', seq: 0, max_data_payload: NEXUS_DATA_PAYLOAD });
    await endUser(a, 'hand.test', 1 * MiB);
    await waitUntil(() => peer.tunnels.length === 1, 10_000, 'the tunnel');
    // A frame at that limit is taken; one byte more is over the link's message limit: the link closes
    // with 1009, as for any peer message over it (docs/protocol.md §2.2).
    const id = peer.tunnels[0]!;
    const closed = once(peer.ws, 'close');
    peer.ws.send(tunnelData(id, 100_000 - DATA_HEADER_LENGTH));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(peer.closes).toEqual([]);
    expect(a.mesh.linkCount).toBe(1);
    peer.ws.send(tunnelData(id, 100_000 - DATA_HEADER_LENGTH + 1));
    const [code] = (await closed) as [number];
    expect(code).toBe(1009);
  });

  it('a peer that accepts 128 KiB gets frames of up to 128 KiB and 16 credits (2 MiB); one byte more closes its tunnel', async () => {
    const a = await node('a');
    const peer = await handPeer(a, { deltas: 0, epoch: '', seq: 0, max_data_payload: NEXUS_DATA_PAYLOAD });
    await endUser(a, 'hand.test', 4 * MiB);
    await waitUntil(() => peer.payloads.reduce((s, n) => s + n, 0) >= 4 * MiB, 10_000, 'the upload');
    expect(Math.max(...peer.payloads)).toBeGreaterThan(MAX_DATA_PAYLOAD);
    expect(Math.max(...peer.payloads)).toBeLessThanOrEqual(NEXUS_DATA_PAYLOAD);
    expect(peer.grants[0]).toBe(16);
    const id = peer.tunnels[0]!;
    peer.ws.send(tunnelData(id, NEXUS_DATA_PAYLOAD + 1));
    await waitUntil(() => peer.closes.includes(id), 5_000, 'the tunnel close');
    expect(a.mesh.linkCount).toBe(1);
  });
});
