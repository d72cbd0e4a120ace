import { isIPv4 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ClientHelloReader,
  type ClientHelloResult,
  HttpHeadReader,
  type HttpSniffResult,
  normalizeHostname,
  parseClientHello,
  sniffHttpRequest,
} from '../src/index.js';
import {
  ascii,
  buildClientHello,
  fixtureNames,
  handshakeOf,
  loadFixture,
  serverNameExtension,
  toRecords,
} from './helpers.js';

/** Runs per property; raise with FUZZ_RUNS=100000 for a longer session. */
const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 2000);

const fixtures = fixtureNames().map(loadFixture);

const HTTP_SEEDS = [
  'GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n',
  'POST http://a.example:8080/x HTTP/1.0\nHost: a.example\nContent-Length: 3\n\nabc',
  'CONNECT b.example:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nhost: c.example\r\nhost: d.example\r\n\r\n',
].map(ascii);

type Mutation =
  | { op: 'set'; at: number; value: number }
  | { op: 'delete'; at: number; count: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'truncate'; at: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(seed: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = seed;
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    if (m.op === 'set' && at < b.length) {
      b = b.slice();
      b[at] = m.value;
    } else if (m.op === 'delete') {
      b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + m.count)]);
    } else if (m.op === 'insert') {
      b = Uint8Array.from([...b.subarray(0, at), ...m.bytes, ...b.subarray(at)]);
    } else if (m.op === 'truncate') {
      b = b.subarray(0, at);
    }
  }
  return b;
}

/** Random bytes, and real inputs with a few random mutations (the interesting ones: almost valid). */
function inputs(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 2048 }),
    fc
      .tuple(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 4 }))
      .map(([seed, ms]) => mutate(seed, ms)),
  );
}

const TLS_KINDS = new Set(['incomplete', 'not-tls', 'too-large', 'tls']);
const HTTP_KINDS = new Set(['incomplete', 'not-http', 'too-large', 'bad-host', 'http']);

function checkClientHelloResult(r: ClientHelloResult, input: Uint8Array, maxSize: number): void {
  expect(TLS_KINDS.has(r.kind)).toBe(true);
  if (r.kind === 'tls') {
    expect(r.length).toBeGreaterThan(0);
    expect(r.length).toBeLessThanOrEqual(input.length);
    expect(r.length).toBeLessThanOrEqual(maxSize);
    expect(Array.isArray(r.alpn)).toBe(true);
    if (r.serverName !== undefined) expect(normalizeHostname(r.serverName)).toBe(r.serverName);
  } else if (r.kind === 'not-tls') {
    expect(typeof r.reason).toBe('string');
  } else if (r.kind === 'too-large') {
    expect(r.limit).toBe(maxSize);
  }
}

function checkHttpResult(r: HttpSniffResult, input: Uint8Array, maxSize: number): void {
  expect(HTTP_KINDS.has(r.kind)).toBe(true);
  if (r.kind === 'http') {
    expect(r.headLength).toBeGreaterThan(0);
    expect(r.headLength).toBeLessThanOrEqual(input.length);
    expect(r.headLength).toBeLessThanOrEqual(maxSize);
    expect(normalizeHostname(r.host)).toBe(r.host);
  } else if (r.kind === 'too-large') {
    expect(r.limit).toBe(maxSize);
  }
}

describe('parseClientHello (property)', () => {
  it('never throws and always returns a typed result, on random and mutated ClientHellos', () => {
    fc.assert(
      fc.property(inputs(fixtures), fc.constantFrom(32 * 1024, 600, 64), (bytes, maxSize) => {
        checkClientHelloResult(parseClientHello(bytes, { maxSize }), bytes, maxSize);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('never changes its mind: once a prefix gives a final result, the whole input gives the same', () => {
    fc.assert(
      fc.property(inputs(fixtures), fc.nat(), (bytes, cutSeed) => {
        const cut = cutSeed % (bytes.length + 1);
        const early = parseClientHello(bytes.subarray(0, cut));
        if (early.kind !== 'incomplete') expect(parseClientHello(bytes)).toEqual(early);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('gives the same answer for a real ClientHello re-split into records of any size', () => {
    fc.assert(
      fc.property(fc.constantFrom(...fixtures), fc.integer({ min: 1, max: 16_384 }), (wire, size) => {
        const whole = parseClientHello(wire);
        const resplit = toRecords(handshakeOf(wire), size, 0x0303);
        expect(parseClientHello(resplit)).toEqual(
          whole.kind === 'tls' ? { ...whole, length: resplit.length } : whole,
        );
      }),
      { numRuns: Math.ceil(FUZZ_RUNS / 4) },
    );
  });
});

describe('Buffer and Uint8Array inputs (property)', () => {
  it('give identical results', () => {
    fc.assert(
      fc.property(inputs([...fixtures, ...HTTP_SEEDS]), (bytes) => {
        const buf = Buffer.from(bytes);
        expect(parseClientHello(buf)).toEqual(parseClientHello(bytes));
        expect(sniffHttpRequest(buf)).toEqual(sniffHttpRequest(bytes));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe('parseClientHello server names (property)', () => {
  it('normalises an ASCII host_name exactly like normalizeHostname, IP literals excluded', () => {
    const piece = fc.constantFrom(
      'a',
      'Z',
      'q',
      '0',
      '7',
      '-',
      '_',
      '.',
      'xn--',
      'bcher-kva',
      '0x',
      '1.2',
      '3',
    );
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 12 }), (pieces) => {
        const name = pieces.join('');
        const normalised = normalizeHostname(name);
        const expected = normalised === undefined || isIPv4(normalised) ? undefined : normalised;
        const r = parseClientHello(buildClientHello({ extensions: [serverNameExtension({ name })] }));
        expect(r).toMatchObject({ kind: 'tls' });
        expect(r.kind === 'tls' ? r.serverName : 'not tls').toBe(expected);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe('sniffHttpRequest (property)', () => {
  it('never throws and always returns a typed result, on random and mutated heads', () => {
    const seeds = [...HTTP_SEEDS, ...fixtures.slice(0, 1)];
    fc.assert(
      fc.property(inputs(seeds), fc.constantFrom(64 * 1024, 80, 16), (bytes, maxSize) => {
        checkHttpResult(sniffHttpRequest(bytes, { maxSize }), bytes, maxSize);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('never changes its mind: once a prefix gives a final result, the whole input gives the same', () => {
    fc.assert(
      fc.property(inputs(HTTP_SEEDS), fc.nat(), fc.constantFrom(64 * 1024, 40), (bytes, cutSeed, maxSize) => {
        const cut = cutSeed % (bytes.length + 1);
        const early = sniffHttpRequest(bytes.subarray(0, cut), { maxSize });
        if (early.kind !== 'incomplete') expect(sniffHttpRequest(bytes, { maxSize })).toEqual(early);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('normalises a Host value exactly like normalizeHostname (byte fast path and name cache included)', () => {
    const piece = fc.constantFrom(
      'a',
      'Z',
      'q',
      '0',
      '7',
      '-',
      '_',
      '.',
      'xn--',
      'bcher-kva',
      'ü',
      'ß',
      '%',
      '*',
      '0x',
      '1.2',
    );
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 12 }), (pieces) => {
        const value = pieces.join('');
        const expected = normalizeHostname(value);
        const r = sniffHttpRequest(Buffer.from(`GET / HTTP/1.1\r\nHost: ${value}\r\n\r\n`, 'utf8'));
        if (expected === undefined) expect(r).toEqual({ kind: 'bad-host', reason: 'malformed-host' });
        else expect(r).toMatchObject({ kind: 'http', host: expected });
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('finds the Host of generated heads, whatever the header order, case and line ends', () => {
    const name = fc
      .stringMatching(/^[a-z]([a-z0-9-]{0,9}[a-z0-9])?(\.[a-z]([a-z0-9-]{0,9}[a-z0-9])?){1,3}$/)
      // Labels starting with "xn--" must be valid punycode; those are covered in hostname.test.ts.
      .filter((s) => !/(^|\.)xn--/.test(s));
    const header = fc.tuple(fc.stringMatching(/^X-[A-Za-z0-9-]{1,12}$/), fc.stringMatching(/^[ -~]{0,40}$/));
    fc.assert(
      fc.property(
        name,
        fc.array(header, { maxLength: 8 }),
        fc.nat(),
        fc.constantFrom('\r\n', '\n'),
        fc.constantFrom('Host', 'host', 'HOST'),
        (host, headers, pos, eol, hostName) => {
          const lines = headers.map(([k, v]) => `${k}: ${v.trim()}`);
          lines.splice(pos % (lines.length + 1), 0, `${hostName}: ${host.toUpperCase()}:8080`);
          const head = `GET /p HTTP/1.1${eol}${lines.join(eol)}${eol}${eol}`;
          const r = sniffHttpRequest(ascii(head));
          expect(r).toEqual({
            kind: 'http',
            host,
            method: 'GET',
            path: '/p',
            version: 'HTTP/1.1',
            headLength: head.length,
          });
        },
      ),
      { numRuns: Math.ceil(FUZZ_RUNS / 4) },
    );
  });
});

describe('incremental readers (property)', () => {
  /** Cut points for `bytes`, sorted, from random seeds. */
  const cutsOf = (bytes: Uint8Array, seeds: number[]) =>
    [...new Set(seeds.map((s) => s % (bytes.length + 1)))].sort((a, b) => a - b);

  it('ClientHelloReader answers, after every chunk, what parseClientHello says of the bytes so far', () => {
    fc.assert(
      fc.property(
        inputs(fixtures),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom(32 * 1024, 600, 64),
        (bytes, seeds, maxSize) => {
          const reader = new ClientHelloReader({ maxSize });
          let from = 0;
          let final: unknown;
          for (const cut of [...cutsOf(bytes, seeds), bytes.length]) {
            const r = reader.push(bytes.subarray(from, cut));
            from = cut;
            // Until its verdict is final the reader agrees with the one-shot parse; then it keeps it.
            if (final !== undefined) expect(r).toBe(final);
            else expect(r).toEqual(parseClientHello(bytes.subarray(0, cut), { maxSize }));
            if (r.kind !== 'incomplete') final ??= r;
          }
          expect(Buffer.compare(reader.bytes, Buffer.from(bytes))).toBe(0);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('HttpHeadReader answers, after every chunk, what sniffHttpRequest says of the bytes so far', () => {
    fc.assert(
      fc.property(
        inputs([...HTTP_SEEDS, ...fixtures.slice(0, 1)]),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom(64 * 1024, 80, 16),
        (bytes, seeds, maxSize) => {
          const reader = new HttpHeadReader({ maxSize });
          let from = 0;
          let final: unknown;
          for (const cut of [...cutsOf(bytes, seeds), bytes.length]) {
            const r = reader.push(bytes.subarray(from, cut));
            from = cut;
            if (final !== undefined) expect(r).toBe(final);
            else expect(r).toEqual(sniffHttpRequest(bytes.subarray(0, cut), { maxSize }));
            if (r.kind !== 'incomplete') final ??= r;
          }
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});
