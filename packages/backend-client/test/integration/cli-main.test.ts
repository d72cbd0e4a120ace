import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noopLogger } from '@nexus-proxy/common';
import { buildClientOptions, parseCliFlags, runCli } from '../../src/cli-main.js';
import { InvalidOptionsError } from '../../src/errors.js';
import { resolveTarget } from '../../src/port-mappings.js';
import { startLocalService, waitFor } from './helpers.js';
import { makeCertificate, TestHub } from './test-hub.js';

const argv = (...args: string[]) => ['node', 'nexus-backend', ...args];
const cert = makeCertificate();
let dir: string;
let hub: TestHub;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nexus-backend-cli-'));
  writeFileSync(join(dir, 'ca.pem'), cert.cert);
  hub = await TestHub.start(cert);
});
afterAll(async () => {
  await hub.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('parseCliFlags', () => {
  it('collects repeated --node and --map flags', () => {
    const flags = parseCliFlags(
      argv(
        '--node',
        'a:8443',
        '--node',
        'wss://b/connect',
        '--token',
        't',
        '--map',
        '443=127.0.0.1:8443',
        '--map',
        '80=[::1]:8080',
      ),
    );
    expect(flags).toMatchObject({
      node: ['a:8443', 'wss://b/connect'],
      token: 't',
      map: ['443=127.0.0.1:8443', '80=[::1]:8080'],
      logLevel: 'info',
    });
  });
});

describe('buildClientOptions', () => {
  it('builds one client from --node/--token/--map/--ca', async () => {
    const [options, ...rest] = await buildClientOptions(
      parseCliFlags(
        argv(
          '--node',
          'n:8443',
          '--token',
          'jwt',
          '--map',
          '443=127.0.0.1:9443',
          '--ca',
          join(dir, 'ca.pem'),
        ),
      ),
      noopLogger,
    );
    expect(rest).toHaveLength(0);
    expect(options!.nodes).toEqual(['n:8443']);
    expect(options!.token).toBe('jwt');
    expect(options!.tls).toEqual({ ca: cert.cert });
    expect(resolveTarget(options!.portMappings!, 443, 'x.example.com')).toEqual({
      host: '127.0.0.1',
      port: 9443,
    });
  });

  it('refuses flags without a token or a mapping', async () => {
    await expect(
      buildClientOptions(parseCliFlags(argv('--node', 'n', '--map', '443=h:1')), noopLogger),
    ).rejects.toThrow(/--token/);
    await expect(
      buildClientOptions(parseCliFlags(argv('--node', 'n', '--token', 't')), noopLogger),
    ).rejects.toThrow(/--map/);
    await expect(
      buildClientOptions(parseCliFlags(argv('--node', 'n', '--token', 't')), noopLogger),
    ).rejects.toBeInstanceOf(InvalidOptionsError);
  });

  it('builds one client per backends[] entry of a reference config file', async () => {
    const file = join(dir, 'client.yaml');
    writeFileSync(
      file,
      [
        'backends:',
        '  - name: apps',
        '    hostnames: ["app.example.com"]',
        '    nexusAddresses: ["wss://n1.example.com:8443/connect", "n2.example.com:8443"]',
        '    authToken: "jwt-apps"',
        '    portMappings:',
        '      443: { default: "localhost:8443", hosts: { "*.preview.example.com": "localhost:10443" } }',
        '      80: "localhost:8080"',
        '    healthChecks: { enabled: true, inactivityTimeout: 30, pongTimeout: 2 }',
        '    socks5ListenAddr: "127.0.0.1:1080"',
        '  - name: api',
        '    hostnames: ["api.example.com"]',
        '    nexusAddresses: ["wss://n1.example.com:8443/connect"]',
        '    authTokenFile: token.txt',
        '    caFile: ca.pem',
        '    portMappings: { 443: "localhost:9443" }',
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'token.txt'), 'jwt-from-file\n');
    const [apps, api] = await buildClientOptions(parseCliFlags(argv('-c', file)), noopLogger);
    expect(apps!.nodes).toEqual(['wss://n1.example.com:8443/connect', 'wss://n2.example.com:8443/connect']);
    expect(apps!.token).toBe('jwt-apps');
    expect(apps!.socks5ListenAddr).toBe('127.0.0.1:1080');
    expect(api!.socks5ListenAddr).toBeUndefined();
    expect(apps!.healthChecks).toEqual({ enabled: true, inactivityTimeoutMs: 30_000, pongTimeoutMs: 2_000 });
    expect(resolveTarget(apps!.portMappings!, 443, 'a.preview.example.com')).toEqual({
      host: 'localhost',
      port: 10443,
    });
    expect(typeof api!.token).toBe('function');
    expect(await (api!.token as () => Promise<string>)()).toBe('jwt-from-file');
    expect(api!.tls).toEqual({ ca: [cert.cert] });
  });
});

describe('runCli', () => {
  it('connects every backend of the file and closes on SIGTERM', async () => {
    const service = await startLocalService((socket) => socket.pipe(socket));
    const file = join(dir, 'run.yaml');
    writeFileSync(
      file,
      [
        'backends:',
        '  - name: echo',
        '    hostnames: ["app.example.com"]',
        `    nexusAddresses: ["${hub.url}"]`,
        '    authToken: "jwt-run"',
        '    caFile: ca.pem',
        `    portMappings: { 443: "127.0.0.1:${service.port}" }`,
        '',
      ].join('\n'),
    );
    const handle = await runCli(argv('--config', file), { logger: noopLogger });
    try {
      const conn = await hub.connection();
      expect((await conn.token).text).toBe('jwt-run');
      const stream = conn.openStream();
      stream.write('hello cli');
      expect((await stream.waitBytes(9)).toString()).toBe('hello cli');
      stream.disconnect();
      await waitFor(() => handle.clients[0]!.stats().streams === 0);
      const closed = once(conn.ws, 'close');
      process.emit('SIGTERM', 'SIGTERM');
      const [code] = await closed;
      expect(code).toBe(1000);
      await waitFor(() => handle.clients[0]!.stats().nodes[0]!.state === 'closed');
      expect(process.listenerCount('SIGTERM')).toBe(0);
    } finally {
      await handle.close();
      await service.close();
    }
  });
});

describe('runCli: current era', () => {
  it('stops at start with one line naming attestation.hmacSecretFile and the file when it is missing', async () => {
    const file = join(dir, 'attested.yaml');
    writeFileSync(
      file,
      [
        'backends:',
        '  - name: device',
        '    hostnames: ["app.example.com"]',
        `    nexusAddresses: ["${hub.url}"]`,
        '    attestation: { hmacSecretFile: secrets/hmac.key }',
        '    portMappings: { 443: "127.0.0.1:1" }',
        '',
      ].join('\n'),
    );
    const run = runCli(argv('--config', file), { logger: noopLogger, handleSignals: false });
    await expect(run).rejects.toThrow(
      `backends[0].attestation.hmacSecretFile ${join(dir, 'secrets', 'hmac.key')} not found`,
    );
    await expect(run).rejects.toBeInstanceOf(InvalidOptionsError);
  });

  it('a reload checks hmacSecretFile like the start does, and keeps the running client when it is gone', async () => {
    const file = join(dir, 'attested-reload.yaml');
    const secret = join(dir, 'reload-hmac.key');
    writeFileSync(secret, 'reload-secret\n');
    writeFileSync(
      file,
      [
        'backends:',
        '  - name: device',
        '    hostnames: ["app.example.com"]',
        `    nexusAddresses: ["${hub.url}"]`,
        '    attestation: { hmacSecretFile: reload-hmac.key }',
        '    caFile: ca.pem',
        '    portMappings: { 443: "127.0.0.1:1" }',
        '',
      ].join('\n'),
    );
    const handle = await runCli(argv('--config', file), { logger: noopLogger, handleSignals: false });
    try {
      const running = handle.clients[0];
      expect(running).toBeDefined();
      rmSync(secret);
      await expect(handle.reload()).rejects.toThrow(
        new InvalidOptionsError('backends[0].attestation.hmacSecretFile', `${secret} not found`),
      );
      expect(handle.clients).toEqual([running]);
    } finally {
      await handle.close();
    }
  });
});
