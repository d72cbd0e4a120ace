// New TLS connections per second: TCP connect + full TLS 1.3 handshake (no resumption) + one 64-byte
// request and its 64-byte answer, then close; closed loop with a fixed number of workers for a fixed time.
import { once } from 'node:events';
import { connectTls, deadline, goal, header, percentile, round } from '../lib/load.mjs';
import { haproxyAvailable, startTopology } from '../lib/topology.mjs';

/** Concurrent connecting workers. */
const WORKERS = 16;
/** Target: connection rate through Nexus vs direct. */
const RATE_TARGET = 0.5;

async function oneConnection(target) {
  const socket = await connectTls(target);
  try {
    const answered = once(socket, 'end');
    let got = 0;
    socket.on('data', (d) => {
      got += d.length;
    });
    socket.write(header('D', 64));
    await deadline(answered, 10_000, `answer via ${target.name}`);
    if (got !== 64) throw new Error(`got ${got} bytes instead of 64`);
  } finally {
    socket.destroy();
  }
}

async function measure(target, ms) {
  const times = [];
  let errors = 0;
  const stopAt = performance.now() + ms;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      while (performance.now() < stopAt) {
        const t0 = performance.now();
        try {
          await oneConnection(target);
          times.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  times.sort((a, b) => a - b);
  return { rate: times.length / seconds, p50: percentile(times, 50), p99: percentile(times, 99), errors };
}

/** @param {{ quick?: boolean }} options */
export async function run(options = {}) {
  const ms = options.quick ? 1_500 : 8_000;
  const notes = [];
  if (!haproxyAvailable()) notes.push('haproxy skipped: binary not installed');
  const topo = await startTopology({ nexus: true, mesh: true, haproxy: true });
  const names = ['direct', 'nexus', 'mesh', 'haproxy'].filter((n) => topo.targets[n] !== undefined);
  const rows = [];
  const rates = {};
  try {
    for (const name of names) await measure(topo.targets[name], 300); // warm-up
    for (const name of names) {
      const m = await measure(topo.targets[name], ms);
      rates[name] = m.rate;
      rows.push({
        path: name,
        'conn/s': round(m.rate, 0),
        'vs direct': round(m.rate / rates.direct, 3),
        'p50 ms': round(m.p50, 2),
        'p99 ms': round(m.p99, 2),
        errors: m.errors,
      });
    }
  } finally {
    await topo.close();
  }
  const ratio = rates.nexus / rates.direct;
  return {
    title: `connrate: new TLS connections (handshake + one request), ${WORKERS} workers, ${ms} ms`,
    rows,
    notes,
    targets: [
      goal(
        'connection rate via one node',
        `≥ ${RATE_TARGET}× direct`,
        `${round(ratio, 2)}×`,
        ratio >= RATE_TARGET,
      ),
    ],
  };
}
