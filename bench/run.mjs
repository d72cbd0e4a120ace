#!/usr/bin/env node
// Benchmark runner: `npm run bench [-- <scenario…>] [-- --quick] [-- --size 256MB] [-- --profile]`
// [-- --nodes 5,20,40,60] [-- --modes full,nats] (the node counts and modes of `mesh-scale`)
// [-- --runs 3] (rounds of `throughput`: median and spread) [-- --warm-up 64MB] (bytes each way through
// every `throughput` path before its rounds; default 1.1 GB, quick 8 MB)
// [-- --streams 10,1000] [-- --workers 2] (the stream counts and load-generator processes of `streams`)
// [-- --netns-tcp-buffers 1MiB|keep] (root: run in a fresh network namespace with TCP socket buffers capped
// at that size, bench/lib/netns.mjs; `keep`: the host's values, the baseline).
// Each scenario module exports `run({ quick, size, runs, warmUp, profileDir, nodes, modes, streams, workers })` and returns
// `{ title, rows: [{ name, ...figures }], tables?: [{ title, rows }], targets?: [{ target, goal, achieved, met }],
// notes?: string[] }`.
// Results are printed as tables (then a summary of targets vs achieved) and written to
// bench/results/<date>.json with machine information. `--profile` runs the node child of the `throughput`
// scenario under `--cpu-prof` (profiles in bench/results/profiles/, gitignored) and prints its hot spots.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseSize } from './lib/load.mjs';
import { applyInNamespace, NETNS_ENV, reexecInNamespace, tcpBufferSettings } from './lib/netns.mjs';
import { printProfile } from './profile-summary.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Scenario name → module path (relative to the repo root). */
const SCENARIOS = {
  sni: 'packages/sni/bench/sni.bench.mjs',
  mux: 'packages/mux-protocol/bench/mux.bench.mjs',
  throughput: 'bench/scenarios/throughput.mjs',
  streams: 'bench/scenarios/streams.mjs',
  latency: 'bench/scenarios/latency.mjs',
  connrate: 'bench/scenarios/connrate.mjs',
  memory: 'bench/scenarios/memory.mjs',
  fairness: 'bench/scenarios/fairness.mjs',
  'mesh-scale': 'bench/scenarios/mesh-scale.mjs',
  hostnames: 'bench/scenarios/hostnames.mjs',
  udp: 'bench/scenarios/udp.mjs',
};

const args = process.argv.slice(2);
const quick = args.includes('--quick');
/** Flags followed by a value (the value is not a scenario name). */
const VALUE_FLAGS = [
  '--size',
  '--nodes',
  '--modes',
  '--runs',
  '--warm-up',
  '--streams',
  '--workers',
  '--netns-tcp-buffers',
];
const flagValue = (flag) => {
  const i = args.indexOf(flag);
  return i >= 0 ? (args[i + 1] ?? '') : undefined;
};
const listOf = (flag) => flagValue(flag)?.split(',').filter(Boolean);
const size = flagValue('--size') === undefined ? undefined : parseSize(flagValue('--size'));
const warmUp = flagValue('--warm-up') === undefined ? undefined : parseSize(flagValue('--warm-up'));
const nodes = listOf('--nodes')?.map(Number);
if (nodes?.some((n) => !Number.isInteger(n) || n < 2)) {
  console.error('--nodes takes node counts of at least 2, e.g. --nodes 5,20');
  process.exit(2);
}
const modes = listOf('--modes');
const runs = flagValue('--runs') === undefined ? undefined : Number(flagValue('--runs'));
if (runs !== undefined && (!Number.isInteger(runs) || runs < 1)) {
  console.error('--runs takes a number of rounds of at least 1, e.g. --runs 3');
  process.exit(2);
}
if (modes?.some((m) => m !== 'full' && m !== 'nats')) {
  console.error('--modes takes full and/or nats, e.g. --modes full,nats');
  process.exit(2);
}
const streams = listOf('--streams')?.map(Number);
if (streams?.some((n) => !Number.isInteger(n) || n < 1)) {
  console.error('--streams takes stream counts of at least 1, e.g. --streams 10,1000');
  process.exit(2);
}
const workers = flagValue('--workers') === undefined ? undefined : Number(flagValue('--workers'));
if (workers !== undefined && !(Number.isInteger(workers) && workers >= 1 && workers <= 16)) {
  console.error('--workers takes a number of load-generator processes from 1 to 16');
  process.exit(2);
}
const netnsCap = flagValue('--netns-tcp-buffers');
if (netnsCap !== undefined && process.env[NETNS_ENV] === undefined) {
  let cap;
  try {
    cap = netnsCap === 'keep' ? 'keep' : parseSize(netnsCap);
  } catch {
    cap = Number.NaN;
  }
  if (cap !== 'keep' && !(Number.isInteger(cap) && cap >= 4096)) {
    console.error(
      '--netns-tcp-buffers takes a buffer size of at least 4096 bytes (e.g. 1MiB, 512KiB) or keep',
    );
    process.exit(2);
  }
  const i = args.indexOf('--netns-tcp-buffers');
  const out = reexecInNamespace(cap, fileURLToPath(import.meta.url), [
    ...args.slice(0, i),
    ...args.slice(i + 2),
  ]);
  if (out.error !== undefined) {
    console.error(out.error);
    process.exit(2);
  }
  process.exit(out.status);
}
if (process.env[NETNS_ENV] !== undefined) applyInNamespace(process.env[NETNS_ENV]);
const profileDir = args.includes('--profile') ? join(root, 'bench', 'results', 'profiles') : undefined;
const wanted = args.filter((a, i) => !a.startsWith('--') && !VALUE_FLAGS.includes(args[i - 1]));
/** Run only when named: `mesh-scale` starts up to 60 node processes (GBs of RSS, minutes). */
const ON_REQUEST = ['mesh-scale'];
const names = wanted.length > 0 ? wanted : Object.keys(SCENARIOS).filter((n) => !ON_REQUEST.includes(n));
for (const name of names) {
  if (!(name in SCENARIOS)) {
    console.error(`unknown scenario "${name}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
    process.exit(2);
  }
}

function printTable(title, rows) {
  console.log(`\n## ${title}`);
  if (rows.length === 0) return;
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v) =>
    typeof v === 'number'
      ? Number.isInteger(v)
        ? String(v)
        : v.toFixed(3).replace(/\.?0+$/, '')
      : String(v ?? '');
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals) => `| ${vals.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(cols));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]))));
}

const results = {
  date: new Date().toISOString(),
  quick,
  machine: {
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    tcp: tcpBufferSettings(),
    netns: process.env[NETNS_ENV],
  },
  scenarios: {},
};
if (size !== undefined) results.size = size;
const summary = [];
if (results.machine.netns !== undefined) {
  const t = results.machine.tcp;
  console.log(
    `fresh network namespace (--netns-tcp-buffers ${results.machine.netns}): tcp_rmem ${t?.tcp_rmem}, ` +
      `tcp_wmem ${t?.tcp_wmem}, tcp_moderate_rcvbuf ${t?.tcp_moderate_rcvbuf}; tcp_mem (machine-wide) ${t?.tcp_mem}`,
  );
}

for (const name of names) {
  const mod = await import(pathToFileURL(join(root, SCENARIOS[name])).href);
  const loadAverage = os.loadavg().map((l) => Math.round(l * 100) / 100);
  const started = performance.now();
  let out = await mod.run({ quick, size, runs, warmUp, profileDir, nodes, modes, streams, workers });
  // A scenario may return a plain `{ case: nsPerOp }` map instead of `{ title, rows }`.
  if (!Array.isArray(out?.rows)) {
    out = { title: name, rows: Object.entries(out ?? {}).map(([k, v]) => ({ case: k, 'ns/op': v })) };
  }
  // The load average before the scenario shows whether other work shared the machine.
  out = {
    ...out,
    loadAverageBefore: loadAverage,
    seconds: Math.round((performance.now() - started) / 100) / 10,
  };
  results.scenarios[name] = out;
  printTable(out.title ?? name, out.rows ?? []);
  for (const table of out.tables ?? []) printTable(table.title, table.rows);
  for (const note of out.notes ?? []) console.log(`note: ${note}`);
  console.log(`(${out.seconds} s; load average before: ${loadAverage.join(' ')})`);
  for (const t of out.targets ?? []) summary.push({ scenario: name, ...t });
  if (out.profile !== undefined) {
    console.log(`\nprofile of the node process (${out.profile.file}):`);
    printProfile(out.profile.top);
  }
}

if (summary.length > 0) printTable('targets vs achieved', summary);

const dir = join(root, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `${results.date.slice(0, 19).replace(/:/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nresults written to ${file.slice(root.length + 1)}`);
