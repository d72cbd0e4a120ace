import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../src/errors.js';
import {
  parseHostPort,
  resolvePortMappings,
  resolveStreamTarget,
  resolveTarget,
} from '../src/port-mappings.js';

const mappings = resolvePortMappings({
  443: {
    default: 'localhost:8443',
    hosts: {
      'API.example.com': 'localhost:9443',
      '*.preview.example.com': 'localhost:10443',
      '*.example.com': '10.0.0.7:443',
      'deep.preview.example.com': '[::1]:7443',
    },
  },
  80: 'localhost:8080',
  993: { hosts: { 'imap.example.com': 'localhost:993' } },
});

describe('resolveTarget', () => {
  it.each([
    { port: 443, host: 'api.example.com', expected: 'localhost:9443', why: 'exact host' },
    { port: 443, host: 'API.Example.COM.', expected: 'localhost:9443', why: 'exact host, normalised' },
    { port: 443, host: 'pr-1.preview.example.com', expected: 'localhost:10443', why: 'longest wildcard' },
    { port: 443, host: 'deep.preview.example.com', expected: '::1:7443', why: 'exact beats wildcard' },
    { port: 443, host: 'www.example.com', expected: '10.0.0.7:443', why: 'shorter wildcard' },
    {
      port: 443,
      host: 'a.b.preview.example.com',
      expected: 'localhost:8443',
      why: 'wildcards match one label',
    },
    { port: 443, host: 'example.com', expected: 'localhost:8443', why: 'default' },
    { port: 443, host: '', expected: 'localhost:8443', why: 'no hostname → default' },
    { port: 80, host: 'anything.example.com', expected: 'localhost:8080', why: 'bare string is the default' },
    { port: 993, host: 'imap.example.com', expected: 'localhost:993', why: 'hosts only' },
    { port: 993, host: 'other.example.com', expected: undefined, why: 'hosts only, no match, no default' },
    { port: 8080, host: 'api.example.com', expected: undefined, why: 'unmapped port' },
  ])('port $port, $host → $expected ($why)', ({ port, host, expected }) => {
    const target = resolveTarget(mappings, port, host);
    expect(target === undefined ? undefined : `${target.host}:${target.port}`).toBe(expected);
  });
});

describe('resolvePortMappings', () => {
  it('returns frozen targets', () => {
    const t = resolveTarget(mappings, 80, 'x.example.com')!;
    expect(Object.isFrozen(t)).toBe(true);
    expect(Object.isFrozen(mappings)).toBe(true);
  });

  it('treats an empty default as absent', () => {
    const m = resolvePortMappings({ 443: { default: '', hosts: { 'a.example.com': 'localhost:1' } } });
    expect(resolveTarget(m, 443, 'b.example.com')).toBeUndefined();
  });

  it.each([
    { name: 'not a mapping', input: ['x'], path: 'portMappings' },
    { name: 'no ports', input: {}, path: 'portMappings' },
    { name: 'port 0', input: { 0: 'localhost:1' }, path: 'portMappings.0' },
    { name: 'port 70000', input: { 70000: 'localhost:1' }, path: 'portMappings.70000' },
    { name: 'a non-numeric port', input: { https: 'localhost:1' }, path: 'portMappings.https' },
    { name: 'neither default nor hosts', input: { 443: {} }, path: 'portMappings.443' },
    { name: 'an unknown key', input: { 443: { fallback: 'x:1' } }, path: 'portMappings.443.fallback' },
    { name: 'a target without port', input: { 443: 'localhost' }, path: 'portMappings.443' },
    { name: 'a bad default', input: { 443: { default: 'localhost:0' } }, path: 'portMappings.443.default' },
    { name: 'a number target', input: { 443: 8443 }, path: 'portMappings.443' },
    { name: 'hosts not a mapping', input: { 443: { hosts: ['a'] } }, path: 'portMappings.443.hosts' },
    {
      name: 'an invalid pattern',
      input: { 443: { hosts: { '*.com': 'localhost:1' } } },
      path: 'portMappings.443.hosts',
    },
    {
      name: 'a duplicate after normalisation',
      input: { 443: { hosts: { 'a.example.com': 'localhost:1', 'A.example.com.': 'localhost:2' } } },
      path: 'portMappings.443.hosts',
    },
    {
      name: 'a bad host target',
      input: { 443: { hosts: { 'a.example.com': 'localhost' } } },
      path: 'portMappings.443.hosts["a.example.com"]',
    },
  ])('rejects $name naming $path', ({ input, path }) => {
    try {
      resolvePortMappings(input);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect((err as InvalidOptionsError).path).toBe(path);
    }
  });
});

describe('parseHostPort', () => {
  it.each([
    ['localhost:8443', { host: 'localhost', port: 8443 }],
    [' 10.0.0.5:80 ', { host: '10.0.0.5', port: 80 }],
    ['[::1]:8443', { host: '::1', port: 8443 }],
    ['my-service.internal:65535', { host: 'my-service.internal', port: 65535 }],
  ])('parses %s', (input, expected) => {
    expect(parseHostPort(input, 'x')).toEqual(expected);
  });

  it.each([
    'localhost',
    ':80',
    'localhost:',
    'localhost:0',
    'localhost:65536',
    '::1:80',
    '[::1]80',
    '[zz]:80',
    'a b:1',
    5,
  ])('rejects %j', (input) => {
    expect(() => parseHostPort(input, 'x')).toThrow(InvalidOptionsError);
  });
});

describe('resolveStreamTarget', () => {
  it.each([
    {
      connPort: 443,
      isTls: true,
      host: 'api.example.com',
      expected: 'localhost:9443 via 443',
      why: 'own port',
    },
    {
      connPort: 20443,
      isTls: true,
      host: 'api.example.com',
      expected: 'localhost:9443 via 443',
      why: 'TLS → 443',
    },
    {
      connPort: 20080,
      isTls: false,
      host: 'x.example.com',
      expected: 'localhost:8080 via 80',
      why: 'HTTP → 80',
    },
    {
      connPort: 993,
      isTls: true,
      host: 'other.example.com',
      expected: undefined,
      why: 'mapped port: no fallback',
    },
  ])('port $connPort ($why)', ({ connPort, isTls, host, expected }) => {
    const r = resolveStreamTarget(mappings, { connPort, isTls, hostname: host });
    expect(r === undefined ? undefined : `${r.target.host}:${r.target.port} via ${r.mappedPort}`).toBe(
      expected,
    );
  });

  it('finds nothing when the fallback port is not mapped either', () => {
    const only443 = resolvePortMappings({ 443: 'localhost:8443' });
    expect(resolveStreamTarget(only443, { connPort: 20080, isTls: false, hostname: 'a.example.com' })).toBe(
      undefined,
    );
  });
});
