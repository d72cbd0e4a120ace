/** The smallest valid node configuration input, and a helper that expects `resolveNexusConfig` to refuse one. */
import { expect } from 'vitest';
import { resolveNexusConfig } from '../../src/config.js';
import { InvalidConfigError } from '../../src/errors.js';

export const TEST_SECRET = 'a-very-strong-jwt-secret-from-the-central-authorizer';

/** A minimal reference configuration: the secret and manual hub TLS files. */
export const baseConfig = {
  backendsJWTSecret: TEST_SECRET,
  hubTlsCertFile: 'hub.crt',
  hubTlsKeyFile: 'hub.key',
};

/** The `InvalidConfigError` that `resolveNexusConfig(input)` throws; fails the test if it accepts `input`. */
export function configRefusal(input: Record<string, unknown>): InvalidConfigError {
  try {
    resolveNexusConfig(input);
  } catch (err) {
    expect(InvalidConfigError.is(err)).toBe(true);
    return err as InvalidConfigError;
  }
  throw new Error('config was accepted');
}
