/**
 * Runs every example of examples/ the way a reader would (`node <script>`), in its self-test mode: the
 * example makes its own requests through a real node over loopback, prints `SELFTEST OK` and exits 0.
 * Needs the built packages (`npm run build`): the examples import their dist like any user would.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));
const BUILT = ['../dist/cli.js', '../../core/dist/index.js', '../../backend-client/dist/cli.js'].map((p) =>
  fileURLToPath(new URL(p, import.meta.url)),
);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs `node examples/<script>` with `env` until it exits (killed after `timeoutMs`). */
function runExample(script: string, env: Record<string, string>, timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`${EXAMPLES}${script}`], {
      cwd: EXAMPLES,
      env: { ...process.env, EXIT_AFTER_SELFTEST: '1', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A base port such that base…base+count-1 are free on 127.0.0.1 right now. */
async function freePortBase(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let free = true;
    for (let i = 0; i < count && free; i++) free = await isFree(base + i);
    if (free) return base;
  }
  throw new Error('no free range of ports found');
}

describe('examples', () => {
  it('are run against built packages', () => {
    for (const file of BUILT) expect(existsSync(file), `${file} is missing: run npm run build`).toBe(true);
  });

  it('single-node: a node and a backend from their config files relay HTTPS and HTTP end to end', async () => {
    const run = await runExample('single-node/start.mjs', { PORT_BASE: String(await freePortBase(5)) });
    expect(run.output).toContain('SELFTEST OK');
    expect(run.output).toContain('[client] https://app.localhost:');
    expect(run.code, run.output).toBe(0);
  });

  it('embedding: a custom gateway feeds its own sockets and upgrades to createNexus', async () => {
    const run = await runExample('embedding/gateway.mjs', { PORT_BASE: '0', LOG_LEVEL: 'info' });
    expect(run.output).toContain('SELFTEST OK');
    // The typed events the gateway subscribes to were emitted and logged.
    for (const event of ['backend-connected', 'stream-open', 'stream-close', 'route-miss']) {
      expect(run.output).toContain(`event: ${event}`);
    }
    expect(run.code, run.output).toBe(0);
  });

  it('backend-sdk: a connectHandler serves one name in-process and port mappings serve the other', async () => {
    const run = await runExample('backend-sdk/device.mjs', { PORT_BASE: String(await freePortBase(3)) });
    expect(run.output).toContain('[client] api: served in-process by the connectHandler (HTTPS');
    expect(run.output).toContain('[client] web: reached through the port mappings (HTTP');
    expect(run.output).toContain('SELFTEST OK');
    expect(run.code, run.output).toBe(0);
  });
});
