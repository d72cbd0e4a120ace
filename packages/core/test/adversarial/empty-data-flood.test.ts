/**
 * Attack: a token holder opens one stream to its own hostname, grants credits once, stops reading its
 * WebSocket and streams empty 23-byte DATA frames. Before the fix the hub answered a `resume_stream` for
 * every 8 of them and queued the answers unread: 62 → 374 MB RSS in 10 s. Now empty frames earn no
 * grant and past 100 in a second the session is closed with 1008 `empty-data-flood`, on a node with
 * default settings; memory stays flat and the other tenant keeps being served.
 */
import { encodeControlMessage, streamIdToBytes, writeDataHeader } from '@nexus-proxy/mux-protocol';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  createTestPki,
  delay,
  forceGc,
  MiB,
  httpGet,
  rawBackend,
  rawConnect,
  startHttpService,
  startNode,
  type TestPki,
  token,
  waitUntil,
} from '@nexus-proxy/test-harness';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const FLOOD_MS = 10_000;

/**
 * Heap and buffers the process retains now (after a full collection), bytes: what it keeps, not the garbage
 * the attacker and the hub make between two collections (which V8 lets grow to 100 MiB or more on some runs).
 */
function retained(): number {
  forceGc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe('empty DATA flood from a backend that does not read', () => {
  it('closes the session with 1008 empty-data-flood; memory stays bounded; other tenants are served', async () => {
    const node = await startNode({ pki });
    cleanups.push(() => node.close());
    const service = await startHttpService('other');
    cleanups.push(() => service.close());
    const other = (await node.attachBackend({ hostnames: ['other.example.com'], service: service.port }))
      .client;
    cleanups.push(() => other.close({ graceMs: 0 }));

    const attacker = await rawBackend(pki, node.hubPort, await token(['evil.example.com']));
    attacker.answer = false;
    cleanups.push(() => {
      if (attacker.ws.readyState !== WebSocket.CLOSED) attacker.ws.terminate();
    });
    await waitUntil(() => node.events.backendConnected.length === 2, 3_000, 'attacker registered');

    // The attacker's own end user asks for its hostname: the hub opens a stream to it.
    const user = await rawConnect(node.httpPort);
    cleanups.push(() => {
      user.socket.destroy();
    });
    user.socket.write('GET / HTTP/1.1\r\nHost: evil.example.com\r\n\r\n');
    await waitUntil(() => attacker.controls.some((c) => c.event === 'connect'), 3_000, 'connect');
    const id = attacker.controls.find((c) => c.event === 'connect')!.client_id as string;

    // Grant once, stop reading, then flood empty DATA frames (header only) for 10 s, as fast as the
    // attacker's own socket takes them (its queue stays under 1 MiB, so the test measures the hub).
    attacker.send(encodeControlMessage({ event: 'resume_stream', client_id: id, credits: 64 }));
    attacker.ws.pause();
    const frame = Buffer.alloc(17);
    writeDataHeader(frame, 0, streamIdToBytes(id));
    const baseRetained = retained();
    const base = process.memoryUsage();
    let peakRss = base.rss;
    let peakArrayBuffers = base.arrayBuffers;
    let peakRetained = baseRetained;
    let nextCollection = Date.now() + 1_000;
    let sent = 0;
    const deadline = Date.now() + FLOOD_MS;
    while (Date.now() < deadline) {
      if (Date.now() >= nextCollection) {
        peakRetained = Math.max(peakRetained, retained());
        nextCollection = Date.now() + 1_000;
      }
      for (let i = 0; i < 2_000 && attacker.ws.bufferedAmount < MiB; i++) {
        if (attacker.ws.readyState !== WebSocket.OPEN) break;
        attacker.ws.send(frame);
        sent++;
      }
      const now = process.memoryUsage();
      peakRss = Math.max(peakRss, now.rss);
      peakArrayBuffers = Math.max(peakArrayBuffers, now.arrayBuffers);
      await delay(1);
    }
    const growth = peakRss - base.rss;
    peakRetained = Math.max(peakRetained, retained());
    const retainedGrowth = peakRetained - baseRetained;
    console.log(
      `empty-data flood: ${sent} frames sent in ${FLOOD_MS} ms; retained (heap + buffers, after a full collection each second) +${(retainedGrowth / MiB).toFixed(1)} MiB; process RSS +${(growth / MiB).toFixed(1)} MiB, ` +
        `arrayBuffers +${((peakArrayBuffers - base.arrayBuffers) / MiB).toFixed(1)} MiB`,
    );

    expect(sent).toBeGreaterThan(1_000);
    const closed = node.events.backendDisconnected.filter((e) => e.hostnames.includes('evil.example.com'));
    expect(closed.map((e) => e.reason)).toEqual(['empty-data-flood']);
    // RSS is the whole test process (the attacker too) and follows its garbage: between two collections V8
    // lets the heap of this flood reach 50–150 MiB on some runs, whatever the hub keeps. What the hub keeps
    // is what survives a full collection: the queued answers of the bug grew it by hundreds of MB.
    expect(retainedGrowth).toBeLessThan(16 * MiB);
    expect(peakArrayBuffers - base.arrayBuffers).toBeLessThan(32 * MiB);
    // The other tenant never noticed.
    expect(await httpGet(node.httpPort, 'other.example.com')).toContain('served-by other');
    expect(node.events.backendDisconnected.filter((e) => e.hostnames.includes('other.example.com'))).toEqual(
      [],
    );
    // The attacker's end user got its stream ended, not hung.
    await waitUntil(() => user.socket.destroyed || user.socket.readableEnded, 5_000, 'end user closed');
  }, 30_000);
});
