// Runs a real `nats-server` with JetStream on loopback, for the discovery tests
// (packages/core/test/integration/mesh-discovery-nats.test.ts) and the fleet benchmark
// (bench/scenarios/mesh-scale.mjs). Plain JavaScript (types in nats-server.d.mts) so that the benchmark,
// which runs without a TypeScript loader, starts it the same way. The binary is `$NATS_SERVER` when set,
// else `nats-server` on the PATH (Debian installs it in /usr/sbin; `.ci/run` installs the package).
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const binary = () => process.env.NATS_SERVER ?? 'nats-server';

/** True when the nats-server binary runs. */
export function natsServerAvailable() {
  const probe = spawnSync(binary(), ['--version'], { encoding: 'utf8' });
  return probe.error === undefined && probe.status === 0;
}

async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts nats-server with JetStream on 127.0.0.1 (a free port, its own store directory), optionally
 * requiring `token`. Throws, saying how to get one, when the binary is missing.
 */
export async function startNatsServer(options = {}) {
  if (!natsServerAvailable()) {
    throw new Error(
      `nats-server not found (tried ${binary()}): install Debian's nats-server package (.ci/run does) or set NATS_SERVER to its path`,
    );
  }
  const port = await freePort();
  const store = mkdtempSync(join(tmpdir(), 'nexus-nats-'));
  let child;
  const start = async () => {
    const args = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store];
    if (options.token !== undefined) args.push('--auth', options.token);
    const proc = spawn(binary(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let output = '';
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${output}`)), 10_000);
      proc.stderr.on('data', (d) => {
        output += d.toString();
        if (output.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited with ${code}:\n${output}`));
      });
    });
  };
  const stop = async () => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop,
    start,
    async remove() {
      await stop();
      rmSync(store, { recursive: true, force: true });
    },
  };
}
