/**
 * Uploads through one node reuse the buffers the end users' sockets read into: a chunk goes back to the
 * frame buffers' pool once its stream's write has called back (frame-reads.ts, relay-uploads.ts), and the
 * next read of any socket may land in it. A buffer given back while anything still held its frame would put
 * another upload's bytes on the hub link. Here, concurrent uploads share the pool while the service drops
 * others mid-upload (the backend closes their streams with frames in flight): every byte of every upload
 * that completes must arrive as sent. Real sockets, a real node and backend client, SHA-256 end to end.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { decodeBackendMessage, encodeControlMessage } from '@nexus-proxy/mux-protocol';
import {
  createTestPki,
  MiB,
  onHttpRequest,
  pump,
  RandomSource,
  rawBackend,
  startNode,
  startService,
  type TestNode,
  type TestPki,
  token,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let pki: TestPki;
let node: TestNode;
const closers: Array<() => Promise<void> | void> = [];

/**
 * The service: reads an HTTP-like head `PUT /<keep|drop>/<bytes>`, then for `keep` hashes `bytes` bytes of
 * body and answers their SHA-256; for `drop` destroys the connection once it has read `bytes`.
 */
function sink(socket: Socket): void {
  onHttpRequest(socket, (head, rest) => {
    const [, kind, bytes] = /^PUT \/(keep|drop)\/(\d+) /.exec(head) ?? [];
    let left = Number(bytes);
    const hash = createHash('sha256');
    // What comes after `left` bytes is read and ignored.
    const take = (chunk: Buffer): void => {
      if (left === 0) return;
      const part = chunk.subarray(0, left);
      left -= part.length;
      if (kind === 'keep') hash.update(part);
      if (left > 0) return;
      if (kind === 'drop') socket.destroy();
      else socket.end(hash.digest('hex'));
    };
    take(rest);
    socket.on('data', take);
    socket.resume();
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  node = await startNode({ pki, listeners: ['http'] });
  closers.push(() => node.close());
  const svc = await startService(sink);
  closers.push(() => svc.close());
  await node.attachBackend({ hostnames: ['up.test'], service: svc.port });
});

afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** Resolves once `value()` is above 0 and has not changed for 100 ms (sampled by `waitUntil`), within 5 s. */
async function waitUntilSteady(value: () => number, what: string): Promise<void> {
  let last = value();
  let since = Date.now();
  await waitUntil(
    () => {
      const now = value();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return now > 0 && Date.now() - since >= 100;
    },
    5_000,
    what,
  );
}

/** Uploads `bytes` random bytes; resolves the digest sent and the answer (empty when dropped). */
async function upload(kind: 'keep' | 'drop', bytes: number, dropAfter: number): Promise<[string, string]> {
  const socket = netConnect({ host: '127.0.0.1', port: node.httpPort });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const head = `PUT /${kind}/${kind === 'keep' ? bytes : dropAfter} HTTP/1.1\r\nHost: up.test\r\n\r\n`;
  const source = new RandomSource(bytes);
  const answer: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => answer.push(chunk));
  const closed = once(socket, 'close');
  socket.write(head);
  await pump(source, socket).catch(() => {});
  socket.end();
  await closed;
  return [kind === 'keep' ? source.digest() : '', Buffer.concat(answer).toString()];
}

describe('uploads through one node on reused read buffers', () => {
  it('delivers every upload that completes intact while others are dropped mid-upload', async () => {
    for (let round = 0; round < 3; round++) {
      const uploads = [
        ...Array.from({ length: 12 }, () => upload('keep', 3 * MiB, 0)),
        ...Array.from({ length: 8 }, (_, i) => upload('drop', 6 * MiB, (1 + (i % 4)) * 256 * 1024)),
      ];
      const results = await Promise.all(uploads);
      for (const [sent, answered] of results.slice(0, 12)) expect(answered).toBe(sent);
    }
  }, 60_000);

  it("keeps every upload's bytes its own when a stream is dropped with frames queued for a backend that stopped reading", async () => {
    const UPLOADERS = 6;
    // A backend that grants as it receives, then stops reading with frames of the uploads queued in the
    // node for its socket, and drops the first upload's stream meanwhile; a new upload's reads then take
    // buffers from the pool. Whatever the timing, each stream must carry its own bytes only. (That a write
    // is not called back while the transport holds its frames, whatever ends the stream, is shown
    // deterministically in mux-protocol's test/session-parts.test.ts.)
    const raw = await rawBackend(pki, node.hubPort, await token(['race.test']));
    raw.answer = false;
    closers.push(() => raw.ws.terminate());
    const frames: Array<{ id: string; payload: Buffer }> = [];
    const counts = new Map<string, number>();
    raw.ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) return;
      const r = decodeBackendMessage(data);
      if (!r.ok || r.value.type !== 'data') return;
      const id = r.value.streamId;
      frames.push({ id, payload: Buffer.from(r.value.payload) });
      const n = (counts.get(id) ?? 0) + 1;
      counts.set(id, n);
      if (n % 16 === 0)
        raw.send(encodeControlMessage({ event: 'resume_stream', client_id: id, credits: 16 }));
    });
    await waitUntil(
      () => node.events.backendConnected.some((e) => e.hostnames.includes('race.test')),
      5_000,
      'registered',
    );
    const connects = (): string[] =>
      raw.controls.filter((m) => m.event === 'connect').map((m) => m.client_id as string);

    /** An end user that uploads `bytes` of one byte value after its request head. */
    const start = async (value: number, bytes: number): Promise<{ socket: Socket; sent: Buffer }> => {
      const socket = netConnect({ host: '127.0.0.1', port: node.httpPort });
      socket.on('error', () => {});
      await once(socket, 'connect');
      const sent = Buffer.alloc(bytes, value);
      socket.write('PUT / HTTP/1.1\r\nHost: race.test\r\n\r\n');
      socket.write(sent);
      return { socket, sent };
    };
    const uploads = [];
    for (let i = 0; i < UPLOADERS; i++) uploads.push(await start(0x10 + i, 16 * MiB));
    await waitUntil(
      () => connects().length === UPLOADERS && counts.size === UPLOADERS,
      5_000,
      'the uploads flowing',
    );
    const first = connects()[0]!;
    raw.ws.pause();
    // What the node's streams hold of uploads (written to them, not yet called back) stops growing once
    // the link is full: frames wait in the node for the socket.
    const held = (): number => node.nexus.bufferedUploads.bytes;
    await waitUntilSteady(held, 'the uploads held by the node');
    const before = held();
    raw.send(encodeControlMessage({ event: 'disconnect', client_id: first, reason: 'normal' }));
    // The dropped stream's relay ends: what it held leaves the count.
    await waitUntil(() => held() < before, 5_000, 'the dropped upload released');
    const after = held();
    // A new upload's reads take buffers from the pool now; it holds some of them in its stream.
    const late = await start(0x7f, 1 * MiB);
    await waitUntil(() => held() > after, 5_000, 'the late upload held by the node');
    raw.ws.resume();
    await waitUntil(() => connects().length === UPLOADERS + 1, 5_000, 'every connect');
    const ids = connects();
    const lateId = ids[UPLOADERS]!;
    await waitUntil(() => (counts.get(lateId) ?? 0) > 4, 5_000, 'the late upload on the wire');
    // Every frame carries its own stream's bytes: the request head first, then its one byte value.
    const streams = ids;
    const values = [...uploads.map((u) => u.sent[0]!), late.sent[0]!];
    for (const [k, id] of streams.entries()) {
      const body = Buffer.concat(frames.filter((f) => f.id === id).map((f) => f.payload));
      const head = body.indexOf('\r\n\r\n');
      expect(head).toBeGreaterThan(0);
      const rest = body.subarray(head + 4);
      expect(rest.length).toBeGreaterThan(0);
      expect(rest.every((b) => b === values[k])).toBe(true);
    }
    for (const u of [...uploads, late]) u.socket.destroy();
  }, 30_000);
});
