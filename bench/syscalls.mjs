#!/usr/bin/env node
// System calls per MB relayed, counted by `strace -c -f` attached to the node and the backend client for
// exactly one transfer: like instruction counts (bench/instructions.mjs), a figure that holds on a loaded
// machine, and the one that shows the kernel side (socket reads and writes, epoll) that callgrind leaves
// out. Also prints the DATA frames the backend session carried (per MB and their average payload, the
// node's own counters).
//
//   node bench/syscalls.mjs [upload|download] [--size 128MB]
//
// One node and one backend client (bench/lib/topology.mjs), a warm-up transfer of the same size, then the
// measured one with strace attached to both. Needs strace and ptrace rights (root, or ptrace_scope 0).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { download, MB, parseSize, upload } from './lib/load.mjs';
import { startTopology } from './lib/topology.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const direction = args.find((a) => a === 'upload' || a === 'download') ?? 'upload';
const bytes = parseSize(option('--size', '128MB'));
const TIMEOUT_MS = 600_000;

/** `strace -c` summary lines → { total, calls: { name: count } }. */
function readSummary(file) {
  const calls = {};
  let total = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const cols = line.trim().split(/\s+/);
    // % time, seconds, usecs/call, calls, [errors], syscall
    if (cols.length < 5 || !/^\d/.test(cols[0])) continue;
    const name = cols[cols.length - 1];
    const count = Number(cols[3]);
    if (name === 'total') total = count;
    else calls[name] = count;
  }
  return { total, calls };
}

const topology = await startTopology({ nexus: true, mesh: false, haproxy: false });
const dir = mkdtempSync(join(tmpdir(), 'nexus-syscalls-'));
try {
  const target = topology.targets.nexus;
  const transfer = direction === 'upload' ? upload : download;
  const warm = await transfer(target, bytes, TIMEOUT_MS);
  if (warm.error) throw new Error(`warm-up: ${warm.error}`);
  const measured = { node: topology.processes.node, backend: topology.processes.backend };
  const before = (await measured.node.call('stats')).hubFrames;
  const tracers = Object.entries(measured).map(([name, p]) => {
    const file = join(dir, `${name}.txt`);
    const tracer = spawn('strace', ['-c', '-f', '-p', String(p.pid), '-o', file], { stdio: 'ignore' });
    return { name, file, tracer, exited: once(tracer, 'exit') };
  });
  // strace needs a moment to attach to every thread.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const result = await transfer(target, bytes, TIMEOUT_MS);
  for (const t of tracers) t.tracer.kill('SIGINT');
  await Promise.all(tracers.map((t) => t.exited));
  if (result.error) throw new Error(`measured transfer: ${result.error}`);
  const after = (await measured.node.call('stats')).hubFrames;
  const mb = bytes / MB;
  console.log(`${direction} of ${mb} MB through one node`);
  if (before !== undefined && after !== undefined) {
    const frames = (f) => f.sent + f.received;
    const payload = (f) => f.sentBytes + f.receivedBytes;
    const n = frames(after) - frames(before);
    console.log(
      `DATA frames on the backend session: ${(n / mb).toFixed(1)} per MB, ${Math.round((payload(after) - payload(before)) / n)} bytes on average`,
    );
  }
  console.log('| process | syscalls per MB | largest |');
  console.log('|---|---|---|');
  for (const t of tracers) {
    const { total, calls } = readSummary(t.file);
    const largest = Object.entries(calls)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([name, count]) => `${name} ${(count / mb).toFixed(1)}`)
      .join(', ');
    console.log(`| ${t.name} | ${(total / mb).toFixed(1)} | ${largest} |`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  await topology.close();
}
