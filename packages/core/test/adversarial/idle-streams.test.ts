/**
 * Attack 7: idle connections fill a hostname. One address opening 1 024 connections that send a request
 * and then sit idle used to take every stream of the backend's session (`maxStreamsPerSession` 1 024), so
 * nobody else reached that hostname. With default settings one address holds at most 256 connections
 * (`maxConnectionsPerIp`), idle relayed connections end after 900 s, and relayed sockets use TCP
 * keepalive.
 */
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import {
  createTestPki,
  httpGet,
  onHttpRequest,
  startNode,
  startService,
  type TestPki,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { resolveNexusConfig } from '../../src/config.js';

const ATTACKER = '127.0.0.2';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('attack: 1 024 idle connections to one hostname (default settings)', () => {
  it('holds at most 256 from one address; a user from another address is still served', async () => {
    // The service answers `/real` and holds every other request open without a byte.
    const service = await startService((socket) =>
      onHttpRequest(socket, (head) => {
        if (head.startsWith('GET /real ')) socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }),
    );
    const node = await startNode({ pki, listeners: ['http'] });
    cleanups.push(
      () => service.close(),
      () => node.close(),
    );
    await node.attachBackend({ hostnames: ['app.example.com'], service: service.port });
    const sockets: Socket[] = [];
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
    });
    for (let i = 0; i < 1_024; i += 128) {
      await Promise.all(
        Array.from({ length: 128 }, async () => {
          const s = netConnect({ host: '127.0.0.1', port: node.httpPort, localAddress: ATTACKER });
          s.on('error', () => {});
          sockets.push(s);
          await once(s, 'connect');
          s.write('GET /idle HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
        }),
      );
    }
    await expect
      .poll(() => node.events.sniffFailed.filter((e) => e.reason === 'ip-limit').length, { timeout: 15_000 })
      .toBe(768);
    await expect.poll(() => node.nexus.activeStreams, { timeout: 15_000 }).toBe(256);
    const started = Date.now();
    expect(await httpGet(node.httpPort, 'app.example.com', '/real')).toMatch(/\r\n\r\nok$/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('closes idle relayed connections after 900 s by default', () => {
    const config = resolveNexusConfig({
      backendsJWTSecret: 'x'.repeat(40),
      hubTlsCertFile: 'c',
      hubTlsKeyFile: 'k',
    });
    expect(config.idleTimeoutMs).toBe(900_000);
    expect(config.limits.maxConnectionsPerIp).toBe(256);
  });
});
