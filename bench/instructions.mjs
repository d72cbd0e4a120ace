#!/usr/bin/env node
// Instructions per MB relayed, counted by valgrind's callgrind: a figure that holds on a loaded machine,
// where MB/s does not. Starts the service, one node and one backend client (bench/lib/child.mjs) with the
// node and the backend under `valgrind --tool=callgrind --instr-atstart=no`, warms up (three transfers of
// the same size), collects both heaps, then switches counting on (`callgrind_control -i on`) for exactly
// one transfer of `--size` bytes and off again.
//
//   node bench/instructions.mjs [upload|download] [--size 32MB] [--tree <checkout>] [--out <dir>] [--top 30]
//
// `--tree` measures another checkout of the repository (built, with its own bench/lib/child.mjs that
// answers `gc`), so that two trees are compared with the same driver and the same load generator. Prints,
// for the node and the backend, the instructions (Ir) per MB on all threads, on the main thread (JS and
// the event loop) and on the others (V8's concurrent marking, sweeping, compilers), then the functions
// with the most instructions of their own (JS functions named from V8's code map). Instruction counts
// leave out the kernel (syscalls): compare syscall counts separately. Needs valgrind; takes a few minutes
// (everything measured runs ~50× slower).
import { execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { download, MB, parseSize, upload } from './lib/load.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const direction = args.find((a) => a === 'upload' || a === 'download') ?? 'upload';
const bytes = parseSize(option('--size', '32MB'));
const tree = resolve(option('--tree', join(here, '..')));
const out = resolve(option('--out', join(here, 'results', 'callgrind')));
mkdirSync(out, { recursive: true });

const { createSelfSignedCertificate, mintBackendToken } = await import(
  pathToFileURL(join(tree, 'packages', 'core', 'dist', 'index.js')).href
);
const CHILD = join(tree, 'bench', 'lib', 'child.mjs');
const APP_HOSTNAME = 'app.bench.test';
const SECRET = 'bench-secret-0123456789-0123456789-0123456789';
/** Transfers of `--size` before the measured one: the hot functions reach their optimised tier. */
const WARM_UP_TRANSFERS = 3;
/** Functions listed per process. */
const TOP = Number(option('--top', '30'));
/** Under valgrind a child takes a while to start. */
const CHILD_TIMEOUT_MS = 300_000;

/** Forks child.mjs <role>, under callgrind when `outFile` is given; resolves once it is ready. */
async function startChild(role, start, outFile) {
  // Extra flags for the measured children (e.g. BENCH_NODE_ARGS=--trace-gc), as in bench/lib/topology.mjs.
  const extra = outFile === undefined ? [] : (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // --perf-basic-prof: V8 lists its generated code in /tmp/perf-<pid>.map, which names the JS functions
  // callgrind only sees as addresses. --no-memory-reducer: V8's memory reducer runs mark-compacts when the
  // allocation rate per wall-clock second is low, which under valgrind's slowdown it always is; without it,
  // collections follow allocation alone, as they do at full speed.
  const measured = outFile === undefined ? [] : ['--perf-basic-prof', '--no-memory-reducer'];
  const node = ['--max-old-space-size=4096', '--expose-gc', ...measured, ...extra];
  const child =
    outFile === undefined
      ? fork(CHILD, [role], { execArgv: node, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      : fork(CHILD, [role], {
          execPath: 'valgrind',
          execArgv: [
            '--tool=callgrind',
            '--instr-atstart=no',
            '--quiet',
            // One file per thread: the main thread (JS, the event loop) apart from V8's helper threads.
            '--separate-threads=yes',
            `--callgrind-out-file=${outFile}`,
            process.execPath,
            ...node,
          ],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
  const replies = [];
  const waiting = [];
  child.on('message', (msg) => {
    const w = waiting.shift();
    if (w) w(msg);
    else replies.push(msg);
  });
  const next = () =>
    new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`${role}: no answer`)), CHILD_TIMEOUT_MS);
      const done = (msg) => {
        clearTimeout(timer);
        if (msg.type === 'error') rej(new Error(`${role}: ${msg.message}`));
        else res(msg);
      };
      if (replies.length > 0) done(replies.shift());
      else waiting.push(done);
    });
  await next(); // hello
  child.send({ type: 'start', ...start });
  const info = await next();
  const exited = once(child, 'exit');
  return {
    info,
    pid: child.pid,
    async call(type, extra = {}) {
      child.send({ type, ...extra });
      return next();
    },
    async close() {
      child.send({ type: 'close' });
      await exited;
    },
  };
}

const cg = (pid, ...rest) => execFileSync('callgrind_control', [...rest, String(pid)], { stdio: 'pipe' });
const stamp = `${direction}-${Date.now()}`;
const appCert = await createSelfSignedCertificate({ dnsNames: [APP_HOSTNAME] });
const hubCert = await createSelfSignedCertificate({
  dnsNames: ['hub.bench.test'],
  ipAddresses: ['127.0.0.1'],
});
const token = await mintBackendToken({ secret: SECRET, hostnames: [APP_HOSTNAME] });
const files = { node: join(out, `node-${stamp}.out`), backend: join(out, `backend-${stamp}.out`) };

const service = await startChild('service', appCert);
const nodeChild = await startChild('node', { ...hubCert, secret: SECRET }, files.node);
const backend = await startChild(
  'backend',
  {
    hubPort: nodeChild.info.hubPort,
    hubCaPem: hubCert.certPem,
    token,
    mappings: { [nodeChild.info.tlsPort]: `127.0.0.1:${service.info.tlsPort}` },
  },
  files.backend,
);
for (let i = 0; ; i++) {
  if ((await nodeChild.call('stats')).backends > 0) break;
  if (i > 600) throw new Error('the backend never registered');
  await new Promise((r) => setTimeout(r, 100));
}
const target = { name: 'nexus', port: nodeChild.info.tlsPort, servername: APP_HOSTNAME, ca: appCert.certPem };
const transfer = direction === 'upload' ? upload : download;
const timeoutMs = 1_800_000;
/** A TLS handshake through two processes under valgrind on a busy machine can take a while. */
const HANDSHAKE_MS = 120_000;
// Warm-up: handshakes, JIT tiers, socket buffers; the same bytes as the measured transfer.
for (let i = 0; i < WARM_UP_TRANSFERS; i++) {
  const warm = await transfer(target, bytes, timeoutMs, HANDSHAKE_MS);
  if (warm.error) throw new Error(`warm-up: ${warm.error}`);
}
// Both measured processes start the window from a collected heap.
for (const p of [nodeChild, backend]) await p.call('gc');
const framesBefore = (await nodeChild.call('stats')).hubFrames;
for (const p of [nodeChild, backend]) cg(p.pid, '-i', 'on');
const loadAverage = os.loadavg();
const result = await transfer(target, bytes, timeoutMs, HANDSHAKE_MS);
for (const p of [nodeChild, backend]) cg(p.pid, '-i', 'off');
if (result.error) throw new Error(`measured transfer: ${result.error}`);
const framesAfter = (await nodeChild.call('stats')).hubFrames;
const pids = { node: nodeChild.pid, backend: backend.pid };
await backend.close();
await nodeChild.close();
await service.close();

/** Total Ir of a callgrind output file (its `totals:` line; `summary:` stays 0 with --instr-atstart=no). */
function totalIr(file) {
  const m = /^totals:\s+(\d+)/m.exec(readFileSync(file, 'utf8'));
  return m === null ? 0 : Number(m[1]);
}

/** The per-thread files of `file` (`<file>-01` is the main thread), in thread order. */
function threadFiles(file) {
  const base = basename(file);
  return readdirSync(dirname(file))
    .filter((f) => f.startsWith(`${base}-`))
    .sort()
    .map((f) => join(dirname(file), f));
}

/** V8's code map of process `pid` (`--perf-basic-prof`): sorted `[start, end, name]`. */
function jitMap(pid) {
  const file = `/tmp/perf-${pid}.map`;
  if (!existsSync(file)) return [];
  const entries = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
    if (m !== null)
      entries.push([Number.parseInt(m[1], 16), Number.parseInt(m[1], 16) + Number.parseInt(m[2], 16), m[3]]);
  }
  rmSync(file, { force: true });
  return entries.sort((a, b) => a[0] - b[0]);
}

/** The JS function at `address` (the last code object listed there), or undefined. */
function jsName(map, address) {
  let name;
  for (const [start, end, n] of map) {
    if (start > address) break;
    if (address < end) name = n;
  }
  return name;
}

/** Self Ir per function over `files`, JIT addresses named from `map`, largest first. */
function selfCosts(files, map) {
  const byName = new Map();
  for (const file of files) {
    const text = execFileSync('callgrind_annotate', ['--threshold=100', '--inclusive=no', file], {
      encoding: 'utf8',
      maxBuffer: 256 * 2 ** 20,
    });
    for (const line of text.split('\n')) {
      const m = /^\s*([\d,]+) \([ \d.]+%\)\s+(.*)$/.exec(line);
      if (m === null || m[2].startsWith('PROGRAM TOTALS')) continue;
      let name = m[2].replace(/^\?\?\?:/, '').replace(/ \[.*\]$/, '');
      const address = /^0x([0-9a-f]+)$/.exec(name);
      if (address !== null) name = `JS ${jsName(map, Number.parseInt(address[1], 16)) ?? 'unknown'}`;
      else if (/^(Builtins_|v8::|std::)/.test(name) === false && /\.S:|\.c:/.test(name)) {
        name = name.replace(/^.*:/, ''); // libc: the function only
      }
      byName.set(name, (byName.get(name) ?? 0) + Number(m[1].replace(/,/g, '')));
    }
  }
  return [...byName].sort((a, b) => b[1] - a[1]);
}

const perMB = (ir) => Math.round(ir / (bytes / MB));
console.log(
  `${direction} of ${bytes / MB} MB through one node (${tree}); load average ${loadAverage.map((l) => l.toFixed(2)).join(' ')}`,
);
if (framesBefore !== undefined && framesAfter !== undefined) {
  // The DATA frames the backend session carried in the window (the node's counters): their size is what
  // the per-frame costs divide by.
  const count = (f) => f.sent + f.received;
  const payload = (f) => f.sentBytes + f.receivedBytes;
  const n = count(framesAfter) - count(framesBefore);
  console.log(
    `DATA frames on the backend session: ${(n / (bytes / MB)).toFixed(1)} per MB, ${Math.round((payload(framesAfter) - payload(framesBefore)) / n)} bytes on average`,
  );
}
console.log('| process | Ir per MB, all threads | main thread | other threads | files |');
console.log('|---|---|---|---|---|');
const top = [];
for (const [name, file] of Object.entries(files)) {
  const threads = threadFiles(file);
  const irs = threads.map(totalIr);
  const all = irs.reduce((a, b) => a + b, 0);
  console.log(
    `| ${name} | ${perMB(all)} | ${perMB(irs[0] ?? 0)} | ${perMB(all - (irs[0] ?? 0))} | ${file}-* |`,
  );
  top.push([name, selfCosts(threads, jitMap(pids[name])), all]);
}
for (const [name, costs, all] of top) {
  console.log(`\n${name}: self Ir per MB, top ${TOP}`);
  for (const [fn, ir] of costs.slice(0, TOP)) {
    console.log(`${String(perMB(ir)).padStart(10)}  ${((ir / all) * 100).toFixed(1).padStart(5)} %  ${fn}`);
  }
}
