/**
 * `nexus-proxy check -c` through the real binary (exit codes for scripts: 0 ok, 1 invalid configuration,
 * 2 this machine cannot run it) and `nexus-proxy completion bash|zsh|fish` (the bash script run in a real
 * bash). Loopback sockets, files under the OS temp dir.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCertificate } from '@nexus-proxy/core';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, createWorkdir, type Workdir, writeNodeConfig } from './_ops-helpers.js';
import { portsToBind } from '@nexus-proxy/test-harness/ports';

let work: Workdir | undefined;
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  work?.remove();
  work = undefined;
});

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000, input });
  return {
    status: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    lines: r.stdout.split('\n').filter((l) => l),
  };
}

async function listening(port = 0): Promise<{ server: Server; port: number }> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/** A port that was free a moment ago (bound, then released). */
async function freePort(): Promise<number> {
  // Below the ephemeral range: no outbound socket can take it before it is bound.
  return (await portsToBind(1))[0]!;
}

describe('nexus-proxy check -c', () => {
  it('exits 0 for a good configuration, naming each check', async () => {
    work = await createWorkdir();
    const [tls, hub] = [await freePort(), await freePort()];
    const config = writeNodeConfig(work, {
      listeners: [{ port: tls, mode: 'tls', host: '127.0.0.1' }],
      backendListenAddress: `127.0.0.1:${hub}`,
    });
    const r = cli(['check', '-c', config]);
    expect(r.status).toBe(0);
    expect(r.lines[0]).toBe(`ok     ${config}: valid (1 relay listeners, hub 127.0.0.1:${hub})`);
    expect(r.lines[1]).toMatch(
      /^ok {5}hubTlsCertFile and hubTlsKeyFile belong together; valid until \S+ \(\d+ days?\)$/,
    );
    expect(r.lines).toContain(`ok     TLS relay listener 127.0.0.1:${tls} is free`);
    expect(r.lines).toContain(`ok     hub 127.0.0.1:${hub} is free`);
    expect(r.lines.every((l) => l.startsWith('ok '))).toBe(true);
  });

  it('exits 1 for a YAML syntax error, an unknown key, a missing or mismatched or expired certificate', async () => {
    work = await createWorkdir();
    const broken = join(work.dir, 'broken.yaml');
    writeFileSync(broken, 'backendsJWTSecret: x\nlisteners:\n  - port: 1\n   mode: tls\n');
    const syntax = cli(['check', '-c', broken]);
    expect(syntax.status).toBe(1);
    expect(syntax.lines).toEqual([
      expect.stringMatching(/^error {2}.*broken\.yaml:4:\d+: invalid YAML: .* \(line 4: " {3}mode: tls"\)$/),
    ]);

    const typo = cli(['check', '-c', writeNodeConfig(work, { relayPort: [443] })]);
    expect(typo.status).toBe(1);
    expect(typo.lines.at(-1)).toMatch(
      /^error {2}relayPort is not a known key \(did you mean `relayPorts`\?\)/,
    );

    const missing = cli([
      'check',
      '-c',
      writeNodeConfig(work, { hubTlsKeyFile: join(work.dir, 'none.key') }),
    ]);
    expect(missing.status).toBe(1);
    expect(missing.lines.at(-1)).toBe(
      `error  hubTlsKeyFile cannot read ${join(work.dir, 'none.key')} (no such file): fix the path or create the file`,
    );

    const other = await work.issueHub();
    writeFileSync(join(work.dir, 'other.key'), other.keyPem);
    const mismatch = cli([
      'check',
      '-c',
      writeNodeConfig(work, { hubTlsKeyFile: join(work.dir, 'other.key') }),
    ]);
    expect(mismatch.status).toBe(1);
    expect(mismatch.lines.at(-1)).toMatch(
      /^error {2}hubTlsCertFile .* and hubTlsKeyFile .*other\.key: TLS private key does not match the certificate/,
    );

    const expired = await issueCertificate(work.ca, {
      ipAddresses: ['127.0.0.1'],
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      validityDays: 2,
    });
    writeFileSync(join(work.dir, 'old.crt'), expired.certPem);
    writeFileSync(join(work.dir, 'old.key'), expired.keyPem);
    const old = cli([
      'check',
      '-c',
      writeNodeConfig(work, {
        hubTlsCertFile: join(work.dir, 'old.crt'),
        hubTlsKeyFile: join(work.dir, 'old.key'),
      }),
    ]);
    expect(old.status).toBe(1);
    expect(old.lines.at(-1)).toMatch(/^error {2}hubTlsCertFile .*old\.crt expired on \S+: renew it$/);

    const absent = cli(['check', '-c', join(work.dir, 'absent.yaml')]);
    expect(absent.status).toBe(1);
    expect(absent.lines).toEqual([
      `error  cannot read configuration file ${join(work.dir, 'absent.yaml')}: not found`,
    ]);
  });

  it('exits 2 when a port the configuration binds is taken, naming the listener and the key', async () => {
    work = await createWorkdir();
    const { port } = await listening();
    const r = cli([
      'check',
      '-c',
      writeNodeConfig(work, { listeners: [{ port, mode: 'http', host: '127.0.0.1' }] }),
    ]);
    expect(r.status).toBe(2);
    expect(r.lines.at(-1)).toBe(
      `error  HTTP relay listener cannot listen on 127.0.0.1:${port}: the port is already in use (EADDRINUSE): stop the other process (ss -ltnp 'sport = :${port}' shows it) or change relayPorts (or listeners)`,
    );
    // The check released every port it probed: the port it found free can be bound again at once.
    const hub = await freePort();
    const ok = cli(['check', '-c', writeNodeConfig(work, { backendListenAddress: `127.0.0.1:${hub}` })]);
    expect(ok.status).toBe(0);
    await listening(hub);
  });
});

describe('nexus-proxy completion', () => {
  it('bash: completes commands, options, option values and files in a real bash', () => {
    const script = cli(['completion', 'bash']);
    expect(script.status).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'nexus-completion-'));
    const file = join(dir, 'nexus-proxy.bash');
    writeFileSync(file, script.stdout);
    const ask = (line: string): string => {
      const r = spawnSync(
        'bash',
        [
          '-c',
          `source "$SCRIPT"; read -ra COMP_WORDS <<< "$LINE"; [[ "$LINE" == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); COMPREPLY=(); _nexus_proxy_complete; echo "\${COMPREPLY[*]}"`,
        ],
        { encoding: 'utf8', env: { ...process.env, LINE: line, SCRIPT: file } },
      );
      return r.stdout.trim();
    };
    expect(ask('nexus-proxy se')).toBe('serve');
    expect(ask('nexus-proxy ch')).toBe('check');
    expect(ask('nexus-proxy serve --log-f')).toBe('--log-format');
    expect(ask('nexus-proxy serve --log-format ')).toBe('auto pretty json');
    expect(ask('nexus-proxy serve -c x.yaml --log-level e')).toBe('error');
    expect(ask('nexus-proxy config ').split(' ')).toContain('schema');
    expect(ask('nexus-proxy config schema --b')).toBe('--backend');
    expect(ask('nexus-proxy completion ')).toMatch(/^bash zsh fish/);
    expect(ask('nexus-proxy check --')).toBe('--config --help');
    rmSync(dir, { recursive: true, force: true });
  });

  it('zsh and fish: scripts for every command and option', () => {
    const zsh = cli(['completion', 'zsh']);
    expect(zsh.status).toBe(0);
    expect(zsh.stdout).toMatch(/^#compdef nexus-proxy\n/);
    expect(zsh.stdout).toContain('bashcompinit');
    expect(zsh.stdout).toContain('complete -o default -F _nexus_proxy_complete nexus-proxy');
    const fish = cli(['completion', 'fish']);
    expect(fish.status).toBe(0);
    expect(fish.stdout).toContain(
      "complete -c nexus-proxy -n 'not __fish_seen_subcommand_from serve token init status check completion config' -a serve",
    );
    expect(fish.stdout).toContain(
      "complete -c nexus-proxy -n '__fish_seen_subcommand_from serve' -l log-format -x -a 'auto pretty json'",
    );
    expect(fish.stdout).toContain(
      "complete -c nexus-proxy -n '__fish_seen_subcommand_from check' -l config -s c -r -F",
    );
    const bad = cli(['completion', 'tcsh']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/'tcsh' is invalid .*bash, zsh, fish/);
  });
});
