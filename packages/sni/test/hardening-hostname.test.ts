/**
 * Hostname labels may neither start nor end with a hyphen (RFC 952, RFC 1123 §2.1), wherever a name comes
 * from: a string (JWT claims, configuration), an SNI host_name or a Host header (the byte paths), or a
 * route pattern. `_` stays accepted anywhere in a label (PROTOCOL.md §3).
 */
import { describe, expect, it } from 'vitest';
import {
  isValidHostnamePattern,
  matchesHostname,
  normalizeHostname,
  normalizeHostnamePattern,
  parseClientHello,
  sniffHttpRequest,
} from '../src/index.js';
import { ascii, buildClientHello, serverNameExtension } from './helpers.js';

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
