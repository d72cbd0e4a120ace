import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeControlMessage, type MuxStream } from '../src/index.js';
import { createFakeSession } from './suites/fake-transport.js';

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };

function acceptStream(credits?: number) {
  const fake = createFakeSession({ role: 'backend' });
  let stream: MuxStream | undefined;
  fake.session.on('stream', (s) => {
    stream = s;
  });
  const id = randomUUID();
  fake.control({
    event: 'connect',
    client_id: id,
    conn_port: 443,
    client_ip: '203.0.113.7:1',
    hostname: 'app.example.com',
    is_tls: true,
    ...(credits === undefined ? {} : { credits }),
  });
  fake.clear();
  return { ...fake, stream: stream!, id };
}

describe('MuxStream', () => {
  it('splits a large write into DATA frames of at most 32 768 bytes, in order', () => {
    const { session, dataFrames } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    const data = randomBytes(100_000);
    stream.write(data);
    const frames = dataFrames();
    expect(frames.map((f) => f.payload.length)).toEqual([32_768, 32_768, 32_768, 1_696]);
    expect(frames.every((f) => f.id === stream.id)).toBe(true);
    expect(Buffer.concat(frames.map((f) => f.payload)).equals(data)).toBe(true);
    expect(stream.bytesWritten).toBe(100_000);
  });

  it('coalesces small writes queued behind a full transport into full frames', () => {
    const { session, dataFrames, setBuffered } = createFakeSession({ role: 'hub', highWaterMark: 1000 });
    const stream = session.openStream(OPEN);
    setBuffered(5000);
    const data = randomBytes(100_000);
    for (let i = 0; i < 100; i++) stream.write(data.subarray(i * 1000, (i + 1) * 1000));
    expect(dataFrames()).toHaveLength(0);
    setBuffered(0);
    session.transportDrained();
    const frames = dataFrames();
    // The first write was taken alone (it was in progress); the other 99 went through _writev together.
    expect(frames.map((f) => f.payload.length)).toEqual([1000, 32_768, 32_768, 32_768, 696]);
    expect(Buffer.concat(frames.map((f) => f.payload)).equals(data)).toBe(true);
  });

  it('does not cut a chunk of half a frame or more across two frames when the frame can end before it', () => {
    const { session, dataFrames, setBuffered } = createFakeSession({ role: 'hub', highWaterMark: 1000 });
    const stream = session.openStream(OPEN);
    setBuffered(5000);
    const data = randomBytes(200_000);
    // Writes of 30 000 and 20 000 bytes (a frame is 32 768), then small ones, queued behind a full transport.
    const sizes = [1000, 30_000, 30_000, 20_000, 16_000, 16_000, 20_000, ...Array(67).fill(1000)];
    let at = 0;
    for (const size of sizes) {
      stream.write(data.subarray(at, at + size));
      at += size;
    }
    setBuffered(0);
    session.transportDrained();
    const frames = dataFrames();
    // A frame ends where a chunk ends when the next chunk (≥ 16 384 bytes, half a frame) would be cut and
    // the frame already holds half a frame: 30 000, 30 000, then 3 232 + 16 000 before the 20 000. It is
    // full when the chunk cut is smaller (20 000 + 12 768 of 16 000) and when small writes coalesce.
    expect(frames.map((f) => f.payload.length)).toEqual([
      1000, 30_000, 30_000, 32_768, 19_232, 32_768, 32_768, 21_464,
    ]);
    expect(Buffer.concat(frames.map((f) => f.payload)).equals(data.subarray(0, at))).toBe(true);
  });

  it('encodes its credit grant byte-identically to encodeControlMessage', () => {
    const { stream, sent, data, id } = acceptStream(64);
    stream.resume();
    for (let i = 0; i < 8; i++) data(id, Buffer.from('x'));
    expect(sent).toHaveLength(1);
    expect(Buffer.from(sent[0]!)).toEqual(
      Buffer.from(encodeControlMessage({ event: 'resume_stream', client_id: id, credits: 8 })),
    );
  });

  it('grants credits back only as the consumer reads', async () => {
    const { stream, controls, data, id } = acceptStream(64);
    // Not reading: the first frames fill the readable buffer (64 KiB), the rest are owed.
    for (let i = 0; i < 20; i++) data(id, Buffer.alloc(32_768));
    const grantedBeforeRead = controls().reduce(
      (n, c) => n + (c.event === 'resume_stream' ? c.credits! : 0),
      0,
    );
    expect(grantedBeforeRead).toBe(0);
    expect(stream.receiveWindow).toBe(44);
    stream.resume();
    await new Promise((resolve) => setImmediate(resolve));
    const granted = controls().reduce((n, c) => n + (c.event === 'resume_stream' ? c.credits! : 0), 0);
    // Every frame the consumer took is granted back (at least a batch of 8 at a time).
    expect(granted).toBe(20);
    expect(stream.receiveWindow).toBe(64);
  });

  it('ignores an empty DATA payload: nothing pushed, no grant earned, no window spent', () => {
    const { stream, controls, data, id, session } = acceptStream(64);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    for (let i = 0; i < 8; i++) data(id, new Uint8Array(0));
    expect(chunks).toHaveLength(0);
    expect(controls()).toEqual([]);
    expect(stream.receiveWindow).toBe(64);
    expect(session.stats().emptyDataFrames).toBe(8);
  });

  it('on the backend role, end() sends disconnect{normal} after the last DATA and ends the readable side', async () => {
    const { stream, sent, session } = acceptStream(64);
    stream.resume();
    const ended = new Promise((resolve) => stream.once('end', resolve));
    stream.end(randomBytes(40_000));
    await ended;
    expect(sent.map((m) => m[0])).toEqual([0x01, 0x01, 0x02]);
    expect(sent[2]!.toString()).toContain('"event":"disconnect"');
    expect(sent[2]!.toString()).toContain('"reason":"normal"');
    expect(session.streamCount).toBe(0);
    expect(stream.closeReason).toBe('normal');
  });

  it('on the hub role, end() is a half-close: nothing is sent and the response still arrives', async () => {
    const { session, sent, data, controls } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    stream.end(Buffer.from('request'));
    await new Promise((resolve) => stream.once('finish', resolve));
    expect(controls().map((c) => c.event)).toEqual(['connect']);
    expect(sent).toHaveLength(2);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    data(stream.id, Buffer.from('response'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(chunks).toString()).toBe('response');
    expect(session.streamCount).toBe(1);
  });

  it('disconnect() sends disconnect only after writes held by credits have gone out', () => {
    const { session, control, sent, dataFrames } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    control({ event: 'resume_stream', client_id: stream.id, credits: 1 });
    stream.write(randomBytes(70_000));
    stream.disconnect('normal');
    expect(dataFrames()).toHaveLength(1);
    expect(sent.at(-1)![0]).toBe(0x01);
    control({ event: 'resume_stream', client_id: stream.id, credits: 8 });
    return new Promise<void>((resolve) => {
      setImmediate(() => {
        expect(dataFrames()).toHaveLength(3);
        expect(sent.at(-1)!.toString()).toContain('"event":"disconnect"');
        expect(session.streamCount).toBe(0);
        resolve();
      });
    });
  });

  it('destroy() sends disconnect with reason normal, or local_error with an error', () => {
    const { session, controls } = createFakeSession({ role: 'hub' });
    const a = session.openStream(OPEN);
    const b = session.openStream(OPEN);
    b.on('error', () => {});
    a.destroy();
    b.destroy(new Error('socket reset'));
    const disconnects = controls().filter((c) => c.event === 'disconnect');
    expect(disconnects).toEqual([
      { event: 'disconnect', client_id: a.id, reason: 'normal' },
      { event: 'disconnect', client_id: b.id, reason: 'local_error' },
    ]);
    expect(b.closeReason).toBe('local_error');
    expect(session.streamCount).toBe(0);
  });

  it('delivers everything received before a remote disconnect, then EOF, and discards later writes', async () => {
    const { session, data, control, dataFrames } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    data(stream.id, Buffer.from('last '));
    data(stream.id, Buffer.from('bytes'));
    control({ event: 'disconnect', client_id: stream.id, reason: 'dial_failed' });
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    await new Promise((resolve) => stream.once('end', resolve));
    expect(Buffer.concat(chunks).toString()).toBe('last bytes');
    expect(stream.closeReason).toBe('dial_failed');
    expect(stream.bytesRead).toBe(10);
    const before = dataFrames().length;
    await new Promise<void>((resolve, reject) => stream.write('ignored', (e) => (e ? reject(e) : resolve())));
    expect(dataFrames().length).toBe(before);
  });

  it('releases a write held by credits when the peer disconnects', async () => {
    const { session, control } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    control({ event: 'resume_stream', client_id: stream.id, credits: 1 });
    const written = new Promise<void>((resolve, reject) =>
      stream.write(randomBytes(100_000), (e) => (e ? reject(e) : resolve())),
    );
    control({ event: 'disconnect', client_id: stream.id });
    await written;
    expect(stream.bytesWritten).toBe(32_768);
  });
});
