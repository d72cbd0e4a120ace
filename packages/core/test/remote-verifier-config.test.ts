/** The remote verifier's configuration keys (docs/configuration.md, docs/protocol.md §5.5). */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nexusConfigJsonSchema, resolveNexusConfig } from '../src/config.js';
import { InvalidConfigError } from '../src/errors.js';

const tls = { hubTlsCertFile: 'hub.crt', hubTlsKeyFile: 'hub.key' };

describe('remoteVerifierURL', () => {
  it('is off by default', () => {
    expect(resolveNexusConfig({ ...tls, backendsJWTSecret: 's'.repeat(40) }).remoteVerifier).toBeUndefined();
  });

  it('replaces the secret as the reference allows: no local fallback then', () => {
    const c = resolveNexusConfig({ ...tls, remoteVerifierURL: 'https://verifier.example.com/verify' });
    expect(c.backendsJWTSecrets).toEqual([]);
    expect(c.remoteVerifier).toEqual({
      url: 'https://verifier.example.com/verify',
      timeoutMs: 10_000,
      caFile: undefined,
    });
    expect(c.warnings).toEqual([]);
  });

  it('takes a timeout in seconds and a CA file relative to the configuration', () => {
    const c = resolveNexusConfig(
      {
        ...tls,
        backendsJWTSecret: 's'.repeat(40),
        remoteVerifierURL: ' https://127.0.0.1:9443/v ',
        remoteVerifierTimeoutSeconds: 3,
        remoteVerifierCaFile: 'verifier-ca.pem',
      },
      { baseDir: '/etc/nexus' },
    );
    expect(c.backendsJWTSecrets).toHaveLength(1);
    expect(c.remoteVerifier).toEqual({
      url: 'https://127.0.0.1:9443/v',
      timeoutMs: 3_000,
      caFile: join('/etc/nexus', 'verifier-ca.pem'),
    });
  });

  it('warns about its companions without it', () => {
    const c = resolveNexusConfig({
      ...tls,
      backendsJWTSecret: 's'.repeat(40),
      remoteVerifierTimeoutSeconds: 5,
      remoteVerifierCaFile: 'x.pem',
    });
    expect(c.remoteVerifier).toBeUndefined();
    expect(c.warnings).toEqual([
      'remoteVerifierTimeoutSeconds is ignored: remoteVerifierURL is not set',
      'remoteVerifierCaFile is ignored: remoteVerifierURL is not set',
    ]);
  });

  it.each([
    ['http://verifier.test/', 'remoteVerifierURL'],
    ['not a url', 'remoteVerifierURL'],
    ['ftp://verifier.test/', 'remoteVerifierURL'],
    [42, 'remoteVerifierURL'],
  ])('refuses %j', (url, path) => {
    let err: unknown;
    try {
      resolveNexusConfig({ ...tls, remoteVerifierURL: url as string });
    } catch (e) {
      err = e;
    }
    expect(InvalidConfigError.is(err)).toBe(true);
    expect((err as InvalidConfigError).path).toBe(path);
  });

  it.each([0, 61, 1.5, '10'])('refuses remoteVerifierTimeoutSeconds %j', (value) => {
    expect(() =>
      resolveNexusConfig({
        ...tls,
        remoteVerifierURL: 'https://v.test/',
        remoteVerifierTimeoutSeconds: value as number,
      }),
    ).toThrow(/remoteVerifierTimeoutSeconds/);
  });

  it('still requires a secret without it', () => {
    expect(() => resolveNexusConfig({ ...tls })).toThrow(
      /backendsJWTSecret is required \(or remoteVerifierURL\)/,
    );
  });

  it('is in the JSON Schema with its description', () => {
    const schema = nexusConfigJsonSchema() as { properties: Record<string, { description?: string }> };
    expect(schema.properties.remoteVerifierURL?.description).toMatch(/HTTPS endpoint/);
    expect(schema.properties.remoteVerifierCaFile?.description).toMatch(/CA bundle/);
    expect(schema.properties.remoteVerifierTimeoutSeconds).toBeDefined();
  });
});
