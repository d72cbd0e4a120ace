import { writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import type { BackendClient } from '@nexus-proxy/backend-client';
import { afterEach, describe, expect, it } from 'vitest';
import { echoSizeService, httpGet, startService, waitUntil } from '@nexus-proxy/test-harness';
import {
  adminGet,
  backend,
  createWorkdir,
  SECRET_A,
  SECRET_B,
  type ServeChild,
  spawnServe,
  token,
  type Workdir,
  writeNodeConfig,
} from './_ops-helpers.js';

function hubSerial(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'hub.test' }, () => {
      resolve(s.getPeerX509Certificate()?.serialNumber ?? '');
      s.destroy();
    });
    s.on('error', reject);
  });
}

describe('nexus-proxy serve: SIGHUP reload', () => {
  let work: Workdir | undefined;
  let node: ServeChild | undefined;
  const clients: BackendClient[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    node?.kill();
    if (node !== undefined) await node.exited;
    node = undefined;
    for (const c of cleanups.splice(0)) await c();
    work?.remove();
    work = undefined;
  });

  const backends = async (): Promise<Array<{ hostnames: string[] }>> =>
    JSON.parse((await adminGet(node!.adminPort!, '/status')).body).backends;

  it('rotates secrets: sessions stay, new-secret tokens are accepted, removed-secret tokens refused', async () => {
    work = await createWorkdir();
    const service = await startService(echoSizeService);
    cleanups.push(service.close);
    const config = writeNodeConfig(work, { admin: '127.0.0.1:0' });
    node = await spawnServe(['-c', config]);

    // A session authenticated with the old secret.
    clients.push(backend(node.hubPort, work.ca.certPem, await token(SECRET_A, ['old.test']), service.port));
    await waitUntil(async () => (await backends()).length === 1, 10_000, 'the first backend');

    // Accept both secrets.
    writeNodeConfig(work, { admin: '127.0.0.1:0', backendsJWTSecrets: [SECRET_B, SECRET_A] });
    let mark = node.lines.length;
    node.child.kill('SIGHUP');
    const reloaded = await node.waitFor((l) => l.msg === 'configuration reloaded', 10_000, mark);
    expect(reloaded.applied).toEqual(['backendsJWTSecrets']);
    clients.push(backend(node.hubPort, work.ca.certPem, await token(SECRET_B, ['new.test']), service.port));
    await waitUntil(async () => (await backends()).length === 2, 10_000, 'the new-secret backend');

    // Drop the old secret: the old session stays, a new old-secret token is refused.
    writeNodeConfig(work, { admin: '127.0.0.1:0', backendsJWTSecrets: [SECRET_B] });
    mark = node.lines.length;
    node.child.kill('SIGHUP');
    await node.waitFor((l) => l.msg === 'configuration reloaded', 10_000, mark);
    mark = node.lines.length;
    clients.push(backend(node.hubPort, work.ca.certPem, await token(SECRET_A, ['late.test']), service.port));
    const refused = await node.waitFor((l) => l.msg === 'backend authentication failed', 10_000, mark);
    expect(refused.reason).toBe('invalid token signature');
    const hostnames = (await backends()).map((b) => b.hostnames.join()).sort();
    expect(hostnames).toEqual(['new.test', 'old.test']);
    // The old session still carries traffic.
    const answer = await httpGet(node.httpPort, 'old.test', '/5');
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(answer.endsWith('xxxxx')).toBe(true);
  });

  it('serves new certificate files to new handshakes and keeps existing sessions', async () => {
    work = await createWorkdir();
    const service = await startService(echoSizeService);
    cleanups.push(service.close);
    node = await spawnServe(['-c', writeNodeConfig(work, { admin: '127.0.0.1:0' })]);
    clients.push(backend(node.hubPort, work.ca.certPem, await token(SECRET_A, ['app.test']), service.port));
    await waitUntil(async () => (await backends()).length === 1, 10_000, 'the backend');
    expect(await hubSerial(node.hubPort, work.ca.certPem)).toBe(await hubSerialOf(work.hub.certPem));

    const next = await work.issueHub();
    writeFileSync(work.certFile, next.certPem);
    writeFileSync(work.keyFile, next.keyPem);
    const mark = node.lines.length;
    node.child.kill('SIGHUP');
    const reloaded = await node.waitFor((l) => l.msg === 'configuration reloaded', 10_000, mark);
    expect(reloaded.applied).toEqual(['tls']);
    expect(await hubSerial(node.hubPort, work.ca.certPem)).toBe(await hubSerialOf(next.certPem));
    expect((await backends()).length).toBe(1);
    expect(await httpGet(node.httpPort, 'app.test', '/3')).toMatch(/xxx$/);
  });

  it('keeps the running configuration when the new file is invalid, and reports restart-only changes', async () => {
    work = await createWorkdir();
    const service = await startService(echoSizeService);
    cleanups.push(service.close);
    const config = writeNodeConfig(work, { admin: '127.0.0.1:0' });
    node = await spawnServe(['-c', config]);
    clients.push(backend(node.hubPort, work.ca.certPem, await token(SECRET_A, ['app.test']), service.port));
    await waitUntil(async () => (await backends()).length === 1, 10_000, 'the backend');

    writeFileSync(config, 'backendsJWTSecrets: [\n  this is not yaml');
    let mark = node.lines.length;
    node.child.kill('SIGHUP');
    const failed = await node.waitFor((l) => l.msg.startsWith('configuration reload failed'), 10_000, mark);
    expect(failed.level).toBe(50);
    // One line naming the file and line, no stack (`--debug` shows it).
    expect(failed.error).toMatch(/config\.yaml:2:\d+: invalid YAML: .* \(line 2: " {2}this is not yaml"\)$/);
    expect(failed.error).not.toContain('\n');
    expect(failed.err).toBeUndefined();
    // Invalid values (not just syntax) are refused the same way.
    writeNodeConfig(work, { admin: '127.0.0.1:0', limits: { maxStreamsPerSession: -1 } });
    mark = node.lines.length;
    node.child.kill('SIGHUP');
    const invalid = await node.waitFor((l) => l.msg.startsWith('configuration reload failed'), 10_000, mark);
    expect(invalid.error).toMatch(/^limits\.maxStreamsPerSession /);
    expect(invalid.err).toBeUndefined();
    // A typo: one line with the hint, no stack.
    writeNodeConfig(work, { admin: '127.0.0.1:0', limit: { maxStreamsPerSession: 7 } });
    mark = node.lines.length;
    node.child.kill('SIGHUP');
    const typo = await node.waitFor((l) => l.msg.startsWith('configuration reload failed'), 10_000, mark);
    expect(typo.error).toMatch(
      /^limit is not a known key \(did you mean `limits`\?\) \(.*config\.yaml:\d+\)$/,
    );
    expect(typo.err).toBeUndefined();
    expect(await httpGet(node.httpPort, 'app.test', '/4')).toMatch(/xxxx$/);

    // Live limits are applied; a mesh on a node started without one and the admin address need a
    // restart.
    writeNodeConfig(work, {
      admin: '127.0.0.1:0',
      peers: ['wss://peer.test:8444/mesh'],
      peerAuthentication: { trustedDomainSuffixes: ['mesh.test'] },
      limits: { maxStreamsPerSession: 7, maxPendingConnects: 5 },
      logLevel: 'debug',
    });
    mark = node.lines.length;
    node.child.kill('SIGHUP');
    const reloaded = await node.waitFor((l) => l.msg === 'configuration reloaded', 10_000, mark);
    expect(reloaded.applied).toEqual(['limits.maxStreamsPerSession', 'limits.maxPendingConnects']);
    expect(reloaded.restartRequired).toEqual(
      expect.arrayContaining(['peers', 'peerAuthentication.trustedDomainSuffixes', 'peerListenAddress']),
    );
    const warned = await node.waitFor((l) => l.msg.startsWith('some changes take effect only'), 10_000, mark);
    expect(warned.restartRequired).toContain('peers');
    // logLevel is applied by the CLI: debug lines appear from now on.
    mark = node.lines.length;
    await httpGet(node.httpPort, 'app.test', '/1');
    await node.waitFor((l) => l.level === 20, 10_000, mark);
    const metrics = (await adminGet(node.adminPort!, '/metrics')).body;
    expect(metrics).toMatch(/nexus_config_reloads_total\{result="failure"\} 3/);
    expect(metrics).toMatch(/nexus_config_reloads_total\{result="success"\} 1/);
  });
});

async function hubSerialOf(certPem: string): Promise<string> {
  const { X509Certificate } = await import('node:crypto');
  return new X509Certificate(certPem).serialNumber;
}
