#!/usr/bin/env node
// Second by second through one run of N concurrent downloads over one backend session (the streams
// scenario's topology and load generator): `node bench/streams-probe.mjs [streams] [seconds]` (defaults
// 1 000 and 6; one many-stream run at a time on a machine). Each second prints the MB delivered, how many streams
// received nothing, the kernel's TCP counters that explain a stall (retransmission timeouts, loss probes,
// receive-queue drops and prunes under memory pressure, zero windows), the timers running on the
// service's sockets (`persist`: a zero-window probe, the reader's window closed; `on`: a retransmission
// timer) from `ss -tno`, the hub connection's congestion window and retransmissions as the backend client
// sees them, the receive buffers of the backend client's sockets toward the service (as the kernel's
// autotuning grew them), and the CPU ticks of the node, the backend client and the service. `TREE=<checkout>` measures
// another built checkout with this driver.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jain } from './lib/load.mjs';

const TREE = resolve(process.env.TREE ?? join(fileURLToPath(import.meta.url), '../..'));
const { startTopology } = await import(join(TREE, 'bench/lib/topology.mjs'));
const { startStreamClients } = await import(join(TREE, 'bench/lib/stream-clients.mjs'));

const streams = Number(process.argv[2] ?? 1000);
const seconds = Number(process.argv[3] ?? 6);
const COUNTERS = [
  'TcpExtTCPTimeouts',
  'TcpRetransSegs',
  'TcpExtTCPLossProbes',
  'TcpExtTCPRcvQDrop',
  'TcpExtPruneCalled',
  'TcpExtTCPOFODrop',
  'TcpExtTCPMemoryPressures',
  'TcpExtTCPToZeroWindowAdv',
];

function kernel() {
  const values = {};
  for (const file of ['/proc/net/netstat', '/proc/net/snmp']) {
    const lines = readFileSync(file, 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const keys = lines[i].split(' ');
      const numbers = lines[i + 1].split(' ');
      const group = keys[0].replace(':', '');
      for (let k = 1; k < keys.length; k++) values[group + keys[k]] = Number(numbers[k]);
    }
  }
  return values;
}

function ss(filter) {
  return spawnSync('ss', ['-tnoiH', 'state', 'established', filter], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  }).stdout;
}

/** Timers running on the sockets `filter` selects: `persist` (zero-window probe), `on` (retransmission). */
function timers(filter) {
  const counts = { persist: 0, on: 0 };
  for (const m of ss(filter).matchAll(/timer:\((\w+),/g)) counts[m[1]] = (counts[m[1]] ?? 0) + 1;
  return counts;
}

/** Median and largest receive buffer (`rb` of `ss -tm`), KiB, of the sockets `filter` selects. */
function receiveBuffers(filter) {
  const out = spawnSync('ss', ['-tnmH', 'state', 'established', filter], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  }).stdout;
  const sizes = [...out.matchAll(/,rb(\d+),/g)].map((m) => Number(m[1]) / 1024).sort((a, b) => a - b);
  if (sizes.length === 0) return 'none';
  return `median ${Math.round(sizes[sizes.length >> 1])} KiB, largest ${Math.round(sizes[sizes.length - 1])} KiB`;
}

/** CPU ticks (user + system) of `pid`. */
function ticks(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

const topo = await startTopology({ nexus: true });
const clients = await startStreamClients(2);
const { node, backend, service } = topo.processes;
const servicePort = topo.targets.direct.port;
const pids = { node: node.pid, backend: backend.pid, service: service.pid };
try {
  await clients.open(topo.targets.nexus, streams);
  await clients.start();
  const first = await clients.snapshot();
  let counts = first;
  let counters = kernel();
  let cpu = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, ticks(pid)]));
  for (let t = 1; t <= seconds; t++) {
    await new Promise((r) => setTimeout(r, 1000));
    const nowCounts = await clients.snapshot();
    const nowCounters = kernel();
    const nowCpu = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, ticks(pid)]));
    const gained = nowCounts.map((c, i) => c - counts[i]);
    const mb = gained.reduce((a, b) => a + b, 0) / 1e6;
    const idle = gained.filter((g) => g === 0).length;
    const k = COUNTERS.map((key) => `${key.replace(/^TcpExt|^Tcp/, '')} ${nowCounters[key] - counters[key]}`);
    const hub = ss(`( dport = :${node.info.hubPort} )`);
    const pick = (re) => hub.match(re)?.[1] ?? '?';
    console.log(
      `t=${t}s ${mb.toFixed(1)} MB, ${idle} of ${streams} streams received nothing; kernel: ${k.join(', ')}`,
    );
    console.log(
      `  service's sockets: ${JSON.stringify(timers(`( sport = :${servicePort} )`))}; backend client's ` +
        `receive buffers toward the service: ${receiveBuffers(`( dport = :${servicePort} )`)}; hub connection: ` +
        `cwnd ${pick(/cwnd:(\d+)/)}, retrans ${pick(/\sretrans:([\d/]+)/)}, ` +
        `rwnd_limited ${pick(/rwnd_limited:(\S+)/)}; CPU ticks ${JSON.stringify(
          Object.fromEntries(Object.keys(pids).map((name) => [name, nowCpu[name] - cpu[name]])),
        )}`,
    );
    counts = nowCounts;
    counters = nowCounters;
    cpu = nowCpu;
  }
  // Who got what over the whole run: by worker, and by opening order within each worker (tenths), so that
  // an unfair share shows whether it follows the order streams opened in, or the load generator's process.
  const got = counts.map((c, i) => (c - first[i]) / 1e6);
  const mean = got.reduce((a, b) => a + b, 0) / got.length;
  const half = Math.ceil(streams / 2);
  const byWorker = [got.slice(0, half), got.slice(half)].filter((w) => w.length > 0);
  const avg = (xs) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
  console.log(
    `whole run: mean ${mean.toFixed(2)} MB per stream, Jain ${jain(got).toFixed(3)}, ${got.filter((g) => g < mean / 10).length} streams under a tenth of it, ` +
      `${got.filter((g) => g === 0).length} with nothing`,
  );
  byWorker.forEach((w, i) => {
    const tenths = Array.from({ length: 10 }, (_, d) =>
      avg(w.slice(Math.floor((d * w.length) / 10), Math.floor(((d + 1) * w.length) / 10))).toFixed(2),
    );
    console.log(`  worker ${i}: mean ${avg(w).toFixed(2)} MB; by opening order, tenths: ${tenths.join(' ')}`);
  });
} finally {
  await clients.stop();
  await clients.close();
  await topo.close();
}
