/**
 * The PROXY protocol against a real consumer: end user → node (createNexus) → backend client with
 * `proxyProtocol` → nginx `listen … proxy_protocol`. nginx answers with the address and port it read from
 * the header, which must be the end user's own socket address, for v1 and v2, IPv4 and IPv6.
 * nginx must be installed (CI installs Debian's `nginx`); without it this file fails, it does not skip.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProxyHeader, resolvePortMappings } from '@nexus-proxy/backend-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestNode, startNode } from '@nexus-proxy/test-harness';

function findNginx(): string {
  for (const candidate of ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx']) {
    const probe = spawnSync(candidate, ['-v'], { stdio: 'ignore' });
    if (probe.error === undefined && probe.status === 0) return candidate;
  }
  throw new Error(
    'nginx is not installed: this test needs a real PROXY protocol consumer (Debian: `apt-get install -y nginx`; .ci/run installs it)',
  );
}

async function freePort(host: string): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Sends one HTTP/1.1 request to `host:port` and returns the end user's own address and the response body. */
async function request(
  host: string,
  port: number,
  hostname: string,
): Promise<{ self: string; status: string; body: string }> {
  const socket = connect({ host, port });
  socket.on('error', () => {});
  await once(socket, 'connect');
  // nginx prints `$proxy_protocol_addr:$proxy_protocol_port` without brackets, e.g. `::1:51234`.
  const self = `${socket.localAddress}:${socket.localPort}`;
  socket.write(`GET / HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'close');
  const text = Buffer.concat(chunks).toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  return { self, status: text.slice(0, text.indexOf('\r\n')), body: text.slice(split + 4) };
}

describe('PROXY protocol to nginx', () => {
  let nginx: ChildProcess | undefined;
  let node: TestNode | undefined;
  let dir = '';
  let nginxPort = 0;
  let port4 = 0;
  let port6 = 0;

  beforeAll(async () => {
    const binary = findNginx();
    dir = mkdtempSync(join(tmpdir(), 'nexus-nginx-'));
    nginxPort = await freePort('127.0.0.1');
    for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) mkdirSync(join(dir, sub));
    const conf = join(dir, 'nginx.conf');
    // `user` only matters (and is only allowed to switch) when nginx starts as root.
    const asRoot = process.getuid?.() === 0;
    writeFileSync(
      conf,
      `${asRoot ? 'user root;\n' : ''}daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} info;
events { worker_connections 64; }
http {
  access_log ${join(dir, 'logs', 'access.log')};
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  server {
    listen 127.0.0.1:${nginxPort} proxy_protocol;
    location / {
      default_type text/plain;
      return 200 "$proxy_protocol_addr:$proxy_protocol_port $proxy_protocol_server_addr:$proxy_protocol_server_port";
    }
  }
}
`,
    );
    nginx = spawn(binary, ['-p', dir, '-c', conf, '-e', join(dir, 'logs', 'error.log')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    nginx.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // Ready once it accepts connections; a start failure shows its own error.
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (nginx.exitCode !== null) {
        const log = join(dir, 'logs', 'error.log');
        throw new Error(
          `nginx exited (${nginx.exitCode}): ${stderr}${existsSync(log) ? readFileSync(log, 'utf8') : ''}`,
        );
      }
      const ok = await new Promise<boolean>((resolve) => {
        const probe = connect({ host: '127.0.0.1', port: nginxPort }, () => {
          probe.destroy();
          resolve(true);
        });
        probe.on('error', () => resolve(false));
      });
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`nginx did not listen within 10 s: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const pki = await createTestPki();
    node = await startNode({
      pki,
      config: {
        listeners: [
          { port: 0, mode: 'http', host: '127.0.0.1' },
          { port: 0, mode: 'http', host: '::1' },
        ],
      },
    });
    port4 = node.addresses.listeners[0]!.address.port;
    port6 = node.addresses.listeners[1]!.address.port;
    const target = `127.0.0.1:${nginxPort}`;
    const mapping = {
      hosts: {
        'v1.test': { target, proxyProtocol: 'v1' as const },
        'v2.test': { target, proxyProtocol: 'v2' as const },
        'plain.test': target,
      },
    };
    await node.attachBackend({
      hostnames: ['v1.test', 'v2.test', 'plain.test'],
      portMappings: resolvePortMappings({ [port4]: mapping, [port6]: mapping }),
    });
    // The SDK path: a connect handler that dials itself and writes the header first.
    await node.attachBackend({
      hostnames: ['sdk.test'],
      connectHandler: (request) => {
        const socket = connect({ host: '127.0.0.1', port: nginxPort, allowHalfOpen: true });
        socket.write(buildProxyHeader({ version: 'v2', ...request }));
        return socket;
      },
    });
  });

  afterAll(async () => {
    await node?.close();
    if (nginx !== undefined && nginx.exitCode === null) {
      const exited = once(nginx, 'exit');
      nginx.kill('SIGTERM');
      await exited;
    }
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    { version: 'v1', family: 'IPv4', host: '127.0.0.1' },
    { version: 'v2', family: 'IPv4', host: '127.0.0.1' },
    { version: 'v1', family: 'IPv6', host: '::1' },
    { version: 'v2', family: 'IPv6', host: '::1' },
  ])('nginx sees the $family end user through a $version header', async ({ version, host }) => {
    const port = host === '::1' ? port6 : port4;
    const reply = await request(host, port, `${version}.test`);
    expect(reply.status).toBe('HTTP/1.1 200 OK');
    const [source, destination] = reply.body.split(' ');
    expect(source).toBe(reply.self);
    // Destination: the unspecified address of the source's family and the node's relay port.
    expect(destination).toBe(host === '::1' ? `:::${port}` : `0.0.0.0:${port}`);
  });

  it.each([
    { family: 'IPv4', host: '127.0.0.1' },
    { family: 'IPv6', host: '::1' },
  ])('nginx sees the $family end user through a connect handler using buildProxyHeader', async ({ host }) => {
    const port = host === '::1' ? port6 : port4;
    const reply = await request(host, port, 'sdk.test');
    expect(reply.status).toBe('HTTP/1.1 200 OK');
    expect(reply.body.split(' ')[0]).toBe(reply.self);
  });

  it('nginx refuses a stream sent without a header to a proxy_protocol listener', async () => {
    // Shows the header above is what nginx read: without it the same listener rejects the request.
    const reply = await request('127.0.0.1', port4, 'plain.test');
    expect(reply.status).not.toBe('HTTP/1.1 200 OK');
    expect(reply.body).not.toContain('127.0.0.1:');
  });
});
