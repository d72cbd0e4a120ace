import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_HTTP_HEAD_SIZE, type HttpSniffResult, sniffHttpRequest } from '../src/index.js';
import { ascii, loadFixture } from './helpers.js';

function sniff(head: string, maxSize?: number): HttpSniffResult {
  return sniffHttpRequest(ascii(head), maxSize === undefined ? undefined : { maxSize });
}

function http(result: HttpSniffResult) {
  if (result.kind !== 'http') throw new Error(`expected http, got ${JSON.stringify(result)}`);
  return result;
}

const CURL_HEAD =
  'GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n';

describe('sniffHttpRequest on well-formed heads', () => {
  it('returns host, method, path, version and headLength', () => {
    expect(sniff(CURL_HEAD)).toEqual({
      kind: 'http',
      host: 'www.example.com',
      method: 'GET',
      path: '/index.html?q=1',
      version: 'HTTP/1.1',
      headLength: CURL_HEAD.length,
    });
  });

  it('returns incomplete for every proper prefix, then the result; a body after the head is not counted', () => {
    const bytes = ascii(`${CURL_HEAD}body bytes`);
    for (let cut = 0; cut < CURL_HEAD.length; cut++) {
      const r = sniffHttpRequest(bytes.subarray(0, cut));
      if (r.kind !== 'incomplete') throw new Error(`prefix ${cut} gave ${JSON.stringify(r)}`);
    }
    expect(http(sniffHttpRequest(bytes)).headLength).toBe(CURL_HEAD.length);
  });

  it('accepts bare LF line ends and mixed endings', () => {
    const lf = 'POST /submit HTTP/1.0\nHost: a.example\nContent-Length: 0\n\n';
    expect(http(sniff(lf))).toMatchObject({
      host: 'a.example',
      method: 'POST',
      version: 'HTTP/1.0',
      headLength: lf.length,
    });
    const mixed = 'GET / HTTP/1.1\r\nHost: b.example\n\r\n';
    expect(http(sniff(mixed))).toMatchObject({ host: 'b.example', headLength: mixed.length });
  });

  it('matches the Host header name case-insensitively and trims optional whitespace', () => {
    for (const name of ['host', 'HOST', 'hOsT']) {
      expect(http(sniff(`GET / HTTP/1.1\r\n${name}: \t Case.Example.COM \t\r\n\r\n`)).host).toBe(
        'case.example.com',
      );
    }
    expect(http(sniff('GET / HTTP/1.1\r\nHost:nospace.example\r\n\r\n')).host).toBe('nospace.example');
  });

  it('does not mistake other headers for Host', () => {
    const r = sniff(
      'GET / HTTP/1.1\r\nX-Host: evil.example\r\nHosts: evil.example\r\nHost: good.example\r\n\r\n',
    );
    expect(http(r).host).toBe('good.example');
  });

  it('strips the port from Host', () => {
    expect(http(sniff('GET / HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n')).host).toBe('example.com');
    expect(http(sniff('GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n')).host).toBe('example.com');
  });

  it('handles IPv6 literals with and without a port', () => {
    expect(http(sniff('GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n')).host).toBe('[::1]');
    expect(http(sniff('GET / HTTP/1.1\r\nHost: [2001:DB8::0:1]\r\n\r\n')).host).toBe('[2001:db8::1]');
    expect(http(sniff('GET / HTTP/1.1\r\nHost: 192.0.2.7:80\r\n\r\n')).host).toBe('192.0.2.7');
  });

  it('takes the host from an absolute-form target (RFC 9112 §3.2.2), ignoring the Host header', () => {
    const r = http(sniff('GET http://Target.Example:8080/x?y=1 HTTP/1.1\r\nHost: other.example\r\n\r\n'));
    expect(r).toMatchObject({ host: 'target.example', path: '/x?y=1' });
    expect(http(sniff('GET http://h.example HTTP/1.1\r\n\r\n'))).toMatchObject({
      host: 'h.example',
      path: '/',
    });
    expect(http(sniff('GET HTTPS://h.example?q HTTP/1.1\r\nHost: h.example\r\n\r\n')).path).toBe('/?q');
    expect(http(sniff('GET http://[::1]:81/ HTTP/1.1\r\n\r\n')).host).toBe('[::1]');
  });

  it('takes the host from the authority-form target of CONNECT', () => {
    expect(
      http(sniff('CONNECT tunnel.example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n')),
    ).toMatchObject({
      host: 'tunnel.example',
      method: 'CONNECT',
      path: 'tunnel.example:443',
    });
  });

  it('accepts the asterisk form', () => {
    expect(http(sniff('OPTIONS * HTTP/1.1\r\nHost: o.example\r\n\r\n'))).toMatchObject({
      path: '*',
      host: 'o.example',
    });
  });

  it('decodes an IDN sent as raw UTF-8 and converts it to an A-label', () => {
    const bytes = new Uint8Array(Buffer.from('GET / HTTP/1.1\r\nHost: bücher.example\r\n\r\n', 'utf8'));
    expect(http(sniffHttpRequest(bytes)).host).toBe('xn--bcher-kva.example');
  });

  it('routes a 40 KiB head within the default cap', () => {
    const filler = Array.from({ length: 400 }, (_, i) => `X-Filler-${i}: ${'v'.repeat(90)}\r\n`).join('');
    const head = `GET / HTTP/1.1\r\n${filler}Host: big.example\r\n\r\n`;
    expect(head.length).toBeGreaterThan(40 * 1024);
    expect(http(sniff(head))).toMatchObject({ host: 'big.example', headLength: head.length });
  });

  it('accepts a head of exactly maxSize bytes and not one byte more', () => {
    const head = 'GET / HTTP/1.1\r\nHost: a.example\r\n\r\n';
    expect(sniff(head, head.length).kind).toBe('http');
    expect(sniff(head, head.length - 1)).toEqual({ kind: 'too-large', limit: head.length - 1 });
  });

  it('accepts methods that are tokens, with obs-text in the target', () => {
    const bytes = new Uint8Array(
      Buffer.from('M-SEARCH /caf\u00e9 HTTP/1.1\r\nHost: a.example\r\n\r\n', 'latin1'),
    );
    expect(http(sniffHttpRequest(bytes))).toMatchObject({ method: 'M-SEARCH', path: '/caf\u00e9' });
  });
});

describe('sniffHttpRequest on bad hosts', () => {
  it('reports missing-host for HTTP/1.1 and HTTP/1.0 without Host', () => {
    expect(sniff('GET / HTTP/1.1\r\nAccept: */*\r\n\r\n')).toEqual({
      kind: 'bad-host',
      reason: 'missing-host',
    });
    expect(sniff('GET / HTTP/1.0\r\n\r\n')).toEqual({ kind: 'bad-host', reason: 'missing-host' });
    expect(sniff('GET / HTTP/1.1\r\nHost:\r\n\r\n')).toEqual({ kind: 'bad-host', reason: 'missing-host' });
  });

  it('reports duplicate-host for two Host headers, even equal ones (RFC 9112 §3.2)', () => {
    expect(sniff('GET / HTTP/1.1\r\nHost: a.example\r\nhost: b.example\r\n\r\n')).toEqual({
      kind: 'bad-host',
      reason: 'duplicate-host',
    });
    expect(sniff('GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n')).toMatchObject({
      reason: 'duplicate-host',
    });
    expect(
      sniff('GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n'),
    ).toMatchObject({
      reason: 'duplicate-host',
    });
  });

  it('reports malformed-host for values that are not uri-host[:port]', () => {
    for (const value of [
      'a.example:http',
      'a.example:99999',
      'a.example:1:2',
      '::1',
      '[::1',
      '[::1]x',
      'a b.example',
      'user@a.example',
      '*.example.com',
      'a..example',
      ':80',
      '%61.example',
    ]) {
      expect(sniff(`GET / HTTP/1.1\r\nHost: ${value}\r\n\r\n`), value).toEqual({
        kind: 'bad-host',
        reason: 'malformed-host',
      });
    }
    expect(sniff('GET http://user@a.example/ HTTP/1.1\r\n\r\n')).toMatchObject({ reason: 'malformed-host' });
  });
});

describe('sniffHttpRequest refusing what is not HTTP/1.x', () => {
  it('refuses a TLS ClientHello on its first byte', () => {
    const hello = loadFixture('curl-sni');
    for (let cut = 1; cut <= hello.length; cut++) {
      expect(sniffHttpRequest(hello.subarray(0, cut))).toEqual({
        kind: 'not-http',
        reason: 'invalid-method',
      });
    }
  });

  it('refuses binary, a leading blank line and an over-long method early', () => {
    expect(sniffHttpRequest(Uint8Array.from([0, 1, 2]))).toMatchObject({ kind: 'not-http' });
    expect(sniff('\r\nGET / HTTP/1.1\r\n')).toMatchObject({ reason: 'invalid-method' });
    expect(sniff(`${'A'.repeat(33)}`)).toMatchObject({ reason: 'invalid-method' });
    expect(sniff(`${'A'.repeat(32)}`)).toEqual({ kind: 'incomplete' });
    expect(sniff('GET  / HTTP/1.1')).toMatchObject({ reason: 'invalid-target' });
  });

  it('refuses a bad version as soon as it is visible', () => {
    expect(sniff('GET / HTTX')).toMatchObject({ reason: 'invalid-version' });
    expect(sniff('GET / HTTP/1.1x')).toMatchObject({ reason: 'invalid-version' });
    expect(sniff('GET / http/1.1\r\n')).toMatchObject({ reason: 'invalid-version' });
    expect(sniff('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')).toMatchObject({ reason: 'unsupported-version' });
    expect(sniff('GET /\r\n\r\n')).toMatchObject({ kind: 'not-http' });
  });

  it('refuses a control character in the request target', () => {
    expect(sniff('GET /a\u0001b HTTP/1.1\r\n')).toMatchObject({ reason: 'invalid-target' });
  });

  it('refuses targets in no RFC 9112 form', () => {
    expect(sniff('GET foo HTTP/1.1\r\nHost: a.example\r\n\r\n')).toMatchObject({ reason: 'invalid-target' });
    expect(sniff('GET *x HTTP/1.1\r\nHost: a.example\r\n\r\n')).toMatchObject({ reason: 'invalid-target' });
    expect(sniff('GET http:/// HTTP/1.1\r\nHost: a.example\r\n\r\n')).toMatchObject({
      reason: 'invalid-target',
    });
  });

  it('refuses malformed header lines (documented: not-http, not bad-host)', () => {
    expect(sniff('GET / HTTP/1.1\r\nHost a.example\r\n\r\n')).toMatchObject({ reason: 'malformed-header' });
    expect(sniff('GET / HTTP/1.1\r\n: value\r\n\r\n')).toMatchObject({ reason: 'malformed-header' });
    expect(sniff('GET / HTTP/1.1\r\nHost : a.example\r\n\r\n')).toMatchObject({
      reason: 'space-before-colon',
    });
    expect(sniff('GET / HTTP/1.1\r\nHost: a.example\r\n  .evil\r\n\r\n')).toMatchObject({
      reason: 'obs-fold',
    });
    expect(sniff('GET / HTTP/1.1\r\nX: a\u0000b\r\nHost: a.example\r\n\r\n')).toMatchObject({
      reason: 'invalid-header-value',
    });
    expect(sniff('GET / HTTP/1.1\r\nX: a\rHost: b\r\nHost: a.example\r\n\r\n')).toMatchObject({
      reason: 'invalid-header-value',
    });
  });

  it('reports a 1 MB head without a blank line as too-large', () => {
    const head = `GET / HTTP/1.1\r\nHost: a.example\r\nX: ${'x'.repeat(1024 * 1024)}`;
    expect(sniff(head)).toEqual({ kind: 'too-large', limit: DEFAULT_MAX_HTTP_HEAD_SIZE });
    // ...and one whose blank line comes only after the cap.
    expect(sniff(`${head}\r\n\r\n`)).toEqual({ kind: 'too-large', limit: DEFAULT_MAX_HTTP_HEAD_SIZE });
    // Just below the cap it still waits.
    expect(sniff(head.slice(0, DEFAULT_MAX_HTTP_HEAD_SIZE - 1))).toEqual({ kind: 'incomplete' });
  });

  it('returns incomplete for an empty buffer', () => {
    expect(sniffHttpRequest(new Uint8Array(0))).toEqual({ kind: 'incomplete' });
  });
});

describe('sniffHttpRequest input types', () => {
  it('gives the same result for a Buffer, a Uint8Array and views at an odd offset of a larger buffer', () => {
    const head = 'GET /x HTTP/1.1\r\nHost: View.Example:81\r\n\r\nbody';
    const expected = sniff(head);
    expect(expected.kind).toBe('http');
    const padded = Buffer.from(`xyz${head}tail`, 'latin1');
    const bufferView = padded.subarray(3, 3 + head.length);
    const u8View = new Uint8Array(padded.buffer, padded.byteOffset + 3, head.length);
    expect(sniffHttpRequest(Buffer.from(head, 'latin1'))).toEqual(expected);
    expect(sniffHttpRequest(bufferView)).toEqual(expected);
    expect(sniffHttpRequest(u8View)).toEqual(expected);
  });

  it('validates a Host header even when an absolute-form target decides the route', () => {
    expect(sniff('GET http://a.example/ HTTP/1.1\r\nHost: bad host\r\n\r\n')).toEqual({
      kind: 'bad-host',
      reason: 'malformed-host',
    });
  });

  it('returns the right name for thousands of distinct hosts, seen twice in different case', () => {
    // Exercises the bounded name cache: collisions must never return another name.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5000; i++) {
        const name = `h${i.toString(36)}.example`;
        const sent = round === 0 ? name : name.toUpperCase();
        expect(http(sniff(`GET / HTTP/1.1\r\nHost: ${sent}\r\n\r\n`)).host).toBe(name);
      }
    }
  });
});
