import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  attachMuxBackend,
  createTestPki,
  startNode,
  type TestNode,
  waitUntil,
} from '@nexus-proxy/test-harness';

// About 10 s on an idle 2-core machine; generous for a loaded CI runner.
vi.setConfig({ testTimeout: 180_000 });

/** Bytes per direction and path. 300 MB in the normal run (docs/reliability.md item 1 through a tunnel). */
const SIZE = 300 * 1024 * 1024;
const CHUNK = 256 * 1024;

let a: TestNode;
let c: TestNode;
let service: Server;
const serviceSockets = new Set<Socket>();

/** A keystream (AES-256-CTR over zeros): every chunk differs, so reordering or loss changes the hash. */
function keystream(): (n: number) => Buffer {
  const cipher = createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16));
  const zeros = Buffer.alloc(CHUNK);
  return (n) => cipher.update(zeros.subarray(0, n));
}

/**
 * The service behind C. The request head names the test: `GET /down/<n>` sends n bytes and closes, then
 * reports nothing (the client hashes and compares with `sent`); `PUT /up/<n>` reads n bytes after the head
 * and answers with their SHA-256 in hex.
 */
const sent = new Map<string, string>();
function startService(): Promise<number> {
  service = createServer((socket) => {
    serviceSockets.add(socket);
    socket.once('close', () => serviceSockets.delete(socket));
    socket.on('error', () => {});
    let head = Buffer.alloc(0);
    const onHead = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onHead);
      const [method, path] = head.subarray(0, end).toString().split(' ') as [string, string];
      const [, mode, size, tag] = path.split('/') as [string, string, string, string];
      const n = Number(size);
      const rest = head.subarray(end + 4);
      if (method === 'GET' && mode === 'down') {
        const next = keystream();
        const hash = createHash('sha256');
        let left = n;
        const pump = (): void => {
          while (left > 0) {
            const chunk = next(Math.min(CHUNK, left));
            left -= chunk.length;
            hash.update(chunk);
            if (!socket.write(chunk)) {
              socket.once('drain', pump);
              return;
            }
          }
          sent.set(tag, hash.digest('hex'));
          socket.end();
        };
        pump();
      } else {
        const hash = createHash('sha256');
        let got = 0;
        const onData = (d: Buffer): void => {
          hash.update(d);
          got += d.length;
          if (got >= n) {
            socket.off('data', onData);
            socket.end(hash.digest('hex'));
          }
        };
        socket.on('data', onData);
        if (rest.length > 0) onData(rest);
      }
    };
    socket.on('data', onHead);
  });
  service.listen(0, '127.0.0.1');
  return once(service, 'listening').then(() => (service.address() as AddressInfo).port);
}

async function download(port: number, tag: string): Promise<{ ok: boolean; seconds: number }> {
  const started = process.hrtime.bigint();
  const socket = netConnect(port, '127.0.0.1');
  socket.write(`GET /down/${SIZE}/${tag} HTTP/1.1\r\nHost: big.example.com\r\n\r\n`);
  const hash = createHash('sha256');
  let bytes = 0;
  socket.on('data', (d: Buffer) => {
    hash.update(d);
    bytes += d.length;
  });
  await once(socket, 'close');
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { ok: bytes === SIZE && hash.digest('hex') === sent.get(tag), seconds };
}

async function upload(port: number): Promise<{ ok: boolean; seconds: number }> {
  const started = process.hrtime.bigint();
  const socket = netConnect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.write(`PUT /up/${SIZE}/x HTTP/1.1\r\nHost: big.example.com\r\n\r\n`);
  const next = keystream();
  const hash = createHash('sha256');
  let left = SIZE;
  const reply: Buffer[] = [];
  socket.on('data', (d: Buffer) => reply.push(d));
  const closed = once(socket, 'close');
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (left > 0) {
        const chunk = next(Math.min(CHUNK, left));
        left -= chunk.length;
        hash.update(chunk);
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
      resolve();
    };
    pump();
  });
  // Half-close after the upload: the digest must still come back (docs/reliability.md item 6).
  socket.end();
  await closed;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { ok: Buffer.concat(reply).toString() === hash.digest('hex'), seconds };
}

beforeAll(async () => {
  const pki = await createTestPki();
  a = await startNode({ pki, name: 'a' });
  c = await startNode({ pki, name: 'c', peers: [a.meshUrl] });
  await attachMuxBackend(pki, c, ['big.example.com'], await startService());
  await waitUntil(() => a.routes.lookup('big.example.com')?.kind === 'peer', 5_000, 'route at A');
});

afterAll(async () => {
  await a?.close();
  await c?.close();
  for (const s of serviceSockets) s.destroy();
  await new Promise<void>((r) => (service ? service.close(() => r()) : r()));
});

describe('PeerMesh large transfers (300 MB, SHA-256)', () => {
  it('downloads and uploads 300 MB through a tunnel and directly, byte for byte', async () => {
    const tunnelDown = await download(a.httpPort, 'tunnel');
    const directDown = await download(c.httpPort, 'direct');
    const tunnelUp = await upload(a.httpPort);
    const directUp = await upload(c.httpPort);
    expect({
      tunnelDown: tunnelDown.ok,
      directDown: directDown.ok,
      tunnelUp: tunnelUp.ok,
      directUp: directUp.ok,
    }).toEqual({
      tunnelDown: true,
      directDown: true,
      tunnelUp: true,
      directUp: true,
    });
    const mbps = (r: { seconds: number }) => SIZE / 1048576 / r.seconds;
    console.log(
      `mesh throughput (300 MiB each): download tunnel ${mbps(tunnelDown).toFixed(0)} MiB/s vs direct ${mbps(directDown).toFixed(0)} MiB/s (${((100 * mbps(tunnelDown)) / mbps(directDown)).toFixed(0)} %); upload tunnel ${mbps(tunnelUp).toFixed(0)} MiB/s vs direct ${mbps(directUp).toFixed(0)} MiB/s (${((100 * mbps(tunnelUp)) / mbps(directUp)).toFixed(0)} %)`,
    );
    // Every tunnel ended and was forgotten on both sides.
    await waitUntil(
      () => a.mesh.links().every((l) => l.tunnels.tunnels === 0),
      5_000,
      'tunnels to be released',
    );
    expect(c.mesh.links().reduce((n, l) => n + l.tunnels.accepted, 0)).toBe(2);
  });
});
