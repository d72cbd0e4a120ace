/**
 * `nexus-proxy init` as the installer, into a temporary root (`--root` / `NEXUS_ROOT`). `useradd` and
 * `systemctl` are recording fakes first on `PATH` (the one seam, see installer.ts); the DNS check asks a
 * small DNS server on loopback (`--resolver`), so the check runs for real without the network.
 */
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@nexus-proxy/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const HOST = 'nexus1.install-test.net';
const dirs: string[] = [];
const tmp = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-init-'));
  dirs.push(dir);
  return dir;
};

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A directory with recording `systemctl` and `useradd` fakes; `useradd --root R` adds the user to R/etc/passwd. */
function fakeBin(options: { systemctlFails?: boolean } = {}): { bin: string; log: string } {
  const bin = tmp();
  const log = join(bin, 'calls.log');
  writeFileSync(
    join(bin, 'systemctl'),
    `#!/bin/sh\necho "systemctl $*" >> "${log}"\n${options.systemctlFails ? 'echo "Failed to connect to bus" >&2; exit 1\n' : ''}`,
  );
  writeFileSync(
    join(bin, 'useradd'),
    `#!/bin/sh
echo "useradd $*" >> "${log}"
root=/
while [ $# -gt 1 ]; do [ "$1" = --root ] && root="$2"; shift; done
mkdir -p "$root/etc" && echo "$1:x:4242:4343::/var/lib/nexus-proxy:/usr/sbin/nologin" >> "$root/etc/passwd"
`,
  );
  chmodSync(join(bin, 'systemctl'), 0o755);
  chmodSync(join(bin, 'useradd'), 0o755);
  return { bin, log };
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with `args` and only `env` (plus PATH) as its environment. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}, bin?: string): Promise<Result> {
  return new Promise((resolve) => {
    const path = bin === undefined ? process.env.PATH : `${bin}:${process.env.PATH}`;
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: path, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A DNS server on loopback answering A and AAAA queries from `records` (no record: an empty answer). */
function dnsServer(records: Record<string, { a?: string[]; aaaa?: string[] }>): Promise<Socket> {
  const server = createSocket('udp4');
  server.on('message', (query, peer) => {
    // Question: labels from offset 12, then QTYPE and QCLASS.
    let at = 12;
    const labels: string[] = [];
    while (query[at]! > 0) {
      labels.push(query.subarray(at + 1, at + 1 + query[at]!).toString('ascii'));
      at += query[at]! + 1;
    }
    const qtype = query.readUInt16BE(at + 1);
    const question = query.subarray(12, at + 5);
    const entry = records[labels.join('.').toLowerCase()];
    const found = (qtype === 1 ? entry?.a : qtype === 28 ? entry?.aaaa : undefined) ?? [];
    const answers = found.map((address) => {
      const rdata =
        qtype === 1
          ? Buffer.from(address.split('.').map(Number))
          : Buffer.from(
              address
                .split(':')
                .map((h) => h.padStart(4, '0'))
                .join(''),
              'hex',
            );
      const head = Buffer.alloc(12);
      head.writeUInt16BE(0xc00c, 0); // name: pointer to the question
      head.writeUInt16BE(qtype, 2);
      head.writeUInt16BE(1, 4); // IN
      head.writeUInt32BE(60, 6);
      head.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([head, rdata]);
    });
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(entry === undefined ? 0x8183 : 0x8180, 2); // response, RD+RA; NXDOMAIN when unknown
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    server.send(Buffer.concat([header, question, ...answers]), peer.port, peer.address);
  });
  return new Promise((resolve) => server.bind(0, '127.0.0.1', () => resolve(server)));
}

describe('nexus-proxy init into a temporary root', () => {
  it('installs from the environment: directories, config with a secret and the ACME cache in the state directory, user, unit, enable --now', async () => {
    const root = tmp();
    const { bin, log } = fakeBin();
    const result = await cli(
      ['init', '--systemd', '--enable'],
      { NEXUS_HOST: HOST, NEXUS_EMAIL: 'ops@install-test.net', NEXUS_SKIP_DNS: '1', NEXUS_ROOT: root },
      bin,
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`DNS check of ${HOST} skipped`);

    const configFile = join(root, 'etc/nexus-proxy/config.yaml');
    const config = await loadConfig(configFile);
    expect(config.tls).toMatchObject({
      mode: 'acme',
      hostname: HOST,
      email: 'ops@install-test.net',
      cacheDir: '/var/lib/nexus-proxy/acme',
    });
    expect(config.backendsJWTSecrets[0]).toMatch(/^[0-9a-f]{64}$/);
    // `check` finds nothing to warn about (its port checks depend on who runs the test).
    const check = await cli(['check', '-c', configFile]);
    expect(check.stdout).toMatch(/^ok +\S+config\.yaml: valid/);
    expect(check.stdout).not.toMatch(/^warning/m);
    expect(statSync(configFile).mode & 0o777).toBe(0o640);
    expect(statSync(join(root, 'var/lib/nexus-proxy/acme')).isDirectory()).toBe(true);
    expect(statSync(join(root, 'var/lib/nexus-proxy/acme')).mode & 0o777).toBe(0o700);
    if (process.getuid?.() === 0) {
      // Root chowns: the config readable by the service's group, the state directory the service's own.
      expect(statSync(configFile).gid).toBe(4343);
      expect(statSync(join(root, 'var/lib/nexus-proxy/acme')).uid).toBe(4242);
    }

    const unit = readFileSync(join(root, 'etc/systemd/system/nexus-proxy.service'), 'utf8');
    expect(unit).toContain('ExecStart=/usr/bin/env nexus-proxy serve -c /etc/nexus-proxy/config.yaml');
    // The ACME cache is inside the one directory ProtectSystem=strict leaves writable.
    expect(unit).toContain('ProtectSystem=strict');
    expect(unit).toContain('StateDirectory=nexus-proxy');
    expect(config.tls.mode === 'acme' && config.tls.cacheDir.startsWith('/var/lib/nexus-proxy/')).toBe(true);

    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual([
      `useradd --root ${root} --system --user-group --home-dir /var/lib/nexus-proxy --shell /usr/sbin/nologin nexus`,
      'systemctl daemon-reload',
      'systemctl enable --now nexus-proxy.service',
    ]);
  });

  it('takes flags over the environment, and keeps an existing configuration (and its secret) without --force', async () => {
    const root = tmp();
    const { bin, log } = fakeBin();
    const args = ['init', '--hostname', HOST, '--skip-dns', '--root', root, '--dir', '/etc/edge'];
    const first = await cli(args, { NEXUS_HOST: 'nexus1.example.com' }, bin);
    expect(first.stderr).toBe('');
    const file = join(root, 'etc/edge/config.yaml');
    const secret = (await loadConfig(file)).backendsJWTSecrets[0];
    const again = await cli(args, {}, bin);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`nexus-proxy: ${file} already exists (use --force to overwrite)\n`);
    expect((await loadConfig(file)).backendsJWTSecrets[0]).toBe(secret);
    expect((await cli([...args, '--force'], {}, bin)).code).toBe(0);
    expect((await loadConfig(file)).backendsJWTSecrets[0]).not.toBe(secret);
    // Without --systemd no user, no unit, no systemctl.
    expect(existsSync(log)).toBe(false);
    expect(existsSync(join(root, 'etc/systemd'))).toBe(false);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it.each([
    [['--hostname', 'nexus.example.com'], {}, /nexus\.example\.com is a placeholder/],
    [[], { NEXUS_HOST: 'edge.example.org' }, /edge\.example\.org is a placeholder/],
    [['--hostname', 'localhost'], {}, /not a public DNS name/],
    [['--hostname', '203.0.113.7'], {}, /not a public DNS name/],
    [['--hostname', HOST, '--email', 'ops@example.com'], {}, /ops@example\.com is a placeholder/],
    [[], {}, /needs this node's public DNS name: --hostname .* \(or NEXUS_HOST\)/],
    [['--hostname', HOST, '--enable'], {}, /--enable needs --systemd/],
    [['--hostname', HOST], { NEXUS_SKIP_DNS: 'maybe' }, /NEXUS_SKIP_DNS must be 1 or 0/],
    [['--hostname', HOST, '--systemd', '--state-dir', '/srv/nexus'], {}, /StateDirectory/],
  ])('refuses %j %j in one line and writes nothing', async (args, env, message) => {
    const root = tmp();
    const result = await cli(['init', '--skip-dns', '--root', root, ...args], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(join(root, 'etc'))).toBe(false);
    expect(existsSync(join(root, 'var'))).toBe(false);
  });

  it('reports a failing systemctl with its message', async () => {
    const root = tmp();
    const { bin } = fakeBin({ systemctlFails: true });
    const result = await cli(
      ['init', '--hostname', HOST, '--skip-dns', '--root', root, '--systemd', '--enable'],
      {},
      bin,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('nexus-proxy: systemctl daemon-reload failed: Failed to connect to bus\n');
    // Everything before the failing step is in place.
    expect(existsSync(join(root, 'etc/systemd/system/nexus-proxy.service'))).toBe(true);
  });
});

describe('nexus-proxy init: the DNS check', () => {
  let dns: Socket;
  let resolver = '';
  beforeAll(async () => {
    dns = await dnsServer({
      [HOST]: { a: ['127.0.0.1'], aaaa: ['0:0:0:0:0:0:0:1'] },
      'elsewhere.install-test.net': { a: ['192.0.2.10'] },
      'norecord.install-test.net': {},
    });
    resolver = `127.0.0.1:${dns.address().port}`;
  });
  afterAll(() => dns.close());

  it('passes when an A/AAAA record is an address of this machine', async () => {
    const root = tmp();
    const result = await cli(['init', '--hostname', HOST, '--resolver', resolver, '--root', root]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain(`DNS: ${HOST} → 127.0.0.1, ::1 (this machine)`);
    expect(existsSync(join(root, 'etc/nexus-proxy/config.yaml'))).toBe(true);
  });

  it('refuses a name that points elsewhere, naming the address and the way to skip the check', async () => {
    const root = tmp();
    const result = await cli([
      'init',
      '--hostname',
      'elsewhere.install-test.net',
      '--resolver',
      resolver,
      '--root',
      root,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^nexus-proxy: elsewhere\.install-test\.net resolves to 192\.0\.2\.10, not to an address of this machine \(.*127\.0\.0\.1.*\): .*--skip-dns \(NEXUS_SKIP_DNS=1\)\n$/,
    );
    expect(existsSync(join(root, 'etc'))).toBe(false);
    // The same name with the check skipped from the environment installs.
    const skipped = await cli(
      ['init', '--hostname', 'elsewhere.install-test.net', '--resolver', resolver, '--root', root],
      {
        NEXUS_SKIP_DNS: 'true',
      },
    );
    expect(skipped.code).toBe(0);
  });

  it('refuses a name without A/AAAA records', async () => {
    for (const name of ['norecord.install-test.net', 'unknown.install-test.net']) {
      const result = await cli(['init', '--hostname', name, '--resolver', resolver, '--root', tmp()]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `nexus-proxy: ${name} has no A or AAAA record: point one at this machine, or skip the check with --skip-dns (NEXUS_SKIP_DNS=1)\n`,
      );
    }
  });
});
