/**
 * Runs a real `nats-server` with JetStream on loopback for tests (docs/mesh.md "Discovery on NATS").
 * The binary is `$NATS_SERVER` when set, else `nats-server` on the PATH (Debian installs it in
 * /usr/sbin; `.ci/run` installs the package). A missing binary fails the test with a message saying so.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A running (or stopped) nats-server with its own store directory. */
export interface NatsServer {
  /** `nats://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** Stops the server (SIGTERM); the store directory stays for {@link start}. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store. */
  start(): Promise<void>;
  /** Stops it and removes its store. */
  remove(): Promise<void>;
}

function natsBinary(): string {
  const binary = process.env.NATS_SERVER ?? 'nats-server';
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `nats-server not found (tried ${binary}): install Debian's nats-server package (.ci/run does) or set NATS_SERVER to its path`,
    );
  }
  return binary;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts nats-server with JetStream on 127.0.0.1 (a free port), optionally requiring `token`. */
export async function startNatsServer(options: { token?: string } = {}): Promise<NatsServer> {
  const binary = natsBinary();
  const port = await freePort();
  const store = mkdtempSync(join(tmpdir(), 'nexus-nats-'));
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const args = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store];
    if (options.token !== undefined) args.push('--auth', options.token);
    const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${output}`)), 10_000);
      proc.stderr?.on('data', (d: Buffer) => {
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
    proc.stderr?.resume();
  };
  const stop = async (): Promise<void> => {
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
