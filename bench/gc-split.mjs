#!/usr/bin/env node
// CPU per MB and garbage collections of each Nexus process over bulk transfers after a warm-up:
// `node bench/gc-split.mjs [upload|download|both] [MB] [rounds] [--mesh]` (defaults both, 384 MB, 2 rounds).
// After a warm-up of `WARM` MB each way (default 768), each round moves MB through the path and prints
// MB/s, the CPU ms per MB of the node and the backend client (of mesh node A and node B with --mesh) and
// the scavenges and mark-compacts each ran meanwhile (from the children's `stats`), and their heaps. A
// steady state, not a start-up: V8 has optimised the relay's code by then, and a mark-compact that comes
// back every few MB shows. `TREE=<checkout>` measures another built checkout with this driver.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const TREE = resolve(process.env.TREE ?? join(fileURLToPath(import.meta.url), '../..'));
const { download, upload, MB } = await import(join(TREE, 'bench/lib/load.mjs'));
const { startTopology } = await import(join(TREE, 'bench/lib/topology.mjs'));

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const mesh = process.argv.includes('--mesh');
const which = args[0] ?? 'both';
const size = Number(args[1] ?? 384) * MB;
const rounds = Number(args[2] ?? 2);
const warm = Number(process.env.WARM ?? 768) * MB;
const directions = [
  ['download', download],
  ['upload', upload],
].filter(([d]) => which === 'both' || which === d);

const topo = await startTopology(mesh ? { mesh: true } : { nexus: true });
const target = mesh ? topo.targets.mesh : topo.targets.nexus;
if (target === undefined) throw new Error('this tree has no such path');
const procs = mesh
  ? [
      ['node A', topo.processes.meshA],
      ['node B', topo.processes.meshB],
    ]
  : [
      ['node', topo.processes.node],
      ['backend', topo.processes.backend],
    ];
const stats = () => Promise.all(procs.map(([, p]) => p.call('stats')));
try {
  if (warm > 0) {
    await download(target, warm, 300_000);
    await upload(target, warm, 300_000);
  }
  const rows = [];
  for (let i = 0; i < rounds; i++) {
    for (const [direction, fn] of directions) {
      const before = await stats();
      const r = await fn(target, size, 300_000);
      const after = await stats();
      const mb = r.bytes / MB;
      const row = { round: i + 1, direction, 'MB/s': Math.round(mb / (r.ms / 1000)) };
      procs.forEach(([name], k) => {
        const a = before[k];
        const b = after[k];
        row[`${name} ms/MB`] = ((b.cpuUs - a.cpuUs) / 1000 / mb).toFixed(2);
        row[`${name} scav/MC`] = `${b.gc.minor - a.gc.minor}/${b.gc.major - a.gc.major}`;
        row[`${name} heap MB`] = (b.heapUsed / 1e6).toFixed(1);
      });
      rows.push(row);
    }
  }
  console.table(rows);
} finally {
  await topo.close();
}
