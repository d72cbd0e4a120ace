// Many concurrent bulk downloads over ONE backend session: aggregate throughput and Jain's fairness index
// over per-stream throughput, for 1, 10, 100 and 1000 streams, through Nexus and direct (for reference).
// Every stream is set up first (TLS handshake), then all start; bytes are counted in a fixed window after a
// warm-up, so every stream is active for the whole window.
import { connectTls, goal, header, jain, MB, pool, round } from '../lib/load.mjs';
import { startTopology } from '../lib/topology.mjs';

/** Target: fairness index at 100 streams. */
const FAIRNESS_TARGET = 0.9;
/** "Unbounded" download: the service writes until the stream is destroyed. */
const ENDLESS = 1e15;

async function measure(target, n, { warmupMs, windowMs }) {
  const sockets = await pool(n, 64, () => connectTls(target, 20_000));
  const counts = new Float64Array(n);
  sockets.forEach((s, i) => {
    s.on('data', (d) => {
      counts[i] += d.length;
    });
    s.on('error', () => {});
    s.write(header('D', ENDLESS));
  });
  await new Promise((r) => setTimeout(r, warmupMs));
  const before = Float64Array.from(counts);
  const start = performance.now();
  await new Promise((r) => setTimeout(r, windowMs));
  const seconds = (performance.now() - start) / 1000;
  const perStream = Array.from(counts, (c, i) => (c - before[i]) / MB / seconds);
  for (const s of sockets) s.destroy();
  const total = perStream.reduce((a, b) => a + b, 0);
  return {
    aggregate: total,
    fairness: jain(perStream),
    min: Math.min(...perStream),
    max: Math.max(...perStream),
  };
}

async function drained(node) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && (await node.call('stats')).activeStreams > 0) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** @param {{ quick?: boolean }} options */
export async function run(options = {}) {
  const counts = [1, 10, 100, 1000];
  const timing = options.quick ? { warmupMs: 300, windowMs: 1000 } : { warmupMs: 1000, windowMs: 4000 };
  const topo = await startTopology({ nexus: true });
  const rows = [];
  let fairnessAt100 = Number.NaN;
  try {
    for (const n of counts) {
      const direct = await measure(topo.targets.direct, n, timing);
      const nexus = await measure(topo.targets.nexus, n, timing);
      await drained(topo.processes.node);
      if (n === 100) fairnessAt100 = nexus.fairness;
      rows.push({
        streams: n,
        'nexus MB/s': round(nexus.aggregate, 1),
        'direct MB/s': round(direct.aggregate, 1),
        'vs direct': round(nexus.aggregate / direct.aggregate, 3),
        'nexus fairness': round(nexus.fairness, 3),
        'direct fairness': round(direct.fairness, 3),
        'nexus min/max per stream MB/s': `${round(nexus.min, 2)} / ${round(nexus.max, 2)}`,
      });
    }
  } finally {
    await topo.close();
  }
  return {
    title: `streams: concurrent bulk downloads over one backend session (${timing.windowMs} ms window)`,
    rows,
    targets: [
      goal(
        "Jain's fairness at 100 streams",
        `≥ ${FAIRNESS_TARGET}`,
        String(round(fairnessAt100, 3)),
        fairnessAt100 >= FAIRNESS_TARGET,
      ),
    ],
  };
}
