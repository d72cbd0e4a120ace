/**
 * DATA frames taken out of the TLS reads as views (docs/benchmarks.md, "Binary messages as views"), on
 * real sockets: a hub session (the node, WebSocket server: frames unmasked in place), the backend client
 * (WebSocket client) and a peer link (both ends) hand their engines each large DATA frame as the views of
 * the TLS reads it came in, never joined, and every byte arrives intact both ways.
 */
import { MAX_DATA_PAYLOAD, MuxSession, TunnelSession } from '@nexus-proxy/mux-protocol';
import {
  attachMuxBackend,
  exchangeThrough,
  MiB,
  startExchangeService,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { useTestNodes } from '../helpers/test-nodes.js';

vi.setConfig({ testTimeout: 60_000 });

const nodes = useTestNodes();
const { cleanups, node } = nodes;

/** What the engines of one kind were fed: messages as parts (their largest part count) and whole. */
interface Fed {
  parts: number;
  maxParts: number;
  /** Bytes that came as parts. */
  partsBytes: number;
  whole: number;
}

/** Counts, per engine kind and role, how binary messages reach `receive` (as parts or whole). */
function watchReceive(): Record<string, Fed> {
  const fed: Record<string, Fed> = {};
  const patch = (
    proto: { receive: (m: Uint8Array | readonly Uint8Array[], l?: number) => void },
    kind: (self: unknown) => string,
  ) => {
    const original = proto.receive;
    proto.receive = function (this: unknown, message, length) {
      const key = kind(this);
      fed[key] ??= { parts: 0, maxParts: 0, partsBytes: 0, whole: 0 };
      const f = fed[key];
      if (message instanceof Uint8Array) f.whole++;
      else {
        f.parts++;
        f.maxParts = Math.max(f.maxParts, message.length);
        f.partsBytes += length ?? 0;
      }
      return original.call(this, message, length);
    };
    cleanups.push(() => {
      proto.receive = original;
    });
  };
  patch(MuxSession.prototype, (self) => (self as MuxSession).stats().role);
  patch(TunnelSession.prototype, () => 'tunnel');
  return fed;
}

describe('DATA out of the TLS reads as views', () => {
  let fed: Record<string, Fed>;
  beforeEach(() => {
    fed = watchReceive();
  });
  afterEach(() => {
    fed = {};
  });

  it('a hub session and the backend client: 128 KiB frames as views both ways, every byte intact', async () => {
    const n = await node('hub');
    const transfer = 8 * MiB;
    const prelude = Buffer.from('PUT /both HTTP/1.1\r\nHost: app.test\r\n\r\n');
    const svc = await startExchangeService(transfer, prelude.length);
    cleanups.push(() => svc.close());
    await n.attachBackend({ hostnames: ['app.test'], service: svc.port });
    const user = await exchangeThrough(n.httpPort, prelude, transfer);
    expect(await svc.receivedDigest).toBe(user.sent);
    expect(user.received).toBe(svc.sentDigest());
    for (const role of ['hub', 'backend']) {
      const f = fed[role]!;
      // Nearly all of the bytes came as parts; a frame larger than 32 KiB spans several 16 KiB reads.
      expect(f.partsBytes, `${role}: bytes fed as parts`).toBeGreaterThan(transfer * 0.95);
      expect(f.maxParts, `${role}: parts of the largest frame`).toBeGreaterThan(MAX_DATA_PAYLOAD / 16_384);
    }
  });

  it('a peer link: 128 KiB tunnel frames as views at both nodes, every byte intact', async () => {
    const a = await node('a');
    const c = await node('c', { peers: [a.meshUrl] });
    const transfer = 8 * MiB;
    const prelude = Buffer.from('PUT /up HTTP/1.1\r\nHost: big.test\r\n\r\n');
    const svc = await startExchangeService(transfer, prelude.length);
    cleanups.push(() => svc.close());
    const backend = await attachMuxBackend(nodes.pki, c, ['big.test'], svc.port);
    cleanups.push(() => backend.close());
    await waitUntil(() => a.routes.lookup('big.test')?.kind === 'peer', 5_000, 'the route at a');
    const user = await exchangeThrough(a.httpPort, prelude, transfer);
    expect(await svc.receivedDigest).toBe(user.sent);
    expect(user.received).toBe(svc.sentDigest());
    const f = fed.tunnel!;
    // Both directions crossed the link: each node's tunnels were fed the other's frames as parts.
    expect(f.partsBytes).toBeGreaterThan(2 * transfer * 0.95);
    expect(f.maxParts).toBeGreaterThan(MAX_DATA_PAYLOAD / 16_384);
  });
});
