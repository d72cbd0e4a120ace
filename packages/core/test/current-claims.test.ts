import { describe, expect, it } from 'vitest';
import { chooseBackendEra } from '../src/backend-era.js';
import {
  type ClaimPolicy,
  checkHandshakeAge,
  claimSetMismatch,
  DEFAULT_CLAIM_POLICY,
  hasCurrentEraIssuer,
  parseCurrentClaims,
} from '../src/current-claims.js';
import { AuthError } from '../src/errors.js';

const base = { iss: 'authorizer', aud: ['nexus'] };
const policy: ClaimPolicy = {
  ...DEFAULT_CLAIM_POLICY,
  allowedTCPPortClaims: [22, 2222, 8080],
  allowedUDPPortClaims: [5000, 5001],
  allowOutbound: true,
  allowedOutboundPorts: [443, 5432],
};

function reason(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(AuthError.is(err)).toBe(true);
    return (err as AuthError).reason;
  }
  return undefined;
}

describe('parseCurrentClaims', () => {
  it('normalises hostnames, de-duplicates and sorts tcp_ports, clamps udp timeouts', () => {
    const c = parseCurrentClaims(
      {
        ...base,
        hostnames: ['A.Example.COM.', 'a.example.com', '*.Apps.Example.com', '*.com'],
        tcp_ports: [8080, 22, 8080],
        udp_routes: [
          { port: 5001, flow_idle_timeout_seconds: 1 },
          { port: 5000 },
          { port: 5001, flow_idle_timeout_seconds: 2 },
        ],
        weight: 0,
        policy_version: 'v7',
        issued_at_quote: 'q',
      },
      policy,
    );
    expect(c.hostnames).toEqual(['a.example.com', '*.apps.example.com']);
    expect(c.ignoredHostnames).toEqual(['*.com']);
    expect(c.tcpPorts).toEqual([22, 8080]);
    // 1 s and 2 s both clamp to the 5 s minimum, so they do not conflict; a route naming none gets 30 s.
    expect(c.udpRoutes).toEqual([
      { port: 5000, flowIdleTimeoutSeconds: 30 },
      { port: 5001, flowIdleTimeoutSeconds: 5 },
    ]);
    expect(c.weight).toBe(1);
    expect(c.weightClaim).toBe(0);
    expect(c.policyVersion).toBe('v7');
    expect(c.issuedAtQuote).toBe('q');
    expect(c.outbound).toEqual({ allowed: false, ports: [] });
  });

  it('accepts port claims without hostnames, and refuses a token with neither', () => {
    expect(parseCurrentClaims({ ...base, tcp_ports: [2222] }, policy).hostnames).toEqual([]);
    expect(reason(() => parseCurrentClaims({ ...base }, policy))).toBe('no hostnames or port claims');
    expect(reason(() => parseCurrentClaims({ ...base, hostnames: ['*.com'] }, policy))).toBe(
      'no valid hostnames',
    );
  });

  it('requires iss "authorizer" and an aud containing "nexus"', () => {
    expect(reason(() => parseCurrentClaims({ hostnames: ['a.test'] }))).toBe('invalid token issuer');
    expect(reason(() => parseCurrentClaims({ iss: 'other', aud: 'nexus', hostnames: ['a.test'] }))).toBe(
      'invalid token issuer',
    );
    expect(reason(() => parseCurrentClaims({ iss: 'authorizer', hostnames: ['a.test'] }))).toBe(
      'invalid token audience',
    );
    expect(parseCurrentClaims({ iss: 'authorizer', aud: 'nexus', hostnames: ['a.test'] }).hostnames).toEqual([
      'a.test',
    ]);
    expect(hasCurrentEraIssuer({ iss: 'authorizer', aud: ['x', 'nexus'] })).toBe(true);
    expect(hasCurrentEraIssuer({ iss: 'authorizer', aud: ['x'] })).toBe(false);
  });

  it('refuses port claims outside the allow-lists, and every port claim when a list is empty', () => {
    const h = { ...base, hostnames: ['a.test'] };
    expect(reason(() => parseCurrentClaims({ ...h, tcp_ports: [22] }))).toBe(
      'tcp port claims are disabled (allowedTCPPortClaims is empty)',
    );
    expect(reason(() => parseCurrentClaims({ ...h, tcp_ports: [23] }, policy))).toBe(
      'tcp port claim 23 is not allowed',
    );
    expect(reason(() => parseCurrentClaims({ ...h, tcp_ports: [0] }, policy))).toBe(
      'invalid tcp port claim: 0',
    );
    expect(reason(() => parseCurrentClaims({ ...h, udp_routes: [{ port: 5000 }] }))).toBe(
      'udp port claims are disabled (allowedUDPPortClaims is empty)',
    );
    expect(reason(() => parseCurrentClaims({ ...h, udp_routes: [{ port: 53 }] }, policy))).toBe(
      'udp port claim 53 is not allowed',
    );
    expect(
      reason(() =>
        parseCurrentClaims(
          {
            ...h,
            udp_routes: [
              { port: 5000, flow_idle_timeout_seconds: 10 },
              { port: 5000, flow_idle_timeout_seconds: 20 },
            ],
          },
          policy,
        ),
      ),
    ).toBe('conflicting udp route policies for port 5000');
  });

  it('checks the outbound claims against allowOutbound and allowedOutboundPorts', () => {
    const h = { ...base, hostnames: ['a.test'] };
    expect(
      parseCurrentClaims({ ...h, outbound_allowed: true, allowed_outbound_ports: [5432, 443, 443] }, policy)
        .outbound,
    ).toEqual({
      allowed: true,
      ports: [443, 5432],
    });
    expect(reason(() => parseCurrentClaims({ ...h, outbound_allowed: true }))).toBe(
      'outbound_allowed claimed but allowOutbound is off',
    );
    expect(reason(() => parseCurrentClaims({ ...h, allowed_outbound_ports: [443] }, policy))).toBe(
      'allowed_outbound_ports set but outbound_allowed is false',
    );
    expect(
      reason(() =>
        parseCurrentClaims({ ...h, outbound_allowed: true, allowed_outbound_ports: [22] }, policy),
      ),
    ).toBe('outbound port claim 22 is not allowed');
    // An empty server list allows any port.
    const any = { ...policy, allowedOutboundPorts: [] };
    expect(
      parseCurrentClaims({ ...h, outbound_allowed: true, allowed_outbound_ports: [22] }, any).outbound.ports,
    ).toEqual([22]);
  });

  it('refuses claims of the wrong JSON type, a negative maintenance cap and a non-https status URI', () => {
    const h = { ...base, hostnames: ['a.test'] };
    expect(reason(() => parseCurrentClaims({ ...h, tcp_ports: ['22'] }, policy))).toBe(
      'invalid token claims: tcp_ports',
    );
    expect(reason(() => parseCurrentClaims({ ...h, weight: 1.5 }))).toBe('invalid token claims: weight');
    expect(reason(() => parseCurrentClaims({ ...h, reauth_interval_seconds: '60' }))).toBe(
      'invalid token claims: reauth_interval_seconds',
    );
    expect(reason(() => parseCurrentClaims({ ...h, udp_routes: [5000] }, policy))).toBe(
      'invalid token claims: udp_routes',
    );
    expect(reason(() => parseCurrentClaims({ ...h, outbound_allowed: 'yes' }, policy))).toBe(
      'invalid token claims: outbound_allowed',
    );
    expect(reason(() => parseCurrentClaims({ ...h, maintenance_grace_cap_seconds: -1 }))).toBe(
      'maintenance_grace_cap_seconds cannot be negative',
    );
    for (const uri of ['http://auth.test/status', 'https:///status', 'not a url']) {
      expect(reason(() => parseCurrentClaims({ ...h, authorizer_status_uri: uri }))).toBe(
        'authorizer_status_uri must be an https URL with a host',
      );
    }
    const ok = parseCurrentClaims({
      ...h,
      authorizer_status_uri: 'https://auth.test/status',
      maintenance_grace_cap_seconds: 0,
    });
    expect(ok.authorizerStatusUri).toBe('https://auth.test/status');
    expect(ok.maintenanceGraceCapSeconds).toBe(0);
  });
});

describe('checkHandshakeAge', () => {
  const at = (iat: number | undefined, maxAge?: number) =>
    parseCurrentClaims({
      ...base,
      hostnames: ['a.test'],
      ...(iat !== undefined ? { iat } : {}),
      handshake_max_age_seconds: maxAge,
    });
  it('requires iat and an age within handshake_max_age_seconds, when that claim is above 0', () => {
    const now = 1_700_000_000_000;
    expect(reason(() => checkHandshakeAge(at(now / 1000 - 61, 60), now))).toBe(
      'handshake token older than handshake_max_age_seconds',
    );
    expect(reason(() => checkHandshakeAge(at(now / 1000 - 60, 60), now))).toBeUndefined();
    expect(reason(() => checkHandshakeAge(at(undefined, 60), now))).toBe('handshake token has no iat');
    expect(reason(() => checkHandshakeAge(at(undefined, 0), now))).toBeUndefined();
    expect(reason(() => checkHandshakeAge(at(now / 1000 - 10_000), now))).toBeUndefined();
  });
});

describe('claimSetMismatch', () => {
  const stage0 = parseCurrentClaims(
    { ...base, hostnames: ['a.test', 'b.test'], tcp_ports: [22], udp_routes: [{ port: 5000 }], weight: 4 },
    policy,
  );
  const with_ = (extra: Record<string, unknown>) =>
    parseCurrentClaims(
      { ...base, hostnames: ['b.test', 'A.test'], tcp_ports: [22], udp_routes: [{ port: 5000 }], ...extra },
      policy,
    );
  it('accepts the same sets in another order, and an absent or zero weight', () => {
    expect(claimSetMismatch(stage0, with_({}), 'the handshake token')).toBeUndefined();
    expect(claimSetMismatch(stage0, with_({ weight: 4 }), 'the handshake token')).toBeUndefined();
    expect(claimSetMismatch(stage0, with_({ weight: -3 }), 'the handshake token')).toBeUndefined();
  });
  it('names the first set that differs', () => {
    const against = 'the registered set';
    expect(claimSetMismatch(stage0, with_({ hostnames: ['a.test'] }), against)).toBe(
      'hostnames differ from the registered set',
    );
    expect(claimSetMismatch(stage0, with_({ tcp_ports: [22, 2222] }), against)).toBe(
      'tcp port claims differ from the registered set',
    );
    expect(
      claimSetMismatch(
        stage0,
        with_({ udp_routes: [{ port: 5000, flow_idle_timeout_seconds: 60 }] }),
        against,
      ),
    ).toBe('udp route claims differ from the registered set');
    expect(claimSetMismatch(stage0, with_({ outbound_allowed: true }), against)).toBe(
      'outbound_allowed differs from the registered set',
    );
    expect(claimSetMismatch(stage0, with_({ weight: 5 }), against)).toBe(
      'weight differs from the registered set',
    );
  });
});

describe('chooseBackendEra', () => {
  it('auto: seed without iss/aud, seed with the legacy hostname claim, current otherwise', () => {
    expect(chooseBackendEra({ hostnames: ['a.test'] })).toBe('seed');
    expect(chooseBackendEra({ iss: 'authorizer', hostnames: ['a.test'] })).toBe('seed');
    expect(chooseBackendEra({ aud: 'nexus', hostnames: ['a.test'] })).toBe('seed');
    expect(chooseBackendEra({ ...base, hostnames: ['a.test'], hostname: 'a.test' })).toBe('seed');
    expect(chooseBackendEra({ ...base, hostnames: ['a.test'] })).toBe('current');
    expect(chooseBackendEra({ ...base, tcp_ports: [22] })).toBe('current');
  });
  it('a forced mode is that era, whatever the token', () => {
    expect(chooseBackendEra({ ...base, hostnames: ['a.test'] }, 'seed')).toBe('seed');
    expect(chooseBackendEra({ hostnames: ['a.test'], hostname: 'a.test' }, 'current')).toBe('current');
  });
});
