/**
 * The start-up failures an operator meets, through the real `nexus-proxy` binary: each is one line on
 * stderr naming the key or file and the fix, with no stack trace (`--debug` adds it), and no relay
 * listener is left up. Real processes and sockets on loopback; files under the OS temp dir.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { waitUntil } from '@nexus-proxy/test-harness';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLI,
  createWorkdir,
  spawnServe,
  type ServeChild,
  type Workdir,
  writeNodeConfig,
} from './_ops-helpers.js';

let work: Workdir | undefined;
const servers: Server[] = [];
const children: ServeChild[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) c.kill();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  work?.remove();
  work = undefined;
});

/** Runs `nexus-proxy serve -c FILE …` to its end; returns the exit code and stderr. */
function serveFails(args: string[], options: { uid?: number; gid?: number } = {}) {
  const r = spawnSync(process.execPath, [CLI, 'serve', '--log-format', 'json', ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    ...options,
  });
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  const logLines = lines
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const others = lines.filter((l) => !l.startsWith('{'));
  return { status: r.status, stderr: r.stderr, logLines, others };
}

/** A port on 127.0.0.1 held by another server for the test's duration. */
async function occupiedPort(): Promise<number> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

function expectOneLineNoStack(result: ReturnType<typeof serveFails>, line: RegExp): void {
  expect(result.status).toBe(1);
  expect(result.others).toHaveLength(1);
  expect(result.others[0]).toMatch(line);
  expect(result.stderr).not.toMatch(/^\s+at /m);
}

describe('nexus-proxy serve: start-up failures', () => {
  it('names hubTlsCertFile and the file when the certificate is missing, and binds no port first', async () => {
    work = await createWorkdir();
    const missing = join(work.dir, 'gone.crt');
    const config = writeNodeConfig(work, { hubTlsCertFile: missing });
    const result = serveFails(['-c', config]);
    expectOneLineNoStack(
      result,
      new RegExp(
        `^nexus-proxy: hubTlsCertFile cannot read ${missing.replace(/[.]/g, '\\.')} \\(no such file\\): fix the path or create the file$`,
      ),
    );
    expect(result.logLines.filter((l) => String(l.msg).endsWith('listening'))).toEqual([]);
  });

  it('names both keys when the certificate and the key do not belong together', async () => {
    work = await createWorkdir();
    const other = await work.issueHub();
    const otherKey = join(work.dir, 'other.key');
    writeFileSync(otherKey, other.keyPem);
    const config = writeNodeConfig(work, { hubTlsKeyFile: otherKey });
    const result = serveFails(['-c', config]);
    expectOneLineNoStack(
      result,
      /^nexus-proxy: hubTlsCertFile .*hub\.crt and hubTlsKeyFile .*other\.key: TLS private key does not match the certificate \(give the certificate and the key it was issued for\)$/,
    );
    expect(result.logLines.filter((l) => String(l.msg).endsWith('listening'))).toEqual([]);
  });

  it('quotes the offending line of a YAML syntax error, with its line and column and no dangling text', async () => {
    work = await createWorkdir();
    const config = join(work.dir, 'broken.yaml');
    writeFileSync(config, 'backendsJWTSecret: x\nlisteners:\n  - port: 1\n   mode: tls\n');
    const result = serveFails(['-c', config]);
    expectOneLineNoStack(
      result,
      /^nexus-proxy: .*broken\.yaml:4:\d+: invalid YAML: [^\n]+ \(line 4: " {3}mode: tls"\)$/,
    );
    // --debug shows where it came from.
    const debug = serveFails(['-c', config, '--debug']);
    expect(debug.status).toBe(1);
    expect(debug.stderr).toMatch(/invalid YAML/);
    expect(debug.stderr).toMatch(/^\s+at /m);
  });

  it('names the relay listener, its port and the key when the port is in use; no listener stays up', async () => {
    work = await createWorkdir();
    const port = await occupiedPort();
    const config = writeNodeConfig(work, { listeners: [{ port, mode: 'tls', host: '127.0.0.1' }] });
    const result = serveFails(['-c', config]);
    expectOneLineNoStack(
      result,
      new RegExp(
        `^nexus-proxy: TLS relay listener cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use \\(EADDRINUSE\\): stop the other process .* or change relayPorts \\(or listeners\\)$`,
      ),
    );
  });

  it('names backendListenAddress when the hub port is in use, after closing the relay listeners it opened', async () => {
    work = await createWorkdir();
    const port = await occupiedPort();
    const config = writeNodeConfig(work, { backendListenAddress: `127.0.0.1:${port}` });
    const result = serveFails(['-c', config]);
    expectOneLineNoStack(
      result,
      new RegExp(
        `^nexus-proxy: hub cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use \\(EADDRINUSE\\): .* or change backendListenAddress$`,
      ),
    );
    // The process ended (exit code 1), so no listener of it can be up; it said so before the error.
    expect(result.logLines.at(-1)).toMatchObject({ msg: 'nexus closed' });
  });

  it('names CAP_NET_BIND_SERVICE and unprivileged ports when a low port is refused (EACCES)', async () => {
    work = await createWorkdir();
    // A privileged port, 1 below the first unprivileged one (1024 unless the system lowered it).
    const firstUnprivileged = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
    const port = Math.min(firstUnprivileged, 1024) - 1;
    const config = writeNodeConfig(work, { listeners: [{ port, mode: 'http', host: '127.0.0.1' }] });
    // As root, run the node as `nobody`, who may read the work directory but not bind the port.
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      chmodSync(work.dir, 0o755);
      for (const f of [config, work.certFile, work.keyFile]) chmodSync(f, 0o644);
    }
    const result = serveFails(['-c', config], asRoot ? { uid: 65534, gid: 65534 } : {});
    expectOneLineNoStack(
      result,
      new RegExp(
        `^nexus-proxy: HTTP relay listener cannot listen on 127\\.0\\.0\\.1:${port}: permission denied \\(EACCES\\): ports below 1024 need root or CAP_NET_BIND_SERVICE .*or use a port of 1024 or more in relayPorts \\(or listeners\\)$`,
      ),
    );
  });

  it('names --admin-token-file and admin.tokenFile when the token file is missing, before binding any port', async () => {
    work = await createWorkdir();
    const missing = join(work.dir, 'admin.token');
    const flag = serveFails([
      '-c',
      writeNodeConfig(work, { admin: '127.0.0.1:0' }),
      '--admin-token-file',
      missing,
    ]);
    expectOneLineNoStack(
      flag,
      new RegExp(
        `^nexus-proxy: --admin-token-file cannot read ${missing.replace(/[.]/g, '\\.')} \\(no such file\\): fix the path or create the file$`,
      ),
    );
    expect(flag.logLines.filter((l) => String(l.msg).endsWith('listening'))).toEqual([]);
    const key = serveFails([
      '-c',
      writeNodeConfig(work, { admin: { address: '127.0.0.1:0', tokenFile: missing } }),
    ]);
    expectOneLineNoStack(key, /^nexus-proxy: admin\.tokenFile cannot read .*admin\.token \(no such file\)/);
  });

  it('checks the hub certificate before the admin listener binds', async () => {
    work = await createWorkdir();
    const config = writeNodeConfig(work, { admin: '127.0.0.1:0', hubTlsKeyFile: join(work.dir, 'none.key') });
    const result = serveFails(['-c', config]);
    expectOneLineNoStack(result, /^nexus-proxy: hubTlsKeyFile cannot read .*none\.key \(no such file\)/);
    expect(result.logLines.filter((l) => String(l.msg).endsWith('listening'))).toEqual([]);
  });

  it('names the configuration file when it does not exist', () => {
    const result = serveFails(['-c', '/nonexistent/nexus.yaml']);
    expectOneLineNoStack(
      result,
      /^nexus-proxy: cannot read configuration file \/nonexistent\/nexus\.yaml: not found$/,
    );
  });
});

describe('nexus-proxy serve: flags that -c overrides', () => {
  it('warns for each embedded-default flag given with -c, and runs with the file', async () => {
    work = await createWorkdir();
    const config = writeNodeConfig(work);
    const node = await spawnServe(['-c', config, '--tls-port', '1234', '--state-dir', work.dir]);
    children.push(node);
    const warned = node.lines.filter((l) => l.level === 40 && typeof l.flag === 'string');
    expect(warned.map((l) => l.flag)).toEqual(['--tls-port', '--state-dir']);
    expect(warned[0]!.msg).toBe(
      `--tls-port is ignored: it sets up the embedded default, and -c ${config} says where to listen`,
    );
    // Flags left at their defaults say nothing.
    expect(node.lines.some((l) => l.flag === '--http-port')).toBe(false);
  });

  it('does not warn without -c', async () => {
    work = await createWorkdir();
    const child = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--log-format',
        'json',
        '--state-dir',
        join(work.dir, 'state'),
        '--tls-port',
        '0',
        '--http-port',
        '0',
        '--hub-port',
        '0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => {
      err += c;
    });
    child.stdout.resume();
    try {
      await waitUntil(() => err.includes('"nexus listening"') || child.exitCode !== null, 15_000, 'the node');
    } finally {
      child.kill('SIGKILL');
    }
    expect(err).toContain('"nexus listening"');
    expect(err).not.toContain('is ignored');
  });
});
