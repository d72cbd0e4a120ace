/**
 * Attack 10: the admin listener and secrets on the command line. `admin: 9090` in the configuration used
 * to bind every interface while `--admin 9090` bound loopback; `/status` and `/metrics` had no
 * authentication; and secrets could only be passed as arguments, which every local user reads in `ps`.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyBackendToken } from '@nexus-proxy/core';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN_ENV, resolveAdminToken } from '../../src/admin.js';
import { SECRET_ENV } from '../../src/program.js';
import { type RunningNode, serve } from '../../src/serve.js';
import { fetchStatus } from '../../src/status.js';
import { echoSizeService, httpGet, startService, waitUntil } from '@nexus-proxy/test-harness';
import { CLI, createWorkdir, SECRET_A, token, type Workdir, writeNodeConfig } from '../_ops-helpers.js';

const ADMIN_TOKEN = 'admin-token-0123456789-abcdefghij';
const BACKEND_CLI = fileURLToPath(new URL('../../../backend-client/dist/cli.js', import.meta.url));

let work: Workdir | undefined;
let node: RunningNode | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await node?.close();
  node = undefined;
  work?.remove();
  work = undefined;
});

async function start(
  extra: Record<string, unknown>,
  options: { admin?: string; adminTokenFile?: string } = {},
) {
  work = await createWorkdir();
  node = await serve({
    config: writeNodeConfig(work, extra),
    ...options,
    handleSignals: false,
    logLevel: 'silent',
    graceMs: 0,
  });
  return node;
}

/** GET `path` on the admin port with an optional `Authorization` header. */
function get(port: number, path: string, authorization?: string, host = '127.0.0.1') {
  return new Promise<{ status: number; auth: string | undefined }>((resolve, reject) => {
    const req = httpRequest(
      { host, port, path, headers: authorization === undefined ? {} : { authorization } },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            auth: res.headers['www-authenticate'] as string | undefined,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Tries a TCP connection; resolves with the error code, or `connected`. */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = netConnect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('attack: the admin listener is reachable from the network', () => {
  it('binds loopback for a bare port, from the configuration as from --admin', async () => {
    const fromConfig = await start({ admin: 0 });
    const port = fromConfig.adminAddress!.port;
    expect(fromConfig.adminAddress?.address).toBe('127.0.0.1');
    // Another address of this machine does not reach it.
    expect(await tryConnect('127.0.0.2', port)).toBe('ECONNREFUSED');
    expect(await tryConnect('127.0.0.1', port)).toBe('connected');
    await fromConfig.close();
    work?.remove();
    const fromFlag = await start({}, { admin: '0' });
    expect(fromFlag.adminAddress?.address).toBe('127.0.0.1');
    expect(await tryConnect('127.0.0.2', fromFlag.adminAddress!.port)).toBe('ECONNREFUSED');
  });

  it('with a token, /status and /metrics need the bearer; /healthz and /readyz stay open', async () => {
    const n = await start({ admin: { address: '127.0.0.1:0', token: ADMIN_TOKEN } });
    const port = n.adminAddress!.port;
    for (const path of ['/status', '/metrics']) {
      expect(await get(port, path)).toEqual({ status: 401, auth: 'Bearer realm="nexus-admin"' });
      expect((await get(port, path, `Bearer ${ADMIN_TOKEN}x`)).status).toBe(401);
      expect((await get(port, path, `Basic ${ADMIN_TOKEN}`)).status).toBe(401);
      expect((await get(port, path, `Bearer ${ADMIN_TOKEN}`)).status).toBe(200);
    }
    expect((await get(port, '/healthz')).status).toBe(200);
    expect((await get(port, '/readyz')).status).toBe(200);
    // `nexus-proxy status` sends the token.
    await expect(fetchStatus(`127.0.0.1:${port}`)).rejects.toThrow(/HTTP 401/);
    expect(await fetchStatus(`127.0.0.1:${port}`, 5_000, ADMIN_TOKEN)).toMatchObject({ draining: false });
  });

  it('takes the token from --admin-token-file first, then NEXUS_ADMIN_TOKEN, then the configuration', async () => {
    const w = await createWorkdir();
    cleanups.push(() => w.remove());
    const file = join(w.dir, 'admin-token');
    writeFileSync(file, 'from-file\n');
    expect(resolveAdminToken({ file, env: { [ADMIN_TOKEN_ENV]: 'from-env' }, configToken: 'c' })).toBe(
      'from-file',
    );
    expect(resolveAdminToken({ env: { [ADMIN_TOKEN_ENV]: 'from-env' }, configToken: 'c' })).toBe('from-env');
    expect(resolveAdminToken({ env: {}, configTokenFile: file, configToken: 'c' })).toBe('from-file');
    expect(resolveAdminToken({ env: {}, configToken: 'c' })).toBe('c');
    expect(resolveAdminToken({ env: {} })).toBeUndefined();
    writeFileSync(file, '\n');
    expect(() => resolveAdminToken({ file })).toThrow(/empty/);
    // And a running node: the file given on the command line wins over the configuration's token.
    writeFileSync(file, 'flag-token\n');
    const n = await start(
      { admin: { address: '127.0.0.1:0', token: ADMIN_TOKEN } },
      { adminTokenFile: file },
    );
    expect((await get(n.adminAddress!.port, '/status', 'Bearer flag-token')).status).toBe(200);
    expect((await get(n.adminAddress!.port, '/status', `Bearer ${ADMIN_TOKEN}`)).status).toBe(401);
  });
});

describe('attack: secrets on the command line are visible in ps', () => {
  it('nexus-proxy token takes the secret from NEXUS_JWT_SECRET', async () => {
    const child = spawn(process.execPath, [CLI, 'token', '--hostname', 'a.example.com'], {
      env: { ...process.env, [SECRET_ENV]: SECRET_A },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    const code = await new Promise((r) => child.on('exit', r));
    expect(code).toBe(0);
    expect(child.spawnargs.join(' ')).not.toContain(SECRET_A);
    const verified = await verifyBackendToken(out.trim(), { secrets: [SECRET_A] });
    expect(verified.hostnames).toEqual(['a.example.com']);
  });

  it('nexus-backend takes its token from NEXUS_BACKEND_TOKEN: it connects, and ps never shows it', async () => {
    const n = await start({});
    const service = await startService(echoSizeService);
    cleanups.push(() => service.close());
    const caFile = join(work!.dir, 'ca.pem');
    writeFileSync(caFile, work!.ca.certPem);
    const jwt = await token(SECRET_A, ['env.example.com']);
    const httpPort = n.addresses.listeners.find((l) => l.mode === 'http')!.address.port;
    const child = spawn(
      process.execPath,
      [
        BACKEND_CLI,
        '--node',
        `wss://127.0.0.1:${n.addresses.hub.port}/connect`,
        '--map',
        `${httpPort}=127.0.0.1:${service.port}`,
        '--ca',
        caFile,
        '--log-level',
        'error',
      ],
      { env: { ...process.env, NEXUS_BACKEND_TOKEN: jwt }, stdio: 'ignore' },
    );
    cleanups.push(() => {
      child.kill('SIGKILL');
    });
    await waitUntil(() => n.nexus.hub.sessions.length === 1, 15_000, 'the backend session');
    const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
    expect(cmdline).toContain('--node');
    expect(cmdline).not.toContain(jwt);
    expect(await httpGet(httpPort, 'env.example.com', '/5')).toMatch(/\r\n\r\nxxxxx$/);
  });
});
