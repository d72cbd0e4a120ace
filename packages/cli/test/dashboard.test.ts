/**
 * The admin listener's live dashboard: in headless Chromium (Debian's `chromium`, driven by
 * playwright-core; `NEXUS_CHROMIUM` names another binary) behind the login form, with a real node, a real
 * backend and a real end-user stream; and over plain HTTP for access and bounds.
 *
 * The screenshot in docs/dashboard.png comes from the browser test:
 *   NEXUS_DASHBOARD_SCREENSHOT=$PWD/../../docs/dashboard.png npx vitest run test/dashboard.test.ts
 * (by default it goes to the OS temp dir and is only checked to be a PNG).
 */
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { type BackendClient, createBackendClient } from '@nexus-proxy/backend-client';
import { startService, type TestService, waitUntil } from '@nexus-proxy/test-harness';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../src/admin-auth.js';
import type { DashboardOptions } from '../src/dashboard.js';
import { type RunningNode, serve } from '../src/serve.js';
import { backend, createWorkdir, SECRET_A, token, type Workdir, writeNodeConfig } from './_ops-helpers.js';

const ADMIN_TOKEN = 'dashboard-admin-token-0123456789';
const DOWN_PEER = 'wss://127.0.0.1:9/mesh';

/** The page's DOM, as far as the functions run in the page use it (this package compiles without `dom`). */
declare const document: {
  getElementById(id: string): { textContent: string | null } | null;
  querySelector(selector: string): { getAttribute(name: string): string | null } | null;
};

/** Debian's chromium on PATH (or `NEXUS_CHROMIUM`); .ci/run installs it. */
function findChromium(): string {
  if (process.env.NEXUS_CHROMIUM) return process.env.NEXUS_CHROMIUM;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {
        // not here
      }
    }
  }
  throw new Error('chromium not found on PATH (apt-get install chromium, or set NEXUS_CHROMIUM)');
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request to the admin listener; for `/events`, the first `eventBytes` of the stream. */
function ask(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; eventBytes?: number } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
          if (options.eventBytes !== undefined && body.length >= options.eventBytes) {
            res.destroy();
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const login = (port: number, given: string) =>
  ask(port, '/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: given }).toString(),
  });

describe('the dashboard in headless Chromium', () => {
  let work: Workdir;
  let node: RunningNode;
  let browser: Browser;
  let service: TestService;
  const clients: BackendClient[] = [];
  const users: Socket[] = [];

  beforeAll(async () => {
    work = await createWorkdir();
    node = await serve({
      config: writeNodeConfig(work, {
        admin: { address: '127.0.0.1:0', token: ADMIN_TOKEN },
        // A peer that never answers: the page lists it as not connected.
        peers: [DOWN_PEER],
        peerAuthentication: { trustedDomainSuffixes: ['mesh.dash.test'] },
        // A current-era backend may claim this TCP port: the page shows its claims.
        allowedTCPPortClaims: [2222],
      }),
      handleSignals: false,
      logLevel: 'silent',
      graceMs: 200,
      dashboard: { sampleMs: 300, pushIntervalMs: 500 },
    });
    // A service that answers each request with 16 KiB every 50 ms until the end user leaves.
    service = await startService((socket) => {
      socket.once('data', () => {
        const timer = setInterval(() => socket.write(Buffer.alloc(16 * 1024, 0x61)), 50);
        socket.on('close', () => clearInterval(timer));
      });
    });
    browser = await chromium.launch({ executablePath: findChromium(), args: ['--no-sandbox'] });
  }, 60_000);

  afterAll(async () => {
    for (const u of users) u.destroy();
    await browser?.close();
    for (const c of clients) await c.close();
    await node?.close();
    await service?.close();
    work?.remove();
  });

  it('asks for the token, then shows an attached backend and its hostname, and updates when a stream opens', async () => {
    const port = node.adminAddress!.port;
    const hubPort = node.addresses.hub.port;
    const httpPort = node.addresses.listeners.find((l) => l.mode === 'http')!.address.port;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));

    const first = await page.goto(`http://127.0.0.1:${port}/`);
    expect(first?.status()).toBe(401);
    await page.fill('#token', 'not-the-token');
    await page.click('button[type=submit]');
    await page.waitForSelector('text=Wrong token.');
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.waitForSelector('#live.ok');
    // The login page's own 401 answers are logged by the browser; from here on nothing may fail.
    problems.length = 0;
    expect(await page.textContent('#backends')).toContain('no backend attached');

    // A backend attaches: its hostname appears without a reload.
    clients.push(backend(hubPort, work.ca.certPem, await token(SECRET_A, ['app.dash.test']), service.port));
    clients.push(
      backend(
        hubPort,
        work.ca.certPem,
        await token(SECRET_A, ['api.dash.test', '*.preview.dash.test']),
        service.port,
      ),
    );
    await page.waitForFunction(() =>
      document.getElementById('backends')?.textContent?.includes('app.dash.test'),
    );
    // A current-era backend (attested handshake) with a TCP port claim: its claims appear.
    const device = createBackendClient({
      nodes: [`wss://127.0.0.1:${hubPort}/connect`],
      tls: { ca: work.ca.certPem },
      tokenProvider: { hmacSecret: SECRET_A },
      backend: { name: 'device-7', hostnames: ['device.dash.test'], tcpPorts: [2222] },
      connectHandler: () => netConnect({ host: '127.0.0.1', port: service.port }),
    });
    device.connect();
    clients.push(device);
    await page.waitForFunction(() => document.getElementById('backends')?.textContent?.includes('tcp 2222'));
    expect(await page.textContent('#backends')).toContain('device.dash.test');
    expect(await page.textContent('#backend-count')).toBe('3');
    expect(await page.textContent('#routes')).toContain('*.preview.dash.test');
    expect(await page.textContent('#open-streams')).toBe('0');

    // An end user opens a stream: the count and the stream table follow, and the chart gets traffic.
    for (const host of ['app.dash.test', 'api.dash.test']) {
      const user = netConnect({ host: '127.0.0.1', port: httpPort });
      user.on('error', () => {});
      user.on('data', () => {});
      user.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      users.push(user);
    }
    await page.waitForFunction(() => document.getElementById('open-streams')?.textContent === '2');
    expect(await page.textContent('#streams')).toContain('app.dash.test');
    await page.waitForFunction(
      () =>
        (document.querySelector('#chart polyline.s-down')?.getAttribute('points') ?? '').split(' ').length >=
        6,
      undefined,
      { timeout: 15_000 },
    );
    if (process.env.NEXUS_DASHBOARD_SCREENSHOT !== undefined) {
      // For the docs: a few more seconds of history, the second stream joining later.
      await new Promise((r) => setTimeout(r, 8_000));
    }
    expect(await page.textContent('#rate-now')).toMatch(/↓ [\d.]+ [kM]?B\/s/);
    expect(await page.textContent('#cert-days')).toMatch(/^\d+ days$/);
    expect(await page.textContent('#peers')).toContain(`${DOWN_PEER}outbound`);
    expect(await page.textContent('#peers')).toContain('not connected (dialling)');
    expect(await page.textContent('#peer-count')).toBe('0 / 1');

    const file =
      process.env.NEXUS_DASHBOARD_SCREENSHOT ??
      join(mkdtempSync(join(tmpdir(), 'nexus-dash-')), 'dashboard.png');
    await page.screenshot({ path: file, fullPage: true });
    const png = readFileSync(file);
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(
      true,
    );
    expect(png.readUInt32BE(16)).toBe(1280); // IHDR width
    if (process.env.NEXUS_DASHBOARD_SCREENSHOT === undefined) rmSync(join(file, '..'), { recursive: true });

    // The stream closes: the count goes back down.
    users.shift()!.destroy();
    await page.waitForFunction(() => document.getElementById('open-streams')?.textContent === '1');
    expect(problems).toEqual([]);
    await context.close();
  }, 60_000);
});

describe('the dashboard over HTTP: access and bounds', () => {
  let work: Workdir | undefined;
  let node: RunningNode | undefined;
  afterEach(async () => {
    await node?.close();
    node = undefined;
    work?.remove();
    work = undefined;
  });

  const start = async (admin: Record<string, unknown>, dashboard?: DashboardOptions) => {
    work = await createWorkdir();
    node = await serve({
      config: writeNodeConfig(work, { admin: { address: '127.0.0.1:0', ...admin } }),
      handleSignals: false,
      logLevel: 'silent',
      graceMs: 200,
      ...(dashboard !== undefined ? { dashboard } : {}),
    });
    return node.adminAddress!.port;
  };

  it('without a token, serves the page and the events to anyone who reaches the listener', async () => {
    const port = await start({});
    const page = await ask(port, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    // Inline script and style run only by the response's nonce; nothing else may load.
    const csp = String(page.headers['content-security-policy']);
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    expect(nonce).toBeDefined();
    expect(page.body).toContain(`<script nonce="${nonce}">`);
    expect(csp).toContain("default-src 'none'");
    expect(page.body).not.toMatch(/<script src|https?:\/\/(?!www\.w3\.org)/);
    const events = await ask(port, '/events', { eventBytes: 200 });
    expect(events.status).toBe(200);
    expect(events.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(events.body).toMatch(/^retry: 2000\n\nevent: history\ndata: \{"sampleMs":5000,"points":\[/);
  });

  it('with a token: the login form, a session cookie that is not the token, and bearer-only /status', async () => {
    const port = await start({ token: ADMIN_TOKEN });
    const page = await ask(port, '/');
    expect(page.status).toBe(401);
    expect(page.body).toContain('<form method="post" action="/login">');
    expect((await ask(port, '/events')).status).toBe(401);
    expect((await login(port, 'wrong')).status).toBe(401);

    const ok = await login(port, ADMIN_TOKEN);
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toBe('/');
    const setCookie = String(ok.headers['set-cookie']);
    expect(setCookie).toMatch(
      new RegExp(`^${SESSION_COOKIE}=[\\w-]{43}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200$`),
    );
    expect(setCookie).not.toContain(ADMIN_TOKEN);
    const cookie = setCookie.split(';')[0]!;
    expect((await ask(port, '/', { headers: { cookie } })).status).toBe(200);
    expect((await ask(port, '/events', { headers: { cookie }, eventBytes: 20 })).status).toBe(200);
    expect((await ask(port, '/', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(200);
    // The cookie opens the dashboard only.
    expect((await ask(port, '/status', { headers: { cookie } })).status).toBe(401);
    expect((await ask(port, '/', { headers: { cookie: `${SESSION_COOKIE}=forged` } })).status).toBe(401);
    const out = await ask(port, '/logout', { headers: { cookie } });
    expect(out.status).toBe(303);
    expect(String(out.headers['set-cookie'])).toContain('Max-Age=0');
  });

  it('limits failed logins, and reads no login body over 4 KiB', async () => {
    const port = await start({ token: ADMIN_TOKEN });
    expect((await login(port, 'x'.repeat(8 * 1024))).status).toBe(401);
    for (let i = 0; i < 9; i++) expect((await login(port, `wrong-${i}`)).status).toBe(401);
    const limited = await login(port, ADMIN_TOKEN);
    expect(limited.status).toBe(429);
    expect(limited.body).toContain('Too many failed logins');
  });

  it('caps the pages connected at once', async () => {
    const port = await start({}, { maxClients: 2 });
    const held: Array<ReturnType<typeof httpRequest>> = [];
    const open = () =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/events' }, (res) => {
          resolve(res.statusCode ?? 0);
          res.on('data', () => {});
        });
        req.on('error', reject);
        req.end();
        held.push(req);
      });
    try {
      // HEAD requests answer and take no place.
      for (let i = 0; i < 3; i++) expect((await ask(port, '/events', { method: 'HEAD' })).status).toBe(200);
      expect(await open()).toBe(200);
      expect(await open()).toBe(200);
      expect(await open()).toBe(503);
      // One page leaves: there is room again.
      held[0]!.destroy();
      await waitUntil(async () => (await open()) === 200, 5_000, 'a free place');
    } finally {
      for (const req of held) req.destroy();
    }
  });

  it('disconnects a page that stops reading once it has left the buffer bound unread', async () => {
    // A push every millisecond fills the socket buffers quickly; one page at a time.
    const port = await start({}, { maxClients: 1, pushIntervalMs: 1, maxClientBufferBytes: 64 * 1024 });
    const stalled = netConnect({ host: '127.0.0.1', port });
    stalled.on('error', () => {});
    stalled.write('GET /events HTTP/1.1\r\nHost: admin\r\n\r\n');
    stalled.pause(); // never reads
    const closed = new Promise<void>((resolve) => stalled.once('close', () => resolve()));
    try {
      await waitUntil(
        async () => (await ask(port, '/events', { eventBytes: 20 })).status === 503,
        5_000,
        'the stalled page to hold the one place',
      );
      // The server drops it: its place is free again, and the stalled socket is closed.
      await waitUntil(
        async () => (await ask(port, '/events', { eventBytes: 20 })).status === 200,
        30_000,
        'the stalled page to be dropped',
      );
      stalled.resume();
      await closed;
    } finally {
      stalled.destroy();
    }
  }, 40_000);
});
