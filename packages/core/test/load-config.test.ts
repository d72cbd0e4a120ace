import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidConfigError } from '../src/errors.js';
import { loadConfig, parseConfig } from '../src/load-config.js';

// The reference server's documented example, byte for byte apart from the secret (and a valid peer URL).
const REFERENCE_YAML = `# The address for the backend WebSocket hub to listen on.
backendListenAddress: ":8443"
# The address for the peer WebSocket hub to listen on.
peerListenAddress: ":8444"

# TLS certificate and key for the secure WebSocket server. (Mandatory)
hubTlsCertFile: "hub.crt"
hubTlsKeyFile: "hub.key"

# Ports to listen on for public client traffic.
# Port 80 is treated as L7 HTTP, all others as L4 TCP.
relayPorts:
  - 443
  - 80

# Time in seconds that a client connection can be idle before being closed.
idleTimeoutSeconds: 60

# A secret used to authenticate connections with backends.
backendsJWTSecret: "a-very-strong-jwt-secret-from-the-central-authorizer"

peerAuthentication:
  trustedDomainSuffixes:
    - ".mesh.example.com"

# A map of peer Nexus nodes to form the mesh
peers:
  - "wss://nexus-eu.mesh.example.com:8444/mesh"
`;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nexus-config-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

describe('loadConfig', () => {
  it('loads the reference example and resolves file paths against the file’s directory', async () => {
    const file = await write('reference.yaml', REFERENCE_YAML);
    const c = await loadConfig(file);
    expect(c.tls).toEqual({
      mode: 'files',
      certFile: path.join(dir, 'hub.crt'),
      keyFile: path.join(dir, 'hub.key'),
    });
    expect(c.listeners.map((l) => l.mode)).toEqual(['tls', 'http']);
    expect(c.idleTimeoutMs).toBe(60_000);
    expect(c.peers).toEqual(['wss://nexus-eu.mesh.example.com:8444/mesh']);
    expect(c.warnings).toEqual([]);
  });

  it('resolves acmeCacheDir (also the default) against the file’s directory', async () => {
    const file = await write(
      'acme.yaml',
      'backendsJWTSecret: a-very-strong-jwt-secret-from-the-central-authorizer\nhubPublicHostname: nexus.example.com\n',
    );
    const c = await loadConfig(file);
    expect(c.tls.mode === 'acme' && c.tls.cacheDir).toBe(path.join(dir, 'acme_certs'));
  });

  it('loads the repository’s config.example.yaml without warnings', async () => {
    const example = path.resolve(import.meta.dirname, '../../../config.example.yaml');
    const c = await loadConfig(example);
    expect(c.warnings).toEqual([]);
    expect(c.tls.mode).toBe('files');
    expect(c.listeners).toHaveLength(2);
  });

  it('reports a missing file as InvalidConfigError', async () => {
    await expect(loadConfig(path.join(dir, 'nope.yaml'))).rejects.toSatisfy(
      (e: unknown) => InvalidConfigError.is(e) && /not found/.test((e as Error).message),
    );
  });
});

describe('parseConfig', () => {
  it('reports YAML syntax errors with source, line and column', () => {
    expect(() => parseConfig('relayPorts: [443\nbackendsJWTSecret: x\n', { source: 'node.yaml' })).toThrow(
      /^node\.yaml:\d+:\d+: invalid YAML/,
    );
  });

  it('quotes the offending line of a YAML syntax error on one line, without the parser\'s dangling "at line"', () => {
    const text = 'backendsJWTSecret: x\nlisteners:\n  - port: 1\n   mode: tls\n';
    let message = '';
    try {
      parseConfig(text, { source: 'node.yaml' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(
      'node.yaml:4:1: invalid YAML: Sequence item without - indicator (line 4: "   mode: tls")',
    );
    expect(() => parseConfig('relayPorts: [443]\nrelayPorts: [80]\n', { source: 'n.yaml' })).toThrow(
      'n.yaml:2:1: invalid YAML: Map keys must be unique (line 2: "relayPorts: [80]")',
    );
  });

  it('refuses a key written twice', () => {
    expect(() => parseConfig('relayPorts: [443]\nrelayPorts: [80]\n')).toThrow(/invalid YAML/);
  });

  it('adds the line of the offending field to validation errors', () => {
    const text = `backendsJWTSecret: a-very-strong-jwt-secret-from-the-central-authorizer
hubTlsCertFile: a
hubTlsKeyFile: b
listeners:
  - port: 443
  - port: 80
  - port: 99999
`;
    try {
      parseConfig(text, { source: 'node.yaml' });
      expect.unreachable();
    } catch (err) {
      expect(InvalidConfigError.is(err)).toBe(true);
      expect((err as InvalidConfigError).path).toBe('listeners[2].port');
      expect((err as Error).message).toBe(
        'listeners[2].port must be an integer between 0 and 65535 (got 99999) (node.yaml:7)',
      );
    }
  });

  it('points an unknown key at its line', () => {
    expect(() => parseConfig('hubTlsCertFile: a\nhubTlsKeyFile: b\nrelayPort: [1]\n')).toThrow(
      /relayPort is not a known key \(did you mean `relayPorts`\?\) \(config:3\)/,
    );
  });

  it('rejects an empty document', () => {
    expect(() => parseConfig('# nothing\n')).toThrow(/configuration is empty/);
  });

  it('rejects a document that is a list', () => {
    expect(() => parseConfig('- a\n- b\n')).toThrow(/must be a mapping/);
  });

  it('refuses alias bombs instead of expanding them', () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 0; i < 8; i++) {
      const prev = String.fromCharCode(97 + i);
      const next = String.fromCharCode(98 + i);
      lines.push(`${next}: &${next} [${Array(10).fill(`*${prev}`).join(',')}]`);
    }
    expect(() => parseConfig(lines.join('\n'))).toThrow(InvalidConfigError);
  });
});
