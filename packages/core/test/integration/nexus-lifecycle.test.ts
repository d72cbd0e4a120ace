import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import {
  DATA_HEADER_LENGTH,
  decodeBackendMessage,
  FrameType,
  streamIdFromBytes,
} from '@nexus-proxy/mux-protocol';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createFaultProxy, type FaultProxy } from '../../src/testing/fault-proxy.js';
import {
  activeResources,
  createTestPki,
  delay,
  HashingReader,
  httpGet,
  MiB,
  type TestNode,
  onHttpRequest,
  rawConnect,
  sha256,
  startNode,
  startService,
  type TestPki,
  type TestService,
} from '@nexus-proxy/test-harness';
import { type RelayedMessage, startWsRelay } from '../helpers/ws-relay.js';

vi.setConfig({ testTimeout: 30_000 });

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

async function service(onConnection: (socket: Socket) => void): Promise<TestService> {
  const s = await startService(onConnection);
  cleanups.push(() => s.close());
  return s;
}

/** A TCP proxy in front of the hub, so a test can kill one backend's connection. */
async function proxyFor(n: TestNode): Promise<FaultProxy> {
  const proxy = await createFaultProxy({ target: { host: '127.0.0.1', port: n.hubPort } });
  cleanups.push(() => proxy.close());
  return proxy;
}

/** Writes a 1 KiB piece every `everyMs` until the socket closes. Returns the bytes written so far. */
function streamForever(socket: Socket, everyMs: number): Buffer[] {
  const written: Buffer[] = [];
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable) return clearInterval(timer);
    const piece = randomBytes(1024);
    written.push(piece);
    socket.write(piece);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
  return written;
}

const request = (path: string) => `GET ${path} HTTP/1.1\r\nHost: app.test\r\n\r\n`;

describe('createNexus: sessions and lifecycle (docs/reliability.md items 10–12)', () => {
  it('R11 backend dies mid-stream: its streams close promptly, it leaves the pool at once, new users go to the other backend, it reconnects and serves again', async () => {
    const n = await node();
    const proxy = await proxyFor(n);
    const streamed: Buffer[][] = [];
    const svcA = await service((socket) =>
      onHttpRequest(socket, (head) => {
        if (head.startsWith('GET /stream')) streamed.push(streamForever(socket, 10));
        else socket.end('A');
      }),
    );
    const svcB = await service((socket) => onHttpRequest(socket, () => socket.end('B')));
    const a = await n.attachBackend({
      hostnames: ['app.test'],
      service: svcA.port,
      nodes: [`wss://127.0.0.1:${proxy.port}/connect`],
    });
    await n.attachBackend({ hostnames: ['app.test'], service: svcB.port });

    // Smooth WRR over a fresh 1:1 pool starts with the first member: A.
    const user = await rawConnect(n.httpPort);
    user.socket.write(request('/stream'));
    await vi.waitFor(() => expect(user.received().length).toBeGreaterThan(4096));
    expect(a.streams).toHaveLength(1);

    proxy.pause(); // A cannot come back until the test allows it
    const reconnected = a.nextRegistration();
    const t0 = Date.now();
    proxy.reset(); // RST on A's hub connection, both ends
    const end = await user.closed;
    const closedAfter = Date.now() - t0;
    // Promptly: far inside the 60 s keepalive deadline; the socket is gone, not left hanging.
    expect(closedAfter).toBeLessThan(1_000);
    console.log(`R11: end user closed ${closedAfter} ms after the backend's socket was reset`);
    expect(end.fin || end.error !== undefined).toBe(true);
    // What the user got is an uncorrupted prefix of what A's service wrote, and A's service was let go.
    const sent = Buffer.concat(streamed[0] ?? []);
    expect(sent.subarray(0, user.received().length).equals(user.received())).toBe(true);
    await vi.waitFor(() => expect(svcA.accepted[0]?.destroyed).toBe(true));
    await vi.waitFor(() => expect(n.events.backendDisconnected.map((e) => e.id)).toContain(a.sessionId));
    // The node does not call the cut stream `completed`: its close event names the lost session.
    await vi.waitFor(() => expect(n.events.streamClose).toHaveLength(1));
    expect(n.events.streamClose[0]!.reason).not.toBe('completed');
    expect(n.events.streamClose[0]!.reason).toMatch(/backend|connection|closed/);
    // The pool lost A at once.
    expect(n.nexus.routes.localPool('app.test')?.size).toBe(1);
    for (let i = 0; i < 10; i++) expect(await httpGet(n.httpPort, 'app.test')).toBe('B');
    expect(n.events.routeMiss).toHaveLength(0);

    proxy.resume();
    await reconnected;
    expect(a.disconnects[0]?.reason).toBe('connection_lost');
    expect(n.nexus.routes.localPool('app.test')?.size).toBe(2);
    const answers = new Set<string>();
    for (let i = 0; i < 4; i++) answers.add(await httpGet(n.httpPort, 'app.test'));
    expect(answers).toEqual(new Set(['A', 'B']));
  });
  it('R10 stale state across reconnect: frames queued on a dead session are never replayed, an old stream id never gets new data', async () => {
    const n = await node();
    // backend client → fault proxy (black hole, reset) → WebSocket relay (sees and injects messages) → hub
    const relay = await startWsRelay({
      hubUrl: n.hubUrl,
      certPem: pki.hub.certPem,
      keyPem: pki.hub.keyPem,
      caPem: pki.ca.certPem,
    });
    cleanups.push(() => relay.close());
    const proxy = await createFaultProxy({ target: { host: '127.0.0.1', port: relay.port } });
    cleanups.push(() => proxy.close());
    const fresh = randomBytes(2 * MiB);
    const streamed: Buffer[][] = [];
    // What the service got on the new stream's connection, and the switch that lets it answer.
    const newRequest: Buffer[] = [];
    let answerNew: (() => void) | undefined;
    const svc = await service((socket) =>
      onHttpRequest(socket, (head, rest) => {
        if (head.startsWith('GET /old')) {
          streamed.push(streamForever(socket, 2));
          return;
        }
        newRequest.push(Buffer.from(head, 'latin1'), rest);
        socket.on('data', (c: Buffer) => newRequest.push(c));
        socket.resume();
        answerNew = () => socket.end(fresh);
      }),
    );
    const backend = await n.attachBackend({
      hostnames: ['app.test'],
      service: svc.port,
      nodes: [`wss://127.0.0.1:${proxy.port}/connect`],
    });
    const node0 = backend.client.options.nodes[0]!;
    const oldSession = backend.client.sessions.get(node0);
    const oldUser = await rawConnect(n.httpPort);
    oldUser.socket.write(request('/old'));
    await vi.waitFor(() => expect(oldUser.received().length).toBeGreaterThan(4096));
    const oldId = backend.streams[0]!.id;

    // Black-hole the link so DATA piles up in the dead session's queues, then kill it.
    proxy.blackhole();
    await delay(200);
    proxy.pause();
    const reconnected = backend.nextRegistration();
    proxy.reset();
    await oldUser.closed;

    const oldReceived = oldUser.received();
    proxy.heal(); // new links are clean
    proxy.resume();
    await reconnected;

    // A new stream, held open by its service while the old session's frames are replayed onto the new one.
    const newUser = await rawConnect(n.httpPort);
    const reader = new HashingReader(newUser.socket);
    newUser.socket.write(request('/new'));
    await vi.waitFor(() => expect(answerNew).toBeDefined());
    const [oldLink, newLink] = [relay.links[0]!, relay.links.at(-1)!];
    expect(relay.links).toHaveLength(2);
    expect(newLink.open).toBe(true);
    const isOldData = (m: RelayedMessage) =>
      m.isBinary &&
      m.data[0] === FrameType.Data &&
      m.data.length > DATA_HEADER_LENGTH &&
      streamIdFromBytes(m.data, 1) === oldId;
    const staleUp = oldLink.fromBackend.filter(isOldData); // the old service's bytes
    const staleDown = oldLink.fromHub.filter(isOldData); // the old end user's request
    // Everything the old user received crossed the relay in these frames.
    const staleBytes = staleUp.reduce((n, m) => n + m.data.length - DATA_HEADER_LENGTH, 0);
    expect(staleBytes).toBeGreaterThanOrEqual(oldReceived.length);
    expect(staleDown.length).toBeGreaterThan(0);
    const hubSession = n.nexus.hub.sessions.find((s) => s.id === backend.sessionId)!;
    const newSession = backend.client.sessions.get(node0)!;
    expect(newSession).not.toBe(oldSession);
    const hubUnknown = hubSession.mux.stats().unknownStreamFrames;
    const clientUnknown = newSession.stats().unknownStreamFrames;
    for (const m of staleUp) newLink.injectToHub(m.data);
    for (const m of staleDown) newLink.injectToBackend(m.data);
    // Each side drops every replayed frame as belonging to no stream it knows, counts it, and tells the
    // other side once that the id is unknown.
    await vi.waitFor(() => {
      expect(hubSession.mux.stats().unknownStreamFrames - hubUnknown).toBe(staleUp.length);
      expect(newSession.stats().unknownStreamFrames - clientUnknown).toBe(staleDown.length);
    });
    const disconnectsOf = (messages: RelayedMessage[]) =>
      messages.filter((m) => {
        const decoded = decodeBackendMessage(m.data);
        return (
          decoded.ok &&
          decoded.value.type === 'control' &&
          decoded.value.message.event === 'disconnect' &&
          decoded.value.message.client_id === oldId
        );
      }).length;
    await vi.waitFor(() => {
      expect(disconnectsOf(newLink.fromHub)).toBe(1);
      expect(disconnectsOf(newLink.fromBackend)).toBe(1);
    });

    // Nothing of it reached the new stream, in either direction: the service got exactly the new
    // request, the new end user exactly the new response.
    answerNew!();
    expect(await reader.ended).toBe(sha256(fresh));
    expect(Buffer.concat(newRequest).toString('latin1')).toBe(request('/new'));
    expect(svc.accepted).toHaveLength(2); // no stale stream was dialled
    // The new session carries only the new stream; the old id is unknown to it, and the old user got
    // nothing after its close: a prefix of its own service's bytes, no byte of the new stream.
    expect(newSession.getStream(oldId)).toBeUndefined();
    expect(backend.streams.map((s) => s.id)).not.toContain(undefined);
    expect(new Set(backend.streams.map((s) => s.id)).size).toBe(2);
    expect(oldUser.received().equals(oldReceived)).toBe(true);
    const oldSent = Buffer.concat(streamed[0] ?? []);
    expect(oldSent.subarray(0, oldReceived.length).equals(oldReceived)).toBe(true);
    expect(oldSent.length).toBeGreaterThan(oldReceived.length); // bytes were stranded in the dead session
    expect(n.nexus.hub.sessions.map((s) => s.id)).toEqual([backend.sessionId]);
    await vi.waitFor(() => expect(n.nexus.hub.stats().streams).toBe(0));
  });

  it('R12 close races: disconnect during the local dial, double disconnect, data after disconnect — no exception, no leaked socket', async () => {
    const n = await node();
    const svc = await service((socket) =>
      onHttpRequest(socket, (head) => {
        if (head.startsWith('GET /chatty')) streamForever(socket, 1);
        else socket.write('x');
      }),
    );
    let dialsStarted = 0;
    const backend = await n.attachBackend({
      hostnames: ['app.test', 'slow-dial.test'],
      connectHandler: async (req) => {
        if (req.hostname !== 'slow-dial.test') return netConnect({ host: '127.0.0.1', port: svc.port });
        dialsStarted++;
        await delay(300); // the end user leaves meanwhile
        return netConnect({ host: '127.0.0.1', port: svc.port });
      },
    });
    const closes: string[] = [];
    backend.client.on('stream-close', (e) => closes.push(e.reason));
    await delay(50);
    const before = activeResources();

    // The end users leave with an RST: a FIN alone is a half-close, which keeps the stream open for the
    // response (docs/protocol.md §1.7), so only a reset makes the hub send `disconnect` at once.
    // 1. Disconnect while the local dial is in progress (10 at once).
    const slow = await Promise.all(Array.from({ length: 10 }, () => rawConnect(n.httpPort)));
    for (const c of slow) c.socket.write('GET / HTTP/1.1\r\nHost: slow-dial.test\r\n\r\n');
    await vi.waitFor(() => expect(dialsStarted).toBe(10));
    for (const c of slow) c.socket.resetAndDestroy();

    // 2. Double disconnect: both ends close at the same moment (20 streams).
    const pairs = await Promise.all(Array.from({ length: 20 }, () => rawConnect(n.httpPort)));
    const accepted = svc.accepted.length;
    for (const c of pairs) c.socket.write(request('/'));
    await vi.waitFor(() => expect(pairs.every((c) => c.received().length === 1)).toBe(true));
    const serviceSockets = svc.accepted.slice(accepted);
    expect(serviceSockets).toHaveLength(20);
    pairs.forEach((c, i) => {
      c.socket.resetAndDestroy();
      serviceSockets[i]!.destroy();
    });

    // 3. Data after disconnect: the service keeps writing after the end user has gone (10 streams).
    const chatty = await Promise.all(Array.from({ length: 10 }, () => rawConnect(n.httpPort)));
    for (const c of chatty) c.socket.write(request('/chatty'));
    await vi.waitFor(() => expect(chatty.every((c) => c.received().length > 0)).toBe(true));
    for (const c of chatty) c.socket.resetAndDestroy();

    // Everything settles: every stream closed on both sides, no socket or timer left behind.
    await vi.waitFor(() => expect(closes).toHaveLength(40), { timeout: 5_000 });
    await vi.waitFor(() => expect(n.nexus.activeStreams).toBe(0));
    expect(n.nexus.hub.stats().streams).toBe(0);
    expect(backend.client.stats().streams).toBe(0);
    await delay(400); // the aborted dials' 300 ms timers have run
    await vi.waitFor(() => {
      const after = activeResources();
      expect(after.TCPSocketWrap ?? 0).toBe(before.TCPSocketWrap ?? 0);
      expect(after.Timeout ?? 0).toBeLessThanOrEqual(before.Timeout ?? 0);
    });
    // The sessions survived all of it.
    expect(n.events.backendDisconnected).toHaveLength(0);
    const after = await rawConnect(n.httpPort);
    after.socket.write(request('/'));
    await vi.waitFor(() => expect(after.received().toString()).toBe('x'));
    after.socket.destroy();
  });
});
