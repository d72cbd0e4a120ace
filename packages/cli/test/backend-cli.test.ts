/**
 * `nexus-backend` as a real child process against a real node (`serve()` in this process): SIGHUP
 * reloads (port mappings in place, a changed token reconnects, a bad file keeps the old configuration
 * and logs one line), one-line errors naming the flag or key, `--version`, and the log format switch with
 * the routed name under `host`. Loopback sockets, files under the OS temp dir.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { hostname as osHostname } from 'node:os';
import { dirname, join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { httpGet, startHttpService, type TestService, waitUntil } from '@nexus-proxy/test-harness';
import { afterEach, describe, expect, it } from 'vitest';
import { serve } from '../src/serve.js';
import { createWorkdir, LiveNodeFixture, SECRET_A, token, writeNodeConfig } from './_ops-helpers.js';

const require = createRequire(import.meta.url);
const BACKEND_CLI = join(
  dirname(require.resolve('@nexus-proxy/backend-client/package.json')),
  'dist',
  'cli.js',
);
const VERSION = (require('@nexus-proxy/backend-client/package.json') as { version: string }).version;

type Line = Record<string, unknown> & { msg: string };

/** `nexus-backend` in a child process with its stderr kept (and parsed when it is JSON). */
function spawnBackend(args: string[]) {
  const child: ChildProcess = spawn(process.execPath, [BACKEND_CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => {
    stderr += c;
  });
  child.stdout!.resume();
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const lines = (): Line[] =>
    stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);
  return { child, exited, stderr: () => stderr, lines };
}

const f = new LiveNodeFixture();
const services: TestService[] = [];
let backendChild: ChildProcess | undefined;
afterEach(async () => {
  if (backendChild !== undefined && backendChild.exitCode === null) backendChild.kill('SIGKILL');
  backendChild = undefined;
  for (const s of services.splice(0)) await s.close();
  await f.reset();
});

async function startNode() {
  f.work = await createWorkdir();
  f.node = await serve({
    config: writeNodeConfig(f.work, { backendsJWTSecrets: [SECRET_A] }),
    handleSignals: false,
    logLevel: 'silent',
    graceMs: 0,
  });
  const httpPort = f.node.addresses.listeners.find((l) => l.mode === 'http')!.address.port;
  return {
    node: f.node,
    work: f.work,
    httpPort,
    hub: `wss://127.0.0.1:${f.node.addresses.hub.port}/connect`,
  };
}

function clientYaml(hub: string, tokenFile: string, target: number): string {
  return [
    'backends:',
    '  - name: app',
    '    hostnames: ["app.test"]',
    `    nexusAddresses: ["${hub}"]`,
    '    caFile: ca.pem',
    `    authTokenFile: ${tokenFile}`,
    // The node's HTTP relay port is a random one: the client falls back to the 80 mapping.
    `    portMappings: { 80: "127.0.0.1:${target}" }`,
    '',
  ].join('\n');
}

describe('nexus-backend: SIGHUP reload (child process, real node)', () => {
  it('updates port mappings without reconnecting, reconnects for a new token, and keeps the old configuration on a bad file', async () => {
    const { node, work, httpPort, hub } = await startNode();
    const a = await startHttpService('A');
    const b = await startHttpService('B');
    services.push(a, b);
    writeFileSync(join(work.dir, 'ca.pem'), work.ca.certPem);
    writeFileSync(join(work.dir, 'one.jwt'), await token(SECRET_A, ['app.test']));
    writeFileSync(join(work.dir, 'two.jwt'), await token(SECRET_A, ['app.test', 'other.test']));
    const file = join(work.dir, 'client.yaml');
    writeFileSync(file, clientYaml(hub, 'one.jwt', a.port));
    const backend = spawnBackend(['-c', file, '--log-format', 'json', '--log-level', 'debug']);
    backendChild = backend.child;
    let connects = 0;
    node.nexus.on('backend-connected', () => connects++);
    await waitUntil(() => node.nexus.hub.sessions.length === 1, 10_000, 'the backend session');
    expect(await httpGet(httpPort, 'app.test')).toContain('served-by A');
    const fallback = backend.lines().find((l) => l.msg.startsWith('no port mapping for node port'));
    expect(fallback).toMatchObject({ connPort: httpPort, mappedPort: 80, kind: 'http' });
    const firstSession = node.nexus.hub.sessions[0];

    // 1. Only the mapping changed: same session, new streams go to B.
    writeFileSync(file, clientYaml(hub, 'one.jwt', b.port));
    backend.child.kill('SIGHUP');
    await waitUntil(() => backend.lines().some((l) => l.msg === 'configuration reloaded'), 10_000, 'reload');
    expect(backend.lines().find((l) => l.msg === 'configuration reloaded')).toMatchObject({
      updated: ['app'],
      reconnected: [],
      added: [],
      removed: [],
    });
    expect(await httpGet(httpPort, 'app.test')).toContain('served-by B');
    expect(node.nexus.hub.sessions).toEqual([firstSession]);

    // 2. A file that does not parse: one line naming the file and line, the old configuration stays.
    writeFileSync(file, 'backends:\n  - name: app\n   hostnames: [x]\n');
    backend.child.kill('SIGHUP');
    await waitUntil(
      () => backend.lines().some((l) => l.msg.startsWith('configuration reload failed')),
      10_000,
      'the failed reload',
    );
    const failed = backend.lines().find((l) => l.msg.startsWith('configuration reload failed'))!;
    expect(failed.level).toBe(50);
    expect(String(failed.error)).toMatch(
      /client\.yaml:3:\d+ is not valid YAML: .* \(line 3: " {3}hostnames: \[x\]"\)$/,
    );
    expect(failed.err).toBeUndefined();
    expect(await httpGet(httpPort, 'app.test')).toContain('served-by B');
    expect(node.nexus.hub.sessions).toEqual([firstSession]);

    // 3. Another token file: the backend reconnects with it.
    writeFileSync(file, clientYaml(hub, 'two.jwt', b.port));
    const before = connects;
    backend.child.kill('SIGHUP');
    await waitUntil(() => connects > before && node.nexus.hub.sessions.length === 1, 10_000, 'the reconnect');
    expect(
      backend
        .lines()
        .filter((l) => l.msg === 'configuration reloaded')
        .at(-1),
    ).toMatchObject({
      updated: [],
      reconnected: ['app'],
    });
    expect(node.nexus.hub.sessions[0]).not.toBe(firstSession);
    expect(await httpGet(httpPort, 'app.test')).toContain('served-by B');

    // The routed name is logged as `host`; `hostname` is the machine's.
    const open = backend.lines().find((l) => l.msg === 'stream open')!;
    expect(open).toMatchObject({ host: 'app.test', hostname: osHostname(), name: 'nexus-backend' });

    backend.child.kill('SIGTERM');
    expect(await backend.exited).toBe(0);
  });
});

describe('nexus-backend: one-line errors, --version, log format', () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, [BACKEND_CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

  it('names the flag or the key and the fix, without a stack trace unless --debug', async () => {
    const work = await createWorkdir();
    f.work = work;
    const flags = ['--node', '127.0.0.1:1', '--token', 't', '--map', '443=127.0.0.1:1'];
    const ca = run([...flags, '--ca', join(work.dir, 'nope.pem')]);
    expect(ca.status).toBe(1);
    expect(ca.stderr).toBe(
      `nexus-backend: --ca cannot read ${join(work.dir, 'nope.pem')} (no such file): fix the path or create the file\n`,
    );
    const debug = run([...flags, '--ca', join(work.dir, 'nope.pem'), '--debug']);
    expect(debug.stderr).toMatch(/^\s+at /m);

    const file = join(work.dir, 'client.yaml');
    writeFileSync(
      file,
      clientYaml('wss://127.0.0.1:1/connect', 'none.jwt', 1).replace('ca.pem', 'missing-ca.pem'),
    );
    const caFile = run(['-c', file]);
    expect(caFile.status).toBe(1);
    expect(caFile.stderr).toBe(
      `nexus-backend: backends[0].caFile cannot read ${join(work.dir, 'missing-ca.pem')} (no such file): fix the path or create the file\n`,
    );
    const tokenFile = run([
      '--node',
      '127.0.0.1:1',
      '--token-file',
      join(work.dir, 'none.jwt'),
      '--map',
      '443=127.0.0.1:1',
    ]);
    expect(tokenFile.stderr).toBe(
      `nexus-backend: --token-file cannot read ${join(work.dir, 'none.jwt')} (no such file): fix the path or create the file\n`,
    );
    writeFileSync(join(work.dir, 'ca.pem'), work.ca.certPem);
    writeFileSync(file, clientYaml('wss://127.0.0.1:1/connect', 'none.jwt', 1));
    expect(run(['-c', file]).stderr).toBe(
      `nexus-backend: backends[0].authTokenFile cannot read ${join(work.dir, 'none.jwt')} (no such file): fix the path or create the file\n`,
    );
    const missing = run(['-c', join(work.dir, 'absent.yaml')]);
    expect(missing.stderr).toBe(`nexus-backend: ${join(work.dir, 'absent.yaml')} not found\n`);
  });

  it('prints a systemd unit for its --config, with the absolute path', async () => {
    const work = await createWorkdir();
    f.work = work;
    const file = join(work.dir, 'client.yaml');
    writeFileSync(join(work.dir, 'ca.pem'), work.ca.certPem);
    writeFileSync(file, clientYaml('wss://127.0.0.1:1/connect', 'one.jwt', 1));
    const r = spawnSync(process.execPath, [BACKEND_CLI, '-c', 'client.yaml', '--systemd-unit'], {
      encoding: 'utf8',
      cwd: work.dir,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`\nExecStart=/usr/bin/env nexus-backend -c ${file}\n`);
    expect(r.stdout).toContain('\nExecReload=/bin/kill -HUP $MAINPID\n');
    const without = run(['--systemd-unit']);
    expect(without.status).toBe(1);
    expect(without.stderr).toBe(
      'nexus-backend: --systemd-unit needs --config: the unit runs nexus-backend -c FILE\n',
    );
  });

  it('prints its version', () => {
    const r = run(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
  });

  it('writes one readable line per event with --log-format pretty, JSON lines when not a terminal', async () => {
    const { hub, work } = await startNode();
    writeFileSync(join(work.dir, 'ca.pem'), work.ca.certPem);
    writeFileSync(join(work.dir, 'one.jwt'), await token(SECRET_A, ['app.test']));
    const file = join(work.dir, 'client.yaml');
    writeFileSync(file, clientYaml(hub, 'one.jwt', 1));
    for (const format of ['pretty', 'auto'] as const) {
      const backend = spawnBackend(['-c', file, '--log-format', format]);
      backendChild = backend.child;
      await waitUntil(() => backend.stderr().includes('nexus-backend started'), 10_000, 'the start line');
      backend.child.kill('SIGTERM');
      expect(await backend.exited).toBe(0);
      const lines = backend
        .stderr()
        .split('\n')
        .filter((l) => l !== '');
      if (format === 'pretty') {
        // Every line is one event: a time, a level, the message and its fields on the same line.
        for (const line of lines) expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|DEBUG)[: ]/);
        expect(lines.some((l) => /INFO.*nexus-backend started .*"backends":1/.test(l))).toBe(true);
        expect(lines.some((l) => l.includes('stopped'))).toBe(true);
      } else {
        for (const line of lines) expect(JSON.parse(line)).toHaveProperty('msg');
        expect(lines.map((l) => JSON.parse(l).msg)).toContain('nexus-backend started');
      }
    }
  });
});
