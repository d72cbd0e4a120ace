// Many concurrent bulk downloads over ONE backend session: aggregate throughput and Jain's fairness index
// over per-stream throughput, for 1 to 10 000 streams, through Nexus and direct (for reference), and where
// the time goes: CPU of every process over the window (from /proc/<pid>/stat) and per MB, the read and
// write system calls, mux control messages and garbage collections per MB, and the kernel's TCP memory.
// Every stream is set up first (TLS handshake), then all start; bytes are counted in a fixed window after a
// warm-up (2 s + 0.1 ms per stream), so every stream is active for the whole window. The load generator is `--workers` processes
// (bench/lib/stream-clients.mjs, default 2), the same for both paths.
import { cpus } from 'node:os';
import { goal, jain, MB, round } from '../lib/load.mjs';
import {
  cpuSeconds,
  openFileLimit,
  socketQueues,
  syscalls,
  tcpCounters,
  tcpMemory,
} from '../lib/proc-stats.mjs';
import { startStreamClients } from '../lib/stream-clients.mjs';
import { startTopology } from '../lib/topology.mjs';

/** Target: fairness index at 100 and at 1 000 streams. */
const FAIRNESS_TARGET = 0.9;
/** Target: aggregate at 1 000 streams against the 10-stream figure. */
const SCALE_TARGET = 0.8;
/** Stream counts: full run, quick run. */
const FULL_COUNTS = [1, 10, 100, 1000, 10_000];
const QUICK_COUNTS = [1, 10, 100, 1000];
/** CPU share (of one core) above which a single-threaded process is taken as saturated. */
const SATURATED = 0.9;
/** Files a process needs beside its sockets (the node: listeners, hub link, module files). */
const SPARE_FILES = 256;

/** Sums `f(pid)` over `pids` (figures of one process or of several, e.g. the load-generator workers). */
const sum = (pids, f) => pids.reduce((total, pid) => total + f(pid), 0);

/** The numbers a window is made of: per-stream bytes, per-process CPU and syscalls, the children's stats. */
async function sample(clients, pids, children) {
  const [counts, stats] = await Promise.all([
    clients.snapshot(),
    Promise.all(children.map((p) => p.call('stats'))),
  ]);
  const processes = {};
  for (const [name, list] of Object.entries(pids)) {
    processes[name] = {
      cpu: sum(list, cpuSeconds),
      syscalls: sum(list, (pid) => {
        const s = syscalls(pid);
        return s.reads + s.writes;
      }),
    };
  }
  return {
    at: performance.now(),
    counts,
    processes,
    workers: clients.pids.map(cpuSeconds),
    stats,
    kernel: tcpCounters(),
  };
}

async function measure(clients, target, n, { warmupMs, windowMs }, topo) {
  const { node, backend, service } = topo.processes;
  const through = target.name === 'nexus';
  const pids = {
    'load generator': clients.pids,
    service: [service.pid],
    ...(through ? { node: [node.pid], backend: [backend.pid] } : {}),
  };
  const children = through ? [node, backend] : [];
  await clients.open(target, n);
  try {
    await clients.start();
    await new Promise((r) => setTimeout(r, warmupMs));
    const a = await sample(clients, pids, children);
    await new Promise((r) => setTimeout(r, windowMs));
    const b = await sample(clients, pids, children);
    const tcp = tcpMemory();
    // The service's sockets toward its reader (the backend client, or the load generator direct).
    const queues = socketQueues(topo.targets.direct.port);
    const seconds = (b.at - a.at) / 1000;
    const perStream = Array.from(b.counts, (c, i) => (c - a.counts[i]) / MB / seconds);
    const total = perStream.reduce((x, y) => x + y, 0);
    const processes = {};
    for (const name of Object.keys(pids)) {
      processes[name] = {
        cpuShare: (b.processes[name].cpu - a.processes[name].cpu) / seconds,
        cpuSeconds: b.processes[name].cpu - a.processes[name].cpu,
        syscalls: b.processes[name].syscalls - a.processes[name].syscalls,
      };
    }
    return {
      aggregate: total,
      fairness: jain(perStream),
      min: Math.min(...perStream),
      max: Math.max(...perStream),
      mb: total * seconds,
      processes,
      // Per-worker CPU of the load generator: a worker near one full core is the bottleneck, not the proxy.
      busiestWorker: Math.max(...b.workers.map((cpu, i) => (cpu - a.workers[i]) / seconds)),
      node: through ? delta(a.stats[0], b.stats[0]) : undefined,
      backend: through ? delta(a.stats[1], b.stats[1]) : undefined,
      tcp,
      queues,
      kernel: Object.fromEntries(Object.keys(b.kernel).map((k) => [k, b.kernel[k] - a.kernel[k]])),
    };
  } finally {
    await clients.stop();
  }
}

/** Counter differences between two `stats` answers of a child: mux counters and garbage collections. */
function delta(a, b) {
  const mux = {};
  for (const key of Object.keys(b.mux ?? {})) mux[key] = b.mux[key] - (a.mux?.[key] ?? 0);
  const gc = {};
  for (const key of Object.keys(b.gc ?? {})) gc[key] = b.gc[key] - a.gc[key];
  return { mux, gc };
}

async function drained(node) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && (await node.call('stats')).activeStreams > 0) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One row of the "where the time goes" table. */
function timeRow(n, path, m) {
  const pct = (share) => `${Math.round(share * 100)} %`;
  const perMb = (x) => round(x / m.mb, 2);
  const p = m.processes;
  const names = Object.keys(p);
  const allCpu = names.reduce((total, name) => total + p[name].cpuSeconds, 0);
  const gc = (g) => `${g.minor}/${g.major} (${Math.round(g.minorMs + g.majorMs)} ms)`;
  return {
    streams: n,
    path,
    'MB/s': round(m.aggregate, 1),
    'CPU: load gen (busiest worker)': `${pct(p['load generator'].cpuShare)} (${pct(m.busiestWorker)})`,
    service: pct(p.service.cpuShare),
    node: p.node ? pct(p.node.cpuShare) : '',
    backend: p.backend ? pct(p.backend.cpuShare) : '',
    'CPU ms/MB all': perMb(allCpu * 1000),
    'node / backend / service ms/MB': p.node
      ? `${perMb(p.node.cpuSeconds * 1000)} / ${perMb(p.backend.cpuSeconds * 1000)} / ${perMb(p.service.cpuSeconds * 1000)}`
      : `service ${perMb(p.service.cpuSeconds * 1000)}`,
    'syscalls/MB node / backend / service': p.node
      ? `${Math.round(p.node.syscalls / m.mb)} / ${Math.round(p.backend.syscalls / m.mb)} / ${Math.round(p.service.syscalls / m.mb)}`
      : `service ${Math.round(p.service.syscalls / m.mb)}`,
    'node DATA / control msgs per MB': m.node
      ? `${round(m.node.mux.dataFramesReceived / m.mb, 1)} / ${round(m.node.mux.controlMessagesSent / m.mb, 2)}`
      : '',
    'GC minor/major node; backend': m.node ? `${gc(m.node.gc)}; ${gc(m.backend.gc)}` : '',
    'TCP mem MiB': Math.round(m.tcp.mib),
    'service → reader queues MiB (send / receive)': `${Math.round(m.queues.send)} / ${Math.round(m.queues.receive)}`,
    'kernel: pressure ms / RTOs / retransmits / zero windows / backlog drops': `${m.kernel.pressureMs} / ${m.kernel.timeouts} / ${m.kernel.retransmits} / ${m.kernel.zeroWindows} / ${m.kernel.backlogDrops}`,
  };
}

/** @param {{ quick?: boolean, streams?: number[], workers?: number }} options */
export async function run(options = {}) {
  const wanted = options.streams ?? (options.quick ? QUICK_COUNTS : FULL_COUNTS);
  const workers = options.workers ?? 2;
  // The warm-up grows with the streams: on a loaded machine a worker's streams can start late.
  const timingFor = (n) =>
    options.quick ? { warmupMs: 500 + n / 10, windowMs: 1500 } : { warmupMs: 2000 + n / 10, windowMs: 4000 };
  const timing = timingFor(0);
  const notes = [];
  // Each process holds one socket per stream (a Nexus stream's legs are in different processes), so the
  // soft limit on open files, which the children inherit, must cover the largest count.
  const files = openFileLimit();
  const counts = wanted.filter((n) => !(n + SPARE_FILES > files));
  for (const n of wanted.filter((c) => !counts.includes(c))) {
    notes.push(
      `${n} streams skipped: the open-file limit is ${files}; raise it first (ulimit -n ${n + 2 * SPARE_FILES})`,
    );
  }
  const topo = await startTopology({ nexus: true });
  const clients = await startStreamClients(workers);
  const rows = [];
  const timeRows = [];
  const byCount = new Map();
  try {
    for (const n of counts) {
      const direct = await measure(clients, topo.targets.direct, n, timingFor(n), topo);
      const nexus = await measure(clients, topo.targets.nexus, n, timingFor(n), topo);
      await drained(topo.processes.node);
      byCount.set(n, nexus);
      rows.push({
        streams: n,
        'nexus MB/s': round(nexus.aggregate, 1),
        'direct MB/s': round(direct.aggregate, 1),
        'vs direct': round(nexus.aggregate / direct.aggregate, 3),
        'nexus fairness': round(nexus.fairness, 3),
        'direct fairness': round(direct.fairness, 3),
        'nexus min/max per stream MB/s': `${round(nexus.min, 3)} / ${round(nexus.max, 3)}`,
      });
      timeRows.push(timeRow(n, 'direct', direct), timeRow(n, 'nexus', nexus));
      for (const [path, m] of [
        ['direct', direct],
        ['nexus', nexus],
      ]) {
        if (m.busiestWorker >= SATURATED) {
          notes.push(
            `${n} streams, ${path}: a load-generator worker used ${Math.round(m.busiestWorker * 100)} % of a core: ` +
              'the figure is bounded by the load generator (try more --workers)',
          );
        }
        if (m.tcp.mib >= m.tcp.pressureMib || m.kernel.pressureMs > 0) {
          notes.push(
            `${n} streams, ${path}: the kernel was under TCP memory pressure for ${m.kernel.pressureMs} ms of ` +
              `the window (TCP sockets: ${Math.round(m.tcp.mib)} MiB at its end, threshold ` +
              `${Math.round(m.tcp.pressureMib)} MiB, tcp_mem): receive queues pruned, packets dropped, streams stalled ` +
              `until retransmitted (${m.kernel.timeouts} retransmission timeouts)`,
          );
        }
      }
    }
  } finally {
    await clients.close();
    await topo.close();
  }
  const at = (n) => byCount.get(n);
  const targets = [];
  for (const n of [100, 1000]) {
    if (at(n) === undefined) continue;
    targets.push(
      goal(
        `Jain's fairness at ${n} streams`,
        `≥ ${FAIRNESS_TARGET}`,
        String(round(at(n).fairness, 3)),
        at(n).fairness >= FAIRNESS_TARGET,
      ),
    );
  }
  if (at(10) !== undefined && at(1000) !== undefined) {
    const ratio = at(1000).aggregate / at(10).aggregate;
    targets.push(
      goal(
        'aggregate at 1 000 streams vs 10',
        `≥ ${SCALE_TARGET}`,
        String(round(ratio, 3)),
        ratio >= SCALE_TARGET,
      ),
    );
  }
  notes.push(
    `CPU: share of one core over the window (${cpus().length} cores in all), user + system of all threads ` +
      `(/proc/<pid>/stat); load generator: ${workers} worker processes, summed; ms/MB all: every process of ` +
      'the path; syscalls: reads + writes (/proc/<pid>/io); control msgs: grants and other control ' +
      'messages the node sent; TCP mem: kernel memory of all TCP sockets at the end of the window; ' +
      "service → reader queues: at the end of the window, bytes in the service's socket send queues and " +
      "in its reader's receive queues (the backend client's local sockets, or the load generator's), ss -tm; " +
      'kernel: time under TCP memory pressure, retransmission timeouts, retransmitted segments and ' +
      'receive windows advertised as zero in the window, and packets dropped at a full input backlog ' +
      '(net.core.netdev_max_backlog: on loopback every segment passes it), machine-wide ' +
      '(/proc/net/netstat, /proc/net/softnet_stat)',
  );
  return {
    title: `streams: concurrent bulk downloads over one backend session (${timing.windowMs} ms window)`,
    rows,
    tables: [{ title: 'streams: where the time goes (same windows)', rows: timeRows }],
    notes,
    targets,
  };
}
