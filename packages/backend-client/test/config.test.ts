import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadBackendClientConfig,
  parseBackendClientConfig,
  parseDuration,
  resolveBackendClientConfig,
} from '../src/config.js';
import { InvalidOptionsError } from '../src/errors.js';
import { resolveTarget } from '../src/port-mappings.js';

// The reference client's documented example, with the v1 `authToken` in place of `attestation`.
const REFERENCE_YAML = `backends:
  - # A friendly name for this configuration block.
    name: "edge-apps"
    # The public-facing hostnames this backend is responsible for.
    hostnames:
      - "app.example.com"
      - "api.example.com"
      - "*.preview.example.com"
    # The WebSocket addresses of the Nexus Proxy servers.
    nexusAddresses:
      - "wss://nexus-1.example.com/connect"
      - "wss://nexus-2.example.com/connect"
    weight: 2
    authToken: "eyJhbGciOiJIUzI1NiJ9.e30.sig"
    # A map of public-facing relay ports on Nexus to local service targets.
    portMappings:
      443:
        # Default target when no hostname-specific override matches.
        default: "localhost:8443"
        hosts:
          api.example.com: "localhost:9443" # Route API traffic to a separate service.
          "*.preview.example.com": "localhost:10443" # Wildcard route for single-label subdomains.
      80:
        default: "localhost:8080" # Relay HTTP traffic.
    # Configuration for active client health checks.
    healthChecks:
      enabled: true
      inactivityTimeout: 60
      pongTimeout: 5
  - name: "email-server"
    hostnames:
      - "imap.example.com"
    nexusAddresses:
      - "nexus.example.com:8443"
    authToken: "eyJhbGciOiJIUzI1NiJ9.e30.sig2"
    portMappings:
      993: "localhost:993" # Relay secure IMAP (IMAPS) traffic
`;

const backend = (extra: Record<string, unknown> = {}) => ({
  name: 'b',
  nexusAddresses: ['wss://n.example.com:8443/connect'],
  authToken: 't',
  portMappings: { 443: 'localhost:8443' },
  ...extra,
});

function error(input: Record<string, unknown>): InvalidOptionsError {
  try {
    resolveBackendClientConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionsError);
    return err as InvalidOptionsError;
  }
  throw new Error('config was accepted');
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nexus-backend-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('parseBackendClientConfig', () => {
  it('accepts the reference client example', () => {
    const c = parseBackendClientConfig(REFERENCE_YAML);
    expect(c.warnings).toEqual([]);
    const [edge, mail] = c.backends;
    expect(edge).toMatchObject({
      name: 'edge-apps',
      hostnames: ['app.example.com', 'api.example.com', '*.preview.example.com'],
      nexusAddresses: ['wss://nexus-1.example.com/connect', 'wss://nexus-2.example.com/connect'],
      weight: 2,
      authToken: 'eyJhbGciOiJIUzI1NiJ9.e30.sig',
      healthChecks: { enabled: true, inactivityTimeoutMs: 60_000, pongTimeoutMs: 5_000 },
      caFile: undefined,
    });
    expect(resolveTarget(edge!.portMappings, 443, 'api.example.com')).toEqual({
      host: 'localhost',
      port: 9443,
    });
    expect(resolveTarget(edge!.portMappings, 443, 'x.preview.example.com')).toEqual({
      host: 'localhost',
      port: 10443,
    });
    expect(resolveTarget(edge!.portMappings, 80, 'app.example.com')).toEqual({
      host: 'localhost',
      port: 8080,
    });
    expect(mail!.nexusAddresses).toEqual(['wss://nexus.example.com:8443/connect']);
    expect(resolveTarget(mail!.portMappings, 993, 'imap.example.com')).toEqual({
      host: 'localhost',
      port: 993,
    });
    expect(mail!.healthChecks).toEqual({ enabled: false, inactivityTimeoutMs: 60_000, pongTimeoutMs: 5_000 });
    expect(Object.isFrozen(c.backends[0])).toBe(true);
  });

  it('adds the line of the offending field to errors', () => {
    const text = REFERENCE_YAML.replace('"localhost:9443"', '"localhost"');
    expect(() => parseBackendClientConfig(text, { source: 'client.yaml' })).toThrow(
      /^backends\[0\]\.portMappings\.443\.hosts\["api\.example\.com"\] must be "host:port".*\(client\.yaml(:\d+)?\)$/,
    );
    const typo = 'backends:\n  - name: a\n    nexusAddress: [x]\n';
    expect(() => parseBackendClientConfig(typo)).toThrow(
      /backends\[0\]\.nexusAddress .*did you mean `nexusAddresses`.*\(config:3\)/,
    );
  });

  it('reports YAML syntax errors with line and column', () => {
    expect(() => parseBackendClientConfig('backends: [\n', { source: 'c.yaml' })).toThrow(
      /^c\.yaml:\d+:\d+ is not valid YAML/,
    );
  });

  it('rejects an empty document', () => {
    expect(() => parseBackendClientConfig('')).toThrow(/is empty/);
  });
});

describe('loadBackendClientConfig', () => {
  it('resolves caFile and authTokenFile against the file’s directory', async () => {
    const file = path.join(dir, 'client.yaml');
    await writeFile(
      file,
      `backends:
  - name: a
    nexusAddresses: ["n.example.com"]
    authTokenFile: token.jwt
    caFile: /etc/ssl/ca.pem
    portMappings: { 443: "localhost:1" }
`,
    );
    const c = await loadBackendClientConfig(file);
    expect(c.backends[0]).toMatchObject({
      authToken: undefined,
      authTokenFile: path.join(dir, 'token.jwt'),
      caFile: '/etc/ssl/ca.pem',
    });
  });

  it('reports a missing file', async () => {
    await expect(loadBackendClientConfig(path.join(dir, 'missing.yaml'))).rejects.toThrow(/not found/);
  });

  it('checks attestation.hmacSecretFile at load: one error naming the key and the file', async () => {
    const file = path.join(dir, 'attested.yaml');
    const yaml = (attestation: string) => `backends:
  - name: a
    hostnames: ["app.example.com"]
    nexusAddresses: ["n.example.com"]
    portMappings: { 443: "localhost:1" }
  - name: b
    hostnames: ["b.example.com"]
    nexusAddresses: ["n.example.com"]
    attestation: ${attestation}
    portMappings: { 443: "localhost:1" }
`;
    await writeFile(
      file,
      yaml('{ hmacSecretFile: hmac.key }').replace('    portMappings', '    authToken: t\n    portMappings'),
    );
    const missing = path.join(dir, 'hmac.key');
    await expect(loadBackendClientConfig(file)).rejects.toThrow(
      new InvalidOptionsError('backends[1].attestation.hmacSecretFile', `${missing} not found`),
    );
    await writeFile(missing, '\n');
    await expect(loadBackendClientConfig(file)).rejects.toThrow(
      `backends[1].attestation.hmacSecretFile ${missing} is empty`,
    );
    await writeFile(missing, 'the-secret\n');
    const c = await loadBackendClientConfig(file);
    expect(c.backends[1]!.attestation).toMatchObject({ provider: 'hmac', hmacSecretFile: missing });
    // With a command the secret is not used, so its file is not required either.
    await writeFile(
      file,
      yaml('{ command: /bin/true, hmacSecretFile: absent.key }').replace(
        '    portMappings',
        '    authToken: t\n    portMappings',
      ),
    );
    expect((await loadBackendClientConfig(file)).backends[1]!.attestation!.provider).toBe('command');
  });
});

describe('resolveBackendClientConfig', () => {
  it('uses the legacy hostname when hostnames is empty, and defaults weight ≤ 0 to 1', () => {
    const c = resolveBackendClientConfig({
      backends: [backend({ hostname: 'Legacy.example.com', weight: -3 })],
    });
    expect(c.backends[0]).toMatchObject({ hostnames: ['legacy.example.com'], weight: 1 });
  });

  it('accepts Go duration strings for health checks; zero means default', () => {
    const c = resolveBackendClientConfig({
      backends: [backend({ healthChecks: { enabled: true, inactivityTimeout: '1m30s', pongTimeout: 0 } })],
    });
    expect(c.backends[0]!.healthChecks).toEqual({
      enabled: true,
      inactivityTimeoutMs: 90_000,
      pongTimeoutMs: 5_000,
    });
  });

  it('keeps the reference port claims, flow control and SOCKS5 address, warning where they cannot work', () => {
    const c = resolveBackendClientConfig({
      backends: [
        backend({
          tcpPorts: [22, 22, 2222],
          flowControl: { maxBuffer: 64 },
          socks5ListenAddr: '127.0.0.1:1080',
        }),
      ],
    });
    expect(c.backends[0]).toMatchObject({
      era: 'seed',
      tcpPorts: [22, 2222],
      udpRoutes: [],
      flowControl: { highWaterMark: 48, lowWaterMark: 16, maxBuffer: 64 },
      socks5ListenAddr: '127.0.0.1:1080',
    });
    expect(c.warnings).toEqual([
      "backends[0].tcpPorts/udpRoutes are claimed only with attestation (the seed era's token is fixed)",
      'backends[0].socks5ListenAddr: without attestation.outboundAllowed: true the node refuses every outbound connection',
    ]);
  });

  it.each([
    { name: 'no backends', input: { backends: [] }, path: 'backends' },
    { name: 'an unknown top-level key', input: { backend: [] }, path: 'backend' },
    {
      name: 'a backend without name',
      input: { backends: [backend({ name: '' })] },
      path: 'backends[0].name',
    },
    { name: 'duplicate names', input: { backends: [backend(), backend()] }, path: 'backends[1].name' },
    {
      name: 'no hub address',
      input: { backends: [backend({ nexusAddresses: [] })] },
      path: 'backends[0].nexusAddresses',
    },
    {
      name: 'an http hub address',
      input: { backends: [backend({ nexusAddresses: ['https://n.example.com'] })] },
      path: 'backends[0].nexusAddresses[0]',
    },
    {
      name: 'no token',
      input: { backends: [backend({ authToken: undefined })] },
      path: 'backends[0].authToken',
    },
    {
      name: 'both a token and attestation',
      input: { backends: [backend({ attestation: { command: 'x' } })] },
      path: 'backends[0].attestation',
    },
    {
      name: 'both token and token file',
      input: { backends: [backend({ authTokenFile: 't.jwt' })] },
      path: 'backends[0].authTokenFile',
    },
    {
      name: 'a bad hostname',
      input: { backends: [backend({ hostnames: ['*.com'] })] },
      path: 'backends[0].hostnames[0]',
    },
    {
      name: 'a fractional weight',
      input: { backends: [backend({ weight: 1.5 })] },
      path: 'backends[0].weight',
    },
    {
      name: 'missing portMappings',
      input: { backends: [backend({ portMappings: undefined })] },
      path: 'backends[0].portMappings',
    },
    {
      name: 'a bad mapping',
      input: { backends: [backend({ portMappings: { 443: { hosts: { 'a.example.com': 'nope' } } } })] },
      path: 'backends[0].portMappings.443.hosts["a.example.com"]',
    },
    {
      name: 'a bad duration',
      input: { backends: [backend({ healthChecks: { inactivityTimeout: '10 minutes' } })] },
      path: 'backends[0].healthChecks.inactivityTimeout',
    },
    {
      name: 'an unknown health-check key',
      input: { backends: [backend({ healthChecks: { interval: 5 } })] },
      path: 'backends[0].healthChecks.interval',
    },
  ])('rejects $name naming $path', ({ input, path: at }) => {
    expect(error(input).path).toBe(at);
  });
});

describe('parseDuration', () => {
  it.each([
    { input: 60, expected: 60_000 },
    { input: 0.5, expected: 500 },
    { input: '60', expected: 60_000 },
    { input: '60s', expected: 60_000 },
    { input: '1m30s', expected: 90_000 },
    { input: '1.5s', expected: 1_500 },
    { input: '500ms', expected: 500 },
    { input: '2h', expected: 7_200_000 },
    { input: 0, expected: undefined },
    { input: -5, expected: undefined },
    { input: '0s', expected: undefined },
    { input: undefined, expected: undefined },
    { input: null, expected: undefined },
  ])('parseDuration($input) = $expected', ({ input, expected }) => {
    expect(parseDuration(input, 'x')).toBe(expected);
  });

  it.each(['', 's', '5 s', '5x', '1m 30s', 'abc', true])('rejects %j', (input) => {
    expect(() => parseDuration(input, 'x')).toThrow(InvalidOptionsError);
  });
});
