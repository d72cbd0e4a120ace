/**
 * Larger DATA frames on backend sessions (docs/protocol.md §1.11) on real sockets: a Nexus backend client
 * and a Nexus hub say in the upgrade what each accepts, and each sends the other at most that (128 KiB
 * by default, less when configured); a backend that says nothing (the
 * reference's wire) gets payloads of at most 32 768 bytes and 64 credits; a message over the limit the
 * hub said closes the session with 1009.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { DATA_PAYLOAD_HEADER } from '@nexus-proxy/common';
import {
  DATA_HEADER_LENGTH,
  DEFAULT_INITIAL_WINDOW,
  decodeBackendMessage,
  encodeControlMessage,
  encodeDataFrame,
  FrameType,
  MAX_DATA_PAYLOAD,
  NEXUS_DATA_PAYLOAD,
} from '@nexus-proxy/mux-protocol';
import {
  createTestPki,
  MiB,
  openHubSocket,
  pump,
  RandomSource,
  startNode,
  startExchangeService,
  exchangeThrough,
  type TestNode,
  type TestPki,
  wsClosed,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';

vi.setConfig({ testTimeout: 60_000 });

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(): Promise<TestNode> {
  const n = await startNode({ pki, listeners: ['http'] });
  cleanups.push(() => n.close());
  return n;
}

/** An HTTP head the node routes by (the stream's prelude). */
const head = (path: string) => Buffer.from(`PUT ${path} HTTP/1.1\r\nHost: app.test\r\n\r\n`);

/**
 * A hand-written backend on a raw WebSocket: says it accepts `offer` in the upgrade (nothing when undefined), sends
 * its token, answers each `connect` with a grant of 64 (or `grant`) and each DATA frame with a grant of one,
 * and records the hub's answer and the size of every DATA payload the hub sends it.
 */
async function handBackend(n: TestNode, offer: number | undefined, grant = 64) {
  const ws: WebSocket = openHubSocket(
    pki,
    n.hubPort,
    offer === undefined ? {} : { headers: { [DATA_PAYLOAD_HEADER]: String(offer) } },
  );
  let answer: string | undefined;
  ws.on('upgrade', (res) => {
    answer = res.headers[DATA_PAYLOAD_HEADER] as string | undefined;
  });
  const closed = wsClosed(ws);
  cleanups.push(() => ws.terminate());
  await once(ws, 'open');
  const connected = once(n.nexus.hub, 'backend-connected');
  ws.send(await n.token(['app.test']));
  await connected;
  const payloads: number[] = [];
  const connects: Array<Record<string, unknown>> = [];
  ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) return;
    const r = decodeBackendMessage(data, { maxMessageSize: DATA_HEADER_LENGTH + NEXUS_DATA_PAYLOAD });
    if (data[0] === FrameType.Data) {
      payloads.push(data.length - DATA_HEADER_LENGTH);
      // Delivered at once: the frame's credit goes back.
      if (r.ok && r.value.type === 'data')
        ws.send(encodeControlMessage({ event: 'resume_stream', client_id: r.value.streamId, credits: 1 }));
      return;
    }
    if (!r.ok || r.value.type !== 'control' || r.value.message.event !== 'connect') return;
    connects.push(r.value.message as unknown as Record<string, unknown>);
    const id = r.value.message.client_id;
    ws.send(encodeControlMessage({ event: 'resume_stream', client_id: id, credits: grant }));
  });
  return { ws, closed, payloads, connects, answer: () => answer };
}

/** Sends `bytes` from an end user through the node (after the HTTP head); resolves once the socket ends. */
async function upload(n: TestNode, bytes: number): Promise<void> {
  const socket = netConnect({ host: '127.0.0.1', port: n.httpPort });
  cleanups.push(() => {
    socket.destroy();
  });
  await once(socket, 'connect');
  socket.on('error', () => {});
  await pump(new RandomSource(bytes, { prefix: head('/up') }), socket);
}

describe('larger DATA frames between a Nexus hub and a Nexus backend client', () => {
  it.each([
    ['by default: frames larger than 32 768 bytes both ways', undefined],
    ['a client that accepts 32 768: larger frames toward the hub only', MAX_DATA_PAYLOAD],
  ])('%s, every byte intact', async (_, clientAccepts) => {
    const n = await node();
    const transfer = 16 * MiB;
    const prelude = head('/both');
    const svc = await startExchangeService(transfer, prelude.length);
    cleanups.push(() => svc.close());
    await n.attachBackend({
      hostnames: ['app.test'],
      service: svc.port,
      ...(clientAccepts !== undefined ? { maxDataPayload: clientAccepts } : {}),
    });
    const session = n.nexus.hub.sessions[0]!;
    expect(session.mux.maxDataPayload).toBe(NEXUS_DATA_PAYLOAD);
    expect(session.mux.sendDataPayload).toBe(clientAccepts ?? NEXUS_DATA_PAYLOAD);

    const user = await exchangeThrough(n.httpPort, prelude, transfer);
    expect(await svc.receivedDigest).toBe(user.sent);
    expect(user.received).toBe(svc.sentDigest());
    // Frames larger than the base protocol's 32 768 bytes went where they are accepted: the average is
    // above it; toward a client that accepts 32 768, none did.
    const stats = session.stats();
    expect(stats.bytesReceived / stats.dataFramesReceived).toBeGreaterThan(MAX_DATA_PAYLOAD);
    expect(stats.dataFramesReceived).toBeLessThan(transfer / MAX_DATA_PAYLOAD);
    if (clientAccepts === MAX_DATA_PAYLOAD)
      expect(stats.dataFramesSent).toBeGreaterThanOrEqual(transfer / MAX_DATA_PAYLOAD);
    else expect(stats.bytesSent / stats.dataFramesSent).toBeGreaterThan(MAX_DATA_PAYLOAD);
  });

  it('a backend that accepts 128 KiB gets the hub’s answer and frames of up to 128 KiB, with 16 credits (2 MiB)', async () => {
    const n = await node();
    const backend = await handBackend(n, NEXUS_DATA_PAYLOAD, 16);
    expect(backend.answer()).toBe(String(NEXUS_DATA_PAYLOAD));
    await upload(n, 4 * MiB);
    await vi.waitFor(() =>
      expect(backend.payloads.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(4 * MiB),
    );
    expect(Math.max(...backend.payloads)).toBeGreaterThan(MAX_DATA_PAYLOAD);
    expect(Math.max(...backend.payloads)).toBeLessThanOrEqual(NEXUS_DATA_PAYLOAD);
    // On a quiet node the connect opens the whole 2 MiB window: 16 frames of 128 KiB (docs/protocol.md §1.5).
    expect(backend.connects[0]).toMatchObject({ event: 'connect', credits: 16 });
  });

  it('a backend that says nothing (the reference) gets no answer, payloads of at most 32 768 bytes and 64 credits', async () => {
    const n = await node();
    const backend = await handBackend(n, undefined);
    expect(backend.answer()).toBeUndefined();
    expect(n.nexus.hub.sessions[0]!.mux.maxDataPayload).toBe(MAX_DATA_PAYLOAD);
    await upload(n, 4 * MiB);
    await vi.waitFor(() =>
      expect(backend.payloads.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(4 * MiB),
    );
    expect(Math.max(...backend.payloads)).toBe(MAX_DATA_PAYLOAD);
    // On a quiet node the connect opens the whole 64-frame window, as the reference grants and expects.
    expect(backend.connects[0]).toMatchObject({ event: 'connect', credits: DEFAULT_INITIAL_WINDOW });
  });

  it('a backend that accepts 32 768 gets frames of that size, and the hub’s window in frames of 128 KiB', async () => {
    const n = await node();
    const backend = await handBackend(n, MAX_DATA_PAYLOAD);
    expect(backend.answer()).toBe(String(NEXUS_DATA_PAYLOAD));
    await upload(n, 2 * MiB);
    await vi.waitFor(() =>
      expect(backend.payloads.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(2 * MiB),
    );
    expect(Math.max(...backend.payloads)).toBe(MAX_DATA_PAYLOAD);
    // The hub's window counts frames of what the hub accepts: 16 of 128 KiB, all in the connect.
    expect(backend.connects[0]).toMatchObject({ event: 'connect', credits: 16 });
  });

  it('a message over the limit the hub said closes the session with 1009; one at the limit does not', async () => {
    const n = await node();
    const id = '6f1c2b9a-3d4e-4f50-8a61-7b8c9d0e1f23';
    const data = (payload: number) =>
      Buffer.concat([encodeDataFrame(id, new Uint8Array(0)), Buffer.alloc(payload, 1)]);

    // A backend that says nothing: 32 768 bytes of payload is the limit.
    const reference = await handBackend(n, undefined);
    reference.ws.send(data(MAX_DATA_PAYLOAD));
    reference.ws.send(data(MAX_DATA_PAYLOAD + 1));
    expect(await reference.closed).toMatchObject({ code: 1009 });

    // A backend that said what it accepts learnt the hub's 128 KiB: a frame of exactly 128 KiB is fine
    // (an unknown id: answered, not fatal), one more byte is not — whatever the backend itself accepts.
    const nexus = await handBackend(n, MAX_DATA_PAYLOAD);
    nexus.ws.send(data(NEXUS_DATA_PAYLOAD));
    await vi.waitFor(() => expect(n.nexus.hub.sessions[0]?.stats().unknownStreamFrames).toBe(1));
    nexus.ws.send(data(NEXUS_DATA_PAYLOAD + 1));
    expect(await nexus.closed).toMatchObject({ code: 1009 });
    await vi.waitFor(() => expect(n.nexus.hub.sessions).toHaveLength(0));
  });
});
