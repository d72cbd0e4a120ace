import { createServer } from 'node:net';
import { connect as netConnect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createProgram } from '../src/program.js';
import { serve } from '../src/serve.js';
import { VERSION } from '../src/version.js';
import { formatStatus, formatTable, parseAdminAddress, type StatusSnapshot } from '../src/status.js';
import { startService, waitUntil } from '@nexus-proxy/test-harness';
import { backend, createWorkdir, SECRET_A, token, writeNodeConfig, LiveNodeFixture } from './_ops-helpers.js';

async function run(args: string[]): Promise<string> {
  const lines: string[] = [];
  await createProgram({ out: (t) => lines.push(t) })
    .exitOverride()
    .parseAsync(['node', 'nexus-proxy', ...args]);
  return lines.join('\n');
}

const SNAPSHOT: StatusSnapshot = {
  version: '0.1.0',
  startedAt: '2026-01-01T00:00:00.000Z',
  uptimeSeconds: 3_725,
  readiness: { ready: false, reasons: ['draining'] },
  draining: true,
  certificate: {
    subject: 'CN=hub.example.com',
    issuer: 'CN=CA',
    serialNumber: '01',
    notAfter: '2026-03-01T00:00:00.000Z',
    temporary: false,
  },
  backends: [
    {
      id: 'b1',
      hostnames: ['app.example.com', '*.example.org'],
      weight: 2,
      streams: 1,
      connectedAt: '2026-01-01T00:00:00.000Z',
    },
  ],
  routes: [
    { pattern: 'app.example.com', kind: 'local', targets: 1 },
    { pattern: 'far.example.net', kind: 'peer', targets: 2 },
  ],
  peers: [
    {
      linkId: 'out-1',
      peer: 'wss://peer.example.net:8444/mesh',
      direction: 'outbound',
      openedAt: '2026-01-01T00:00:30.000Z',
      routes: 1,
      tunnels: 0,
    },
  ],
  dialedPeers: [
    { url: 'wss://peer.example.net:8444/mesh', connected: true },
    { url: 'wss://down.example.net:8444/mesh', connected: false },
  ],
  streams: {
    open: 2,
    list: [
      {
        id: 's1',
        hostname: 'app.example.com',
        route: 'app.example.com',
        port: 443,
        tls: true,
        via: 'local',
        ageSeconds: 75,
      },
    ],
  },
  totals: {
    streamsOpened: 5,
    streamsClosed: 3,
    bytesUp: 10,
    bytesDown: 20,
    routeMisses: 1,
    sniffFailures: 2,
    authFailures: 0,
  },
};

describe('formatStatus', () => {
  it('prints a summary and one aligned table per section', () => {
    const text = formatStatus(SNAPSHOT, Date.parse('2026-01-01T00:01:00.000Z'));
    expect(text).toContain('Nexus 0.1.0: not ready (draining), up 1h2m');
    expect(text).toContain('Hub certificate: CN=hub.example.com, expires 2026-03-01T00:00:00.000Z');
    expect(text).toContain('Streams: 2 open, 5 opened, 3 closed, 10 B up, 20 B down; route misses 1');
    const lines = text.split('\n');
    const header = lines.indexOf('Backends (1)') + 1;
    expect(lines[header]).toBe('ID  HOSTNAMES                      WEIGHT  STREAMS  CONNECTED');
    expect(lines[header + 1]).toBe('b1  app.example.com,*.example.org  2       1        1m0s');
    expect(text).toContain('far.example.net  peer   2');
    expect(text).toContain('out-1  wss://peer.example.net:8444/mesh  outbound   1       0        30s');
    expect(text).toContain('Dialling, not connected: wss://down.example.net:8444/mesh');
    expect(text).toContain('s1  app.example.com  app.example.com  443   tls   local  1m15s');
    expect(text).toContain('… 1 more');
  });

  it('formatTable pads every column but the last', () => {
    expect(
      formatTable(
        ['A', 'BB'],
        [
          ['xxx', 'y'],
          ['z', ''],
        ],
      ),
    ).toBe('A    BB\nxxx  y\nz');
  });
});

describe('parseAdminAddress', () => {
  it('reads a bare port as loopback and keeps explicit hosts', () => {
    expect(parseAdminAddress('9090')).toEqual({ host: '127.0.0.1', port: 9090 });
    expect(parseAdminAddress('[::1]:9091')).toEqual({ host: '::1', port: 9091 });
    expect(parseAdminAddress(':9092')).toEqual({ host: undefined, port: 9092 });
    expect(() => parseAdminAddress('nope:x')).toThrow(/--admin/);
  });
});

describe('nexus-proxy status', () => {
  const f = new LiveNodeFixture();
  afterEach(() => f.reset());

  it("prints a live node's backends, routes and open streams, without addresses", async () => {
    f.work = await createWorkdir();
    const held: Socket[] = [];
    const service = await startService((s) => held.push(s));
    const user: Socket[] = [];
    try {
      f.node = await serve({
        config: writeNodeConfig(f.work),
        admin: '127.0.0.1:0',
        handleSignals: false,
        logLevel: 'silent',
        graceMs: 0,
      });
      const n = f.node;
      f.clients.push(
        backend(
          n.addresses.hub.port,
          f.work.ca.certPem,
          await token(SECRET_A, ['shop.test', '*.apps.test']),
          service.port,
        ),
      );
      await waitUntil(() => n.nexus.hub.sessions.length === 1, 10_000, 'the backend');
      const httpPort = n.addresses.listeners.find((l) => l.mode === 'http')!.address.port;
      const s = netConnect({ host: '127.0.0.1', port: httpPort });
      s.on('error', () => {});
      user.push(s);
      s.write('GET / HTTP/1.1\r\nHost: one.apps.test\r\n\r\n');
      await waitUntil(() => held.length === 1, 10_000, 'the relayed stream');

      const admin = `127.0.0.1:${n.adminAddress!.port}`;
      const text = await run(['status', '--admin', admin]);
      const session = n.nexus.hub.sessions[0]!;
      expect(text).toMatch(new RegExp(`^Nexus ${VERSION.replaceAll('.', '\\.')}: ready, up \\d+s$`, 'm'));
      expect(text).toContain('Backends (1)');
      expect(text).toMatch(
        new RegExp(`^${session.id}\\s+shop\\.test,\\*\\.apps\\.test\\s+1\\s+1\\s+\\d+s$`, 'm'),
      );
      expect(text).toContain('Routes (2)');
      expect(text).toMatch(/^\*\.apps\.test\s+local\s+1$/m);
      expect(text).toMatch(/^shop\.test\s+local\s+1$/m);
      expect(text).toContain('Peers (0)');
      expect(text).toContain('Streams (1)');
      expect(text).toMatch(
        new RegExp(`one\\.apps\\.test\\s+\\*\\.apps\\.test\\s+${httpPort}\\s+http\\s+local\\s+\\d+s$`, 'm'),
      );
      expect(text).not.toContain('127.0.0.1');

      const json = JSON.parse(await run(['status', '--admin', admin, '--json'])) as StatusSnapshot;
      expect(json.streams.open).toBe(1);
      expect(json.backends[0]?.hostnames).toEqual(['shop.test', '*.apps.test']);
      expect(json.backends[0]?.era).toBe('seed');
      // On loopback no window grows (docs/protocol.md §1.5): the field is there, at 0.
      expect(json.backends[0]?.windowGrowthPeakBytes).toBe(0);
      expect(json.backends[0]).not.toHaveProperty('claims');
      expect(JSON.stringify(json)).not.toContain('127.0.0.1');
    } finally {
      for (const s of user) s.destroy();
      await service.close();
    }
  });

  it('fails with a clear message when nothing listens there', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    await expect(run(['status', '--admin', `127.0.0.1:${port}`])).rejects.toThrow(
      /cannot reach the admin listener at 127\.0\.0\.1:\d+/,
    );
    await expect(run(['status', '--admin', `127.0.0.1:${port}`])).rejects.toMatchObject({
      code: 'NEXUS_ERR_ADMIN_UNREACHABLE',
    });
  });
});
