/**
 * The packages as users get them: `npm pack` every workspace package (from its built `dist`) into the OS
 * temp dir, then, side by side:
 * - install the six tarballs into an empty project in ONE `npm install` (so `@nexus-proxy/*` resolve to
 *   the tarballs, never to the registry, where they are not published; third-party dependencies come
 *   from the registry), run the bins and import the libraries from there, ESM and CJS, and type-check a
 *   strict TypeScript consumer of every entry point (`strict`, no `skipLibCheck`, only the packages and
 *   `@types/node` installed);
 * - install them globally (`npm i -g --prefix <tmp>`), as `docs/deploy.md` says, and run the bins from
 *   that prefix.
 * `npm publish --dry-run` of every package checks what the registry would get (bins kept, public access).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyBackendToken } from '@nexus-proxy/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './_npm.js';

const PACKAGES_DIR = fileURLToPath(new URL('../..', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const TSC = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** Workspace folder → published name. */
const PACKAGES: Record<string, string> = {
  sni: '@nexus-proxy/sni',
  common: '@nexus-proxy/common',
  'mux-protocol': '@nexus-proxy/mux-protocol',
  core: '@nexus-proxy/core',
  'backend-client': '@nexus-proxy/backend-client',
  cli: 'nexus-proxy',
};
const SECRET = 'pack-install-secret-that-is-long-enough-0123456789';

interface PackResult {
  filename: string;
  files: Array<{ path: string }>;
}

describe('packages installed from their tarballs', () => {
  let root = '';
  let app = '';
  let globalPrefix = '';
  const packed: Record<string, PackResult> = {};

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'nexus-pack-'));
    const tarballs = join(root, 'tarballs');
    app = join(root, 'app');
    globalPrefix = join(root, 'global');
    mkdirSync(tarballs);
    mkdirSync(app);
    for (const [dir, name] of Object.entries(PACKAGES)) {
      const { stdout } = await run(
        'npm',
        ['pack', '--json', '--pack-destination', tarballs],
        join(PACKAGES_DIR, dir),
      );
      const [result] = JSON.parse(stdout) as PackResult[];
      packed[name] = result!;
    }
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'nexus-pack-app', version: '1.0.0', private: true }),
    );
    // Absolute paths: npm reads `dir/name.tgz` as a GitHub `owner/repo`.
    const files = Object.values(packed).map((p) => join(tarballs, p.filename));
    const flags = ['--no-audit', '--no-fund', '--no-package-lock'];
    await Promise.all([
      run('npm', ['install', '--prefix', app, ...flags, ...files, '@types/node@20'], app, 120_000),
      run('npm', ['install', '--global', '--prefix', globalPrefix, ...flags, ...files], root, 120_000),
    ]);
  }, 150_000);

  afterAll(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('packs only dist, the bin launchers, the README and package.json, with a packed file for every export and bin', () => {
    for (const [dir, name] of Object.entries(PACKAGES)) {
      const files = packed[name]!.files.map((f) => f.path);
      expect(files, name).toContain('package.json');
      expect(files, name).toContain('README.md');
      for (const file of files)
        expect(file, name).toMatch(/^(dist\/|bin\/[\w-]+\.js$|package\.json$|README\.md$|LICENSE$)/);
      const manifest = JSON.parse(readFileSync(join(PACKAGES_DIR, dir, 'package.json'), 'utf8'));
      expect(manifest.engines?.node, name).toBe('>=20');
      expect(manifest.license, name).toBe('MIT');
      const targets: string[] = [manifest.main, ...Object.values<string>(manifest.bin ?? {})];
      const walk = (value: unknown): void => {
        if (typeof value === 'string') targets.push(value);
        else if (value !== null && typeof value === 'object') Object.values(value).forEach(walk);
      };
      walk(manifest.exports);
      for (const target of targets) {
        if (target === './package.json') continue;
        expect(files, `${name}: ${target}`).toContain(target.replace(/^\.\//, ''));
      }
    }
  });

  it("packs the same packages as the Dockerfile's image build", () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const packed = /for p in ([\w -]+); do/.exec(dockerfile)?.[1]?.trim().split(/\s+/);
    expect(packed?.sort()).toEqual(Object.keys(PACKAGES).sort());
  });

  it('installs the workspace packages from the tarballs, not the registry', () => {
    for (const [dir, name] of Object.entries(PACKAGES)) {
      const installed = join(app, 'node_modules', name);
      expect(
        readFileSync(join(installed, 'dist', 'index.js')).equals(
          readFileSync(join(PACKAGES_DIR, dir, 'dist', 'index.js')),
        ),
        name,
      ).toBe(true);
      // One copy of each: no package pulled a nested (registry) copy of a sibling.
      expect(existsSync(join(installed, 'node_modules', '@nexus-proxy')), name).toBe(false);
    }
  });

  it('runs `nexus-proxy --help`', async () => {
    const { stdout } = await run('npx', ['--no', '--', 'nexus-proxy', '--help'], app);
    expect(stdout).toContain('Usage: nexus-proxy');
    expect(stdout).toMatch(/serve/);
    expect(stdout).toMatch(/token/);
  });

  it('mints a token with `nexus-proxy token` that verifies with the secret', async () => {
    const { stdout } = await run(
      'npx',
      ['--no', '--', 'nexus-proxy', 'token', '--secret', SECRET, '--hostname', 'a.example.com'],
      app,
    );
    const token = stdout.trim();
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const verified = await verifyBackendToken(token, { secrets: [SECRET] });
    expect(verified.hostnames).toEqual(['a.example.com']);
    await expect(verifyBackendToken(token, { secrets: [`${SECRET}-other`] })).rejects.toThrow();
  });

  it('runs `nexus-backend --help`', async () => {
    const { stdout } = await run('npx', ['--no', '--', 'nexus-backend', '--help'], app);
    expect(stdout).toContain('Usage: nexus-backend');
  });

  it('imports @nexus-proxy/core as ESM and @nexus-proxy/backend-client as CJS', async () => {
    const esm = await run(
      'node',
      ['-e', "import('@nexus-proxy/core').then((m) => console.log(typeof m.createNexus))"],
      app,
    );
    expect(esm.stdout.trim()).toBe('function');
    const cjs = await run(
      'node',
      [
        '-e',
        "const m = require('@nexus-proxy/backend-client'); console.log(typeof m.createBackendClient, typeof m.buildProxyHeader)",
      ],
      app,
    );
    expect(cjs.stdout.trim()).toBe('function function');
  });

  it('imports every package both ways', async () => {
    const names = JSON.stringify(Object.keys(packed));
    const script = `const names = ${names};
for (const n of names) { const m = require(n); if (Object.keys(m).length === 0) throw new Error(n + ' (cjs) is empty'); }
Promise.all(names.map((n) => import(n))).then((ms) => console.log(ms.every((m) => Object.keys(m).length > 0)));`;
    const { stdout } = await run('node', ['-e', script], app);
    expect(stdout.trim()).toBe('true');
  });

  it("imports core's blocks alone from their subpaths both ways, sharing one RoutingTable", async () => {
    const script = `const blocks = { routing: 'RoutingTable', hub: 'BackendHub', mesh: 'PeerMesh' };
for (const [b, name] of Object.entries(blocks)) {
  if (typeof require('@nexus-proxy/core/' + b)[name] !== 'function') throw new Error(b + ' (cjs)');
}
Promise.all(Object.keys(blocks).map((b) => import('@nexus-proxy/core/' + b))).then(async (ms) => {
  const core = await import('@nexus-proxy/core');
  console.log(ms.every((m, i) => typeof m[Object.values(blocks)[i]] === 'function'), ms[0].RoutingTable === core.RoutingTable);
});`;
    const { stdout } = await run('node', ['-e', script], app);
    expect(stdout.trim()).toBe('true true');
  });

  it('runs `nexus-proxy --version` and `nexus-backend --version` from a global install (npm i -g --prefix)', async () => {
    const version = (dir: string): string =>
      JSON.parse(readFileSync(join(PACKAGES_DIR, dir, 'package.json'), 'utf8')).version;
    const proxy = await run(join(globalPrefix, 'bin', 'nexus-proxy'), ['--version'], root);
    expect(proxy.stdout.trim()).toBe(version('cli'));
    const backend = await run(join(globalPrefix, 'bin', 'nexus-backend'), ['--version'], root);
    expect(backend.stdout.trim()).toBe(version('backend-client'));
    // The CLI's @nexus-proxy dependencies are the globally installed tarballs, not registry copies.
    const cli = join(globalPrefix, 'lib', 'node_modules', 'nexus-proxy');
    expect(existsSync(join(cli, 'node_modules', '@nexus-proxy'))).toBe(false);
  });

  it('type-checks a strict TypeScript consumer of every entry point and subpath export, ESM and CJS', async () => {
    const specifiers: string[] = [];
    for (const [dir, name] of Object.entries(PACKAGES)) {
      const manifest = JSON.parse(readFileSync(join(PACKAGES_DIR, dir, 'package.json'), 'utf8'));
      for (const subpath of Object.keys(manifest.exports as Record<string, unknown>)) {
        if (subpath !== './package.json') specifiers.push(name + subpath.slice(1));
      }
    }
    expect(specifiers).toEqual(
      expect.arrayContaining(['@nexus-proxy/core/routing', '@nexus-proxy/common/config']),
    );
    const consumer = join(app, 'consumer');
    mkdirSync(consumer, { recursive: true });
    const esm = specifiers.map((s, i) => `import * as m${i} from '${s}';`);
    const cjs = specifiers.map((s, i) => `import m${i} = require('${s}');`);
    const all = `export const modules: object[] = [${specifiers.map((_, i) => `m${i}`).join(', ')}];`;
    writeFileSync(join(consumer, 'all.mts'), [...esm, all, ''].join('\n'));
    writeFileSync(join(consumer, 'all.cts'), [...cjs, all, ''].join('\n'));
    // The documented entry points, used with their types.
    writeFileSync(
      join(consumer, 'use.mts'),
      `import { createNexus, type NexusConfigInput, type StreamCloseEvent } from '@nexus-proxy/core';
import { createBackendClient } from '@nexus-proxy/backend-client';
import { createProgram } from 'nexus-proxy';
const input: NexusConfigInput = { backendListenAddress: ':8443', relayPorts: [443, 80], backendsJWTSecret: 'x'.repeat(32), hubPublicHostname: 'nexus1.nexus-test.net' };
const nexus = createNexus(input);
nexus.on('stream-close', (e: StreamCloseEvent) => console.log(e.hostname.length, e.bytesUp + e.bytesDown));
export const client: ReturnType<typeof createBackendClient> | undefined = undefined;
export const program: string = createProgram().name();
`,
    );
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          skipLibCheck: false,
          noEmit: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          types: ['node'],
        },
        files: ['all.mts', 'all.cts', 'use.mts'],
      }),
    );
    const result = await run('node', [TSC, '-p', join(consumer, 'tsconfig.json')], consumer, 120_000).catch(
      (err: Error) => ({ stdout: err.message, stderr: '' }),
    );
    expect(result.stdout).toBe('');
  }, 130_000);

  it('publishes every package with its bins and public access (npm publish --dry-run)', async () => {
    const workspaces = Object.keys(PACKAGES).flatMap((dir) => ['--workspace', `packages/${dir}`]);
    const { stdout, stderr } = await run(
      'npm',
      ['publish', '--dry-run', '--json', ...workspaces],
      REPO_ROOT,
      60_000,
    );
    // npm rewrites a manifest it finds fault with, and may drop a bin while doing so.
    expect(stderr).not.toMatch(/auto-corrected|invalid|removed/);
    const published = JSON.parse(stdout) as Record<string, { name: string; files: Array<{ path: string }> }>;
    expect(Object.keys(published).sort()).toEqual(Object.values(PACKAGES).sort());
    for (const [dir, name] of Object.entries(PACKAGES)) {
      const manifest = JSON.parse(readFileSync(join(PACKAGES_DIR, dir, 'package.json'), 'utf8'));
      expect(manifest.private, name).toBeUndefined();
      if (name.startsWith('@')) expect(manifest.publishConfig?.access, name).toBe('public');
      const files = published[name]!.files.map((f) => f.path);
      for (const bin of Object.values<string>(manifest.bin ?? {})) expect(files, name).toContain(bin);
    }
  }, 70_000);
});
