// The bandwidth cap's fair share (docs/edge.md "Bandwidth fair share"): one node with
// `totalBandwidthMbps`, three backends behind it (one backend client each, its own hostname), end users
// downloading without end from all three: one greedy backend with several parallel streams, two normal
// ones with one stream each. Bytes are counted at the end users (TLS application bytes) in a window after
// a warm-up. Reported: the aggregate against the cap (must be within 5 %) and Jain's fairness index
// across the three busy backends (≥ 0.95), plus the node's own view (bytes charged and time throttled).
import { connectTls, goal, header, jain, MB, pool, round } from '../lib/load.mjs';
import { startTopology } from '../lib/topology.mjs';

/** The cap, Mbit/s: small enough that the machine is never the bottleneck. */
const CAP_MBPS = 40;
/** Parallel streams of the greedy backend. */
const GREEDY_STREAMS = 8;
const BACKENDS = [
  { hostname: 'greedy.bench.test', streams: GREEDY_STREAMS },
  { hostname: 'normal-1.bench.test', streams: 1 },
  { hostname: 'normal-2.bench.test', streams: 1 },
];
const CAP_TOLERANCE = 0.05;
const FAIRNESS_TARGET = 0.95;
/** "Unbounded" download: the service writes until the stream is destroyed. */
const ENDLESS = 1e15;

/** @param {{ quick?: boolean }} options */
export async function run(options = {}) {
  const timing = options.quick ? { warmupMs: 1_000, windowMs: 4_000 } : { warmupMs: 2_000, windowMs: 10_000 };
  const topo = await startTopology({
    nexus: true,
    hostnames: BACKENDS.map((b) => b.hostname),
    nodeConfig: { totalBandwidthMbps: CAP_MBPS },
  });
  const capBytesPerSecond = (CAP_MBPS * 1e6) / 8;
  let sockets = [];
  try {
    const counts = new Float64Array(BACKENDS.length);
    const streams = BACKENDS.flatMap((b, i) => Array.from({ length: b.streams }, () => i));
    sockets = await pool(streams.length, 16, (k) =>
      connectTls({ ...topo.targets.nexus, servername: BACKENDS[streams[k]].hostname }, 20_000),
    );
    sockets.forEach((s, k) => {
      s.on('data', (d) => {
        counts[streams[k]] += d.length;
      });
      s.on('error', () => {});
      s.write(header('D', ENDLESS));
    });
    await new Promise((r) => setTimeout(r, timing.warmupMs));
    const before = Float64Array.from(counts);
    const nodeBefore = (await topo.processes.node.call('stats')).bandwidth;
    const start = performance.now();
    await new Promise((r) => setTimeout(r, timing.windowMs));
    const seconds = (performance.now() - start) / 1000;
    const nodeAfter = (await topo.processes.node.call('stats')).bandwidth;
    const perBackend = Array.from(counts, (c, i) => (c - before[i]) / seconds);
    const aggregate = perBackend.reduce((a, b) => a + b, 0);
    const accuracy = aggregate / capBytesPerSecond;
    const fairness = jain(perBackend);
    const charged = (nodeAfter?.bytesSent ?? 0) - (nodeBefore?.bytesSent ?? 0);
    const rows = BACKENDS.map((b, i) => {
      const account = nodeAfter?.accounts.find((a) => a.group === b.hostname);
      return {
        backend: b.hostname,
        streams: b.streams,
        'MB/s': round(perBackend[i] / MB, 3),
        'share of cap': round(perBackend[i] / capBytesPerSecond, 3),
        'throttled s (node)': round((account?.throttledMs ?? 0) / 1000, 1),
      };
    });
    rows.push({
      backend: 'all',
      streams: streams.length,
      'MB/s': round(aggregate / MB, 3),
      'share of cap': round(accuracy, 3),
      'throttled s (node)': '',
    });
    return {
      title: `fairness: three backends at totalBandwidthMbps ${CAP_MBPS} (one greedy with ${GREEDY_STREAMS} streams; ${timing.windowMs} ms window)`,
      rows,
      notes: [
        `cap ${round(capBytesPerSecond / MB, 3)} MB/s; the node charged ${round(charged / seconds / MB, 3)} MB/s in the window (relayed bytes, TLS records included)`,
      ],
      targets: [
        goal(
          'cap accuracy (aggregate / cap)',
          `1 ± ${CAP_TOLERANCE}`,
          String(round(accuracy, 3)),
          Math.abs(accuracy - 1) <= CAP_TOLERANCE,
        ),
        goal(
          "Jain's fairness across the busy backends",
          `≥ ${FAIRNESS_TARGET}`,
          String(round(fairness, 4)),
          fairness >= FAIRNESS_TARGET,
        ),
      ],
    };
  } finally {
    for (const s of sockets) s.destroy();
    await topo.close();
  }
}
