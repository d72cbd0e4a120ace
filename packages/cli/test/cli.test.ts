import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createBackendClient } from '@nexus-proxy/backend-client';
import { loadConfig, verifyBackendToken } from '@nexus-proxy/core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createProgram } from '../src/program.js';
import { type RunningNode, serve } from '../src/serve.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
/** Directories made by `tmp()`, removed once the file's tests are done. */
const made: string[] = [];
const tmp = () => {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-cli-'));
  made.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});
/** `init` flags that keep it in `root` and off the network. */
const INIT_ARGS = (root: string) => ['--hostname', 'nexus1.cli-test.net', '--skip-dns', '--root', root];

async function run(args: string[]): Promise<string[]> {
  const lines: string[] = [];
  await createProgram({ out: (t) => lines.push(t) })
    .exitOverride()
    .parseAsync(['node', 'nexus-proxy', ...args]);
  return lines;
}

function get(
  url: string,
  options: { ca?: string; servername?: string; port: number },
): Promise<{ body: string; cert: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        ca: options.ca,
        servername: options.servername,
        lookup: (_h, _o, cb) => cb(null, [{ address: '127.0.0.1', family: 4 }]),
      },
      (res) => {
        const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN ?? '';
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ body, cert: String(cert) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('nexus-proxy token', () => {
  it('mints a token the node accepts, with the claims reference nodes require', async () => {
    const [token] = await run([
      'token',
      '--secret',
      's'.repeat(32),
      '--hostname',
      'App.Example.com',
      '--hostname',
      '*.example.org',
      '--weight',
      '3',
    ]);
    const verified = await verifyBackendToken(token!, {
      secrets: ['s'.repeat(32)],
      issuer: 'authorizer',
      audience: ['nexus'],
    });
    expect(verified.hostnames).toEqual(['app.example.com', '*.example.org']);
    expect(verified.weight).toBe(3);
  });

  it('takes the secret from a config file and sets exp from --ttl', async () => {
    const dir = tmp();
    const file = join(dir, 'config.yaml');
    await run(['init', '-o', file, ...INIT_ARGS(dir)]);
    const [token] = await run(['token', '-c', file, '--hostname', 'a.example.com', '--ttl', '60']);
    const secret = (await loadConfig(file)).backendsJWTSecrets[0]!;
    const verified = await verifyBackendToken(token!, { secrets: [secret], requireExp: true });
    const exp = verified.claims.exp as number;
    expect(exp - Math.floor(Date.now() / 1000)).toBeGreaterThan(50);
    expect(exp - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(60);
  });

  it('refuses to mint without a secret or hostname', async () => {
    await expect(run(['token', '--hostname', 'a.example.com'])).rejects.toThrow(/secret/);
    await expect(run(['token', '--secret', 'x'])).rejects.toThrow(/hostname/);
  });
});

describe('nexus-proxy init', () => {
  it('writes a valid commented config with a fresh secret and never overwrites without --force', async () => {
    const dir = tmp();
    const file = join(dir, 'config.yaml');
    await run(['init', '-o', file, ...INIT_ARGS(dir)]);
    const first = readFileSync(file, 'utf8');
    expect(first).toMatch(/^# Nexus Proxy node configuration/);
    const config = await loadConfig(file);
    expect(config.backendsJWTSecrets[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(config.tls.mode).toBe('acme');
    await expect(run(['init', '-o', file, ...INIT_ARGS(dir)])).rejects.toThrow(/already exists/);
    writeFileSync(file, 'changed');
    await run(['init', '-o', file, '--force', ...INIT_ARGS(dir)]);
    expect(readFileSync(file, 'utf8')).not.toBe('changed');
    expect(readFileSync(file, 'utf8')).not.toBe(first); // a new secret each time
  });
});

describe('nexus-proxy --version', () => {
  it("prints the package's version, from package.json", () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    const result = spawnSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toBe(manifest.version);
  });
});

describe('nexus-proxy serve (embedded default)', () => {
  let node: RunningNode | undefined;
  afterEach(async () => {
    await node?.close();
    node = undefined;
  });

  it('--demo serves demo.localhost over TLS passthrough and HTTP, with the service certificate', async () => {
    const printed: string[] = [];
    node = await serve({
      demo: true,
      stateDir: join(tmp(), 'state'),
      ports: { tls: 0, http: 0, hub: 0 },
      handleSignals: false,
      logLevel: 'silent',
      print: (t) => printed.push(t),
    });
    const text = printed.join('\n');
    const tlsPort = node.addresses.listeners.find((l) => l.mode === 'tls')!.address.port;
    const httpPort = node.addresses.listeners.find((l) => l.mode === 'http')!.address.port;
    expect(text).toContain(`https://demo.localhost:${tlsPort}/`);
    expect(text).toContain(`http://demo.localhost:${httpPort}/`);
    const ca = readFileSync(node.demo!.serviceCaFile, 'utf8');
    const res = await get(`https://demo.localhost:${tlsPort}/hello`, { ca, port: tlsPort });
    expect(res.body).toContain('Hello from the Nexus demo backend over HTTPS');
    expect(res.body).toContain('GET /hello');
    expect(res.cert).toBe('demo.localhost'); // the service's certificate, not the hub's
    const body = await new Promise<string>((resolve, reject) => {
      const s = netConnect(httpPort, '127.0.0.1', () =>
        s.end('GET /x HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n'),
      );
      let data = '';
      s.setEncoding('utf8');
      s.on('data', (c) => (data += c));
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
    expect(body).toMatch(/^HTTP\/1\.1 200/);
    expect(body).toContain('over HTTP!');
  });

  it('prints a backend token and attach command that work, and keeps its secret across restarts', async () => {
    const stateDir = join(tmp(), 'state');
    const printed: string[] = [];
    node = await serve({
      stateDir,
      ports: { tls: 0, http: 0, hub: 0 },
      handleSignals: false,
      logLevel: 'silent',
      print: (t) => printed.push(t),
    });
    const text = printed.join('\n');
    const token = /--token (\S+)/.exec(text)?.[1];
    expect(token).toBeDefined();
    expect(text).toContain(`--ca ${join(stateDir, 'hub-cert.pem')}`);
    const secretBefore = readFileSync(join(stateDir, 'backend-secret'), 'utf8');
    const client = createBackendClient({
      nodes: [`wss://127.0.0.1:${node.addresses.hub.port}/connect`],
      token: token!,
      tls: { ca: readFileSync(join(stateDir, 'hub-cert.pem'), 'utf8') },
      connectHandler: () => netConnect(1, '127.0.0.1'),
    });
    const registered = new Promise((r) => node!.nexus.once('backend-connected', r));
    client.connect();
    await registered;
    expect(node.nexus.routes.hasLocal('app.localhost')).toBe(true);
    await client.close();
    await node.close();
    node = await serve({
      stateDir,
      ports: { tls: 0, http: 0, hub: 0 },
      handleSignals: false,
      logLevel: 'silent',
      print: () => {},
    });
    expect(readFileSync(join(stateDir, 'backend-secret'), 'utf8')).toBe(secretBefore);
  });

  it('the binary tunes its heap for relaying for serve only (relay-heap)', async () => {
    // A preload that says, as the process exits, whether tuneHeapForRelaying() ran (its state sits on
    // globalThis under a registered symbol, docs/benchmarks.md "The node's heap and garbage collection").
    const preload = join(tmp(), 'report-tuning.mjs');
    writeFileSync(
      preload,
      "process.on('exit', () => process.stderr.write('relay heap tuned: ' + (globalThis[Symbol.for('@nexus-proxy/common relay heap')] !== undefined) + '\\n'));\n",
    );
    const token = spawnSync(
      process.execPath,
      ['--import', preload, CLI, 'token', '--secret', 's'.repeat(32), '--hostname', 'app.example.com'],
      { encoding: 'utf8' },
    );
    expect(token.status, token.stderr).toBe(0);
    expect(token.stderr).toContain('relay heap tuned: false');

    const child = spawn(
      process.execPath,
      ['--import', preload, CLI, 'serve', '--state-dir', join(tmp(), 'state'), '--tls-port', '0'].concat([
        '--http-port',
        '0',
        '--hub-port',
        '0',
        '--log-format',
        'json',
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no start: ${err}`)), 15_000);
      child.stdout.on('data', () => {
        if (out.includes('Nexus is running')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    child.kill('SIGTERM');
    const code = await new Promise<number | string | null>((r) => child.on('exit', (c, s) => r(c ?? s)));
    expect(code).toBe(0);
    expect(err).toContain('relay heap tuned: true');
  });

  it('the binary drains and exits 0 on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--state-dir',
        join(tmp(), 'state'),
        '--tls-port',
        '0',
        '--http-port',
        '0',
        '--hub-port',
        '0',
        '--log-format',
        'json',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no start: ${err}`)), 15_000);
      child.stdout.on('data', () => {
        if (out.includes('Nexus is running')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    child.kill('SIGTERM');
    const code = await new Promise<number | string | null>((r) => child.on('exit', (c, s) => r(c ?? s)));
    expect(code).toBe(0);
    expect(err).toContain('draining and shutting down');
    expect(err).toContain('nexus closed');
  });
});

describe('hub TLS of the embedded default', () => {
  it('is the self-signed state certificate, for 127.0.0.1', async () => {
    const stateDir = join(tmp(), 'state');
    const node = await serve({
      stateDir,
      ports: { tls: 0, http: 0, hub: 0 },
      handleSignals: false,
      logLevel: 'silent',
      print: () => {},
    });
    try {
      const ca = readFileSync(join(stateDir, 'hub-cert.pem'), 'utf8');
      const ok = await new Promise<boolean>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: node.addresses.hub.port, ca }, () => {
          resolve(s.authorized);
          s.destroy();
        });
        s.on('error', () => resolve(false));
      });
      expect(ok).toBe(true);
    } finally {
      await node.close();
    }
  });
});
