#!/usr/bin/env node
// One TLS stream through one node whose backend client is far from it: `node bench/delay-probe.mjs
// [delays] [MB] [rounds]` (defaults 0,5,25,50 ms one way, 256 MB, 2 rounds). For each delay, the backend
// client reaches the hub through a delay line holding every chunk that long each way (a round trip of
// twice it; the test harness's delay line, for want of netem here), and the probe downloads then uploads
// through the node, and straight to the service through a delay line of its own (`direct+delay`: the same
// round trip with no credit window, the line's own ceiling). It prints MB/s, and what a fixed 2 MiB window
// allows (2 MiB ÷ round trip): the bound windows that grow lift (docs/protocol.md §1.5, "Windows that
// grow"). `TREE=<checkout>` measures another built checkout's node and backend client with its bench/lib.
// `MESH=1` measures the mesh path instead of the node's: the delay line on the peer link between its two
// nodes, the backend client beside the second.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const TREE = resolve(process.env.TREE ?? join(fileURLToPath(import.meta.url), '../..'));
const { download, upload, MB } = await import(join(TREE, 'bench/lib/load.mjs'));
const { startTopology, startChild } = await import(join(TREE, 'bench/lib/topology.mjs'));

const delays = (process.argv[2] ?? '0,5,25,50').split(',').map(Number);
const size = Number(process.argv[3] ?? 256) * MB;
const rounds = Number(process.argv[4] ?? 2);
const WINDOW = 2 * 1024 * 1024;
const rows = [];
for (const delayMs of delays) {
  const mesh = process.env.MESH === '1';
  const topo = await startTopology(
    mesh ? { nexus: false, mesh: true, peerDelayMs: delayMs } : { nexus: true, hubDelayMs: delayMs },
  );
  const direct = topo.targets.direct;
  const line =
    delayMs > 0
      ? await startChild('relay', {
          inbound: 'plain',
          outbound: 'plain',
          targetPort: direct.port,
          delayMs,
        })
      : undefined;
  const paths = {
    [mesh ? 'mesh' : 'nexus']: mesh ? topo.targets.mesh : topo.targets.nexus,
    'direct+delay': { ...direct, port: line?.info.port ?? direct.port },
  };
  try {
    for (const target of Object.values(paths)) await download(target, 16 * MB, 60_000);
    for (let round = 1; round <= rounds; round++) {
      for (const [direction, fn] of [
        ['download', download],
        ['upload', upload],
      ]) {
        for (const [path, target] of Object.entries(paths)) {
          const r = await fn(target, size, 300_000);
          const rate = r.bytes / MB / (r.ms / 1000);
          rows.push({
            'delay ms (one way)': delayMs,
            round,
            direction,
            path,
            'MB/s': Math.round(rate * 10) / 10,
            '2 MiB window allows MB/s': delayMs > 0 ? Math.round(WINDOW / MB / ((2 * delayMs) / 1000)) : '',
            note: r.error ?? '',
          });
        }
      }
    }
  } finally {
    await line?.close();
    await topo.close();
  }
}
console.table(rows);
