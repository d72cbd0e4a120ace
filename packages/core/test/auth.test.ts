import { generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_TOKEN_HOSTNAMES,
  mintBackendToken,
  type VerifyBackendTokenOptions,
  verifyBackendToken,
} from '../src/auth.js';
import { AuthError, InvalidConfigError, MAX_CLOSE_REASON_BYTES } from '../src/errors.js';

const SECRET = 'a-very-strong-jwt-secret-from-the-central-authorizer';
const NOW = Date.UTC(2030, 0, 1);
const nowSec = Math.floor(NOW / 1000);
const key = (s = SECRET) => new TextEncoder().encode(s);
const opts = (extra: Partial<VerifyBackendTokenOptions> = {}): VerifyBackendTokenOptions => ({
  secrets: [SECRET],
  now: () => NOW,
  ...extra,
});

async function sign(payload: Record<string, unknown>, alg = 'HS256', secret = SECRET): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg }).sign(key(secret));
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

async function rejection(token: string, options = opts()): Promise<AuthError> {
  try {
    await verifyBackendToken(token, options);
  } catch (err) {
    expect(AuthError.is(err)).toBe(true);
    const e = err as AuthError;
    expect(Buffer.byteLength(e.reason)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
    return e;
  }
  throw new Error('token was accepted');
}

describe('verifyBackendToken', () => {
  it('accepts a reference-style HS256 token and normalises its hostnames', async () => {
    const token = await sign({
      hostnames: ['App.Example.com.', '*.Preview.example.com', 'app.example.com'],
      weight: 3,
    });
    const result = await verifyBackendToken(token, opts());
    expect(result.hostnames).toEqual(['app.example.com', '*.preview.example.com']);
    expect(result.weight).toBe(3);
    expect(result.secretIndex).toBe(0);
    expect(result.claims.weight).toBe(3);
    expect(result.ignoredHostnames).toEqual([]);
  });

  it.each(['HS384', 'HS512'])('accepts %s', async (alg) => {
    const result = await verifyBackendToken(await sign({ hostnames: ['a.example.com'] }, alg), opts());
    expect(result.hostnames).toEqual(['a.example.com']);
  });

  it('refuses alg none', async () => {
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ hostnames: ['a.example.com'] })}.`;
    expect((await rejection(token)).reason).toBe('unsupported token algorithm');
  });

  it.each([
    ['RS256', 'RS256'],
    ['ES256', 'ES256'],
    ['PS256', 'PS256'],
  ])('refuses an %s token', async (_name, alg) => {
    const { privateKey } = await generateKeyPair(alg);
    const token = await new SignJWT({ hostnames: ['a.example.com'] })
      .setProtectedHeader({ alg })
      .sign(privateKey);
    expect((await rejection(token)).reason).toBe('unsupported token algorithm');
  });

  it('refuses a token signed with another key', async () => {
    const token = await sign({ hostnames: ['a.example.com'] }, 'HS256', 'some-other-secret');
    expect((await rejection(token)).reason).toBe('invalid token signature');
  });

  it('refuses a token whose payload was altered after signing', async () => {
    const [h, , s] = (await sign({ hostnames: ['a.example.com'] })).split('.');
    const forged = `${h}.${b64url({ hostnames: ['bank.example.com'] })}.${s}`;
    expect((await rejection(forged)).reason).toBe('invalid token signature');
  });

  it('tries every secret (rotation) and reports which one matched', async () => {
    const token = await sign({ hostnames: ['a.example.com'] }, 'HS256', 'old-secret');
    const result = await verifyBackendToken(token, opts({ secrets: ['new-secret', 'old-secret'] }));
    expect(result.secretIndex).toBe(1);
  });

  it('refuses an expired token, beyond the clock tolerance', async () => {
    const token = await sign({ hostnames: ['a.example.com'], exp: nowSec - 31 });
    expect((await rejection(token)).reason).toBe('token expired');
    const justExpired = await sign({ hostnames: ['a.example.com'], exp: nowSec - 5 });
    await expect(verifyBackendToken(justExpired, opts())).resolves.toMatchObject({ weight: 1 });
    await expect(verifyBackendToken(justExpired, opts({ clockToleranceSec: 0 }))).rejects.toThrow(
      'token expired',
    );
  });

  it('refuses a token that is not yet valid (nbf in the future)', async () => {
    const token = await sign({ hostnames: ['a.example.com'], nbf: nowSec + 3600 });
    expect((await rejection(token)).reason).toBe('token not yet valid');
  });

  it('refuses a token issued in the future', async () => {
    const token = await sign({ hostnames: ['a.example.com'], iat: nowSec + 3600 });
    expect((await rejection(token)).reason).toBe('token issued in the future');
  });

  it('requires exp only when asked to', async () => {
    const token = await sign({ hostnames: ['a.example.com'] });
    await expect(verifyBackendToken(token, opts())).resolves.toBeDefined();
    expect((await rejection(token, opts({ requireExp: true }))).reason).toBe('token has no expiry');
  });

  it('checks issuer and audience when configured', async () => {
    const token = await sign({ hostnames: ['a.example.com'], iss: 'authorizer', aud: ['nexus', 'x'] });
    await expect(
      verifyBackendToken(token, opts({ issuer: 'authorizer', audience: 'nexus' })),
    ).resolves.toBeDefined();
    expect((await rejection(token, opts({ issuer: 'someone-else' }))).reason).toBe('invalid token issuer');
    expect((await rejection(token, opts({ audience: 'other' }))).reason).toBe('invalid token audience');
  });

  it('refuses a token without hostnames', async () => {
    expect((await rejection(await sign({ weight: 1 }))).reason).toBe('no valid hostnames');
    expect((await rejection(await sign({ hostnames: [] }))).reason).toBe('no valid hostnames');
  });

  it('drops *.com and other invalid patterns, and refuses a token left with none', async () => {
    const mixed = await verifyBackendToken(
      await sign({ hostnames: ['*.com', '*.*.example.com', 'ok.example.com', 42, 'bad host'] }),
      opts(),
    );
    expect(mixed.hostnames).toEqual(['ok.example.com']);
    expect(mixed.ignoredHostnames).toEqual(['*.com', '*.*.example.com', '42', 'bad host']);
    expect((await rejection(await sign({ hostnames: ['*.com'] }))).reason).toBe('no valid hostnames');
  });

  it('refuses 10 000 hostnames (over the cap) and accepts exactly the cap', async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => `h${i}.example.com`);
    const big = await sign({ hostnames: many });
    expect((await rejection(big, opts({ maxTokenBytes: 1 << 20 }))).reason).toBe('too many hostnames');
    const atCap = await sign({ hostnames: many.slice(0, DEFAULT_MAX_TOKEN_HOSTNAMES) });
    const ok = await verifyBackendToken(atCap, opts({ maxTokenBytes: 1 << 20 }));
    expect(ok.hostnames).toHaveLength(DEFAULT_MAX_TOKEN_HOSTNAMES);
  });

  it('refuses a token longer than maxTokenBytes before parsing it', async () => {
    const token = await sign({ hostnames: ['a.example.com'], pad: 'x'.repeat(70_000) });
    expect((await rejection(token)).reason).toBe('token too large');
  });

  it('uses the legacy hostname claim only when hostnames is empty', async () => {
    const legacy = await verifyBackendToken(await sign({ hostname: 'Legacy.Example.com' }), opts());
    expect(legacy.hostnames).toEqual(['legacy.example.com']);
    const both = await verifyBackendToken(
      await sign({ hostname: 'legacy.example.com', hostnames: ['new.example.com'] }),
      opts(),
    );
    expect(both.hostnames).toEqual(['new.example.com']);
    const emptyList = await verifyBackendToken(
      await sign({ hostname: 'l.example.com', hostnames: [] }),
      opts(),
    );
    expect(emptyList.hostnames).toEqual(['l.example.com']);
  });

  it.each([
    { weight: undefined, expected: 1 },
    { weight: 0, expected: 1 },
    { weight: -4, expected: 1 },
    { weight: '5', expected: 1 },
    { weight: 7, expected: 7 },
  ])('maps weight $weight to $expected', async ({ weight, expected }) => {
    const result = await verifyBackendToken(await sign({ hostnames: ['a.example.com'], weight }), opts());
    expect(result.weight).toBe(expected);
  });

  it.each(['', 'garbage', 'a.b', 'a.b.c', '....', '\u0000'])(
    'refuses the malformed token %j',
    async (token) => {
      expect((await rejection(token)).reason).toBe('malformed token');
    },
  );

  it('refuses hostnames that is not an array', async () => {
    expect((await rejection(await sign({ hostnames: 'a.example.com' }))).reason).toBe('invalid token claims');
  });

  it('throws InvalidConfigError when no secret is configured', async () => {
    const token = await sign({ hostnames: ['a.example.com'] });
    await expect(verifyBackendToken(token, { secrets: [] })).rejects.toSatisfy(InvalidConfigError.is);
  });
});

describe('mintBackendToken', () => {
  it('mints a token verifyBackendToken accepts, with reference-compatible claims', async () => {
    const token = await mintBackendToken({
      secret: SECRET,
      hostnames: ['App.example.com', '*.preview.example.com'],
      weight: 2,
      ttlSeconds: 3600,
      now: () => NOW,
    });
    const result = await verifyBackendToken(
      token,
      opts({ issuer: 'authorizer', audience: 'nexus', requireExp: true }),
    );
    expect(result.hostnames).toEqual(['app.example.com', '*.preview.example.com']);
    expect(result.weight).toBe(2);
    expect(result.claims).toMatchObject({
      hostname: 'app.example.com',
      iss: 'authorizer',
      aud: ['nexus'],
      iat: nowSec,
      exp: nowSec + 3600,
    });
  });

  it('omits exp without a ttl and honours a custom algorithm', async () => {
    const token = await mintBackendToken({
      secret: SECRET,
      hostnames: ['a.example.com'],
      algorithm: 'HS512',
    });
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString());
    expect(header.alg).toBe('HS512');
    const result = await verifyBackendToken(token, { secrets: [SECRET] });
    expect(result.claims.exp).toBeUndefined();
  });

  it.each([
    [{ secret: '', hostnames: ['a.example.com'] }, 'secret'],
    [{ secret: SECRET, hostnames: [] }, 'hostnames'],
    [{ secret: SECRET, hostnames: ['ok.example.com', '*.com'] }, 'hostnames[1]'],
    [{ secret: SECRET, hostnames: ['a.example.com'], ttlSeconds: 0 }, 'ttlSeconds'],
  ])('refuses invalid options %#', async (options, path) => {
    await expect(mintBackendToken(options)).rejects.toMatchObject({ code: 'NEXUS_ERR_INVALID_CONFIG', path });
  });
});
