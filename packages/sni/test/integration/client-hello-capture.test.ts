import { createServer, type Server, type Socket } from 'node:net';
import { type ConnectionOptions, connect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { parseClientHello } from '../../src/index.js';
import { handshakeOf, referenceWireLength, toRecords } from '../helpers.js';

const openServers = new Set<Server>();
const openSockets = new Set<Socket>();

afterEach(async () => {
  for (const s of openSockets) s.destroy();
  openSockets.clear();
  await Promise.all([...openServers].map((s) => new Promise((resolve) => s.close(resolve))));
  openServers.clear();
});

/**
 * Starts a raw TCP server on 127.0.0.1 (port 0) that records what a Node TLS client sends until one
 * ClientHello is complete (by lengths alone), then hangs up without answering. Returns the bytes and the
 * chunks as they arrived.
 */
async function captureNodeClientHello(
  options: ConnectionOptions,
): Promise<{ bytes: Buffer; chunks: Buffer[] }> {
  const server = createServer();
  openServers.add(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const captured = new Promise<{ bytes: Buffer; chunks: Buffer[] }>((resolve, reject) => {
    server.once('connection', (socket) => {
      openSockets.add(socket);
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        const bytes = Buffer.concat(chunks);
        const len = referenceWireLength(bytes);
        if (len > 0) {
          socket.destroy();
          resolve({ bytes: bytes.subarray(0, len), chunks });
        }
      });
      socket.on('error', reject);
    });
  });
  const client = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
  openSockets.add(client);
  client.on('error', () => {
    // The capture server hangs up mid-handshake: an ECONNRESET/EOF here is expected.
  });
  return captured;
}

const CASES: { name: string; options: ConnectionOptions; serverName: string | undefined; alpn: string[] }[] =
  [
    {
      name: 'servername',
      options: { servername: 'api.example.test' },
      serverName: 'api.example.test',
      alpn: [],
    },
    {
      name: 'ALPN list',
      options: { servername: 'h2.example.test', ALPNProtocols: ['h2', 'http/1.1', 'acme-tls/1'] },
      serverName: 'h2.example.test',
      alpn: ['h2', 'http/1.1', 'acme-tls/1'],
    },
    {
      name: 'TLS 1.2 only',
      options: { servername: 'old.example.test', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' },
      serverName: 'old.example.test',
      alpn: [],
    },
    {
      name: 'TLS 1.3 only',
      options: { servername: 'new.example.test', minVersion: 'TLSv1.3', ALPNProtocols: ['http/1.1'] },
      serverName: 'new.example.test',
      alpn: ['http/1.1'],
    },
    // Node sends no SNI when servername is '' (and never for an IP address).
    { name: 'no servername', options: { servername: '' }, serverName: undefined, alpn: [] },
    {
      name: 'IDN servername (A-label)',
      options: { servername: 'xn--mnchen-3ya.example' },
      serverName: 'xn--mnchen-3ya.example',
      alpn: [],
    },
    {
      name: 'upper-case servername',
      options: { servername: 'MiXeD.Example.TEST' },
      serverName: 'mixed.example.test',
      alpn: [],
    },
  ];

describe('parseClientHello on ClientHellos from node:tls', () => {
  for (const c of CASES) {
    it(`extracts what the client offered: ${c.name}`, async () => {
      const { bytes, chunks } = await captureNodeClientHello(c.options);
      const r = parseClientHello(bytes);
      expect(r).toMatchObject({ kind: 'tls', alpn: c.alpn, length: bytes.length, ech: false });
      expect(r.kind === 'tls' && r.serverName).toBe(c.serverName ?? undefined);

      // As the bytes arrived on the wire: incomplete until the last chunk.
      let seen = 0;
      for (let i = 0; i < chunks.length - 1; i++) {
        seen += chunks[i]!.length;
        expect(parseClientHello(bytes.subarray(0, seen)).kind).toBe('incomplete');
      }
      // Every split point, and the same ClientHello re-split into 3-byte records.
      for (let cut = 0; cut < bytes.length; cut++) {
        expect(parseClientHello(bytes.subarray(0, cut)).kind).toBe('incomplete');
      }
      const resplit = toRecords(handshakeOf(bytes), 3, 0x0303);
      expect(parseClientHello(resplit)).toEqual({ ...r, length: resplit.length });
    });
  }
});
