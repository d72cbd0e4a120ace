/**
 * Each public entry point of the built package (`dist`, as users get it through package.json "exports")
 * is imported alone in a fresh Node process, as ESM and as CommonJS, and the packages it pulled in are
 * checked: a block loads what it uses and nothing else, and `acme-client` (which brings axios and
 * node-forge) and `@peculiar/x509` load only when a certificate is ordered or made, the `@nats-io` clients
 * only when route discovery starts, PKI.js only when a peer certificate is not issued directly by a
 * trusted CA. ESM loads are seen by
 * a module resolve hook that writes every resolved URL to a file; CommonJS loads are `require.cache`.
 * Needs the built package (`npm run build`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, issueCertificate } from '../src/certificates.js';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

/** The package a loaded file belongs to: `node_modules/<name>/…`, or a workspace package by its folder. */
function packageOf(file: string): string | undefined {
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file);
  if (inModules !== null) return inModules[1];
  const workspace = /\/packages\/([^/]+)\//.exec(file);
  if (workspace === null) return undefined;
  return workspace[1] === 'cli' ? 'nexus-proxy' : `@nexus-proxy/${workspace[1]}`;
}

let dir = '';
let hooks = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nexus-entries-'));
  writeFileSync(
    join(dir, 'hooks.mjs'),
    [
      "import { appendFileSync } from 'node:fs';",
      'export async function resolve(specifier, context, next) {',
      '  const result = await next(specifier, context);',
      "  appendFileSync(process.env.NEXUS_LOAD_LOG, result.url + '\\n');",
      '  return result;',
      '}',
    ].join('\n'),
  );
  hooks = join(dir, 'register.mjs');
  writeFileSync(
    hooks,
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `script` in a fresh Node process in the package folder; returns the packages it loaded. */
function loadedBy(format: 'esm' | 'cjs', script: string): Set<string> {
  const log = join(dir, `loads-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(log, '');
  const args =
    format === 'esm'
      ? ['--import', pathToFileURL(hooks).href, '--input-type=module', '-e', script]
      : [
          '-e',
          `${script}\nprocess.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(log)}, Object.keys(require.cache).join('\\n')));`,
        ];
  const result = spawnSync(process.execPath, args, {
    cwd: PACKAGE_DIR,
    encoding: 'utf8',
    env: { ...process.env, NEXUS_LOAD_LOG: log },
    timeout: 30_000,
  });
  expect(result.status, result.stderr).toBe(0);
  const files = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  return new Set(
    files.map((f) => packageOf(f.startsWith('file:') ? fileURLToPath(f) : f)).filter((p) => p !== undefined),
  );
}

const importOf = (format: 'esm' | 'cjs', specifier: string): string =>
  format === 'esm' ? `await import(${JSON.stringify(specifier)});` : `require(${JSON.stringify(specifier)});`;

/** The NATS clients: loaded only when route discovery starts (docs/mesh.md "Discovery on NATS"). */
const NATS = ['@nats-io/transport-node', '@nats-io/nats-core', '@nats-io/jetstream', '@nats-io/kv'];

/** What each entry point needs, and what it must not load. */
const ENTRIES: Array<{ specifier: string; loads: string[]; never: string[] }> = [
  {
    specifier: '@nexus-proxy/core/routing',
    loads: ['@nexus-proxy/sni'],
    never: ['ws', 'jose', 'acme-client', '@peculiar/x509', 'yaml', '@nexus-proxy/mux-protocol', ...NATS],
  },
  {
    specifier: '@nexus-proxy/core/hub',
    loads: ['ws', 'jose', '@nexus-proxy/mux-protocol'],
    never: ['acme-client', '@peculiar/x509', 'pkijs', 'yaml', 'valibot', ...NATS],
  },
  {
    specifier: '@nexus-proxy/core/mesh',
    loads: ['ws', '@nexus-proxy/mux-protocol'],
    never: ['jose', 'acme-client', '@peculiar/x509', 'pkijs', 'yaml', 'valibot', ...NATS],
  },
  {
    specifier: '@nexus-proxy/core',
    loads: ['ws', 'jose', 'yaml', '@nexus-proxy/mux-protocol', '@nexus-proxy/sni'],
    never: ['acme-client', '@peculiar/x509', 'pkijs', ...NATS],
  },
];

describe('entry points of @nexus-proxy/core', () => {
  it('are built (run npm run build first)', () => {
    for (const name of ['index', 'routing', 'hub', 'mesh']) {
      for (const ext of ['js', 'cjs', 'd.ts', 'd.cts']) {
        expect(existsSync(join(PACKAGE_DIR, 'dist', `${name}.${ext}`)), `dist/${name}.${ext}`).toBe(true);
      }
    }
  });

  for (const { specifier, loads, never } of ENTRIES) {
    for (const format of ['esm', 'cjs'] as const) {
      it(`${specifier} (${format}) loads ${loads.join(', ')} and not ${never.join(', ')}`, () => {
        const loaded = loadedBy(format, importOf(format, specifier));
        expect(loaded.has('@nexus-proxy/core')).toBe(true);
        for (const name of loads) expect(loaded, `${specifier} should load ${name}`).toContain(name);
        for (const name of never) expect(loaded, `${specifier} must not load ${name}`).not.toContain(name);
      });
    }
  }

  for (const format of ['esm', 'cjs'] as const) {
    it(`loads acme-client once a certificate is ordered, not before (${format})`, () => {
      // An order against a closed port fails, but only after acme-client was loaded to place it.
      const cacheDir = mkdtempSync(join(dir, 'acme-'));
      const script = [
        format === 'esm'
          ? "const { AcmeCertificateManager } = await import('@nexus-proxy/core');"
          : "const { AcmeCertificateManager } = require('@nexus-proxy/core');",
        'const manager = new AcmeCertificateManager({',
        "  hostname: 'node.example.test',",
        "  directoryUrl: 'https://127.0.0.1:1/directory',",
        `  cacheDir: ${JSON.stringify(cacheDir)},`,
        '  backoffMin: 60_000, backoffMax: 60_000,',
        '});',
        "const failed = new Promise((resolve) => manager.once('failed', resolve));",
        'manager.start();',
        format === 'esm' ? 'await failed; await manager.close();' : 'failed.then(() => manager.close());',
      ].join('\n');
      const loaded = loadedBy(format, script);
      expect(loaded).toContain('acme-client');
      const idle = loadedBy(format, importOf(format, '@nexus-proxy/core'));
      expect(idle).not.toContain('acme-client');
    });
  }

  for (const format of ['esm', 'cjs'] as const) {
    it(`checks a peer certificate from a trusted CA without PKI.js, loads it for an intermediate (${format})`, async () => {
      const ca = await createCertificateAuthority({ commonName: 'Entry CA' });
      const leaf = await issueCertificate(ca, { dnsNames: ['a.mesh.test'] });
      // Issued by a leaf: a chain with an intermediate (refused, but only after PKI.js looked at it).
      const under = await issueCertificate(leaf, { dnsNames: ['b.mesh.test'] });
      const script = (cert: string, chain: string[], ok: boolean) =>
        [
          format === 'esm'
            ? "const { PeerAuthenticator } = await import('@nexus-proxy/core/mesh');"
            : "const { PeerAuthenticator } = require('@nexus-proxy/core/mesh');",
          format === 'esm'
            ? "const { X509Certificate } = await import('node:crypto');"
            : "const { X509Certificate } = require('node:crypto');",
          `const auth = new PeerAuthenticator({ trustedDomainSuffixes: ['mesh.test'], ca: ${JSON.stringify(ca.certPem)}, systemCa: false });`,
          `auth.verifyCertificate(new X509Certificate(${JSON.stringify(cert)}), ${JSON.stringify(chain)}.map((p) => new X509Certificate(p)))`,
          `  .then((r) => { if (r.ok !== ${ok}) process.exit(3); });`,
        ].join('\n');
      const direct = loadedBy(format, script(leaf.certPem, [], true));
      expect(direct).not.toContain('pkijs');
      const full = loadedBy(format, script(under.certPem, [leaf.certPem], false));
      expect(full).toContain('pkijs');
    });
  }
});
