/**
 * The embedded default's current-era backend configuration: `nexus-proxy serve` writes `backend.yaml` into
 * its state directory and prints the one command that runs it; the real `nexus-backend` binary, run with
 * that file (only the local targets edited, as the printed text says), attaches in the current era and
 * serves HTTP by Host and TLS by SNI. Loopback sockets, files under the OS temp dir.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  createTestPki,
  httpGet,
  startHttpService,
  startService,
  type TestService,
  tlsEndUser,
} from '@nexus-proxy/test-harness';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { type RunningNode, serve } from '../src/serve.js';

vi.setConfig({ testTimeout: 30_000 });

const require = createRequire(import.meta.url);
const BACKEND_CLI = join(
  dirname(require.resolve('@nexus-proxy/backend-client/package.json')),
  'dist',
  'cli.js',
);

let node: RunningNode | undefined;
let backend: ChildProcess | undefined;
const services: TestService[] = [];
/** Temporary directories of the test, removed after it. */
const dirs: string[] = [];
afterEach(async () => {
  if (backend !== undefined && backend.exitCode === null) {
    const exited = new Promise((r) => backend!.once('exit', r));
    backend.kill('SIGTERM');
    await exited;
  }
  backend = undefined;
  for (const s of services.splice(0)) await s.close();
  await node?.close();
  node = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('nexus-proxy serve: the current-era backend configuration it writes', () => {
  it('runs as printed with the real nexus-backend: current era, HTTP by Host and TLS by SNI', async () => {
    const root = mkdtempSync(join(tmpdir(), 'nexus-serve-backend-'));
    dirs.push(root);
    const stateDir = join(root, 'state');
    const printed: string[] = [];
    node = await serve({
      stateDir,
      ports: { tls: 0, http: 0, hub: 0 },
      handleSignals: false,
      logLevel: 'silent',
      print: (t) => printed.push(t),
    });
    const text = printed.join('\n');
    const tlsPort = node.addresses.listeners.find((l) => l.mode === 'tls')!.address.port;
    const httpPort = node.addresses.listeners.find((l) => l.mode === 'http')!.address.port;

    // The one command, and the file it names, in the state directory.
    const command = /^ {2}nexus-backend -c (\S+)$/m.exec(text);
    expect(command?.[1]).toBe(join(stateDir, 'backend.yaml'));
    const written = readFileSync(command![1]!, 'utf8');
    expect(parseYaml(written)).toEqual({
      backends: [
        {
          name: 'app',
          hostnames: ['app.localhost'],
          nexusAddresses: [`wss://127.0.0.1:${node.addresses.hub.port}/connect`],
          caFile: join(stateDir, 'hub-cert.pem'),
          attestation: { hmacSecretFile: join(stateDir, 'backend-secret') },
          portMappings: { [tlsPort]: '127.0.0.1:9443', [httpPort]: '127.0.0.1:9080' },
        },
      ],
    });
    // How to get a seed-era backend instead: the token line and its flags.
    expect(text).toMatch(/seed-era/);
    expect(text).toMatch(/nexus-backend --node \S+ --ca \S+ --token \S+/);

    // The local services the targets name; the test edits only those two targets, in a copy.
    const pki = await createTestPki();
    const tlsService = await startService((s) => s.on('data', (c: Buffer) => s.write(c)), {
      tls: await pki.issue(['app.localhost']),
    });
    const httpService = await startHttpService('app-http');
    services.push(tlsService, httpService);
    const edited = join(dirname(stateDir), 'backend.yaml');
    writeFileSync(
      edited,
      written
        .replace('127.0.0.1:9443', `127.0.0.1:${tlsService.port}`)
        .replace('127.0.0.1:9080', `127.0.0.1:${httpService.port}`),
    );

    const connected = new Promise<{ era: string; hostnames: readonly string[] }>((resolve) =>
      node!.nexus.once('backend-connected', resolve),
    );
    backend = spawn(process.execPath, [BACKEND_CLI, '-c', edited, '--log-format', 'json'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    backend.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const registered = await Promise.race([
      connected,
      new Promise<never>((_, reject) =>
        backend!.once('exit', (code) => reject(new Error(`nexus-backend exited ${code}: ${stderr}`))),
      ),
    ]);
    expect(registered.era).toBe('current');
    expect(registered.hostnames).toEqual(['app.localhost']);

    expect(await httpGet(httpPort, 'app.localhost')).toMatch(/^HTTP\/1\.1 200[\s\S]*served-by app-http/);
    const tls = await tlsEndUser(tlsPort, 'app.localhost', pki.ca.certPem);
    const echoed = new Promise<string>((resolve) => tls.once('data', (c: Buffer) => resolve(c.toString())));
    tls.write('through the relay by SNI');
    expect(await echoed).toBe('through the relay by SNI');
    tls.destroy();
  });
});
