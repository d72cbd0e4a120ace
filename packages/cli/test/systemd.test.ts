import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createProgram } from '../src/program.js';
import { renderSystemdUnit } from '../src/systemd.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dirs: string[] = [];
const tmp = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-systemd-'));
  dirs.push(dir);
  return dir;
};

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Parses a unit file into section → key → values (in order), failing on anything that is not a unit line. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  text.split('\n').forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    const section = /^\[(\w+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      return;
    }
    const entry = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!entry || current === undefined) throw new Error(`line ${i + 1} is not a unit line: ${line}`);
    current.set(entry[1]!, [...(current.get(entry[1]!) ?? []), entry[2]!]);
  });
  return sections;
}

describe('renderSystemdUnit', () => {
  it('writes a hardened unit that runs the node with the config in /etc/nexus-proxy', () => {
    const unit = parseUnit(renderSystemdUnit());
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
    const service = unit.get('Service')!;
    const one = (key: string) => {
      expect(service.get(key), key).toHaveLength(1);
      return service.get(key)![0];
    };
    expect(one('ExecStart')).toBe('/usr/bin/env nexus-proxy serve -c /etc/nexus-proxy/config.yaml');
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(Number(one('TimeoutStopSec'))).toBeGreaterThan(10); // more than the CLI's drain grace
    expect(one('Restart')).toBe('on-failure');
    expect(one('User')).toBe('nexus');
    expect(one('AmbientCapabilities')).toBe('CAP_NET_BIND_SERVICE');
    expect(one('CapabilityBoundingSet')).toBe('CAP_NET_BIND_SERVICE');
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('StateDirectory')).toBe('nexus-proxy');
    expect(one('WorkingDirectory')).toBe('/var/lib/nexus-proxy');
    // V8 needs W+X pages: the unit must not deny them.
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
    expect(unit.get('Install')!.get('WantedBy')).toEqual(['multi-user.target']);
  });

  it('takes the config path, user, name and stop timeout', () => {
    const text = renderSystemdUnit({
      configFile: '/srv/nexus/node.yaml',
      user: 'edge',
      name: 'nexus-edge',
      timeoutStopSeconds: 45,
    });
    const service = parseUnit(text).get('Service')!;
    expect(service.get('ExecStart')).toEqual(['/usr/bin/env nexus-proxy serve -c /srv/nexus/node.yaml']);
    expect(service.get('User')).toEqual(['edge']);
    expect(service.get('StateDirectory')).toEqual(['nexus-edge']);
    expect(service.get('TimeoutStopSec')).toEqual(['45']);
    expect(text).toContain('install -d -m 0750 -o root -g edge /srv/nexus');
  });

  it.each([
    [{ configFile: 'config.yaml' }, /absolute/],
    [{ configFile: '/etc/my config.yaml' }, /absolute/],
    [{ user: 'Root User' }, /user/],
    [{ name: '../x' }, /unit name/],
    [{ timeoutStopSeconds: 0 }, /timeoutStopSeconds/],
  ])('refuses %j', (options, message) => {
    expect(() => renderSystemdUnit(options)).toThrow(message);
    expect(() => renderSystemdUnit(options)).toThrow(expect.objectContaining({ code: 'NEXUS_ERR_USAGE' }));
  });

  it('passes systemd-analyze verify when systemd is installed', () => {
    const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    const dir = tmp();
    const file = join(dir, 'nexus-proxy.service');
    writeFileSync(file, renderSystemdUnit());
    if (probe.error !== undefined) {
      // No systemd here: the parse check above is what we have; the file must at least parse.
      expect(parseUnit(readFileSync(file, 'utf8')).size).toBe(3);
      return;
    }
    const result = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
    // verify exits 0 even for unknown keys or bad values; it reports them on stderr, naming the file.
    const complaints = `${result.stdout}${result.stderr}`.split('\n').filter((l) => l.includes(file));
    expect(complaints).toEqual([]);
    expect(result.status).toBe(0);
    // The check is real: a broken unit does produce complaints.
    writeFileSync(file, `${renderSystemdUnit()}\n[Service]\nRestart=sometimes\n`);
    const broken = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
    expect(`${broken.stdout}${broken.stderr}`).toContain('sometimes');
  });
});

describe('nexus-proxy init --systemd', () => {
  it('writes the unit to -o and refuses to overwrite without --force', async () => {
    const file = join(tmp(), 'unit.service');
    const lines: string[] = [];
    const program = () => createProgram({ out: (t) => lines.push(t) }).exitOverride();
    await program().parseAsync(['node', 'nexus-proxy', 'init', '--systemd', '-o', file]);
    expect(lines).toEqual([`wrote ${file}`]);
    expect(readFileSync(file, 'utf8')).toBe(renderSystemdUnit());
    expect(statSync(file).mode & 0o777).toBe(0o644);
    await expect(
      program().parseAsync(['node', 'nexus-proxy', 'init', '--systemd', '-o', file]),
    ).rejects.toThrow(/already exists/);
    await expect(
      program().parseAsync(['node', 'nexus-proxy', 'init', '--systemd', '-o', file]),
    ).rejects.toMatchObject({ code: 'NEXUS_ERR_FILE_EXISTS' });
    await program().parseAsync(['node', 'nexus-proxy', 'init', '--systemd', '-o', file, '--force']);
  });

  it('writes nexus-proxy.service by default, not config.yaml', () => {
    const dir = tmp();
    const result = spawnSync(process.execPath, [CLI, 'init', '--systemd'], { cwd: dir, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(readFileSync(join(dir, 'nexus-proxy.service'), 'utf8')).toContain('[Service]');
    expect(existsSync(join(dir, 'config.yaml'))).toBe(false);
  });
});
