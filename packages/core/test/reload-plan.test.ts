import { describe, expect, it } from 'vitest';
import { type NexusConfigInput, resolveNexusConfig } from '../src/config.js';
import { LIVE_LIMITS, planReload, type ReloadAction, type ReloadContext } from '../src/reload-plan.js';

const SECRET_A = 'plan-secret-a-0123456789-0123456789-0123';
const SECRET_B = 'plan-secret-b-0123456789-0123456789-0123';

/** A files-mode node with a mesh (trusted suffix and one peer). */
const base: NexusConfigInput = {
  backendListenAddress: '127.0.0.1:8443',
  listeners: [{ port: 443, mode: 'tls' }],
  backendsJWTSecrets: [SECRET_A],
  hubTlsCertFile: '/etc/nexus/hub.crt',
  hubTlsKeyFile: '/etc/nexus/hub.key',
  peers: ['wss://b.mesh.test:8444/mesh'],
  peerAuthentication: { trustedDomainSuffixes: ['mesh.test'] },
};
const config = (extra: Partial<NexusConfigInput> = {}) => resolveNexusConfig({ ...base, ...extra });

/** A node that loaded its own certificate files and runs its mesh. */
const running: ReloadContext = {
  ownsFileTls: true,
  tlsLoaded: true,
  meshWanted: true,
  meshRunning: true,
  meshFixed: { idleTimeoutMs: false, keepaliveIntervalMs: false, keepaliveTimeoutMs: false },
};

const certificate: ReloadAction = {
  kind: 'reload-certificate',
  certFile: '/etc/nexus/hub.crt',
  keyFile: '/etc/nexus/hub.key',
};
const trust = (changes: { suffixes?: boolean; caFile?: boolean } = {}, next = config()): ReloadAction => ({
  kind: 'reload-peer-trust',
  trustedDomainSuffixes: next.peerAuthentication.trustedDomainSuffixes,
  caFile: next.peerAuthentication.caFile,
  suffixesChanged: changes.suffixes ?? false,
  caFileChanged: changes.caFile ?? false,
});

describe('planReload', () => {
  it.each<[string, Partial<NexusConfigInput>, Partial<ReloadContext>, ReloadAction[]]>([
    ['the same configuration: re-read the certificate and CA files only', {}, {}, [trust(), certificate]],
    [
      'a new backend secret: in force for the next token',
      { backendsJWTSecrets: [SECRET_A, SECRET_B] },
      {},
      [trust(), certificate, { kind: 'apply', setting: 'backendsJWTSecrets' }],
    ],
    [
      'the era rule and the claim policy: in force for the next backend connection',
      { auth: { backendEra: 'seed' }, allowedTCPPortClaims: [2222] },
      {},
      [trust(), certificate, { kind: 'apply', setting: 'auth' }, { kind: 'apply', setting: 'backendClaims' }],
    ],
    [
      'live limits: in the objects the hub and the listeners read',
      { limits: { maxStreamsPerSession: 7, maxSessions: 9 } },
      {},
      [
        trust(),
        certificate,
        { kind: 'set-limit', setting: 'limits.maxStreamsPerSession', key: 'maxStreamsPerSession', value: 7 },
        { kind: 'set-limit', setting: 'limits.maxSessions', key: 'maxSessions', value: 9 },
      ],
    ],
    [
      'the idle timeout: new streams, and new tunnels to local backends',
      { idleTimeoutSeconds: 30 },
      {},
      [
        trust(),
        certificate,
        { kind: 'set-idle-timeout', setting: 'idleTimeoutSeconds', idleTimeoutMs: 30_000, mesh: true },
      ],
    ],
    [
      'the idle timeout when the embedder fixed the tunnels’ one',
      { idleTimeoutSeconds: 30 },
      { meshFixed: { idleTimeoutMs: true, keepaliveIntervalMs: false, keepaliveTimeoutMs: false } },
      [
        trust(),
        certificate,
        { kind: 'set-idle-timeout', setting: 'idleTimeoutSeconds', idleTimeoutMs: 30_000, mesh: false },
      ],
    ],
    [
      'new peers: dial them, stop the removed ones',
      { peers: ['wss://c.mesh.test:8444/mesh'] },
      {},
      [trust(), certificate, { kind: 'set-peers', setting: 'peers', peers: ['wss://c.mesh.test:8444/mesh'] }],
    ],
    [
      'bound addresses: a restart',
      { backendListenAddress: '127.0.0.1:9443', listeners: [{ port: 8080, mode: 'http' }] },
      {},
      [
        trust(),
        certificate,
        { kind: 'restart', setting: 'backendListenAddress' },
        { kind: 'restart', setting: 'listeners' },
      ],
    ],
    [
      'ACME instead of files: a restart, nothing re-read',
      { hubTlsCertFile: undefined, hubTlsKeyFile: undefined, hubPublicHostname: 'hub.example.com' },
      {},
      [{ kind: 'restart', setting: 'tls' }, trust()],
    ],
    [
      'files the embedder gave as a TLS context: a restart for a change of path',
      { hubTlsCertFile: '/etc/nexus/other.crt' },
      { ownsFileTls: false },
      [{ kind: 'restart', setting: 'tls' }, trust()],
    ],
    [
      'the STUN port: a restart; its answer rates: live',
      { stunPort: 3478, limits: { stunMaxResponsesPerSecond: 100 } },
      {},
      [
        trust(),
        certificate,
        {
          kind: 'set-limit',
          setting: 'limits.stunMaxResponsesPerSecond',
          key: 'stunMaxResponsesPerSecond',
          value: 100,
        },
        { kind: 'restart', setting: 'stunPort' },
      ],
    ],
    [
      'the orchestrator: a restart',
      { registrationURL: 'https://orchestrator.example.com/register' },
      {},
      [trust(), certificate, { kind: 'restart', setting: 'registrationURL' }],
    ],
    [
      'route discovery: a restart',
      { meshDiscovery: { nats: { servers: ['127.0.0.1:4222'], bucket: 'mesh' } } },
      {},
      [trust(), certificate, { kind: 'restart', setting: 'meshDiscovery' }],
    ],
    ['before listen(): nothing to re-read', {}, { tlsLoaded: false, meshRunning: false }, []],
  ])('%s', (_name, extra, context, expected) => {
    expect(planReload(config(), config(extra), { ...running, ...context })).toEqual(expected);
  });

  it('replaces the mesh trust when the suffixes or the CA file change', () => {
    const next = config({
      peerAuthentication: { trustedDomainSuffixes: ['mesh.test', 'mesh2.test'], caFile: '/etc/ca.pem' },
    });
    expect(planReload(config(), next, running)).toEqual([
      trust({ suffixes: true, caFile: true }, next),
      certificate,
    ]);
  });

  it('reports a mesh on a node started without one as restart-only, and trust changes as applied before listen()', () => {
    const noMesh = resolveNexusConfig({
      ...base,
      peers: [],
      peerAuthentication: { trustedDomainSuffixes: [] },
    });
    expect(planReload(noMesh, config(), { ...running, meshWanted: false, meshRunning: false })).toEqual([
      { kind: 'restart', setting: 'peerAuthentication.trustedDomainSuffixes' },
      certificate,
      { kind: 'restart', setting: 'peers' },
      // With trusted suffixes the node would listen for peers: a new bound address.
      { kind: 'restart', setting: 'peerListenAddress' },
    ]);
    const next = config({ peerAuthentication: { trustedDomainSuffixes: ['other.test'] } });
    expect(planReload(config(), next, { ...running, tlsLoaded: false, meshRunning: false })).toEqual([
      { kind: 'apply', setting: 'peerAuthentication.trustedDomainSuffixes' },
    ]);
  });

  it('reports a limit it does not know to be live as restart-only', () => {
    const before = config();
    const next = { ...before, limits: { ...before.limits, futureLimit: 3 } } as typeof before;
    expect(planReload(before, next, running)).toContainEqual({
      kind: 'restart',
      setting: 'limits.futureLimit',
    });
  });

  it('sends the peer keepalive to the links unless the embedder fixed it', () => {
    const next = config({ keepalive: { peerPingIntervalMs: 5_000, peerDeadAfterMs: 20_000 } });
    const free = planReload(config(), next, running);
    expect(
      free.filter((a) => a.kind === 'set-keepalive').map((a) => (a as { setting: string }).setting),
    ).toEqual(['keepalive.peerPingIntervalMs', 'keepalive.peerDeadAfterMs']);
    expect(free).toContainEqual({
      kind: 'set-peer-keepalive',
      keepaliveIntervalMs: 5_000,
      keepaliveTimeoutMs: 20_000,
    });
    const fixed = planReload(config(), next, {
      ...running,
      meshFixed: { idleTimeoutMs: false, keepaliveIntervalMs: true, keepaliveTimeoutMs: true },
    });
    expect(fixed.some((a) => a.kind === 'set-peer-keepalive')).toBe(false);
  });

  it('treats every limit in LIVE_LIMITS as live', () => {
    for (const key of LIVE_LIMITS) {
      const value = config().limits[key] + 1;
      const next = resolveNexusConfig({ ...base, limits: { [key]: value } as NexusConfigInput['limits'] });
      expect(planReload(config(), next, running)).toContainEqual({
        kind: 'set-limit',
        setting: `limits.${key}`,
        key,
        value,
      });
    }
  });

  it('is pure: the same inputs give the same plan, and the inputs are not changed', () => {
    const before = config();
    const next = config({ peers: [] });
    const first = planReload(before, next, running);
    expect(planReload(before, next, running)).toEqual(first);
    expect(Object.isFrozen(before) && Object.isFrozen(next)).toBe(true);
  });
});
