/**
 * The current era in the configuration file and the SDK options: the reference client's own example loads
 * unchanged, strictly; era selection; the attestation keys, port claims, flow control and SOCKS5 address.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { attestationClientOptions } from '../src/attestation-config.js';
import { resolveBackendClientOptions } from '../src/client-options.js';
import { parseBackendClientConfig, resolveBackendClientConfig } from '../src/config.js';
import { InvalidOptionsError } from '../src/errors.js';
import { resolvePortMappings } from '../src/port-mappings.js';

// The current reference client's config/client.example.yaml (v0.3.14), verbatim.
const REFERENCE_EXAMPLE = `backends:
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
    # Optional weight advertised to Nexus for load-balancing decisions (defaults to 1).
    weight: 2
    # Command that obtains handshake and attested tokens from your authorizer.
    attestation:
      command: "/usr/local/bin/nexus-attestor"
      args:
        - "--backend=edge-apps"
      env:
        AUTHORIZER_BASE_URL: "https://authorizer.example.com"
      timeoutSeconds: 20
      cacheHandshakeSeconds: 30
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
      # Enable active health checks. Recommended.
      enabled: true
      # Time in seconds a connection can be idle before a ping is sent.
      inactivityTimeout: 60
      # Time in seconds to wait for a pong from the proxy after a ping is sent.
      pongTimeout: 5
  - name: "email-server"
    hostnames:
      - "imap.example.com"
    nexusAddresses:
      - "wss://nexus.example.com/connect"
    attestation:
      hmacSecretFile: "/etc/nexus/email-hmac.key"
      tokenTTLSeconds: 45
      reauthIntervalSeconds: 900
      reauthGraceSeconds: 15
      # Enable outbound connections so this backend can send email via
      # the proxy's static IP. The proxy must also have allowOutbound: true.
      outboundAllowed: true
      allowedOutboundPorts:
        - 25
        - 465
        - 587
    portMappings:
      993:
        default: "localhost:993" # Relay secure IMAP (IMAPS) traffic
    # Local SOCKS5 proxy for outbound connections. Applications on this host
    # can route traffic through the proxy by connecting to this address.
    # Example: curl --socks5 127.0.0.1:1080 https://example.com
    socks5ListenAddr: "127.0.0.1:1080"
`;

const base = (extra: Record<string, unknown> = {}) => ({
  name: 'b',
  hostnames: ['app.example.com'],
  nexusAddresses: ['wss://n.example.com:8443/connect'],
  attestation: { hmacSecret: 's' },
  portMappings: { 443: 'localhost:8443' },
  ...extra,
});

function pathOf(input: Record<string, unknown>): string {
  try {
    resolveBackendClientConfig({ backends: [input] });
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionsError);
    return (err as InvalidOptionsError).path;
  }
  throw new Error('config was accepted');
}

describe('attestation in the configuration file', () => {
  it('loads the reference client’s example unchanged', () => {
    const config = parseBackendClientConfig(REFERENCE_EXAMPLE, { source: 'client.example.yaml' });
    const [edge, email] = config.backends;
    expect(edge).toMatchObject({
      era: 'current',
      weight: 2,
      authToken: undefined,
      attestation: {
        provider: 'command',
        command: '/usr/local/bin/nexus-attestor',
        args: ['--backend=edge-apps'],
        env: { AUTHORIZER_BASE_URL: 'https://authorizer.example.com' },
        timeoutSeconds: 20,
        cacheHandshakeSeconds: 30,
        tokenTTLSeconds: 30,
      },
    });
    expect(email).toMatchObject({
      era: 'current',
      socks5ListenAddr: '127.0.0.1:1080',
      attestation: {
        provider: 'hmac',
        hmacSecretFile: '/etc/nexus/email-hmac.key',
        tokenTTLSeconds: 45,
        reauthIntervalSeconds: 900,
        reauthGraceSeconds: 15,
        outboundAllowed: true,
        allowedOutboundPorts: [25, 465, 587],
        timeoutSeconds: 15,
      },
    });
    // The SOCKS5 backend claims outbound connections: nothing to warn about.
    expect(config.warnings).toEqual([]);
  });

  it('turns a configured backend into client options for its provider and claims', () => {
    const config = parseBackendClientConfig(REFERENCE_EXAMPLE);
    const [edge, email] = config.backends;
    expect(attestationClientOptions(edge!, edge!.attestation!)).toEqual({
      tokenProvider: {
        command: '/usr/local/bin/nexus-attestor',
        args: ['--backend=edge-apps'],
        env: { AUTHORIZER_BASE_URL: 'https://authorizer.example.com' },
        timeoutSeconds: 20,
        cacheHandshakeSeconds: 30,
      },
      backend: {
        name: 'edge-apps',
        hostnames: ['app.example.com', 'api.example.com', '*.preview.example.com'],
        tcpPorts: [],
        udpRoutes: [],
        weight: 2,
        outboundAllowed: false,
        allowedOutboundPorts: [],
      },
    });
    const options = attestationClientOptions(email!, email!.attestation!);
    expect(options.tokenProvider).toEqual({
      hmacSecretFile: '/etc/nexus/email-hmac.key',
      tokenTTLSeconds: 45,
      handshakeMaxAgeSeconds: 0,
      reauthIntervalSeconds: 900,
      reauthGraceSeconds: 15,
      maintenanceGraceCapSeconds: 0,
      cacheHandshakeSeconds: 0,
    });
    expect(options.backend).toMatchObject({ outboundAllowed: true, allowedOutboundPorts: [25, 465, 587] });
    const sdkOptions = { nodes: [...email!.nexusAddresses], ...options, portMappings: email!.portMappings };
    // The secret file is read when the client is created: a missing one stops it there.
    expect(() => resolveBackendClientOptions(sdkOptions)).toThrow(
      new InvalidOptionsError('tokenProvider.hmacSecretFile', '/etc/nexus/email-hmac.key not found'),
    );
    const dir = mkdtempSync(join(tmpdir(), 'nexus-attestation-config-'));
    writeFileSync(join(dir, 'email-hmac.key'), 'email-secret\n');
    let resolved: ReturnType<typeof resolveBackendClientOptions>;
    try {
      resolved = resolveBackendClientOptions({
        ...sdkOptions,
        tokenProvider: { ...options.tokenProvider, hmacSecretFile: join(dir, 'email-hmac.key') },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(resolved.token).toBeUndefined();
    expect(resolved.attestation?.identity).toMatchObject({ backendName: 'email-server', weight: 1 });
    expect(resolved.attestation?.challengeTimeoutMs).toBe(15_000);
  });

  it('keeps port claims (de-duplicated) and UDP routes with their timeouts', () => {
    const c = resolveBackendClientConfig({
      backends: [
        base({
          hostnames: undefined,
          tcpPorts: [22, 2222, 22],
          udpRoutes: [{ port: 53, flowIdleTimeoutSeconds: 30 }, { port: 67 }],
          flowControl: { highWaterMark: 40, lowWaterMark: 10, maxBuffer: 50 },
        }),
      ],
    });
    expect(c.backends[0]).toMatchObject({
      tcpPorts: [22, 2222],
      udpRoutes: [{ port: 53, flowIdleTimeoutSeconds: 30 }, { port: 67 }],
      flowControl: { highWaterMark: 40, lowWaterMark: 10, maxBuffer: 50 },
    });
    // Flows of a claimed port need a mapping to a local target.
    expect(c.warnings).toEqual([
      'backends[0].udpRoutes[0]: portMappings has no entry for UDP port 53; its flows will be closed (dial_failed)',
      'backends[0].udpRoutes[1]: portMappings has no entry for UDP port 67; its flows will be closed (dial_failed)',
    ]);
  });

  it('warns when command and an HMAC secret are both set (the command wins, as in the reference)', () => {
    const c = resolveBackendClientConfig({
      backends: [base({ attestation: { command: 'x', hmacSecret: 's' } })],
    });
    expect(c.backends[0]!.attestation!.provider).toBe('command');
    expect(c.warnings).toEqual([
      'backends[0].attestation.command is set: tokens come from the command and the HMAC secret is not used',
    ]);
  });

  it('names the key when a backend has both eras or neither', () => {
    expect(pathOf(base({ authToken: 't' }))).toBe('backends[0].attestation');
    expect(pathOf(base({ authTokenFile: 't.jwt' }))).toBe('backends[0].attestation');
    expect(pathOf(base({ attestation: undefined }))).toBe('backends[0].authToken');
    const both = (() => {
      try {
        resolveBackendClientConfig({ backends: [base({ authToken: 't' })] });
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(both).toBe(
      'backends[0].attestation cannot be combined with authToken: authToken speaks the seed era, attestation the current era; set one of them',
    );
  });

  it.each([
    [
      'attestation without command or secret',
      base({ attestation: { tokenTTLSeconds: 30 } }),
      'backends[0].attestation',
    ],
    [
      'both secrets',
      base({ attestation: { hmacSecret: 'a', hmacSecretFile: 'b' } }),
      'backends[0].attestation.hmacSecretFile',
    ],
    [
      'an unknown attestation key',
      base({ attestation: { hmacSecret: 'a', hmacSecretTTL: 1 } }),
      'backends[0].attestation.hmacSecretTTL',
    ],
    [
      'a negative timeout',
      base({ attestation: { command: 'x', timeoutSeconds: -1 } }),
      'backends[0].attestation.timeoutSeconds',
    ],
    [
      'a duration string',
      base({ attestation: { command: 'x', timeoutSeconds: '20s' } }),
      'backends[0].attestation.timeoutSeconds',
    ],
    [
      'args not strings',
      base({ attestation: { command: 'x', args: [1] } }),
      'backends[0].attestation.args[0]',
    ],
    [
      'env not strings',
      base({ attestation: { command: 'x', env: { A: 1 } } }),
      'backends[0].attestation.env.A',
    ],
    [
      'an http status URI',
      base({ attestation: { hmacSecret: 's', authorizerStatusUri: 'http://a/s' } }),
      'backends[0].attestation.authorizerStatusUri',
    ],
    [
      'an outbound port 0',
      base({ attestation: { hmacSecret: 's', outboundAllowed: true, allowedOutboundPorts: [0] } }),
      'backends[0].attestation.allowedOutboundPorts[0]',
    ],
    [
      'outboundAllowed not a boolean',
      base({ attestation: { hmacSecret: 's', outboundAllowed: 'yes' } }),
      'backends[0].attestation.outboundAllowed',
    ],
    ['no hostname, port or route', base({ hostnames: [] }), 'backends[0].hostnames'],
    ['a TCP port out of range', base({ tcpPorts: [70000] }), 'backends[0].tcpPorts[0]'],
    [
      'a duplicate UDP port',
      base({ udpRoutes: [{ port: 53 }, { port: 53, flowIdleTimeoutSeconds: 5 }] }),
      'backends[0].udpRoutes[1].port',
    ],
    [
      'a UDP route without port',
      base({ udpRoutes: [{ flowIdleTimeoutSeconds: 5 }] }),
      'backends[0].udpRoutes[0].port',
    ],
    [
      'an unknown UDP route key',
      base({ udpRoutes: [{ port: 53, idle: 5 }] }),
      'backends[0].udpRoutes[0].idle',
    ],
    [
      'low ≥ high water mark',
      base({ flowControl: { lowWaterMark: 48 } }),
      'backends[0].flowControl.lowWaterMark',
    ],
    [
      'high ≥ max buffer',
      base({ flowControl: { highWaterMark: 64 } }),
      'backends[0].flowControl.highWaterMark',
    ],
    [
      'a SOCKS5 address without port',
      base({ socks5ListenAddr: '127.0.0.1' }),
      'backends[0].socks5ListenAddr',
    ],
  ])('refuses %s', (_name, input, path) => {
    expect(pathOf(input)).toBe(path);
  });
});

describe('SDK options: token or tokenProvider', () => {
  const mappings = resolvePortMappings({ 443: 'localhost:8443' });
  const nodes = ['wss://n.example.com:8443/connect'];

  it('selects the current era with tokenProvider (function or provider options) and the seed era with token', () => {
    const fn = resolveBackendClientOptions({
      nodes,
      tokenProvider: () => 'a.b.c',
      backend: { name: 'x', hostnames: ['a.example'] },
      portMappings: mappings,
    });
    expect(fn.attestation?.issueTimeoutMs).toBe(30_000);
    const command = resolveBackendClientOptions({
      nodes,
      tokenProvider: { command: 'attestor', timeoutSeconds: 20 },
      backend: { name: 'x', tcpPorts: [22] },
      portMappings: mappings,
    });
    expect(command.attestation?.issueTimeoutMs).toBe(25_000);
    const seed = resolveBackendClientOptions({ nodes, token: 't', portMappings: mappings });
    expect(seed.attestation).toBeUndefined();
    expect(seed.token).toBe('t');
  });

  const fixed = (): string => 'a.b.c';

  it.each([
    [{ token: 't', tokenProvider: fixed, backend: { name: 'x', hostnames: ['a.example'] } }, 'token'],
    [{}, 'token'],
    [{ tokenProvider: fixed }, 'backend'],
    [{ tokenProvider: fixed, backend: { name: '' } }, 'backend.name'],
    [{ tokenProvider: fixed, backend: { name: 'x' } }, 'backend.hostnames'],
    [{ tokenProvider: fixed, backend: { name: 'x', hostnames: ['tcp:22'] } }, 'backend.hostnames[0]'],
    [{ tokenProvider: fixed, backend: { name: 'x', tcpPorts: [0] } }, 'backend.tcpPorts[0]'],
    [
      { tokenProvider: fixed, backend: { name: 'x', udpRoutes: [{ port: 53 }, { port: 53 }] } },
      'backend.udpRoutes[1].port',
    ],
    [{ tokenProvider: 'secret', backend: { name: 'x', hostnames: ['a.example'] } }, 'tokenProvider'],
    [
      { tokenProvider: { hmacSecret: '' }, backend: { name: 'x', hostnames: ['a.example'] } },
      'tokenProvider.hmacSecret',
    ],
    [
      { tokenProvider: fixed, backend: { name: 'x', hostnames: ['a.example'] }, challengeTimeoutMs: 0 },
      'challengeTimeoutMs',
    ],
  ])('refuses %j naming %s', (extra, path) => {
    expect(() =>
      resolveBackendClientOptions({ nodes, portMappings: mappings, ...(extra as object) } as never),
    ).toThrow(expect.objectContaining({ path }));
  });
});
