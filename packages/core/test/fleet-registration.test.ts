/** Fleet registration's pure parts and its configuration keys (docs/edge.md "Fleet registration"). */
import { describe, expect, it } from 'vitest';
import { resolveNexusConfig } from '../src/config.js';
import { baseConfig, configRefusal } from './helpers/config-input.js';
import { parseRetryAfter, registrationBody } from '../src/fleet-registration.js';

const base = baseConfig;
const refusal = configRefusal;

describe('registrationBody', () => {
  it('is the reference body, fields in its order, empty ones left out', () => {
    expect(JSON.stringify(registrationBody({ region: 'eu-west', backendPort: 8443, stunPort: 3478 }))).toBe(
      '{"region":"eu-west","backendPort":8443,"services":{"stunPort":3478}}',
    );
    expect(JSON.stringify(registrationBody({ backendPort: 443 }))).toBe('{"backendPort":443}');
    expect(JSON.stringify(registrationBody({ region: '', backendPort: 443, stunPort: 0 }))).toBe(
      '{"backendPort":443}',
    );
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each<[string | string[] | undefined, number | undefined]>([
    ['30', 30_000],
    [' 7 ', 7_000],
    [['12', '99'], 12_000],
    ['Thu, 01 Jan 2026 00:01:00 GMT', 60_000],
    ['0', undefined],
    ['-5', undefined],
    ['1.5', undefined],
    ['soon', undefined],
    ['Wed, 31 Dec 2025 23:00:00 GMT', undefined],
    ['999999999', 3_600_000],
    [undefined, undefined],
    ['', undefined],
  ])('%j → %s ms', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});

describe('registrationURL and region', () => {
  it('are off by default', () => {
    expect(resolveNexusConfig(base).registration).toBeUndefined();
  });

  it('resolve to the endpoint and region, without warnings', () => {
    const c = resolveNexusConfig({
      ...base,
      registrationURL: 'https://orchestrator.example.com/api/relays/register',
      region: 'eu-west',
    });
    expect(c.registration).toEqual({
      url: 'https://orchestrator.example.com/api/relays/register',
      region: 'eu-west',
    });
    expect(c.warnings).toEqual([]);
  });

  it('a region without an endpoint is ignored with a warning', () => {
    const c = resolveNexusConfig({ ...base, region: 'eu-west' });
    expect(c.registration).toBeUndefined();
    expect(c.warnings).toEqual(['region is ignored without registrationURL']);
  });

  it.each([
    ['http://orchestrator.example.com/register', 'must use https'],
    ['orchestrator.example.com/register', 'must be an https:// URL'],
    ['https://user:pw@orchestrator.example.com/', 'must not carry credentials'],
  ])('refuses %s', (registrationURL, message) => {
    const err = refusal({ ...base, registrationURL });
    expect(err.path).toBe('registrationURL');
    expect(err.message).toContain(message);
  });
});
