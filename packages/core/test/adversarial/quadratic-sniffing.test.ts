/**
 * Attack: quadratic sniffing. A client that sends a 64 KiB request head one byte per TCP segment used to
 * make the node re-concatenate and re-scan everything read so far on every read. Over a real loopback
 * socket, the work sniffing reports (bytes copied and looked at) must stay linear in the bytes sent.
 */
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type SniffResult, sniffConnection } from '../../src/sniff-connection.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A server that sniffs its first connection with `mode`, and a client socket connected to it. */
async function sniffOne(mode: 'tls' | 'http'): Promise<{ client: Socket; result: Promise<SniffResult> }> {
  let resolve!: (r: SniffResult) => void;
  const result = new Promise<SniffResult>((r) => {
    resolve = r;
  });
  const server = createServer((socket) => {
    socket.on('error', () => {});
    void sniffConnection(socket, { mode }).then(resolve);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  client.setNoDelay(true);
  client.on('error', () => {});
  await once(client, 'connect');
  return { client, result };
}

/** Writes `bytes` one byte per write, letting the event loop turn between writes. */
async function dribble(socket: Socket, bytes: Buffer): Promise<void> {
  for (let i = 0; i < bytes.length; i++) {
    socket.write(bytes.subarray(i, i + 1));
    await new Promise((r) => setImmediate(r));
  }
}

describe('attack: quadratic sniffing', () => {
  it('sniffs a 64 KiB HTTP head sent in 1-byte segments with work linear in its size', async () => {
    let head = 'GET / HTTP/1.1\r\nHost: app.example.com\r\n';
    while (head.length < 64 * 1024 - 10) head += 'x-a: b\r\n';
    head = `${head}${'z'.repeat(64 * 1024 - head.length - 6)}: \r\n\r\n`;
    const bytes = Buffer.from(head, 'latin1');
    expect(bytes.length).toBe(64 * 1024);
    const { client, result } = await sniffOne('http');
    await dribble(client, bytes);
    const r = await result;
    client.destroy();
    expect(r.ok && r.sniffed.hostname).toBe('app.example.com');
    expect(r.ok && r.sniffed.prelude.length).toBe(bytes.length);
    // Many reads (the segments were not merged into a few), yet linear work: ≤ 8 visits per byte, where
    // re-scanning everything on every read would cost about reads × size / 2.
    expect(r.stats.reads).toBeGreaterThan(1_000);
    expect(r.stats.bytesExamined).toBeLessThanOrEqual(8 * bytes.length);
    console.info(
      `quadratic sniffing: 64 KiB head in ${r.stats.reads} reads, ${r.stats.bytesExamined} bytes examined (${(r.stats.bytesExamined / bytes.length).toFixed(1)} per byte)`,
    );
  });
});
