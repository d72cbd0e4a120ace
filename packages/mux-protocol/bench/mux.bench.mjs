#!/usr/bin/env node
// Micro-benchmark of the mux-protocol codec (built dist): `node bench/mux.bench.mjs [--quick]`.
// Exports `run({ quick })` → `{ title, rows }` for the repository's bench runner (bench/run.mjs).
import { fileURLToPath } from 'node:url';
import {
  decodeBackendMessage,
  decodePeerMessage,
  decodeTunnelFrame,
  encodeControlMessage,
  encodeDataFrame,
  encodePeerMessage,
  encodeTunnelFrame,
  MAX_DATA_PAYLOAD,
  newStreamId,
  ReceiveLedger,
  SendWindow,
  streamIdFromBytes,
  streamIdToBytes,
} from '../dist/index.js';

/** Keeps results alive so the optimiser cannot drop the measured work. */
let sink = 0;

/**
 * Runs `fn` in batches until `budgetMs` has passed (after a warm-up) and returns ns/op.
 * @param {() => void} fn
 * @param {number} budgetMs
 */
function measure(fn, budgetMs) {
  const warmUntil = performance.now() + budgetMs / 4;
  while (performance.now() < warmUntil) for (let i = 0; i < 100; i++) fn();
  let ops = 0;
  let batch = 100;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(budgetMs * 1e6));
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    if (batch < 100_000) batch *= 2;
    now = process.hrtime.bigint();
  }
  return { ops, nsPerOp: Number(now - start) / ops };
}

/** @param {{ quick?: boolean }} [options] */
export async function run(options = {}) {
  const budgetMs = options.quick ? 150 : 1000;
  const id = newStreamId();
  const idBytes = streamIdToBytes(id);
  const payload = new Uint8Array(MAX_DATA_PAYLOAD).fill(0x5a);
  const dataFrame = encodeDataFrame(id, payload);
  const connect = {
    event: 'connect',
    client_id: id,
    conn_port: 443,
    client_ip: '[2001:db8::1]:51514',
    transport: 'tcp',
    hostname: 'app.example.com',
    is_tls: true,
    credits: 64,
  };
  const connectFrame = encodeControlMessage(connect);
  const grantFrame = encodeControlMessage({ event: 'resume_stream', client_id: id, credits: 8 });
  const announce = encodePeerMessage({
    type: 'announce',
    version: 1,
    hostnames: Array.from({ length: 100 }, (_, i) => `host-${i}.example.com`),
  });

  /** @type {Array<[string, () => void, number]>} name, work, bytes per op (0 = n/a) */
  const cases = [
    ['encode DATA 32 KiB', () => (sink += encodeDataFrame(idBytes, payload).length), dataFrame.length],
    [
      'decode DATA 32 KiB',
      () => {
        const r = decodeBackendMessage(dataFrame);
        if (r.ok && r.value.type === 'data') sink += r.value.payload.length;
      },
      dataFrame.length,
    ],
    [
      'encode+decode DATA 32 KiB',
      () => {
        const r = decodeBackendMessage(encodeDataFrame(id, payload));
        if (r.ok && r.value.type === 'data') sink += r.value.payload.length;
      },
      dataFrame.length,
    ],
    ['encode connect', () => (sink += encodeControlMessage(connect).length), connectFrame.length],
    [
      'decode connect',
      () => {
        const r = decodeBackendMessage(connectFrame);
        if (r.ok) sink += r.value.type.length;
      },
      connectFrame.length,
    ],
    [
      'encode+decode connect',
      () => {
        const r = decodeBackendMessage(encodeControlMessage(connect));
        if (r.ok) sink += r.value.type.length;
      },
      connectFrame.length,
    ],
    [
      'decode resume_stream grant',
      () => {
        const r = decodeBackendMessage(grantFrame);
        if (r.ok) sink += r.value.type.length;
      },
      grantFrame.length,
    ],
    [
      'encode+decode tunnel credits',
      () => {
        const r = decodeTunnelFrame(encodeTunnelFrame({ type: 'tunnel-credits', tunnelId: id, credits: 8 }));
        if (r.ok) sink += r.value.type.length;
      },
      25,
    ],
    [
      'decode announce (100 hostnames)',
      () => {
        const r = decodePeerMessage(announce);
        if (r.ok && r.value.type === 'announce') sink += r.value.hostnames.length;
      },
      announce.length,
    ],
    ['streamIdFromBytes', () => (sink += streamIdFromBytes(dataFrame, 1).length), 0],
    ['streamIdToBytes', () => (sink += streamIdToBytes(id)[0]), 0],
    [
      'credit cycle (send+receive+deliver)',
      (() => {
        const window = new SendWindow({ initialCredits: 64 });
        const ledger = new ReceiveLedger();
        return () => {
          if (window.spend()) {
            ledger.received();
            const grant = ledger.delivered();
            if (grant > 0) window.grant(grant);
          }
        };
      })(),
      0,
    ],
  ];

  const rows = [];
  for (const [name, fn, bytes] of cases) {
    const { ops, nsPerOp } = measure(fn, budgetMs);
    rows.push({
      name,
      'ns/op': Math.round(nsPerOp * 10) / 10,
      'ops/s': Math.round(1e9 / nsPerOp),
      'MB/s': bytes > 0 ? Math.round((bytes / nsPerOp) * 1e3 * 10) / 10 : '',
      ops,
    });
  }
  if (sink === -1) console.log(sink);
  return { title: 'mux-protocol codec (MB = 10^6 bytes)', rows };
}

function printTable(title, rows) {
  console.log(`## ${title}`);
  const cols = Object.keys(rows[0]);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (values) => `| ${values.map((v, i) => String(v).padEnd(widths[i])).join(' | ')} |`;
  console.log(line(cols));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(cols.map((c) => row[c])));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { title, rows } = await run({ quick: process.argv.includes('--quick') });
  printTable(title, rows);
}
