import { request as httpRequest } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import type { BackendClient } from '@nexus-proxy/backend-client';
import type { Nexus } from '@nexus-proxy/core';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeReadiness } from '../src/status.js';
import { type RunningNode, serve } from '../src/serve.js';
import { VERSION } from '../src/version.js';
import { echoSizeService, startService, waitUntil } from '@nexus-proxy/test-harness';
import {
  adminGet,
  backend,
  createWorkdir,
  SECRET_A,
  type ServeChild,
  spawnServe,
  token,
  type Workdir,
  writeNodeConfig,
} from './_ops-helpers.js';

describe('nodeReadiness', () => {
  const fake = (acmeState?: string, discovery?: { state: string; reason?: string }) =>
    ({
      acme: acmeState === undefined ? undefined : { status: () => ({ state: acmeState }) },
      discovery: discovery === undefined ? undefined : { status: () => discovery },
    }) as unknown as Nexus;

  it('is ready once listening, and not while starting or draining', () => {
    expect(nodeReadiness(fake(), { listening: true, draining: false })).toEqual({ ready: true, reasons: [] });
    expect(nodeReadiness(fake(), { listening: false, draining: false })).toEqual({
      ready: false,
      reasons: ['starting'],
    });
    expect(nodeReadiness(fake(), { listening: true, draining: true }).reasons).toEqual(['draining']);
  });

  it('in ACME mode, is not ready while the temporary certificate is served', () => {
    expect(nodeReadiness(fake('temporary'), { listening: true, draining: false })).toEqual({
      ready: false,
      reasons: ['temporary-certificate'],
    });
    expect(nodeReadiness(fake('valid'), { listening: true, draining: false }).ready).toBe(true);
  });

  it('stays ready but says degraded while route discovery keeps the last known routes', () => {
    const up = { listening: true, draining: false };
    expect(nodeReadiness(fake(undefined, { state: 'degraded', reason: 'NATS connection lost' }), up)).toEqual(
      {
        ready: true,
        reasons: [],
        degraded: ['discovery: NATS connection lost'],
      },
    );
    expect(nodeReadiness(fake(undefined, { state: 'connected' }), up)).toEqual({ ready: true, reasons: [] });
  });
});

describe('admin listener', () => {
  let work: Workdir | undefined;
  let node: RunningNode | undefined;
  afterEach(async () => {
    await node?.close();
    node = undefined;
    work?.remove();
    work = undefined;
  });

  const start = async (admin?: string, extra: Record<string, unknown> = {}) => {
    work = await createWorkdir();
    node = await serve({
      config: writeNodeConfig(work, extra),
      admin,
      handleSignals: false,
      logLevel: 'silent',
      graceMs: 300,
    });
    return node;
  };

  it('is off unless configured', async () => {
    const n = await start();
    expect(n.adminAddress).toBeUndefined();
  });

  it('takes its address from the configuration, or from --admin (a bare port means 127.0.0.1)', async () => {
    const n = await start(undefined, { admin: '127.0.0.1:0' });
    expect(n.adminAddress?.address).toBe('127.0.0.1');
    await n.close();
    const m = await start('0');
    expect(m.adminAddress?.address).toBe('127.0.0.1');
  });

  it('answers /healthz, /readyz, /metrics and /status; 404 elsewhere; 405 for other methods', async () => {
    const n = await start('127.0.0.1:0');
    const port = n.adminAddress!.port;
    expect(await adminGet(port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    const ready = await adminGet(port, '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ ready: true, reasons: [] });
    const metrics = await adminGet(port, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metrics.body).toContain('# TYPE nexus_backend_sessions gauge');
    const status = await adminGet(port, '/status');
    expect(status.type).toMatch(/^application\/json/);
    expect(JSON.parse(status.body)).toMatchObject({ version: VERSION, backends: [], draining: false });
    expect((await adminGet(port, '/nope')).status).toBe(404);
    const post = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/metrics', method: 'POST' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(post).toBe(405);
  });

  it('answers /readyz 503 while draining, /healthz 200 until the end', async () => {
    const n = await start('127.0.0.1:0');
    const service = await startService(() => {}); // holds every stream open
    const client = backend(
      n.addresses.hub.port,
      work!.ca.certPem,
      await token(SECRET_A, ['held.test']),
      service.port,
    );
    try {
      await waitUntil(() => n.nexus.hub.sessions.length === 1, 10_000, 'the backend');
      const httpPort = n.addresses.listeners.find((l) => l.mode === 'http')!.address.port;
      const user = netConnect({ host: '127.0.0.1', port: httpPort });
      user.on('error', () => {});
      user.write('GET / HTTP/1.1\r\nHost: held.test\r\n\r\n');
      await waitUntil(() => n.nexus.activeStreams === 1, 10_000, 'the stream');
      const closing = n.close();
      const port = n.adminAddress!.port;
      const ready = await adminGet(port, '/readyz');
      expect(ready.status).toBe(503);
      expect(JSON.parse(ready.body).reasons).toContain('draining');
      expect((await adminGet(port, '/healthz')).status).toBe(200);
      await closing; // the held stream is cut after the 300 ms grace
      expect(n.nexus.activeStreams).toBe(0);
      user.destroy();
    } finally {
      await client.close();
      await service.close();
    }
  });
});

describe('nexus-proxy serve: SIGTERM drain', () => {
  let work: Workdir | undefined;
  let node: ServeChild | undefined;
  const clients: BackendClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    node?.kill();
    if (node !== undefined) await node.exited;
    node = undefined;
    work?.remove();
    work = undefined;
  });

  it('stops accepting, lets a stream finish within the grace period, cuts one that outlasts it, exits 0', async () => {
    work = await createWorkdir();
    // `/slow` answers 400 ms after the request; `/never` sends a little and never ends.
    const service = await startService((socket) => {
      socket.setEncoding('latin1');
      socket.once('data', (head: string) => {
        if (head.startsWith('GET /slow')) {
          setTimeout(() => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone'), 400);
        } else if (head.startsWith('GET /never')) {
          socket.write('HTTP/1.1 200 OK\r\n\r\npartial');
        } else {
          echoSizeService(socket);
        }
      });
    });
    try {
      node = await spawnServe(['-c', writeNodeConfig(work, { admin: '127.0.0.1:0' }), '--grace', '1500']);
      clients.push(backend(node.hubPort, work.ca.certPem, await token(SECRET_A, ['app.test']), service.port));
      await waitUntil(
        async () => JSON.parse((await adminGet(node!.adminPort!, '/status')).body).backends.length === 1,
        10_000,
        'the backend',
      );
      const open = (path: string) => {
        const socket: Socket = netConnect({ host: '127.0.0.1', port: node!.httpPort });
        let data = '';
        socket.setEncoding('latin1');
        socket.on('data', (c: string) => {
          data += c;
        });
        socket.on('error', () => {});
        const ended = new Promise<{ data: string; at: number }>((r) =>
          socket.on('close', () => r({ data, at: Date.now() })),
        );
        socket.write(`GET ${path} HTTP/1.1\r\nHost: app.test\r\n\r\n`);
        return ended;
      };
      const slow = open('/slow');
      const never = open('/never');
      await waitUntil(
        async () => JSON.parse((await adminGet(node!.adminPort!, '/status')).body).streams.open === 2,
        10_000,
        'two open streams',
      );
      const signalledAt = Date.now();
      node.child.kill('SIGTERM');
      await node.waitFor((l) => l.msg === 'draining relayed streams');
      // Draining: not ready, and no new end users are accepted.
      expect((await adminGet(node.adminPort!, '/readyz')).status).toBe(503);
      const refused = await new Promise<boolean>((resolve) => {
        const s = netConnect({ host: '127.0.0.1', port: node!.httpPort });
        s.on('error', () => resolve(true));
        s.on('connect', () => {
          s.destroy();
          resolve(false);
        });
      });
      expect(refused).toBe(true);

      const done = await slow;
      expect(done.data).toMatch(/done$/);
      expect(done.at - signalledAt).toBeLessThan(1_400);
      const cut = await never;
      expect(cut.data).toMatch(/partial$/);
      expect(cut.at - signalledAt).toBeGreaterThanOrEqual(1_400);
      expect(await node.exited).toBe(0);
      const closes = node.lines.filter((l) => l.msg === 'stream closed');
      expect(closes.map((l) => l.reason).sort()).toEqual(['completed', 'shutdown']);
      expect(node.lines.some((l) => l.msg === 'nexus closed')).toBe(true);
    } finally {
      await service.close();
    }
  });
});
