/**
 * Datagram streams (`transport: "udp"`, docs/protocol.md §1.5, §2.4): one write is one DATA frame, the hub
 * never waits for the backend's credits, received datagrams never pause the transport, and a datagram
 * that cannot be queued is dropped instead of waited for.
 */
import { describe, expect, it } from 'vitest';
import { type MuxStream, TunnelSession } from '../src/index.js';
import { createFakeSession } from './suites/fake-transport.js';

const UDP = {
  connPort: 5353,
  clientIp: '203.0.113.7:50000',
  hostname: 'udp:5353',
  isTls: false,
  transport: 'udp' as const,
};

function datagram(i: number, size = 100): Buffer {
  const b = Buffer.alloc(size, i & 0xff);
  b.writeUInt32BE(i, 0);
  return b;
}

describe('datagram streams, hub role', () => {
  it('sends one frame per datagram, never joined, although writes queue behind a full transport', () => {
    const fake = createFakeSession({ role: 'hub' });
    const stream = fake.session.openStream(UDP);
    expect(stream.datagram).toBe(true);
    fake.setBuffered(2 * 1024 * 1024); // over the transport's high-water mark: frames wait
    for (let i = 0; i < 10; i++) expect(stream.sendDatagram(datagram(i))).toBe(true);
    expect(fake.dataFrames()).toHaveLength(0);
    fake.setBuffered(0);
    fake.session.transportDrained();
    const frames = fake.dataFrames();
    expect(frames.map((f) => f.payload.length)).toEqual(Array(10).fill(100));
    expect(frames.map((f) => f.payload.readUInt32BE(0))).toEqual([...Array(10).keys()]);
  });

  it('is not metered by the backend credits: a grant of 64 and none after still lets thousands through', () => {
    const fake = createFakeSession({ role: 'hub' });
    const stream = fake.session.openStream(UDP);
    // What the reference backend does for UDP: one grant, never replenished.
    fake.control({ event: 'resume_stream', client_id: stream.id, credits: 64 });
    for (let i = 0; i < 5_000; i++) expect(stream.sendDatagram(datagram(i, 40))).toBe(true);
    expect(fake.dataFrames()).toHaveLength(5_000);
  });

  it('drops (returns false) once the datagrams waiting for the transport fill the high-water mark', () => {
    const fake = createFakeSession({ role: 'hub', streamHighWaterMark: 1_000 });
    const stream = fake.session.openStream(UDP);
    fake.setBuffered(2 * 1024 * 1024);
    const accepted = Array.from({ length: 50 }, (_, i) => stream.sendDatagram(datagram(i)));
    // 1 000 bytes of 100-byte datagrams are queued; the rest are refused at once.
    expect(accepted.filter(Boolean)).toHaveLength(10);
    expect(accepted.slice(10).every((a) => !a)).toBe(true);
    expect(stream.sendDatagram(Buffer.alloc(0))).toBe(false);
    expect(stream.sendDatagram(Buffer.alloc(32_769))).toBe(false);
  });

  it('grants back what it receives once the backend granted, and never pauses the transport', () => {
    const fake = createFakeSession({ role: 'hub', streamHighWaterMark: 1_000 });
    const stream = fake.session.openStream(UDP);
    fake.control({ event: 'resume_stream', client_id: stream.id, credits: 64 });
    fake.clear();
    // Nobody reads the stream: the reader fills at 1 000 bytes, the rest is dropped, credits still flow.
    for (let i = 0; i < 64; i++) fake.data(stream.id, datagram(i));
    expect(stream.datagramsDropped).toBe(54);
    expect(stream.readableLength).toBe(1_000);
    expect(fake.pauses).toBe(0);
    const granted = fake
      .controls()
      .filter((c) => c.event === 'resume_stream')
      .reduce((n, c) => n + ((c as { credits?: number }).credits ?? 0), 0);
    expect(granted).toBe(64);
    // The backend stays within its window, so more datagrams are no over-send.
    for (let i = 0; i < 64; i++) fake.data(stream.id, datagram(i));
    expect(stream.destroyed).toBe(false);
  });

  it('delivers each received frame as one chunk', async () => {
    const fake = createFakeSession({ role: 'hub' });
    const stream = fake.session.openStream(UDP);
    fake.control({ event: 'resume_stream', client_id: stream.id, credits: 64 });
    const got: number[] = [];
    stream.on('data', (chunk: Buffer) => got.push(chunk.length));
    for (let i = 1; i <= 20; i++) fake.data(stream.id, datagram(i, i * 10));
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => (i + 1) * 10));
  });
});

describe('datagram streams, backend role', () => {
  it('meters what it sends by the hub credits and drops, never waits, once they run out', () => {
    const fake = createFakeSession({ role: 'backend' });
    let stream: MuxStream | undefined;
    fake.session.on('stream', (s) => {
      stream = s;
    });
    const id = '6f1c2b9a-3d4e-4f50-8a61-7b8c9d0e1f23';
    fake.control({
      event: 'connect',
      client_id: id,
      conn_port: 5353,
      client_ip: '203.0.113.7:50000',
      hostname: 'udp:5353',
      is_tls: false,
      transport: 'udp',
      credits: 8,
    });
    expect(stream?.datagram).toBe(true);
    // Its own window goes out first, as for TCP.
    expect(fake.controls().at(-1)).toEqual({ event: 'resume_stream', client_id: id, credits: 64 });
    let accepted = 0;
    for (let i = 0; i < 1_000; i++) if (stream!.sendDatagram(datagram(i))) accepted++;
    expect(fake.dataFrames()).toHaveLength(8);
    // Queued behind the credits up to the stream's high-water mark (64 KiB), the rest dropped.
    expect(accepted).toBe(8 + Math.floor((64 * 1024) / 100));
    fake.control({ event: 'resume_stream', client_id: id, credits: 8 });
    expect(fake.dataFrames()).toHaveLength(16);
  });
});

describe('datagram tunnels', () => {
  function pair() {
    const links: { a?: TunnelSession; b?: TunnelSession } = {};
    const texts: string[] = [];
    const binaries: Uint8Array[] = [];
    const make = (deliver: (m: Uint8Array) => void) =>
      new TunnelSession({
        transport: {
          bufferedAmount: 0,
          sendBinary: (m) => {
            binaries.push(m);
            deliver(m);
          },
          sendText: (t) => texts.push(t),
          pause: () => {
            throw new Error('a datagram tunnel must never pause the link');
          },
          resume: () => {},
        },
        streamHighWaterMark: 1_000,
      });
    links.a = make((m) => links.b!.receive(m));
    links.b = make((m) => links.a!.receive(m));
    return { a: links.a, b: links.b, texts, binaries };
  }

  it('sends tunnel_request with transport udp and no credits, one 0x11 per datagram', () => {
    const { a, b, texts, binaries } = pair();
    const origin = a.open(UDP)!;
    expect(origin.datagram).toBe(true);
    const request = JSON.parse(texts[0]!);
    expect(request).toMatchObject({ type: 'tunnel_request', transport: 'udp', hostname: 'udp:5353' });
    expect(binaries).toHaveLength(0); // no 0x15
    const destination = b.accept(request)!;
    expect(destination.datagram).toBe(true);
    expect(destination.connect.transport).toBe('udp');
    expect(binaries).toHaveLength(0);
    // Nobody reads the destination: 10 datagrams fit its reader, the other 990 are dropped there.
    for (let i = 0; i < 1_000; i++) expect(origin.sendDatagram(datagram(i))).toBe(true);
    expect(binaries.filter((m) => m[0] === 0x11)).toHaveLength(1_000);
    expect(destination.datagramsDropped).toBe(990);
    expect(binaries.some((m) => m[0] === 0x15)).toBe(false);
  });
});
