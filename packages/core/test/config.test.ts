import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_KEEPALIVE,
  DEFAULT_LIMITS,
  normalizePeerUrl,
  parseListenAddress,
  resolveNexusConfig,
} from '../src/config.js';
import { InvalidConfigError } from '../src/errors.js';
import { baseConfig, configRefusal, TEST_SECRET } from './helpers/config-input.js';

const SECRET = TEST_SECRET;
const base = baseConfig;
const error = configRefusal;

describe('resolveNexusConfig', () => {
  it('accepts a minimal reference configuration and applies the defaults', () => {
    const c = resolveNexusConfig(base);
    expect(c.backendListen).toEqual({ host: undefined, port: 8443 });
    expect(c.peerListen).toBeUndefined();
    expect(c.listeners).toEqual([
      { host: undefined, port: 443, mode: 'tls' },
      { host: undefined, port: 80, mode: 'http' },
    ]);
    expect(c.idleTimeoutMs).toBe(900_000); // the reference has none; Nexus closes idle relays (docs/security.md)
    expect(c.backendsJWTSecrets).toEqual([SECRET]);
    expect(c.tls).toEqual({ mode: 'files', certFile: 'hub.crt', keyFile: 'hub.key' });
    expect(c.limits).toEqual(DEFAULT_LIMITS);
    expect(c.keepalive).toEqual(DEFAULT_KEEPALIVE);
    expect(c.auth).toMatchObject({
      requireExp: false,
      clockToleranceSec: 30,
      maxHostnames: 1000,
      maxTokenBytes: 65536,
    });
    expect(c.logLevel).toBe('info');
    expect(c.admin).toBeUndefined();
    expect(c.warnings).toEqual([]);
  });

  it('accepts the full reference server example unchanged', () => {
    const c = resolveNexusConfig({
      backendListenAddress: ':8443',
      peerListenAddress: ':8444',
      hubTlsCertFile: 'hub.crt',
      hubTlsKeyFile: 'hub.key',
      relayPorts: [443, 80, 8883],
      idleTimeoutSeconds: 60,
      backendsJWTSecret: SECRET,
      peers: ['wss://nexus-eu.example.com:8444/mesh'],
      peerAuthentication: { trustedDomainSuffixes: ['.mesh.example.com'] },
    });
    expect(c.idleTimeoutMs).toBe(60_000);
    expect(c.listeners.map((l) => `${l.port}/${l.mode}`)).toEqual(['443/tls', '80/http', '8883/tls']);
    expect(c.peerListen).toEqual({ host: undefined, port: 8444 });
    expect(c.peers).toEqual(['wss://nexus-eu.example.com:8444/mesh']);
    expect(c.peerAuthentication.trustedDomainSuffixes).toEqual(['mesh.example.com']);
  });

  it('reads the relay port short forms "PORT/http" and "PORT/tls" next to plain numbers', () => {
    const c = resolveNexusConfig({ ...base, relayPorts: ['20080/http', '20443/tls', 80, 8883, '81/tls'] });
    expect(c.listeners.map((l) => `${l.port}/${l.mode}`)).toEqual([
      '20080/http',
      '20443/tls',
      '80/http',
      '8883/tls',
      '81/tls',
    ]);
  });

  it('names the short form in the error for a relay port it cannot read', () => {
    expect(() => resolveNexusConfig({ ...base, relayPorts: ['8080/udp'] })).toThrow(
      /relayPorts\[0\] must be a port between 0 and 65535, or "PORT\/http" \/ "PORT\/tls"/,
    );
  });

  it('configures automatic TLS from hubPublicHostname with the ACME defaults', () => {
    const c = resolveNexusConfig({ backendsJWTSecret: SECRET, hubPublicHostname: 'Nexus.Example.com' });
    expect(c.tls).toEqual({
      mode: 'acme',
      hostname: 'nexus.example.com',
      cacheDir: 'acme_certs',
      directoryUrl: 'https://acme-v02.api.letsencrypt.org/directory',
      email: undefined,
      caFile: undefined,
    });
  });

  it('accepts the letsencrypt-staging shortcut, an e-mail and a CA file', () => {
    const c = resolveNexusConfig({
      backendsJWTSecret: SECRET,
      hubPublicHostname: 'nexus.example.com',
      acmeDirectoryUrl: 'letsencrypt-staging',
      acmeEmail: 'ops@example.com',
      acmeCaFile: 'pebble.pem',
      acmeCacheDir: '/var/lib/nexus/acme',
    });
    expect(c.tls).toMatchObject({
      directoryUrl: 'https://acme-staging-v02.api.letsencrypt.org/directory',
      email: 'ops@example.com',
      caFile: 'pebble.pem',
      cacheDir: '/var/lib/nexus/acme',
    });
  });

  it('resolves relative file paths against baseDir', () => {
    const c = resolveNexusConfig(
      {
        ...base,
        hubTlsCertFile: 'certs/hub.crt',
        hubTlsKeyFile: '/abs/hub.key',
        peerAuthentication: { caFile: 'ca.pem' },
      },
      { baseDir: '/etc/nexus' },
    );
    expect(c.tls).toMatchObject({
      certFile: path.resolve('/etc/nexus/certs/hub.crt'),
      keyFile: '/abs/hub.key',
    });
    expect(c.peerAuthentication.caFile).toBe(path.resolve('/etc/nexus/ca.pem'));
    const acme = resolveNexusConfig(
      { backendsJWTSecret: SECRET, hubPublicHostname: 'n.example.com' },
      { baseDir: '/etc/nexus' },
    );
    expect(acme.tls.mode === 'acme' && acme.tls.cacheDir).toBe(path.resolve('/etc/nexus/acme_certs'));
  });

  it('returns a deeply frozen object', () => {
    const c = resolveNexusConfig({
      ...base,
      peerAuthentication: { trustedDomainSuffixes: ['mesh.example.com'] },
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.limits)).toBe(true);
    expect(Object.isFrozen(c.listeners[0])).toBe(true);
    expect(Object.isFrozen(c.peerAuthentication.trustedDomainSuffixes)).toBe(true);
    expect(Object.isFrozen(c.warnings)).toBe(true);
  });

  it('combines backendsJWTSecret and backendsJWTSecrets for rotation, de-duplicated, primary first', () => {
    const other = 'another-secret-that-is-long-enough-0123456789';
    const c = resolveNexusConfig({ ...base, backendsJWTSecrets: [other, SECRET] });
    expect(c.backendsJWTSecrets).toEqual([SECRET, other]);
    const only = resolveNexusConfig({ ...base, backendsJWTSecret: undefined, backendsJWTSecrets: [other] });
    expect(only.backendsJWTSecrets).toEqual([other]);
  });

  it('warns about a secret shorter than 32 bytes', () => {
    const c = resolveNexusConfig({ ...base, backendsJWTSecret: 'short' });
    expect(c.warnings).toEqual([expect.stringContaining('backendsJWTSecret is shorter than 32 bytes')]);
  });

  it('uses listeners instead of relayPorts, with bindHost and per-listener hosts', () => {
    const c = resolveNexusConfig({
      ...base,
      relayPorts: [443],
      bindHost: '0.0.0.0',
      listeners: [
        { port: 8443 },
        { port: 80 },
        { port: 8080, mode: 'http', host: '[::1]' },
        { port: 9000, mode: 'tls' },
      ],
    });
    expect(c.listeners).toEqual([
      { host: '0.0.0.0', port: 8443, mode: 'tls' },
      { host: '0.0.0.0', port: 80, mode: 'http' },
      { host: '::1', port: 8080, mode: 'http' },
      { host: '0.0.0.0', port: 9000, mode: 'tls' },
    ]);
    expect(c.warnings).toContain('relayPorts is ignored because listeners is set');
  });

  it('maps the reference peekTimeouts and maxConcurrentPeeks onto limits; limits wins', () => {
    const c = resolveNexusConfig({
      ...base,
      peekTimeouts: { firstByteSeconds: 10, idleExtensionSeconds: 0, absoluteMaxSeconds: 20 },
      maxConcurrentPeeks: 64,
    });
    expect(c.limits).toMatchObject({
      sniffFirstByteTimeoutMs: 10_000,
      sniffReadExtensionMs: 5_000,
      sniffAbsoluteTimeoutMs: 20_000,
      maxConcurrentSniffs: 64,
    });
    const both = resolveNexusConfig({ ...base, maxConcurrentPeeks: 64, limits: { maxConcurrentSniffs: 32 } });
    expect(both.limits.maxConcurrentSniffs).toBe(32);
  });

  it('ignores, with a warning, reference keys Nexus does not implement', () => {
    const c = resolveNexusConfig({
      ...base,
      peerSecret: 'x',
      region: null,
    });
    expect(c.warnings).toEqual(['peerSecret is a reference setting Nexus does not support; it is ignored']);
  });

  it('treats null values (YAML `key:` without a value) as absent', () => {
    const c = resolveNexusConfig({ ...base, peers: null, relayPorts: null, limits: null, logLevel: null });
    expect(c.peers).toEqual([]);
    expect(c.listeners).toHaveLength(2);
  });

  it('normalises peers and enables the peer listener when suffixes are trusted', () => {
    const c = resolveNexusConfig({
      ...base,
      peerListenAddress: '0.0.0.0:9444',
      peers: [
        'node-b.mesh.example.com',
        'wss://node-c.mesh.example.com',
        'wss://node-b.mesh.example.com:8444/mesh',
      ],
      peerAuthentication: { trustedDomainSuffixes: ['Mesh.Example.com', '.mesh.example.com'] },
    });
    expect(c.peers).toEqual([
      'wss://node-b.mesh.example.com:8444/mesh',
      'wss://node-c.mesh.example.com/mesh',
    ]);
    expect(c.peerListen).toEqual({ host: '0.0.0.0', port: 9444 });
    expect(c.peerAuthentication.trustedDomainSuffixes).toEqual(['mesh.example.com']);
  });

  it('warns when peerListenAddress is set but no peer could be accepted', () => {
    const c = resolveNexusConfig({ ...base, peerListenAddress: ':8444' });
    expect(c.peerListen).toBeUndefined();
    expect(c.warnings).toEqual([expect.stringContaining('peerListenAddress is ignored')]);
  });

  it('parses the admin address and warns when it is not loopback', () => {
    expect(resolveNexusConfig({ ...base, admin: { address: '127.0.0.1:9090' } }).admin).toEqual({
      host: '127.0.0.1',
      port: 9090,
    });
    // No host: the admin listener binds 127.0.0.1, nothing to warn about.
    const bare = resolveNexusConfig({ ...base, admin: ':9090' });
    expect(bare.admin).toEqual({ host: undefined, port: 9090 });
    expect(bare.warnings).toEqual([]);
    const open = resolveNexusConfig({ ...base, admin: '0.0.0.0:9090' });
    expect(open.warnings).toEqual([expect.stringContaining('admin is reachable from the network')]);
    expect(resolveNexusConfig({ ...base, admin: false }).admin).toBeUndefined();
  });

  it('reads the admin token and token file', () => {
    const c = resolveNexusConfig(
      { ...base, admin: { address: 9090, token: 't0ken', tokenFile: 'admin-token' } },
      { baseDir: '/etc/nexus' },
    );
    expect(c.adminToken).toEqual({ token: 't0ken', tokenFile: '/etc/nexus/admin-token' });
    expect(resolveNexusConfig(base).adminToken).toEqual({ token: undefined, tokenFile: undefined });
  });

  it('accepts auth options', () => {
    const c = resolveNexusConfig({
      ...base,
      auth: {
        requireExp: true,
        issuer: 'authorizer',
        audience: 'nexus',
        clockToleranceSeconds: 5,
        maxHostnames: 10,
        backendEra: 'current',
      },
    });
    expect(c.auth).toEqual({
      requireExp: true,
      issuer: 'authorizer',
      audience: ['nexus'],
      clockToleranceSec: 5,
      maxHostnames: 10,
      maxTokenBytes: 65536,
      backendEra: 'current',
    });
    expect(resolveNexusConfig(base).auth.backendEra).toBe('auto');
  });

  it('resolves the current-era claim keys of the reference, with their defaults', () => {
    expect(resolveNexusConfig(base).backendClaims).toEqual({
      allowedTCPPortClaims: [],
      allowedUDPPortClaims: [],
      udpFlowIdleTimeoutDefaultSeconds: 30,
      udpFlowIdleTimeoutMinSeconds: 5,
      udpFlowIdleTimeoutMaxSeconds: 300,
      allowOutbound: false,
      allowedOutboundPorts: [],
      maintenanceGraceDefaultSeconds: 1800,
    });
    const c = resolveNexusConfig({
      ...base,
      allowedTCPPortClaims: [2222, 22, 2222],
      allowedUDPPortClaims: [5000],
      udpRelayPorts: [5000],
      udpFlowIdleTimeoutDefaultSeconds: 60,
      udpFlowIdleTimeoutMinSeconds: 10,
      udpFlowIdleTimeoutMaxSeconds: 120,
      allowOutbound: true,
      maintenanceGraceDefaultSeconds: 0,
    });
    expect(c.backendClaims).toMatchObject({
      allowedTCPPortClaims: [22, 2222],
      allowedUDPPortClaims: [5000],
      udpFlowIdleTimeoutDefaultSeconds: 60,
      udpFlowIdleTimeoutMinSeconds: 10,
      udpFlowIdleTimeoutMaxSeconds: 120,
      allowOutbound: true,
      allowedOutboundPorts: [],
      maintenanceGraceDefaultSeconds: 0,
    });
    expect(c.warnings).toEqual([
      'allowOutbound is on and allowedOutboundPorts is empty: a backend may claim outbound connections to any port',
    ]);
  });

  const invalid: { name: string; input: Record<string, unknown>; path: string; message?: RegExp }[] = [
    {
      name: 'an unknown backend era',
      input: { ...base, auth: { backendEra: 'v2' } },
      path: 'auth.backendEra',
      message: /must be one of auto, seed, current/,
    },
    {
      name: 'a port claim allow-list with a port out of range',
      input: { ...base, allowedTCPPortClaims: [22, 70000] },
      path: 'allowedTCPPortClaims[1]',
    },
    {
      name: 'a UDP idle-timeout maximum under the minimum',
      input: { ...base, udpFlowIdleTimeoutMinSeconds: 60, udpFlowIdleTimeoutMaxSeconds: 30 },
      path: 'udpFlowIdleTimeoutMaxSeconds',
    },
    {
      name: 'a missing secret',
      input: { hubTlsCertFile: 'a', hubTlsKeyFile: 'b' },
      path: 'backendsJWTSecret',
    },
    {
      name: 'a remoteVerifierURL that is not https',
      input: { hubTlsCertFile: 'a', hubTlsKeyFile: 'b', remoteVerifierURL: 'http://verifier.test/' },
      path: 'remoteVerifierURL',
      message: /must be an https:\/\/ URL/,
    },
    { name: 'a non-string secret', input: { ...base, backendsJWTSecret: 42 }, path: 'backendsJWTSecret' },
    {
      name: 'an empty secret in the list',
      input: { ...base, backendsJWTSecrets: ['ok', ''] },
      path: 'backendsJWTSecrets[1]',
    },
    { name: 'no TLS mode', input: { backendsJWTSecret: SECRET }, path: '', message: /no TLS configured/ },
    {
      name: 'both TLS modes',
      input: { ...base, hubPublicHostname: 'n.example.com' },
      path: '',
      message: /choose one TLS mode/,
    },
    {
      name: 'a cert without key',
      input: { backendsJWTSecret: SECRET, hubTlsCertFile: 'a' },
      path: 'hubTlsKeyFile',
    },
    {
      name: 'a key without cert',
      input: { backendsJWTSecret: SECRET, hubTlsKeyFile: 'a' },
      path: 'hubTlsCertFile',
    },
    {
      name: 'an IP as public hostname',
      input: { backendsJWTSecret: SECRET, hubPublicHostname: '10.0.0.1' },
      path: 'hubPublicHostname',
    },
    {
      name: 'an http ACME directory',
      input: {
        backendsJWTSecret: SECRET,
        hubPublicHostname: 'n.example.com',
        acmeDirectoryUrl: 'http://x/dir',
      },
      path: 'acmeDirectoryUrl',
    },
    {
      name: 'a bad ACME e-mail',
      input: { backendsJWTSecret: SECRET, hubPublicHostname: 'n.example.com', acmeEmail: 'nope' },
      path: 'acmeEmail',
    },
    { name: 'a port above 65535', input: { ...base, relayPorts: [443, 70000] }, path: 'relayPorts[1]' },
    { name: 'a string port', input: { ...base, relayPorts: ['443'] }, path: 'relayPorts[0]' },
    { name: 'an unknown port mode', input: { ...base, relayPorts: ['8080/udp'] }, path: 'relayPorts[0]' },
    {
      name: 'a short form above 65535',
      input: { ...base, relayPorts: ['70000/tls'] },
      path: 'relayPorts[0]',
    },
    {
      name: 'a short form repeating a port',
      input: { ...base, relayPorts: [8080, '8080/http'] },
      path: 'relayPorts[1]',
    },
    { name: 'a duplicate relay port', input: { ...base, relayPorts: [443, 443] }, path: 'relayPorts[1]' },
    { name: 'empty relayPorts', input: { ...base, relayPorts: [] }, path: 'relayPorts' },
    {
      name: 'a listener without port',
      input: { ...base, listeners: [{ mode: 'tls' }] },
      path: 'listeners[0].port',
    },
    {
      name: 'a bad listener mode',
      input: { ...base, listeners: [{ port: 1, mode: 'udp' }] },
      path: 'listeners[0].mode',
    },
    {
      name: 'a listener port out of range',
      input: { ...base, listeners: [{ port: 443 }, { port: 80 }, { port: -1 }] },
      path: 'listeners[2].port',
    },
    {
      name: 'an unknown listener key',
      input: { ...base, listeners: [{ port: 1, tls: true }] },
      path: 'listeners[0].tls',
    },
    {
      name: 'a negative idle timeout',
      input: { ...base, idleTimeoutSeconds: -1 },
      path: 'idleTimeoutSeconds',
    },
    {
      name: 'a bad backend address',
      input: { ...base, backendListenAddress: 'nope' },
      path: 'backendListenAddress',
    },
    {
      name: 'an unbracketed IPv6 address',
      input: { ...base, backendListenAddress: '::1:8443' },
      path: 'backendListenAddress',
    },
    {
      name: 'peers without trusted suffixes',
      input: { ...base, peers: ['wss://p.example.com:8444/mesh'] },
      path: 'peerAuthentication.trustedDomainSuffixes',
    },
    {
      name: 'a ws:// peer',
      input: {
        ...base,
        peers: ['ws://p.example.com/mesh'],
        peerAuthentication: { trustedDomainSuffixes: ['example.com'] },
      },
      path: 'peers[0]',
    },
    {
      name: 'a top-level-domain suffix',
      input: { ...base, peerAuthentication: { trustedDomainSuffixes: ['.com'] } },
      path: 'peerAuthentication.trustedDomainSuffixes[0]',
    },
    {
      name: 'a limit below its minimum',
      input: { ...base, limits: { maxMessageBytes: 1024 } },
      path: 'limits.maxMessageBytes',
    },
    {
      name: 'a fractional limit',
      input: { ...base, limits: { maxSessions: 1.5 } },
      path: 'limits.maxSessions',
    },
    {
      name: 'first-byte timeout above the absolute timeout',
      input: { ...base, limits: { sniffFirstByteTimeoutMs: 40_000 } },
      path: 'limits.sniffFirstByteTimeoutMs',
    },
    {
      name: 'reference peek timeouts that contradict',
      input: { ...base, peekTimeouts: { firstByteSeconds: 40, absoluteMaxSeconds: 30 } },
      path: 'peekTimeouts.firstByteSeconds',
    },
    {
      name: 'maxConcurrentPeeks below -1',
      input: { ...base, maxConcurrentPeeks: -2 },
      path: 'maxConcurrentPeeks',
    },
    {
      name: 'ping interval not below the dead-after time',
      input: { ...base, keepalive: { hubPingIntervalMs: 60_000 } },
      path: 'keepalive.hubDeadAfterMs',
    },
    { name: 'a bad log level', input: { ...base, logLevel: 'verbose' }, path: 'logLevel' },
    {
      name: 'a non-boolean requireExp',
      input: { ...base, auth: { requireExp: 'yes' } },
      path: 'auth.requireExp',
    },
    { name: 'a mapping that is a list', input: { ...base, limits: [1] }, path: 'limits' },
    { name: 'an unknown limit', input: { ...base, limits: { maxStreams: 1 } }, path: 'limits.maxStreams' },
    {
      name: 'a typo in a top-level key, with a hint',
      input: { ...base, relayPort: [443] },
      path: 'relayPort',
      message: /did you mean `relayPorts`\?/,
    },
    {
      name: 'a wrongly cased key, with a hint',
      input: { ...base, backendsJwtSecret: SECRET },
      path: 'backendsJwtSecret',
      message: /did you mean `backendsJWTSecret`\?/,
    },
    {
      name: 'an unknown key far from any',
      input: { ...base, frobnicate: 1 },
      path: 'frobnicate',
      message: /is not a known key$/,
    },
  ];

  it.each(invalid)('rejects $name naming $path', ({ input, path: at, message }) => {
    const err = error(input);
    expect(err.path).toBe(at);
    expect(err.code).toBe('NEXUS_ERR_INVALID_CONFIG');
    if (message) expect(err.message).toMatch(message);
  });

  it('rejects a document that is not a mapping', () => {
    expect(() => resolveNexusConfig([] as unknown as Record<string, unknown>)).toThrow(InvalidConfigError);
    expect(() => resolveNexusConfig('x' as unknown as Record<string, unknown>)).toThrow(/must be a mapping/);
  });
});

describe('parseListenAddress', () => {
  it.each([
    { input: ':8443', expected: { host: undefined, port: 8443 } },
    { input: '8443', expected: { host: undefined, port: 8443 } },
    { input: 8443, expected: { host: undefined, port: 8443 } },
    { input: '*:80', expected: { host: undefined, port: 80 } },
    { input: '0.0.0.0:8443', expected: { host: '0.0.0.0', port: 8443 } },
    { input: '[::1]:8443', expected: { host: '::1', port: 8443 } },
    { input: '[::]:0', expected: { host: '::', port: 0 } },
    { input: 'localhost:0', expected: { host: 'localhost', port: 0 } },
    { input: ' node.example.com:443 ', expected: { host: 'node.example.com', port: 443 } },
  ])('parses $input', ({ input, expected }) => {
    expect(parseListenAddress(input, 'x')).toEqual(expected);
  });

  it.each(['', ':', 'host:', ':99999', 'a b:80', '[::1]', '[zz]:80', '::1:80', '1.2.3.4:http', true, null])(
    'rejects %j',
    (input) => {
      expect(() => parseListenAddress(input, 'addr')).toThrow(expect.objectContaining({ path: 'addr' }));
    },
  );
});

describe('normalizePeerUrl', () => {
  it.each([
    ['wss://p.example.com:8444/mesh', 'wss://p.example.com:8444/mesh'],
    ['p.example.com', 'wss://p.example.com:8444/mesh'],
    ['p.example.com:9000', 'wss://p.example.com:9000/mesh'],
    ['wss://p.example.com', 'wss://p.example.com/mesh'],
    ['[2001:db8::1]:8444', 'wss://[2001:db8::1]:8444/mesh'],
  ])('normalises %s', (input, expected) => {
    expect(normalizePeerUrl(input, 'peers[0]')).toBe(expected);
  });

  it.each([
    'https://p.example.com',
    'wss://user:pw@p.example.com',
    'wss://',
    'wss://[nexus-eu.example.com/mesh](https://x)',
  ])('rejects %s', (input) => {
    expect(() => normalizePeerUrl(input, 'peers[0]')).toThrow(InvalidConfigError);
  });
});
