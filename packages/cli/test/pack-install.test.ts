/**
 * The packages as users get them: `npm pack` every workspace package (from its built `dist`), install the
 * six tarballs into an empty project in ONE `npm install` (so `@nexus-proxy/*` resolve to the tarballs,
 * never to the registry, where they are not published; third-party dependencies come from the registry),
 * then run the bins and import the libraries from there, ESM and CJS.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyBackendToken } from '@nexus-proxy/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './_npm.js';

const PACKAGES_DIR = fileURLToPath(new URL('../..', import.meta.url));
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
  const packed: Record<string, PackResult> = {};

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'nexus-pack-'));
    const tarballs = join(root, 'tarballs');
    app = join(root, 'app');
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
    await run(
      'npm',
      [
        'install',
        '--prefix',
        app,
        '--no-audit',
        '--no-fund',
        '--no-package-lock',
        ...Object.values(packed).map((p) => join(tarballs, p.filename)),
      ],
      app,
      75_000,
    );
  }, 90_000);

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
});
