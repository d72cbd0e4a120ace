import { describe, expect, it } from 'vitest';
import { type ClientHelloResult, DEFAULT_MAX_CLIENT_HELLO_SIZE, parseClientHello } from '../src/index.js';
import {
  alpnExtension,
  buildClientHello,
  buildHandshake,
  concat,
  type Extension,
  fixtureNames,
  handshakeOf,
  loadFixture,
  serverNameExtension,
  toRecords,
  u16,
} from './helpers.js';

/** What each captured client sent (see test/fixtures/capture.mjs). */
const EXPECTED: Record<string, { serverName: string | undefined; alpn: string[]; ech: boolean }> = {
  chromium: { serverName: 'www.chromium.test', alpn: ['h2', 'http/1.1'], ech: true },
  'curl-idn': { serverName: 'xn--bcher-kva.test', alpn: ['h2', 'http/1.1'], ech: false },
  'curl-sni': { serverName: 'app.example.test', alpn: ['h2', 'http/1.1'], ech: false },
  'openssl-no-sni': { serverName: undefined, alpn: [], ech: false },
  'openssl-sni': { serverName: 'example.test', alpn: [], ech: false },
  'openssl-tls12-alpn': { serverName: 'legacy.example.test', alpn: ['h2', 'http/1.1'], ech: false },
};

function tls(result: ClientHelloResult) {
  if (result.kind !== 'tls') throw new Error(`expected tls, got ${JSON.stringify(result)}`);
  return result;
}

describe('parseClientHello on captured ClientHellos', () => {
  it('has a fixture for every expected client and nothing unexpected', () => {
    expect(fixtureNames()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const name of Object.keys(EXPECTED)) {
    const expected = EXPECTED[name]!;

    it(`extracts server name, ALPN and ECH from ${name}`, () => {
      const bytes = loadFixture(name);
      const r = tls(parseClientHello(bytes));
      expect(r.serverName).toBe(expected.serverName);
      expect(r.alpn).toEqual(expected.alpn);
      expect(r.ech).toBe(expected.ech);
      expect(r.length).toBe(bytes.length);
      expect(r.legacyVersion).toBe(0x0303);
    });

    it(`returns incomplete for every proper prefix of ${name}, then the full result`, () => {
      const bytes = loadFixture(name);
      const full = parseClientHello(bytes);
      for (let cut = 0; cut < bytes.length; cut++) {
        const r = parseClientHello(bytes.subarray(0, cut));
        if (r.kind !== 'incomplete') throw new Error(`prefix ${cut} gave ${r.kind}`);
      }
      expect(parseClientHello(bytes)).toEqual(full);
    });

    it(`parses ${name} re-split into 1-, 7- and 100-byte records, for every prefix`, () => {
      const handshake = handshakeOf(loadFixture(name));
      for (const size of [1, 7, 100]) {
        const wire = toRecords(handshake, size, 0x0303);
        for (let cut = 0; cut < wire.length; cut++) {
          const r = parseClientHello(wire.subarray(0, cut));
          if (r.kind !== 'incomplete') throw new Error(`size ${size} prefix ${cut} gave ${r.kind}`);
        }
        const r = tls(parseClientHello(wire));
        expect(r.serverName).toBe(expected.serverName);
        expect(r.alpn).toEqual(expected.alpn);
        expect(r.length).toBe(wire.length);
      }
    });

    it(`ignores bytes after the ClientHello of ${name} (early data, pipelining)`, () => {
      const bytes = loadFixture(name);
      const r = tls(parseClientHello(concat(bytes, [23, 3, 3, 0, 5, 1, 2, 3, 4, 5])));
      expect(r.length).toBe(bytes.length);
    });
  }

  it('sees the GREASE values Chromium sends and still reports only real ALPN names', () => {
    const bytes = loadFixture('chromium');
    // RFC 8701 GREASE values (0x?A?A) appear among the cipher suites and extensions.
    const hex = Buffer.from(bytes).toString('hex');
    expect(/([0-9a-f])a\1a/.test(hex)).toBe(true);
    expect(tls(parseClientHello(bytes)).alpn).toEqual(['h2', 'http/1.1']);
  });
});

describe('parseClientHello on synthetic ClientHellos', () => {
  it('parses a minimal ClientHello with no extensions block (TLS 1.0 style)', () => {
    const r = tls(parseClientHello(buildClientHello({ legacyVersion: 0x0301 })));
    expect(r).toEqual({
      kind: 'tls',
      serverName: undefined,
      alpn: [],
      ech: false,
      length: r.length,
      legacyVersion: 0x0301,
    });
  });

  it('normalises the server name (case, one trailing dot)', () => {
    const r = parseClientHello(
      buildClientHello({ extensions: [serverNameExtension({ name: 'WWW.Example.COM.' })] }),
    );
    expect(tls(r).serverName).toBe('www.example.com');
  });

  it('reports ECH when extension 0xfe0d is offered and keeps the outer name', () => {
    const r = parseClientHello(
      buildClientHello({
        extensions: [
          serverNameExtension({ name: 'public.example.com' }),
          { type: 0xfe0d, data: [0, 1, 2, 3] },
        ],
      }),
    );
    expect(tls(r)).toMatchObject({ ech: true, serverName: 'public.example.com' });
  });

  it('gives no server name for a zero-length host_name', () => {
    const r = parseClientHello(buildClientHello({ extensions: [serverNameExtension({ name: '' })] }));
    expect(tls(r).serverName).toBeUndefined();
  });

  it('gives no server name for non-ASCII bytes in host_name', () => {
    for (const name of [
      [0x62, 0xfc, 0x63, 0x68, 0x2e, 0x64, 0x65],
      [0x61, 0x00, 0x62],
      Buffer.from('bücher.de'),
    ]) {
      const r = parseClientHello(buildClientHello({ extensions: [serverNameExtension({ name })] }));
      expect(tls(r).serverName).toBeUndefined();
    }
  });

  it('gives no server name for an IP literal (RFC 6066 §3) or an invalid name', () => {
    for (const name of ['192.0.2.1', 'a..b', '*.example.com', 'a b', `${'x'.repeat(64)}.com`]) {
      const r = parseClientHello(buildClientHello({ extensions: [serverNameExtension({ name })] }));
      expect(tls(r).serverName, name).toBeUndefined();
    }
  });

  it('skips name types other than host_name', () => {
    const r = parseClientHello(
      buildClientHello({
        extensions: [serverNameExtension({ type: 7, name: 'other.example' }, { name: 'host.example' })],
      }),
    );
    expect(tls(r).serverName).toBe('host.example');
    const onlyOther = parseClientHello(
      buildClientHello({ extensions: [serverNameExtension({ type: 7, name: 'other.example' })] }),
    );
    expect(tls(onlyOther).serverName).toBeUndefined();
  });

  it('gives no server name when the list holds two host_names (ambiguous)', () => {
    const r = parseClientHello(
      buildClientHello({ extensions: [serverNameExtension({ name: 'a.example' }, { name: 'b.example' })] }),
    );
    expect(tls(r).serverName).toBeUndefined();
  });

  it('refuses a second server_name or ALPN extension', () => {
    const sni = serverNameExtension({ name: 'a.example' });
    expect(parseClientHello(buildClientHello({ extensions: [sni, sni] }))).toEqual({
      kind: 'not-tls',
      reason: 'duplicate-extension',
    });
    const alpn = alpnExtension('h2');
    expect(parseClientHello(buildClientHello({ extensions: [alpn, alpn] }))).toEqual({
      kind: 'not-tls',
      reason: 'duplicate-extension',
    });
  });

  it('drops GREASE ALPN identifiers and keeps the order of the rest', () => {
    const r = parseClientHello(
      buildClientHello({
        extensions: [alpnExtension([0x3a, 0x3a], 'h2', [0xfa, 0xfa], 'http/1.1', [0x3a, 0x4a])],
      }),
    );
    // 0x3a4a is not GREASE (the two bytes differ) and is kept, byte for byte.
    expect(tls(r).alpn).toEqual(['h2', 'http/1.1', ':J']);
  });

  it('ignores GREASE extension types and cipher suites', () => {
    const r = parseClientHello(
      buildClientHello({
        cipherSuites: [0x0a0a, 0x1301],
        extensions: [
          { type: 0x1a1a, data: [] },
          serverNameExtension({ name: 'g.example' }),
          { type: 0xfafa, data: [0] },
        ],
      }),
    );
    expect(tls(r).serverName).toBe('g.example');
  });

  it('refuses malformed ALPN (empty name, list length mismatch)', () => {
    const empty = alpnExtension('h2', '');
    expect(parseClientHello(buildClientHello({ extensions: [empty] }))).toMatchObject({
      reason: 'malformed-extension',
    });
    const bad = { type: 0x10, data: [0, 9, 2, 0x68, 0x32] };
    expect(parseClientHello(buildClientHello({ extensions: [bad] }))).toMatchObject({
      reason: 'malformed-extension',
    });
  });

  it('refuses a server_name extension whose lengths point past the extension', () => {
    const data = [0, 20, 0, 0, 30, 0x61, 0x62];
    expect(parseClientHello(buildClientHello({ extensions: [{ type: 0, data }] }))).toMatchObject({
      kind: 'not-tls',
      reason: 'malformed-extension',
    });
    const entry = [0, 6, 0, 0, 30, 0x61, 0x62, 0x63];
    expect(parseClientHello(buildClientHello({ extensions: [{ type: 0, data: entry }] }))).toMatchObject({
      kind: 'not-tls',
      reason: 'malformed-extension',
    });
  });

  it('refuses body lengths that point past the handshake message', () => {
    const hs = buildHandshake({ extensions: [serverNameExtension({ name: 'a.example' })] });
    // Session id length 33 (max 32), then one that runs past the body.
    const sid = hs.slice();
    sid[4 + 34] = 33;
    expect(parseClientHello(toRecords(sid))).toMatchObject({ reason: 'malformed-client-hello' });
    const suites = hs.slice();
    suites[4 + 35 + 32] = 0xff;
    expect(parseClientHello(toRecords(suites))).toMatchObject({ reason: 'malformed-client-hello' });
    const exts = hs.slice();
    const extLenAt = 4 + 35 + 32 + 2 + 6 + 2;
    exts[extLenAt] = 0x7f;
    expect(parseClientHello(toRecords(exts))).toMatchObject({ reason: 'malformed-client-hello' });
    const oneExt = hs.slice();
    oneExt[extLenAt + 2 + 2] = 0x7f;
    expect(parseClientHello(toRecords(oneExt))).toMatchObject({ reason: 'malformed-client-hello' });
  });

  it('refuses an odd cipher-suite length and an empty compression list', () => {
    const hs = buildHandshake();
    const odd = hs.slice();
    odd[4 + 35 + 32 + 1] = 5;
    expect(parseClientHello(toRecords(odd))).toMatchObject({ kind: 'not-tls' });
    const noCompression = concat(hs.subarray(0, hs.length - 2), [0, 0]);
    expect(parseClientHello(toRecords(noCompression))).toMatchObject({ kind: 'not-tls' });
  });

  it('waits for a record length that points past the buffer, and never reports bytes it has not seen', () => {
    const wire = buildClientHello({ extensions: [serverNameExtension({ name: 'a.example' })] });
    const liar = wire.slice();
    liar[3] = 0x10; // record length 4096+, buffer holds far less
    expect(parseClientHello(liar)).toEqual({ kind: 'incomplete' });
  });

  it('handles 10 000 extensions (when the cap allows) and reports too-large under the default cap', () => {
    const extensions: Extension[] = Array.from({ length: 10_000 }, (_, i) => ({
      type: 0x4000 + i,
      data: [],
    }));
    extensions.push(serverNameExtension({ name: 'many.example' }));
    const wire = buildClientHello({ extensions });
    expect(wire.length).toBeGreaterThan(DEFAULT_MAX_CLIENT_HELLO_SIZE);
    expect(parseClientHello(wire)).toEqual({ kind: 'too-large', limit: DEFAULT_MAX_CLIENT_HELLO_SIZE });
    const r = tls(parseClientHello(wire, { maxSize: 64 * 1024 }));
    expect(r.serverName).toBe('many.example');
    expect(r.length).toBe(wire.length);
  });

  it('reports a 100 KiB ClientHello as too-large from its first 9 bytes', () => {
    // The handshake length field can announce up to 2^24-1 bytes; 100 KiB exceeds the cap at once.
    const header = concat([22, 3, 1], u16(16_384), [1, 0x01, 0x90, 0x00]);
    expect(parseClientHello(header)).toEqual({ kind: 'too-large', limit: DEFAULT_MAX_CLIENT_HELLO_SIZE });
    for (let cut = 0; cut < header.length; cut++) {
      expect(parseClientHello(header.subarray(0, cut)).kind).toBe('incomplete');
    }
  });

  it('reports too-large when the records themselves pass the cap', () => {
    const wire = buildClientHello({ extensions: [serverNameExtension({ name: 'a.example' })] });
    expect(parseClientHello(wire, { maxSize: wire.length })).toMatchObject({ kind: 'tls' });
    expect(parseClientHello(wire, { maxSize: wire.length - 1 })).toEqual({
      kind: 'too-large',
      limit: wire.length - 1,
    });
    // Split into small records, the overhead of record headers counts too.
    const small = toRecords(handshakeOf(wire), 10);
    expect(parseClientHello(small, { maxSize: wire.length })).toMatchObject({ kind: 'too-large' });
  });

  it('falls back to the default cap for a nonsensical maxSize', () => {
    const wire = buildClientHello();
    for (const maxSize of [0, -1, Number.NaN]) {
      expect(parseClientHello(wire, { maxSize }).kind).toBe('tls');
    }
  });
});

describe('parseClientHello refusing what is not TLS', () => {
  it('returns incomplete for an empty buffer', () => {
    expect(parseClientHello(new Uint8Array(0))).toEqual({ kind: 'incomplete' });
  });

  it('refuses an HTTP request on its first byte', () => {
    expect(parseClientHello(Buffer.from('G'))).toEqual({ kind: 'not-tls', reason: 'not-handshake-record' });
  });

  it('refuses an SSLv2-compatible CLIENT-HELLO', () => {
    // Two-byte header with the high bit set, msg_type 1, version 3.1, then the v2 cipher specs.
    const v2 = concat([0x80, 0x2e, 0x01, 0x03, 0x01], u16(21), u16(0), u16(16), new Uint8Array(37));
    expect(parseClientHello(v2)).toEqual({ kind: 'not-tls', reason: 'sslv2-hello' });
  });

  it('refuses bad record versions as soon as the version bytes arrive', () => {
    expect(parseClientHello(Uint8Array.from([22, 2]))).toEqual({
      kind: 'not-tls',
      reason: 'bad-record-version',
    });
    expect(parseClientHello(Uint8Array.from([22, 3, 5]))).toEqual({
      kind: 'not-tls',
      reason: 'bad-record-version',
    });
    expect(parseClientHello(Uint8Array.from([22, 3, 1])).kind).toBe('incomplete');
  });

  it('refuses zero-length and oversized records', () => {
    expect(parseClientHello(Uint8Array.from([22, 3, 1, 0, 0]))).toMatchObject({
      reason: 'bad-record-length',
    });
    expect(parseClientHello(Uint8Array.from([22, 3, 1, 0x40, 0x01]))).toMatchObject({
      reason: 'bad-record-length',
    });
  });

  it('refuses a handshake message other than client_hello', () => {
    expect(parseClientHello(Uint8Array.from([22, 3, 3, 0, 50, 2]))).toMatchObject({
      reason: 'not-client-hello',
    });
  });

  it('refuses a ClientHello announcing a body too short to be one', () => {
    expect(parseClientHello(Uint8Array.from([22, 3, 3, 0, 50, 1, 0, 0, 10]))).toMatchObject({
      reason: 'malformed-client-hello',
    });
  });

  it('refuses another record type in the middle of a fragmented ClientHello', () => {
    const wire = toRecords(buildHandshake(), 20);
    const alert = concat(wire.subarray(0, 25), [21, 3, 3, 0, 2, 2, 40], wire.subarray(25));
    expect(parseClientHello(alert)).toEqual({ kind: 'not-tls', reason: 'interleaved-record' });
  });

  it('refuses a record carrying more than the ClientHello', () => {
    const hs = buildHandshake();
    const wire = concat([22, 3, 1], u16(hs.length + 4), hs, [1, 0, 0, 0]);
    expect(parseClientHello(wire)).toEqual({ kind: 'not-tls', reason: 'trailing-data' });
  });

  it('refuses random garbage, text and a ClientHello with a non-3 legacy_version', () => {
    expect(parseClientHello(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')).kind).toBe('not-tls');
    expect(parseClientHello(Uint8Array.from([0, 0, 0, 0, 0])).kind).toBe('not-tls');
    expect(parseClientHello(buildClientHello({ legacyVersion: 0x0202 }))).toMatchObject({
      reason: 'malformed-client-hello',
    });
  });
});

describe('parseClientHello input types', () => {
  it('gives the same result for a Buffer and for views at an odd offset of a larger buffer', () => {
    const hello = loadFixture('chromium');
    const expected = parseClientHello(hello);
    const padded = Buffer.concat([Buffer.from([1, 2, 3]), hello, Buffer.from([9, 9])]);
    expect(parseClientHello(Buffer.from(hello))).toEqual(expected);
    expect(parseClientHello(padded.subarray(3, 3 + hello.length))).toEqual(expected);
    expect(parseClientHello(new Uint8Array(padded.buffer, padded.byteOffset + 3, hello.length))).toEqual(
      expected,
    );
  });
});
