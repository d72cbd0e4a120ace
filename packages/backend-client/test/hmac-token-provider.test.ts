/**
 * The HMAC token provider against golden vectors: tokens the current reference client's own HMAC provider
 * (v0.3.14) issued for the options of its tests and for every claim at once, reproduced byte for byte
 * (same claims, same order, same signature) at the same clock.
 */
import { compactVerify, decodeJwt, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { createHmacTokenProvider, hmacTokenClaims } from '../src/hmac-token-provider.js';
import { issueToken, type TokenRequest, type TokenStage } from '../src/token-provider.js';

/** Whether `token`'s HS256 signature is `secret`'s. */
const verifies = (token: string, secret: string): Promise<boolean> =>
  compactVerify(token, new TextEncoder().encode(secret)).then(
    () => true,
    () => false,
  );

/** The reference's `TestHMACTokenProviderProducesExpectedClaims` options and request. */
const BASIC = {
  options: {
    hmacSecret: 'super-secret',
    tokenTTLSeconds: 60,
    reauthIntervalSeconds: 300,
    reauthGraceSeconds: 20,
    maintenanceGraceCapSeconds: 600,
    handshakeMaxAgeSeconds: 5,
  },
  identity: {
    backendName: 'backend',
    hostnames: ['example.com'],
    tcpPorts: [],
    udpRoutes: [],
    weight: 2,
    outboundAllowed: false,
    allowedOutboundPorts: [],
  },
  nonce: 'nonce123',
  tokens: {
    handshake:
      'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJob3N0bmFtZXMiOlsiZXhhbXBsZS5jb20iXSwid2VpZ2h0IjoyLCJoYW5kc2hha2VfbWF4X2FnZV9zZWNvbmRzIjo1LCJyZWF1dGhfaW50ZXJ2YWxfc2Vjb25kcyI6MzAwLCJyZWF1dGhfZ3JhY2Vfc2Vjb25kcyI6MjAsIm1haW50ZW5hbmNlX2dyYWNlX2NhcF9zZWNvbmRzIjo2MDAsImlzcyI6ImF1dGhvcml6ZXIiLCJzdWIiOiJiYWNrZW5kIiwiYXVkIjpbIm5leHVzIl0sImV4cCI6MTc5NjU1NzcwOSwiaWF0IjoxNzk2NTU3NjQ5fQ.D2RvLqgdiBeHGwfom0YVtT9qylMjPMwdrxvX-7AAHc4',
    attest:
      'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJob3N0bmFtZXMiOlsiZXhhbXBsZS5jb20iXSwid2VpZ2h0IjoyLCJzZXNzaW9uX25vbmNlIjoibm9uY2UxMjMiLCJyZWF1dGhfaW50ZXJ2YWxfc2Vjb25kcyI6MzAwLCJyZWF1dGhfZ3JhY2Vfc2Vjb25kcyI6MjAsIm1haW50ZW5hbmNlX2dyYWNlX2NhcF9zZWNvbmRzIjo2MDAsImlzcyI6ImF1dGhvcml6ZXIiLCJzdWIiOiJiYWNrZW5kIiwiYXVkIjpbIm5leHVzIl0sImV4cCI6MTc5NjU1NzcwOSwiaWF0IjoxNzk2NTU3NjQ5fQ.yHCE9C0Bg9mgTLx6bWUCCDsEGJlQO6A470XudnMtDq0',
    reauth:
      'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJob3N0bmFtZXMiOlsiZXhhbXBsZS5jb20iXSwid2VpZ2h0IjoyLCJzZXNzaW9uX25vbmNlIjoibm9uY2UxMjMiLCJyZWF1dGhfaW50ZXJ2YWxfc2Vjb25kcyI6MzAwLCJyZWF1dGhfZ3JhY2Vfc2Vjb25kcyI6MjAsIm1haW50ZW5hbmNlX2dyYWNlX2NhcF9zZWNvbmRzIjo2MDAsImlzcyI6ImF1dGhvcml6ZXIiLCJzdWIiOiJiYWNrZW5kIiwiYXVkIjpbIm5leHVzIl0sImV4cCI6MTc5NjU1NzcwOSwiaWF0IjoxNzk2NTU3NjQ5fQ.yHCE9C0Bg9mgTLx6bWUCCDsEGJlQO6A470XudnMtDq0',
  },
};

/** Every claim: port claims, outbound, status URI, policy version. */
const ALL = {
  options: {
    hmacSecret: 'interop-secret-0123456789',
    tokenTTLSeconds: 45,
    handshakeMaxAgeSeconds: 60,
    reauthIntervalSeconds: 900,
    reauthGraceSeconds: 15,
    maintenanceGraceCapSeconds: 1800,
    authorizerStatusUri: 'https://authorizer.example.com/status',
    policyVersion: '2026-04',
  },
  identity: {
    backendName: 'email-server',
    hostnames: ['imap.example.com', '*.mail.example.com'],
    tcpPorts: [22, 443],
    udpRoutes: [{ port: 53, flowIdleTimeoutSeconds: 30 }, { port: 67 }],
    weight: 3,
    outboundAllowed: true,
    allowedOutboundPorts: [25, 465, 587],
  },
  nonce: 'UK5W9s2EMcuhetpVfKNLAQeFdqwH7jjkubtqmOQVpwE',
  tokens: {
    handshake:
      'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJob3N0bmFtZXMiOlsiaW1hcC5leGFtcGxlLmNvbSIsIioubWFpbC5leGFtcGxlLmNvbSJdLCJ0Y3BfcG9ydHMiOlsyMiw0NDNdLCJ1ZHBfcm91dGVzIjpbeyJwb3J0Ijo1MywiZmxvd19pZGxlX3RpbWVvdXRfc2Vjb25kcyI6MzB9LHsicG9ydCI6Njd9XSwid2VpZ2h0IjozLCJoYW5kc2hha2VfbWF4X2FnZV9zZWNvbmRzIjo2MCwicmVhdXRoX2ludGVydmFsX3NlY29uZHMiOjkwMCwicmVhdXRoX2dyYWNlX3NlY29uZHMiOjE1LCJtYWludGVuYW5jZV9ncmFjZV9jYXBfc2Vjb25kcyI6MTgwMCwiYXV0aG9yaXplcl9zdGF0dXNfdXJpIjoiaHR0cHM6Ly9hdXRob3JpemVyLmV4YW1wbGUuY29tL3N0YXR1cyIsInBvbGljeV92ZXJzaW9uIjoiMjAyNi0wNCIsIm91dGJvdW5kX2FsbG93ZWQiOnRydWUsImFsbG93ZWRfb3V0Ym91bmRfcG9ydHMiOlsyNSw0NjUsNTg3XSwiaXNzIjoiYXV0aG9yaXplciIsInN1YiI6ImVtYWlsLXNlcnZlciIsImF1ZCI6WyJuZXh1cyJdLCJleHAiOjE3OTY1NTc2OTQsImlhdCI6MTc5NjU1NzY0OX0.JFIaVJ1AJg-VsLo8wF6jr1A-a9aaU2Xw3VztWLG59n4',
    attest:
      'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJob3N0bmFtZXMiOlsiaW1hcC5leGFtcGxlLmNvbSIsIioubWFpbC5leGFtcGxlLmNvbSJdLCJ0Y3BfcG9ydHMiOlsyMiw0NDNdLCJ1ZHBfcm91dGVzIjpbeyJwb3J0Ijo1MywiZmxvd19pZGxlX3RpbWVvdXRfc2Vjb25kcyI6MzB9LHsicG9ydCI6Njd9XSwid2VpZ2h0IjozLCJzZXNzaW9uX25vbmNlIjoiVUs1VzlzMkVNY3VoZXRwVmZLTkxBUWVGZHF3SDdqamt1YnRxbU9RVnB3RSIsInJlYXV0aF9pbnRlcnZhbF9zZWNvbmRzIjo5MDAsInJlYXV0aF9ncmFjZV9zZWNvbmRzIjoxNSwibWFpbnRlbmFuY2VfZ3JhY2VfY2FwX3NlY29uZHMiOjE4MDAsImF1dGhvcml6ZXJfc3RhdHVzX3VyaSI6Imh0dHBzOi8vYXV0aG9yaXplci5leGFtcGxlLmNvbS9zdGF0dXMiLCJwb2xpY3lfdmVyc2lvbiI6IjIwMjYtMDQiLCJvdXRib3VuZF9hbGxvd2VkIjp0cnVlLCJhbGxvd2VkX291dGJvdW5kX3BvcnRzIjpbMjUsNDY1LDU4N10sImlzcyI6ImF1dGhvcml6ZXIiLCJzdWIiOiJlbWFpbC1zZXJ2ZXIiLCJhdWQiOlsibmV4dXMiXSwiZXhwIjoxNzk2NTU3Njk0LCJpYXQiOjE3OTY1NTc2NDl9.eB42gLDcIAL8yrQZNjw1gaia5hJ5wk2mCXYh686ZoUI',
    reauth:
      'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJob3N0bmFtZXMiOlsiaW1hcC5leGFtcGxlLmNvbSIsIioubWFpbC5leGFtcGxlLmNvbSJdLCJ0Y3BfcG9ydHMiOlsyMiw0NDNdLCJ1ZHBfcm91dGVzIjpbeyJwb3J0Ijo1MywiZmxvd19pZGxlX3RpbWVvdXRfc2Vjb25kcyI6MzB9LHsicG9ydCI6Njd9XSwid2VpZ2h0IjozLCJzZXNzaW9uX25vbmNlIjoiVUs1VzlzMkVNY3VoZXRwVmZLTkxBUWVGZHF3SDdqamt1YnRxbU9RVnB3RSIsInJlYXV0aF9pbnRlcnZhbF9zZWNvbmRzIjo5MDAsInJlYXV0aF9ncmFjZV9zZWNvbmRzIjoxNSwibWFpbnRlbmFuY2VfZ3JhY2VfY2FwX3NlY29uZHMiOjE4MDAsImF1dGhvcml6ZXJfc3RhdHVzX3VyaSI6Imh0dHBzOi8vYXV0aG9yaXplci5leGFtcGxlLmNvbS9zdGF0dXMiLCJwb2xpY3lfdmVyc2lvbiI6IjIwMjYtMDQiLCJvdXRib3VuZF9hbGxvd2VkIjp0cnVlLCJhbGxvd2VkX291dGJvdW5kX3BvcnRzIjpbMjUsNDY1LDU4N10sImlzcyI6ImF1dGhvcml6ZXIiLCJzdWIiOiJlbWFpbC1zZXJ2ZXIiLCJhdWQiOlsibmV4dXMiXSwiZXhwIjoxNzk2NTU3Njk0LCJpYXQiOjE3OTY1NTc2NDl9.eB42gLDcIAL8yrQZNjw1gaia5hJ5wk2mCXYh686ZoUI',
  },
};

/** UDP routes only (no hostnames), default TTL. */
const UDP_ONLY = {
  options: { hmacSecret: 'super-secret' },
  identity: {
    backendName: 'dns',
    hostnames: [],
    tcpPorts: [],
    udpRoutes: [{ port: 53, flowIdleTimeoutSeconds: 30 }, { port: 67 }],
    weight: 1,
    outboundAllowed: false,
    allowedOutboundPorts: [],
  },
  token:
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1ZHBfcm91dGVzIjpbeyJwb3J0Ijo1MywiZmxvd19pZGxlX3RpbWVvdXRfc2Vjb25kcyI6MzB9LHsicG9ydCI6Njd9XSwid2VpZ2h0IjoxLCJpc3MiOiJhdXRob3JpemVyIiwic3ViIjoiZG5zIiwiYXVkIjpbIm5leHVzIl0sImV4cCI6MTc5NjU1NzY3OSwiaWF0IjoxNzk2NTU3NjQ5fQ.w2nqRruLKR_6o2Sf21czTi2CPfGFJcDp5V_qrgx7N_E',
};

const STAGES: TokenStage[] = ['handshake', 'attest', 'reauth'];

function request(
  identity: Omit<TokenRequest, 'stage' | 'sessionNonce'>,
  stage: TokenStage,
  nonce: string,
): TokenRequest {
  return { ...identity, stage, sessionNonce: stage === 'handshake' ? '' : nonce };
}

/** The clock the reference read when it issued `token`, plus a fraction of a second it truncated. */
function clockOf(token: string): () => number {
  const iat = decodeJwt(token).iat!;
  return () => iat * 1000 + 640;
}

describe('HMAC token provider: golden vectors of the reference client', () => {
  for (const [name, vector] of [
    ['its own test options', BASIC],
    ['every claim', ALL],
  ] as const) {
    it.each(STAGES)(`reproduces ${name} at stage %s byte for byte`, async (stage) => {
      const golden = vector.tokens[stage];
      const provider = createHmacTokenProvider({ ...vector.options, now: clockOf(golden) });
      const issued = await issueToken(provider, request(vector.identity, stage, vector.nonce));
      expect(issued.token).toBe(golden);
      expect(issued.expiry?.getTime()).toBe(decodeJwt(golden).exp! * 1000);
    });
  }

  it('reproduces a UDP-only backend with the default lifetime (30 s)', async () => {
    const provider = createHmacTokenProvider({ ...UDP_ONLY.options, now: clockOf(UDP_ONLY.token) });
    const { token } = await issueToken(provider, request(UDP_ONLY.identity, 'handshake', ''));
    expect(token).toBe(UDP_ONLY.token);
    const claims = decodeJwt(token);
    expect(claims.exp! - claims.iat!).toBe(30);
    expect(claims).not.toHaveProperty('hostnames');
  });
});

describe('HMAC token provider: claims of each stage', () => {
  const now = Date.UTC(2026, 11, 6, 12, 0, 0, 250);
  const claims = (stage: TokenStage, identity = ALL.identity) =>
    hmacTokenClaims(request(identity, stage, 'n0nce'), ALL.options, now);

  it('stage 0 claims handshake_max_age_seconds and no nonce; stages 1 and reauth the nonce and no max age', () => {
    expect(claims('handshake')).toMatchObject({ handshake_max_age_seconds: 60 });
    expect(claims('handshake')).not.toHaveProperty('session_nonce');
    for (const stage of ['attest', 'reauth'] as const) {
      expect(claims(stage)).toMatchObject({ session_nonce: 'n0nce' });
      expect(claims(stage)).not.toHaveProperty('handshake_max_age_seconds');
    }
  });

  it('puts the registered claims last, in the reference order, with whole seconds', () => {
    const c = claims('attest');
    expect(Object.keys(c).slice(-5)).toEqual(['iss', 'sub', 'aud', 'exp', 'iat']);
    expect(c).toMatchObject({
      iss: 'authorizer',
      sub: 'email-server',
      aud: ['nexus'],
      iat: 1796558400,
      exp: 1796558445,
    });
  });

  it('always carries weight, leaves out empty lists and unset options, and outbound ports without outboundAllowed', () => {
    const bare = {
      ...BASIC.identity,
      weight: 1,
      allowedOutboundPorts: [443],
    };
    const c = hmacTokenClaims(request(bare, 'reauth', 'x'), { hmacSecret: 's' }, now);
    expect(c).toEqual({
      hostnames: ['example.com'],
      weight: 1,
      session_nonce: 'x',
      iss: 'authorizer',
      sub: 'backend',
      aud: ['nexus'],
      exp: 1796558430,
      iat: 1796558400,
    });
  });

  it('signs HS256 tokens a verifier with the same secret accepts for iss "authorizer" and aud "nexus"', async () => {
    const provider = createHmacTokenProvider({ ...ALL.options, now: () => Date.now() });
    const { token } = await issueToken(provider, request(ALL.identity, 'attest', 'abc'));
    const { payload, protectedHeader } = await jwtVerify(
      token,
      new TextEncoder().encode(ALL.options.hmacSecret),
      {
        issuer: 'authorizer',
        audience: 'nexus',
      },
    );
    expect(protectedHeader).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(payload.session_nonce).toBe('abc');
  });
});

describe('HMAC token provider: handshake cache and secrets', () => {
  it('reuses a stage-0 token for cacheHandshakeSeconds, capped by the token’s own expiry; never a stage-1 token', async () => {
    let now = Date.UTC(2026, 0, 1);
    const provider = createHmacTokenProvider({
      hmacSecret: 's',
      tokenTTLSeconds: 5,
      cacheHandshakeSeconds: 10,
      now: () => now,
    });
    const stage0 = () => issueToken(provider, request(BASIC.identity, 'handshake', ''));
    const first = await stage0();
    now += 4_000;
    expect((await stage0()).token).toBe(first.token);
    const attest = await issueToken(provider, request(BASIC.identity, 'attest', 'n'));
    expect(decodeJwt(attest.token).iat).toBe(decodeJwt(first.token).iat! + 4);
    now += 1_000; // 5 s: the token expires before the 10 s cache lifetime
    const second = await stage0();
    expect(second.token).not.toBe(first.token);
  });

  it('keeps cached stage-0 tokens to the claims they were issued for', async () => {
    const provider = createHmacTokenProvider({ hmacSecret: 's', cacheHandshakeSeconds: 60 });
    const other = { ...BASIC.identity, backendName: 'other', hostnames: ['other.example.com'] };
    const a = await issueToken(provider, request(BASIC.identity, 'handshake', ''));
    const b = await issueToken(provider, request(other, 'handshake', ''));
    expect(decodeJwt(b.token)).toMatchObject({ sub: 'other', hostnames: ['other.example.com'] });
    expect(decodeJwt(a.token)).toMatchObject({ sub: 'backend', hostnames: ['example.com'] });
  });

  it('signs without a cache by default (each stage-0 token is fresh)', async () => {
    let now = Date.UTC(2026, 0, 1);
    const provider = createHmacTokenProvider({ hmacSecret: 's', now: () => now });
    const a = await issueToken(provider, request(BASIC.identity, 'handshake', ''));
    now += 1_000;
    const b = await issueToken(provider, request(BASIC.identity, 'handshake', ''));
    expect(decodeJwt(b.token).iat).toBe(decodeJwt(a.token).iat! + 1);
  });

  it('reads hmacSecretFile (trimmed) at creation, refuses a missing or empty one there, re-reads it at stage 0', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'nexus-hmac-'));
    try {
      const file = join(dir, 'secret');
      await writeFile(file, 'super-secret\n');
      const golden = BASIC.tokens.handshake;
      const fromFile = createHmacTokenProvider({
        ...BASIC.options,
        hmacSecret: undefined,
        hmacSecretFile: file,
        now: clockOf(golden),
      });
      expect((await issueToken(fromFile, request(BASIC.identity, 'handshake', ''))).token).toBe(golden);
      // Rotation: the next connection's stage 0 (and what follows it) signs with the new secret.
      await writeFile(file, 'rotated-secret');
      const attestBefore = await issueToken(fromFile, request(BASIC.identity, 'attest', 'n'.repeat(43)));
      expect(await verifies(attestBefore.token, 'super-secret')).toBe(true);
      const rotated = await issueToken(fromFile, request(BASIC.identity, 'handshake', ''));
      expect(await verifies(rotated.token, 'rotated-secret')).toBe(true);
      const attestAfter = await issueToken(fromFile, request(BASIC.identity, 'attest', 'n'.repeat(43)));
      expect(await verifies(attestAfter.token, 'rotated-secret')).toBe(true);
      // Gone at a reconnect: that attempt fails with a TokenError (retried), not with the old secret.
      await rm(file);
      await expect(issueToken(fromFile, request(BASIC.identity, 'handshake', ''))).rejects.toMatchObject({
        code: 'NEXUS_ERR_TOKEN',
        message: expect.stringContaining(`cannot read hmacSecretFile ${file}`),
      });
      expect(() => createHmacTokenProvider({ hmacSecretFile: join(dir, 'absent') })).toThrow(
        expect.objectContaining({
          code: 'NEXUS_ERR_INVALID_OPTIONS',
          path: 'tokenProvider.hmacSecretFile',
          message: `tokenProvider.hmacSecretFile ${join(dir, 'absent')} not found`,
        }),
      );
      await writeFile(join(dir, 'empty'), ' \n');
      expect(() => createHmacTokenProvider({ hmacSecretFile: join(dir, 'empty') }, 'x')).toThrow(
        `x.hmacSecretFile ${join(dir, 'empty')} is empty`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [{}, 'tokenProvider.hmacSecret'],
    [{ hmacSecret: 'a', hmacSecretFile: 'b' }, 'tokenProvider.hmacSecret'],
    [{ hmacSecret: 'a', tokenTTLSeconds: -1 }, 'tokenProvider.tokenTTLSeconds'],
    [{ hmacSecret: 'a', reauthIntervalSeconds: 1.5 }, 'tokenProvider.reauthIntervalSeconds'],
  ])('refuses options %j naming %s', (options, path) => {
    expect(() => createHmacTokenProvider(options)).toThrow(expect.objectContaining({ path }));
  });
});
