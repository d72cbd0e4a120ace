import { isIPv4 } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isValidHostnamePattern,
  matchesHostname,
  normalizeHostname,
  normalizeHostnamePattern,
  parseClientHello,
  parseWildcard,
  sniffHttpRequest,
} from '../src/index.js';
import { ascii, buildClientHello, serverNameExtension } from './helpers.js';

const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 2000);

describe('normalizeHostname', () => {
  const valid: [string, string][] = [
    ['example.com', 'example.com'],
    ['Example.COM', 'example.com'],
    ['  example.com\t', 'example.com'],
    ['example.com.', 'example.com'],
    ['localhost', 'localhost'],
    ['a-b_c.example', 'a-b_c.example'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['XN--BCHER-KVA.example', 'xn--bcher-kva.example'],
    ['faß.de', 'xn--fa-hia.de'],
    ['ＥＸＡＭＰＬＥ.com', 'example.com'],
    ['münchen.TEST.', 'xn--mnchen-3ya.test'],
    ['a.1com', 'a.1com'],
    [`${'a'.repeat(63)}.com`, `${'a'.repeat(63)}.com`],
    [`${'a.'.repeat(126)}b`, `${'a.'.repeat(126)}b`],
    ['192.0.2.1', '192.0.2.1'],
    ['[::1]', '[::1]'],
    ['::1', '[::1]'],
    ['[2001:DB8:0:0::1]', '[2001:db8::1]'],
  ];
  for (const [input, output] of valid) {
    it(`normalises ${JSON.stringify(input)} to ${output}`, () => {
      expect(normalizeHostname(input)).toBe(output);
    });
  }

  const invalid: string[] = [
    '',
    '   ',
    '.',
    'example.com..',
    '.example.com',
    'a..b',
    `${'a'.repeat(64)}.com`,
    `${'a.'.repeat(127)}b`,
    '*.example.com',
    'a*b.com',
    'exa%41mple.com',
    'a b.com',
    'a/b',
    'host:80',
    'a\u0000b.com',
    'a!b.com',
    'xn--zz.com',
    'xn--.com',
    'foo.123',
    '127.1',
    '0x7f.0.0.1',
    '01.2.3.4',
    '256.1.1.1',
    '[fe80::1%25eth0]',
    '[::1',
    '[example.com]',
    '\u200b.com',
  ];
  for (const input of invalid) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      expect(normalizeHostname(input)).toBeUndefined();
    });
  }

  it('never throws on non-string input', () => {
    for (const v of [undefined, null, 42, {}, []]) {
      expect(normalizeHostname(v as unknown as string)).toBeUndefined();
    }
  });

  it('agrees with a plain domainToASCII reference on random LDH names (ASCII fast path)', () => {
    // Reference: trim, drop one dot, domainToASCII, then the same validity rules, with IPv4 rewriting refused.
    const reference = (s: string): string | undefined => {
      let t = s.trim();
      if (t.endsWith('.')) t = t.slice(0, -1);
      if (t === '') return undefined;
      if (isIPv4(t)) return t;
      const a = domainToASCII(t);
      if (a === '' || a.length > 253 || !/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(a)) return undefined;
      if (a.split('.').some((l) => l.length > 63)) return undefined;
      if (a.split('.').some((l) => l.startsWith('-') || l.endsWith('-'))) return undefined; // RFC 1123
      // The same rule on the Unicode form of A-labels (RFC 5891 §4.2.3.1): `xn----xna` is `-ä-`.
      if (
        domainToUnicode(a)
          .split('.')
          .some((l) => l.startsWith('-') || l.endsWith('-'))
      )
        return undefined;
      if (/^[\d.]+$/.test(a)) return undefined;
      return a;
    };
    const label = fc.stringMatching(/^[a-zA-Z0-9_-]{1,8}$/);
    const name = fc.oneof(
      fc.array(label, { minLength: 1, maxLength: 5 }).map((ls) => ls.join('.')),
      fc
        .array(fc.constantFrom('a', 'B', '0', '9', '-', '_', '.', 'x', 'n', '--', 'xn--', '0x'), {
          maxLength: 20,
        })
        .map((cs) => cs.join('')),
    );
    fc.assert(
      fc.property(name, (s) => {
        expect(normalizeHostname(s)).toBe(reference(s));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('is idempotent and never throws on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        const once = normalizeHostname(s);
        if (once !== undefined) {
          expect(normalizeHostname(once)).toBe(once);
          expect(once.length).toBeLessThanOrEqual(253);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe('parseWildcard', () => {
  it('parses *.example.com into its normalised suffix', () => {
    expect(parseWildcard('*.example.com')).toEqual({ suffix: 'example.com' });
    expect(parseWildcard(' *.Bücher.Example. ')).toEqual({ suffix: 'xn--bcher-kva.example' });
  });

  it('rejects patterns that are not one leading wildcard label over a dotted name', () => {
    for (const p of [
      '*.com',
      '*.*.example.com',
      'a.*.example.com',
      '*example.com',
      '*',
      '*.',
      'example.com',
      '**.a.b',
    ]) {
      expect(parseWildcard(p), p).toBeUndefined();
    }
    expect(parseWildcard('*.192.0.2.1')).toBeUndefined();
    expect(parseWildcard(42 as unknown as string)).toBeUndefined();
  });
});

describe('normalizeHostnamePattern and isValidHostnamePattern', () => {
  it('normalises exact names and wildcards, and refuses IP literals and stray stars', () => {
    expect(normalizeHostnamePattern('API.Example.com.')).toBe('api.example.com');
    expect(normalizeHostnamePattern('*.Example.com')).toBe('*.example.com');
    expect(normalizeHostnamePattern('*.com')).toBeUndefined();
    expect(normalizeHostnamePattern('192.0.2.1')).toBeUndefined();
    expect(normalizeHostnamePattern('[::1]')).toBeUndefined();
    expect(isValidHostnamePattern('*.example.com')).toBe(true);
    expect(isValidHostnamePattern('a.*.com')).toBe(false);
    expect(isValidHostnamePattern('')).toBe(false);
  });
});

describe('matchesHostname', () => {
  const table: [string, string, boolean][] = [
    ['example.com', 'example.com', true],
    ['example.com', 'EXAMPLE.com.', true],
    ['Bücher.example', 'xn--bcher-kva.example', true],
    ['example.com', 'a.example.com', false],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'A.Example.Com', true],
    ['*.example.com', 'a.b.example.com', false],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'aexample.com', false],
    ['*.example.com', '.example.com', false],
    ['*.example.com', 'a.example.org', false],
    ['*.com', 'example.com', false],
    ['*.*.example.com', 'a.b.example.com', false],
    ['a.*.com', 'a.b.com', false],
    ['*.example.com', '*.example.com', false],
    ['', '', false],
  ];
  for (const [pattern, host, expected] of table) {
    it(`${expected ? 'matches' : 'does not match'} ${JSON.stringify(host)} against ${JSON.stringify(pattern)}`, () => {
      expect(matchesHostname(pattern, host)).toBe(expected);
    });
  }
});

// Hostname labels may neither start nor end with a hyphen (RFC 952, RFC 1123 §2.1), wherever a name comes
// from: a string (JWT claims, configuration), an SNI host_name or a Host header (the byte paths), or a
// route pattern. `_` stays accepted anywhere in a label (docs/protocol.md §3).

/** Each as written, and as the ASCII an SNI carries (RFC 6066 §3: IDNs travel as A-labels). */
const HYPHEN_EDGES: Array<[string, string]> = [
  ['-x-.example.com', '-x-.example.com'],
  ['-x.example.com', '-x.example.com'],
  ['x-.example.com', 'x-.example.com'],
  ['a.-b.example.com', 'a.-b.example.com'],
  ['a.b-.example.com', 'a.b-.example.com'],
  ['example.com-', 'example.com-'],
  ['-', '-'],
  ['a.-', 'a.-'],
  ['EXAMPLE-.COM', 'EXAMPLE-.COM'], // upper case takes the same path
  // Non-ASCII (the IDNA slow path): the U-label's edges count, not the A-label's.
  ['-bücher.example', 'xn---bcher-4ya.example'],
  ['bücher-.example', 'xn--bcher--3ya.example'],
];

const STILL_VALID: Array<[string, string]> = [
  ['a-b.example.com', 'a-b.example.com'],
  ['a--b.example.com', 'a--b.example.com'],
  ['_dmarc.example.com', '_dmarc.example.com'],
  ['_a_.example.com', '_a_.example.com'],
  ['x_.example.com', 'x_.example.com'],
  ['1-2.example.com', '1-2.example.com'],
  ['Bücher.Example', 'xn--bcher-kva.example'],
];

function sni(name: string): string | undefined {
  const r = parseClientHello(buildClientHello({ extensions: [serverNameExtension({ name })] }));
  if (r.kind !== 'tls') throw new Error(`not parsed as TLS: ${r.kind}`);
  return r.serverName;
}

describe('hyphens at a label edge', () => {
  for (const [name, wire] of HYPHEN_EDGES) {
    it(`rejects ${JSON.stringify(name)} as a name, a pattern suffix, an SNI and a Host`, () => {
      expect(normalizeHostname(name)).toBeUndefined();
      expect(normalizeHostname(wire)).toBeUndefined();
      expect(normalizeHostname(`${name}.`)).toBeUndefined();
      expect(normalizeHostnamePattern(name)).toBeUndefined();
      expect(isValidHostnamePattern(`*.${name}`)).toBe(false);
      expect(matchesHostname(name, name)).toBe(false);
      // SNI: parsed as TLS, but no usable name.
      expect(sni(wire)).toBeUndefined();
      // Host (as written, UTF-8, and as ASCII): a malformed host, never routed.
      for (const host of [name, wire]) {
        const r = sniffHttpRequest(Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 'utf8'));
        expect(r).toEqual({ kind: 'bad-host', reason: 'malformed-host' });
      }
    });
  }

  for (const [input, normalised] of STILL_VALID) {
    it(`still accepts ${JSON.stringify(input)}`, () => {
      expect(normalizeHostname(input)).toBe(normalised);
      expect(normalizeHostnamePattern(`*.${input}`)).toBe(`*.${normalised}`);
      expect(sni(normalised)).toBe(normalised);
      expect(sniffHttpRequest(ascii(`GET / HTTP/1.1\r\nHost: ${normalised}:80\r\n\r\n`))).toMatchObject({
        kind: 'http',
        host: normalised,
      });
    });
  }

  it('keeps rejecting a hyphen-edged label after the name cache has seen a similar valid name', () => {
    // The byte path caches names by hash; a cached "ab.example.com" must not answer for "-ab.example.com".
    expect(sni('ab.example.com')).toBe('ab.example.com');
    expect(sni('-ab.example.com')).toBeUndefined();
    expect(sni('ab-.example.com')).toBeUndefined();
  });
});
