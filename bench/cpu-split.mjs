#!/usr/bin/env node
// CPU per MB of every process on a path, beside the path's floor: `node bench/cpu-split.mjs [MB] [rounds]`
// (defaults 256 MB, 2 rounds). Each round downloads then uploads through direct, nexus (node + backend
// client) and floor1 (two bare Node relays with one TLS hop, bench/lib/child.mjs `relay`), and prints MB/s
// (× direct) and the CPU ms per MB of the path's proxy processes, of the service and of this load generator,
// from /proc/<pid>/stat: figures that hold on a machine shared with other work, unlike MB/s.
// `TREE=<checkout>` measures another built checkout with this driver. `PERF=download|upload` records the
// nexus path's processes with `perf record -e cpu-clock` over one transfer into `$PERF_OUT` (default the OS
// temp dir) instead; `PERF_PATH=floor1` records the floor's relays instead. `DIRECTION=download|upload`
// measures one direction only.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const TREE = resolve(process.env.TREE ?? join(fileURLToPath(import.meta.url), '../..'));
const { download, upload, MB } = await import(join(TREE, 'bench/lib/load.mjs'));
const { startTopology } = await import(join(TREE, 'bench/lib/topology.mjs'));
// Read from this driver's tree, so that trees older than it (without proc-stats or the floor) are measured too.
const { cpuSeconds } = await import('./lib/proc-stats.mjs');

const size = Number(process.argv[2] ?? 256) * MB;
const rounds = Number(process.argv[3] ?? 2);
const topo = await startTopology({ nexus: true, floor: true });
const { targets } = topo;
// Trees older than the floor did not list a path's processes: the node and the backend client are theirs.
targets.nexus.pids ??= [topo.processes.node.pid, topo.processes.backend.pid];
targets.direct.pids ??= [];
const service = topo.processes.service.pid;
const paths = ['direct', 'nexus', 'floor1'].filter((name) => targets[name] !== undefined);
const fixed = (n) => n.toFixed(2);
try {
  // Warm-up, both directions: handshakes, socket buffers, and the JIT's one-time work (the throughput
  // scenario's WARM_UP_BYTES). `WARM_MB=8` for a quick look.
  const warm = Number(process.env.WARM_MB ?? 1100) * MB;
  for (const name of paths) for (const fn of [download, upload]) await fn(targets[name], warm, 30_000);
  if (process.env.PERF !== undefined) {
    const fn = process.env.PERF === 'upload' ? upload : download;
    const name = process.env.PERF_PATH ?? 'nexus';
    const out = join(process.env.PERF_OUT ?? tmpdir(), `perf-${process.env.PERF}-${name}.data`);
    const perf = spawn(
      'perf',
      ['record', '-e', 'cpu-clock', '-F', '2000', '-o', out, '-p', targets[name].pids.join(',')],
      { stdio: 'inherit' },
    );
    await new Promise((r) => setTimeout(r, 1000));
    const r = await fn(targets[name], size, 120_000);
    perf.kill('SIGINT');
    await once(perf, 'exit');
    console.log(
      `${name} ${process.env.PERF}: ${(r.bytes / MB / (r.ms / 1000)).toFixed(0)} MB/s, pids ${targets[name].pids}, ${out}`,
    );
  } else {
    const rows = [];
    for (let i = 0; i < rounds; i++) {
      for (const [direction, fn] of [
        ['download', download],
        ['upload', upload],
      ].filter(([d]) => (process.env.DIRECTION ?? d) === d)) {
        let direct;
        for (const name of paths) {
          const t = targets[name];
          const before = [...t.pids, service].map(cpuSeconds);
          const own = process.cpuUsage();
          const r = await fn(t, size, 120_000);
          const mb = r.bytes / MB;
          const rate = mb / (r.ms / 1000);
          direct ??= rate;
          const after = [...t.pids, service].map(cpuSeconds);
          const used = after.map((a, j) => ((a - before[j]) * 1000) / mb);
          const mine = process.cpuUsage(own);
          rows.push({
            round: i + 1,
            direction,
            path: name,
            'MB/s': Math.round(rate),
            'vs direct': fixed(rate / direct),
            'proxy ms/MB (each)': used.slice(0, -1).map(fixed).join(' / '),
            'service ms/MB': fixed(used.at(-1)),
            'client ms/MB': fixed((mine.user + mine.system) / 1000 / mb),
          });
        }
      }
    }
    console.table(rows);
  }
} finally {
  await topo.close();
}
