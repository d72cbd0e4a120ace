import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderBackendSystemdUnit, SYSTEMD_SANDBOX } from '../src/systemd-unit.js';

/** `[Section]` → key → values, for the unit's lines (comments and blank lines skipped). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const section = /^\[(\w+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const entry = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!entry || current === undefined) throw new Error(`not a unit line: ${line}`);
    current.set(entry[1]!, [...(current.get(entry[1]!) ?? []), entry[2]!]);
  }
  return sections;
}

describe('renderBackendSystemdUnit', () => {
  it('runs nexus-backend -c FILE unprivileged, with no capability, the shared sandbox and SIGHUP reload', () => {
    const text = renderBackendSystemdUnit({ configFile: '/etc/nexus-backend/client.yaml' });
    const unit = parseUnit(text);
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
    const service = unit.get('Service')!;
    expect(service.get('ExecStart')).toEqual([
      '/usr/bin/env nexus-backend -c /etc/nexus-backend/client.yaml',
    ]);
    expect(service.get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    expect(service.get('User')).toEqual(['nexus-backend']);
    expect(service.get('CapabilityBoundingSet')).toEqual(['']);
    expect(service.get('AmbientCapabilities')).toEqual(['']);
    expect(service.get('NoNewPrivileges')).toEqual(['yes']);
    expect(service.get('ProtectSystem')).toEqual(['strict']);
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
    expect(text).toContain(SYSTEMD_SANDBOX);
    expect(text).toContain('install -d -m 0750 -o root -g nexus-backend /etc/nexus-backend');
  });

  it.each([
    [{ configFile: 'client.yaml' }, /--config must be an absolute path/],
    [{ configFile: '/etc/my client.yaml' }, /--config must be an absolute path/],
    [{ configFile: '/etc/c.yaml', user: 'Root User' }, /user is not a valid user name/],
    [{ configFile: '/etc/c.yaml', name: '../x' }, /name is not a valid unit name/],
  ])('refuses %j', (options, message) => {
    expect(() => renderBackendSystemdUnit(options)).toThrow(message);
  });

  it('passes systemd-analyze verify when systemd is installed, else parses', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexus-backend-unit-'));
    try {
      const file = join(dir, 'nexus-backend.service');
      writeFileSync(file, renderBackendSystemdUnit({ configFile: '/etc/nexus-backend/client.yaml' }));
      const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
      if (probe.error !== undefined) {
        expect(parseUnit(renderBackendSystemdUnit({ configFile: '/etc/c.yaml' })).size).toBe(3);
        return;
      }
      const result = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
      const complaints = `${result.stdout}${result.stderr}`.split('\n').filter((l) => l.includes(file));
      expect(complaints).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
