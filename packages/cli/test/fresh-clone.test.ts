/**
 * The repository as a new user gets it: a fresh clone of HEAD, `npm ci`, `npm run build`, then the bins
 * through `npx`, as README.md and docs/getting-started.md say. npm links a workspace's bins at `npm ci`
 * time, before `dist/` exists, so the bins are committed launchers (`bin/*.js`) that load `dist/cli.js`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childEnv, run } from './_npm.js';
import { createWorkdir, writeNodeConfig } from './_ops-helpers.js';
import { portsToBind } from '@nexus-proxy/test-harness/ports';

/** A loopback port that was free a moment ago. */
async function freePort(): Promise<number> {
  // Below the ephemeral range: no outbound socket can take it before it is bound.
  return (await portsToBind(1))[0]!;
}

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const version = (dir: string): string =>
  JSON.parse(readFileSync(join(REPO_ROOT, 'packages', dir, 'package.json'), 'utf8')).version;

/** Runs `npx --no -- bin ...args` in `cwd`; resolves with the exit code and output, failing or not. */
function npx(
  bin: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'npx',
      ['--no', '--', bin, ...args],
      { cwd, timeout: 30_000, env: childEnv() },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('a fresh clone: npm ci, npm run build, npx', () => {
  let root = '';
  let repo = '';
  const beforeBuild: Record<string, Awaited<ReturnType<typeof npx>>> = {};

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'nexus-clone-'));
    repo = join(root, 'repo');
    await run('git', ['clone', '--quiet', '--no-hardlinks', REPO_ROOT, repo], root);
    await run('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], repo, 150_000);
    beforeBuild['nexus-proxy'] = await npx('nexus-proxy', ['--version'], repo);
    beforeBuild['nexus-backend'] = await npx('nexus-backend', ['--version'], repo);
    await run('npm', ['run', 'build'], repo, 240_000);
  }, 420_000);

  afterAll(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('says "run npm run build first" in one line when the bins run before the build', () => {
    for (const [bin, result] of Object.entries(beforeBuild)) {
      expect(result.code, bin).toBe(1);
      expect(result.stderr.trim(), bin).toBe(`${bin}: dist/cli.js is missing: run npm run build first`);
    }
  });

  it('prints the package version with `npx nexus-proxy --version` and `npx nexus-backend --version`', async () => {
    const proxy = await run('npx', ['--no', '--', 'nexus-proxy', '--version'], repo);
    expect(proxy.stdout.trim()).toBe(version('cli'));
    const backend = await run('npx', ['--no', '--', 'nexus-backend', '--version'], repo);
    expect(backend.stdout.trim()).toBe(version('backend-client'));
  });

  it('prints the usage with `npx nexus-proxy --help` and `npx nexus-backend --help`', async () => {
    const proxy = await run('npx', ['--no', '--', 'nexus-proxy', '--help'], repo);
    expect(proxy.stdout).toContain('Usage: nexus-proxy');
    expect(proxy.stdout).toMatch(/\bserve\b/);
    const backend = await run('npx', ['--no', '--', 'nexus-backend', '--help'], repo);
    expect(backend.stdout).toContain('Usage: nexus-backend');
    expect(backend.stdout).toContain('--version');
  });

  it('checks a good configuration (exit 0) and a broken one (exit 1, naming the file) with `npx nexus-proxy check -c`', async () => {
    const work = await createWorkdir();
    try {
      const [tls, hub] = [await freePort(), await freePort()];
      const good = writeNodeConfig(work, {
        listeners: [{ port: tls, mode: 'tls', host: '127.0.0.1' }],
        backendListenAddress: `127.0.0.1:${hub}`,
      });
      const ok = await npx('nexus-proxy', ['check', '-c', good], repo);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain(`${good}: valid`);
      const broken = join(work.dir, 'broken.yaml');
      writeFileSync(broken, 'backendsJWTSecret: x\nrelayPorts: [443\n');
      const bad = await npx('nexus-proxy', ['check', '-c', broken], repo);
      expect(bad.code).toBe(1);
      expect(`${bad.stdout}${bad.stderr}`).toContain(broken);
      expect(`${bad.stdout}${bad.stderr}`).not.toMatch(/\n\s+at /); // no stack trace
    } finally {
      work.remove();
    }
  });
});
