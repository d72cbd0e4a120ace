import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBackendClient, loadBackendClientConfig } from '@nexus-proxy/backend-client';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { mintBackendToken } from '../../src/auth.js';
import { loadConfig } from '../../src/load-config.js';
import { createNexus } from '../../src/nexus.js';
import {
  createTestPki,
  httpGet,
  onHttpRequest,
  startService,
  TEST_SECRET,
  type TestPki,
  tlsEndUser,
} from '@nexus-proxy/test-harness';

vi.setConfig({ testTimeout: 20_000 });

let pki: TestPki;
let dir: string;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  dir = mkdtempSync(join(tmpdir(), 'nexus-config-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('createNexus: reference configuration files', () => {
  it('resolves a pure reference server file with relayPorts [443, 80] to a TLS listener on 443 and HTTP on 80', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'hub.crt'), pki.hub.certPem);
    writeFileSync(join(d, 'hub.key'), pki.hub.keyPem);
    const file = join(d, 'config.yaml');
    writeFileSync(
      file,
      [
        'backendListenAddress: ":8443"',
        'hubTlsCertFile: "hub.crt"',
        'hubTlsKeyFile: "hub.key"',
        'relayPorts:',
        '  - 443',
        '  - 80',
        'idleTimeoutSeconds: 60',
        `backendsJWTSecret: "${TEST_SECRET}"`,
        '',
      ].join('\n'),
    );
    const config = await loadConfig(file);
    expect(config.listeners.map((l) => [l.port, l.mode])).toEqual([
      [443, 'tls'],
      [80, 'http'],
    ]);
    expect(config.backendListen).toEqual({ host: undefined, port: 8443 });
    expect(config.idleTimeoutMs).toBe(60_000);
    expect(config.tls).toMatchObject({
      mode: 'files',
      certFile: join(d, 'hub.crt'),
      keyFile: join(d, 'hub.key'),
    });
    expect(config.backendsJWTSecrets).toEqual([TEST_SECRET]);
    // createNexus accepts it unchanged (nothing listens until listen()).
    const nexus = createNexus(config);
    expect(nexus.config).toBe(config);
    await nexus.close({ graceMs: 0 });
  });

  it('runs a reference server file plus `listeners`, and a reference client file (backends[], portMappings), unchanged', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'hub.crt'), pki.hub.certPem);
    writeFileSync(join(d, 'hub.key'), pki.hub.keyPem);
    const serverFile = join(d, 'server.yaml');
    writeFileSync(
      serverFile,
      [
        '# reference keys',
        'backendListenAddress: "127.0.0.1:0"',
        'hubTlsCertFile: "hub.crt"',
        'hubTlsKeyFile: "hub.key"',
        'idleTimeoutSeconds: 60',
        `backendsJWTSecret: "${TEST_SECRET}"`,
        '# relayPorts cannot bind 443/80 unprivileged: Nexus `listeners` instead',
        'listeners:',
        '  - { port: 0, mode: tls, host: 127.0.0.1 }',
        '  - { port: 0, mode: http, host: 127.0.0.1 }',
        '',
      ].join('\n'),
    );
    const nexus = createNexus(await loadConfig(serverFile));
    const addresses = await nexus.listen();
    cleanups.push(() => nexus.close({ graceMs: 0 }));
    const tlsPort = addresses.listeners.find((l) => l.mode === 'tls')!.address.port;
    const httpPort = addresses.listeners.find((l) => l.mode === 'http')!.address.port;

    const appCert = await pki.issue(['app.test']);
    const web = await startService((s) => onHttpRequest(s, (head) => s.end(`web:${head.split(' ')[1]}`)));
    const api = await startService((s) => onHttpRequest(s, () => s.end('api')));
    const secure = await startService((s) => s.pipe(s), { tls: appCert });
    cleanups.push(
      () => web.close(),
      () => api.close(),
      () => secure.close(),
    );

    const token = await mintBackendToken({ secret: TEST_SECRET, hostnames: ['app.test', '*.api.test'] });
    const clientFile = join(d, 'client.yaml');
    writeFileSync(
      clientFile,
      [
        'backends:',
        '  - name: "app"',
        '    hostnames: ["app.test", "*.api.test"]',
        `    nexusAddresses: ["wss://127.0.0.1:${addresses.hub.port}/connect"]`,
        `    authToken: "${token}"`,
        '    portMappings:',
        `      ${httpPort}:`,
        `        default: "127.0.0.1:${web.port}"`,
        '        hosts:',
        `          "*.api.test": "127.0.0.1:${api.port}"`,
        `      ${tlsPort}: "127.0.0.1:${secure.port}"`,
        '    healthChecks:',
        '      enabled: true',
        '      inactivityTimeout: 60s',
        '      pongTimeout: 5s',
        '',
      ].join('\n'),
    );
    const clientConfig = await loadBackendClientConfig(clientFile);
    expect(clientConfig.warnings).toEqual([]);
    const [backend] = clientConfig.backends;
    // As `nexus-backend --config client.yaml --ca ca.pem` builds it: the test CA is the only addition.
    const client = createBackendClient({
      nodes: [...backend!.nexusAddresses],
      token: backend!.authToken!,
      portMappings: backend!.portMappings,
      healthChecks: backend!.healthChecks,
      tls: { ca: pki.ca.certPem },
      closeGraceMs: 0,
    });
    cleanups.push(() => client.close({ graceMs: 0 }));
    const registered = new Promise((resolve) => nexus.once('backend-connected', resolve));
    client.connect();
    await registered;

    expect(await httpGet(httpPort, 'app.test', '/index')).toBe('web:/index');
    expect(await httpGet(httpPort, 'v1.api.test')).toBe('api');
    const t = await tlsEndUser(tlsPort, 'app.test', pki.ca.certPem);
    expect(t.getPeerX509Certificate()?.subject).toContain('app.test');
    t.destroy();
  });
});
