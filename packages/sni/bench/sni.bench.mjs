// Micro-benchmark for @nexus-proxy/sni: ns per call of the sniffers on real inputs.
// Run alone:   node packages/sni/bench/sni.bench.mjs [--quick]    (after `npx tsup` in packages/sni)
// From code:   const { run } = await import('./sni.bench.mjs'); const figures = await run({ quick: true });
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { normalizeHostname, parseClientHello, sniffHttpRequest } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));

function fixture(name) {
  const text = readFileSync(join(here, '..', 'test', 'fixtures', `${name}.hex`), 'utf8');
  const hex = text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('');
  return Buffer.from(hex, 'hex');
}

/** Re-wraps a single-record ClientHello into records of `size` payload bytes. */
function resplit(wire, size) {
  const hs = wire.subarray(5, 5 + ((wire[3] << 8) | wire[4]));
  const parts = [];
  for (let i = 0; i < hs.length; i += size) {
    const frag = hs.subarray(i, Math.min(i + size, hs.length));
    parts.push(Buffer.from([22, 3, 3, frag.length >> 8, frag.length & 0xff]), frag);
  }
  return Buffer.concat(parts);
}

// Buffers, as socket reads deliver them.
const ascii = (s) => Buffer.from(s, 'latin1');

const BROWSER_HEAD = ascii(
  'GET /assets/app.js?v=3 HTTP/1.1\r\nHost: www.example.com\r\nConnection: keep-alive\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36\r\n' +
    'Accept: */*\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: script\r\n' +
    'Referer: https://www.example.com/\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n' +
    'Accept-Language: en-GB,en;q=0.9\r\nCookie: session=0123456789abcdef0123456789abcdef\r\n\r\n',
);
const CURL_HEAD = ascii(
  'GET / HTTP/1.1\r\nHost: app.example.test\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n',
);

let sink = 0;

function measure(fn, input, { quick }) {
  const rounds = quick ? 3 : 7;
  const iterations = quick ? 20_000 : 200_000;
  for (let i = 0; i < iterations / 4; i++) sink ^= fn(input) ? 1 : 0; // warm up (JIT)
  const samples = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) sink ^= fn(input) ? 1 : 0;
    samples.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  samples.sort((a, b) => a - b);
  return Math.round(samples[samples.length >> 1] * 10) / 10;
}

/**
 * Runs every case and returns `{ name: nsPerOp }` (median of several rounds). `quick` runs ~10× fewer
 * iterations, for CI smoke runs.
 */
export async function run({ quick = false } = {}) {
  const chromium = fixture('chromium');
  const curl = fixture('curl-sni');
  const chromiumSmallRecords = resplit(chromium, 256);
  const cases = [
    ['parseClientHello chromium (1765 B, 1 record)', (b) => parseClientHello(b).kind === 'tls', chromium],
    ['parseClientHello curl (517 B)', (b) => parseClientHello(b).kind === 'tls', curl],
    [
      'parseClientHello chromium in 256-B records',
      (b) => parseClientHello(b).kind === 'tls',
      chromiumSmallRecords,
    ],
    [
      'parseClientHello incomplete (first 1000 B)',
      (b) => parseClientHello(b).kind === 'incomplete',
      chromium.subarray(0, 1000),
    ],
    ['sniffHttpRequest curl head (79 B)', (b) => sniffHttpRequest(b).kind === 'http', CURL_HEAD],
    [
      `sniffHttpRequest browser head (${BROWSER_HEAD.length} B)`,
      (b) => sniffHttpRequest(b).kind === 'http',
      BROWSER_HEAD,
    ],
    [
      'sniffHttpRequest incomplete (half a head)',
      (b) => sniffHttpRequest(b).kind === 'incomplete',
      BROWSER_HEAD.subarray(0, 300),
    ],
    ['normalizeHostname ASCII', (s) => normalizeHostname(s) !== undefined, 'WWW.Example.COM'],
    ['normalizeHostname IDN', (s) => normalizeHostname(s) !== undefined, 'bücher.example'],
  ];
  const results = {};
  for (const [name, fn, input] of cases) {
    if (!fn(input)) throw new Error(`bench case "${name}" did not produce the expected result`);
    results[name] = measure(fn, input, { quick });
  }
  return results;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await run({ quick: process.argv.includes('--quick') });
  const width = Math.max(...Object.keys(results).map((k) => k.length));
  console.log(`${'case'.padEnd(width)}  ns/op`);
  for (const [name, ns] of Object.entries(results))
    console.log(`${name.padEnd(width)}  ${String(ns).padStart(7)}`);
  if (sink === 42) console.log('');
}
