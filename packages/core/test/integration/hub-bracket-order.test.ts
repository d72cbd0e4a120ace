/**
 * The hub's real send path (its WebSocket transport, DATA written as header and payload parts straight to
 * the socket, everything else through `ws.send`) keeps a stream's `connect` before its first DATA and its
 * `disconnect` after its last, while the backend does not read and both kinds of message wait in the
 * socket (docs/protocol.md §1.4). A raw WebSocket backend records the order of what it receives.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  createTestPki,
  type RawBackend,
  rawBackend,
  startNode,
  type TestNode,
  type TestPki,
  token,
} from '@nexus-proxy/test-harness';
import { decodeBackendMessage, streamIdFromBytes } from '@nexus-proxy/mux-protocol';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 20_000 });

let pki: TestPki;
let node: TestNode;
let backend: RawBackend;
/** What the backend received, in order: an event name or `data`, per stream id. */
const wire: Array<{ id: string; kind: string; payload?: Buffer }> = [];

beforeAll(async () => {
  pki = await createTestPki();
  node = await startNode({ pki, listeners: ['http'] });
  backend = await rawBackend(pki, node.hubPort, await token(['order.test']));
  backend.answer = false; // a backend that takes streams silently
  backend.ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return;
    if (data[0] === 0x01) {
      wire.push({ id: streamIdFromBytes(data, 1), kind: 'data', payload: Buffer.from(data.subarray(17)) });
      return;
    }
    const decoded = decodeBackendMessage(data);
    if (decoded.ok && decoded.value.type === 'control') {
      wire.push({ id: decoded.value.message.client_id, kind: decoded.value.message.event });
    }
  });
  await vi.waitFor(() => expect(node.routes.resolve('order.test').kind).toBe('local'));
});

afterAll(async () => {
  backend?.ws.terminate();
  await node?.close();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('the hub’s WebSocket send path under backpressure', () => {
  it('keeps connect → DATA → disconnect per stream while the backend does not read', async () => {
    backend.ws.pause(); // nothing is read: the hub's socket and then its WebSocket buffer fill up
    const sent = new Map<string, Buffer>();
    for (let i = 0; i < 12; i++) {
      const stream = node.hub.openStream('order.test', {
        connPort: 80,
        clientIp: `203.0.113.${i + 1}:40000`,
        isTls: false,
      });
      expect(stream).toBeDefined();
      const body = randomBytes(700 * 1024 + i);
      sent.set(stream!.id, body);
      stream!.on('error', () => {});
      stream!.resume();
      stream!.write(body.subarray(0, 1000)); // the prelude
      stream!.write(body.subarray(1000));
      stream!.disconnect('normal'); // ends after what was written
    }
    // DATA is held in the hub's engine, behind the full socket, with every disconnect still pending.
    const session = node.hub.sessions.find((x) => x.hostnames.includes('order.test'))!;
    await vi.waitFor(() => expect(session.mux.stats().queuedStreams).toBeGreaterThan(0));
    backend.ws.resume();
    await vi.waitFor(() => expect(wire.filter((w) => w.kind === 'disconnect').length).toBe(sent.size), {
      timeout: 15_000,
      interval: 20,
    });
    for (const [id, body] of sent) {
      const mine = wire.filter((w) => w.id === id);
      const kinds = mine.map((w) => w.kind).filter((k, i, all) => k !== 'data' || all[i - 1] !== 'data');
      expect(kinds).toEqual(['connect', 'data', 'disconnect']);
      const bytes = Buffer.concat(mine.filter((w) => w.kind === 'data').map((w) => w.payload!));
      expect(sha(bytes)).toBe(sha(body));
    }
  });
});
