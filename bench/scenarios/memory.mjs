// Memory of the node process (measured inside it):
//   idle   — RSS growth with 10 000 idle streams over one backend session (quick: 1 000), per stream;
//   slow   — peak RSS while 100 streams (quick: 20) each push 100 MB (quick: 10 MB) into slow readers
//            (0.25 MB/s each), in both directions, for a bounded time: the flow control must keep the
//            node's buffers bounded however fast the sender is.
// Streams use the node's HTTP relay port (plain TCP after the Host sniff): the node handles TLS and plain
// streams alike once routed, and 10 000 TLS handshakes would only slow the set-up.
import { CHUNK, connectPlain, goal, header, MB, pool, round } from '../lib/load.mjs';
import { startTopology } from '../lib/topology.mjs';

const MiB = 2 ** 20;
/** Target: RSS per idle stream, bytes. */
const IDLE_TARGET = 16 * 1024;
/** Slow reader rate per stream, bytes/s. */
const SLOW_RATE = 0.25 * MB;

async function waitFor(check, what, ms) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** RSS after a full GC, bytes (the process keeps sampling its peak from here on). */
async function settledRss(child) {
  await child.call('reset-peak', { gc: true });
  await new Promise((r) => setTimeout(r, 500));
  const s = await child.call('reset-peak', { gc: true });
  return s.rss;
}

async function idle(topo, n) {
  const { node, backend, service } = topo.processes;
  const nodeBefore = await settledRss(node);
  const backendBefore = await settledRss(backend);
  const sockets = await pool(n, 256, async () => {
    const s = await connectPlain(topo.targets.nexus, 20_000);
    s.on('error', () => {});
    s.write(header('I'));
    return s;
  });
  try {
    await waitFor(
      async () => (await service.call('stats')).connections >= n,
      `${n} streams at the service`,
      60_000,
    );
    const nodeAfter = await settledRss(node);
    const backendAfter = await settledRss(backend);
    const stats = await node.call('stats');
    return {
      case: 'idle streams (RSS after GC)',
      streams: stats.activeStreams,
      'node RSS before MiB': round(nodeBefore / MiB, 1),
      'node RSS after MiB': round(nodeAfter / MiB, 1),
      'node KiB/stream': round((nodeAfter - nodeBefore) / n / 1024, 1),
      'backend KiB/stream': round((backendAfter - backendBefore) / n / 1024, 1),
      delivered: '',
    };
  } finally {
    for (const s of sockets) s.destroy();
  }
}

async function slow(topo, n, bytes, ms, direction) {
  const { node, backend } = topo.processes;
  const before = await settledRss(node);
  const backendBefore = await settledRss(backend);
  const sockets = await pool(n, 64, () => connectPlain(topo.targets.nexus, 20_000));
  let delivered = 0;
  const timers = [];
  const uploads = [];
  for (const s of sockets) {
    s.on('error', () => {});
    if (direction === 'download') {
      // The service pushes; this end reads at SLOW_RATE.
      s.write(header('D', bytes));
      const start = performance.now();
      let got = 0;
      s.on('data', (d) => {
        got += d.length;
        delivered += d.length;
        const aheadMs = (got / SLOW_RATE) * 1000 - (performance.now() - start);
        if (aheadMs > 5) {
          s.pause();
          timers.push(setTimeout(() => s.resume(), aheadMs));
        }
      });
    } else {
      // This end pushes; the service reads at SLOW_RATE.
      s.write(header('S', SLOW_RATE));
      let sent = 0;
      const pump = () => {
        while (sent < bytes && !s.destroyed) {
          sent += CHUNK.length;
          if (!s.write(CHUNK)) {
            s.once('drain', pump);
            return;
          }
        }
      };
      pump();
      uploads.push(() => sent - s.writableLength);
    }
  }
  await new Promise((r) => setTimeout(r, ms));
  const stats = await node.call('stats');
  const backendStats = await backend.call('stats');
  for (const t of timers) clearTimeout(t);
  for (const accepted of uploads) delivered += accepted();
  for (const s of sockets) s.destroy();
  return {
    case: `slow readers, ${direction}: ${round(bytes / MB, 0)} MB pushed per stream, ${ms / 1000} s (peak RSS)`,
    streams: n,
    'node RSS before MiB': round(before / MiB, 1),
    'node RSS after MiB': round(stats.peakRss / MiB, 1),
    'node KiB/stream': round((stats.peakRss - before) / n / 1024, 1),
    'backend KiB/stream': round((backendStats.peakRss - backendBefore) / n / 1024, 1),
    // What the receive windows grew by at most (docs/protocol.md §1.5), node; backend client.
    'window growth MiB': `${round((stats.mux?.windowGrowthPeak ?? 0) / MiB, 1)}; ${round((backendStats.mux?.windowGrowthPeak ?? 0) / MiB, 1)}`,
    // download: bytes the slow readers took in; upload: bytes the senders got accepted by the kernel
    // (the rest waits in socket buffers along the way).
    delivered: `${round(delivered / MB, 1)} MB`,
  };
}

/** Runs `fn` against a fresh node, backend and service, so that one phase's heap does not show in the next. */
async function fresh(fn) {
  const topo = await startTopology({ nexus: true });
  try {
    return await fn(topo);
  } finally {
    await topo.close();
  }
}

/** @param {{ quick?: boolean }} options */
export async function run(options = {}) {
  const quick = options.quick === true;
  const idleStreams = quick ? 1_000 : 10_000;
  const slowStreams = quick ? 20 : 100;
  const slowBytes = quick ? 10 * MB : 100 * MB;
  const slowMs = quick ? 3_000 : 10_000;
  const rows = [];
  rows.push(await fresh((topo) => idle(topo, idleStreams)));
  rows.push(await fresh((topo) => slow(topo, slowStreams, slowBytes, slowMs, 'download')));
  rows.push(await fresh((topo) => slow(topo, slowStreams, slowBytes, slowMs, 'upload')));
  const perIdle = rows[0]['node KiB/stream'];
  return {
    title: 'memory: node process RSS, measured in the node process',
    rows,
    targets: [
      goal(
        `RSS per idle stream (${idleStreams} streams)`,
        `≤ ${IDLE_TARGET / 1024} KiB`,
        `${perIdle} KiB`,
        perIdle * 1024 <= IDLE_TARGET,
      ),
    ],
  };
}
