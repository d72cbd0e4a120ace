/**
 * Runs the examples of examples/ the way a reader would (`node <script>`), in their self-test mode, from a
 * copy under the OS temp dir: the examples write certificates, keys and port-shifted configuration files
 * next to themselves, and tests never write into the working tree. The copy resolves packages through a
 * link to the repository's node_modules, so it runs the built packages like any user would.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));
const NODE_MODULES = fileURLToPath(new URL('../../../node_modules', import.meta.url));

/** What the examples need built (`npm run build`). */
export const BUILT = ['../dist/cli.js', '../../core/dist/index.js', '../../backend-client/dist/cli.js'].map(
  (p) => fileURLToPath(new URL(p, import.meta.url)),
);

/** A copy of examples/ under the OS temp dir. */
export interface ExamplesCopy {
  /** The copy of examples/ (with a trailing slash, like a URL path). */
  dir: string;
  remove(): void;
}

/** Copies examples/ (without generated certificates and configuration copies) under the OS temp dir. */
export function copyExamples(): ExamplesCopy {
  const root = mkdtempSync(join(tmpdir(), 'nexus-examples-'));
  const dir = join(root, 'examples');
  cpSync(EXAMPLES, dir, {
    recursive: true,
    filter: (source) => {
      const name = basename(source);
      return name !== 'certs' && name !== 'node_modules' && !name.startsWith('.port-');
    },
  });
  symlinkSync(NODE_MODULES, join(root, 'node_modules'), 'dir');
  return { dir: `${dir}/`, remove: () => rmSync(root, { recursive: true, force: true }) };
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs `node <dir><script>` in `dir` with `env` until it exits (killed after `timeoutMs`). */
export function runExample(
  dir: string,
  script: string,
  env: Record<string, string>,
  timeoutMs = 20_000,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`${dir}${script}`], {
      cwd: dir,
      env: { ...process.env, EXIT_AFTER_SELFTEST: '1', ...env },
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

/**
 * A base port such that base…base+count-1 are free on 127.0.0.1 right now. Drawn below Linux's default
 * ephemeral range (32768–60999), so outgoing connections of other tests cannot take them in between.
 */
export async function freePortBase(count: number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 10_000 + Math.floor(Math.random() * (32_000 - 10_000 - count));
    let free = true;
    for (let i = 0; i < count && free; i++) free = await isFree(base + i);
    if (free) return base;
  }
  throw new Error('no free range of ports found');
}
