// 1 KiB request / 1 KiB response on warm TLS connections (the service echoes): p50 / p99 / p99.9 round trip
// per path and the latency Nexus adds over direct,
//   light load — one connection, one request at a time;
//   80 % load  — open loop at 80 % of the peak rate measured through Nexus (closed loop, 32 connections),
//                the same offered rate on every path; latency counts from the scheduled send time, so a
//                stalled path is charged for the requests it delayed.
import { echoConnection, goal, percentile, round, sequential } from '../lib/load.mjs';
import { haproxyAvailable, startTopology } from '../lib/topology.mjs';

/** Connections of the peak and 80 % runs. */
const CONNECTIONS = 32;
/** Targets for added latency at light load, ms. */
const P50_TARGET_MS = 0.25;
const P99_TARGET_MS = 2;

/** Closed loop on every connection for `ms`: requests per second. */
async function peakRate(conns, ms) {
  let done = 0;
  let running = true;
  for (const c of conns) {
    c.onResponse(() => {
      done++;
      if (running) c.send();
    });
  }
  const start = performance.now();
  for (const c of conns) c.send();
  await new Promise((r) => setTimeout(r, ms));
  running = false;
  const rate = done / ((performance.now() - start) / 1000);
  await new Promise((r) => setTimeout(r, 200)); // let in-flight responses arrive
  return rate;
}

/** Open loop at `rate` req/s over `conns` for `ms`. Returns sorted latencies (from scheduled time), ms. */
async function openLoop(conns, rate, ms) {
  const queues = conns.map(() => []);
  const latencies = [];
  conns.forEach((c, i) => {
    c.onResponse(() => {
      const scheduled = queues[i].shift();
      if (scheduled !== undefined) latencies.push(performance.now() - scheduled);
    });
  });
  const start = performance.now();
  const interval = 1000 / rate;
  let sent = 0;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      if (now - start >= ms) {
        clearInterval(timer);
        resolve();
        return;
      }
      const due = Math.floor((now - start) / interval);
      while (sent < due) {
        const i = sent % conns.length;
        queues[i].push(start + sent * interval);
        conns[i].send();
        sent++;
      }
    }, 1);
  });
  const deadline = performance.now() + 5_000;
  while (queues.some((q) => q.length > 0) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  return { latencies: latencies.sort((a, b) => a - b), sent, lost: sent - latencies.length };
}

function figures(sorted) {
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), p999: percentile(sorted, 99.9) };
}

/** @param {{ quick?: boolean }} options */
export async function run(options = {}) {
  const quick = options.quick === true;
  const lightCount = quick ? 2_000 : 20_000;
  const lightBudgetMs = quick ? 3_000 : 20_000;
  const peakMs = quick ? 1_000 : 3_000;
  const loadMs = quick ? 2_000 : 8_000;
  const notes = [];
  if (!haproxyAvailable()) notes.push('haproxy skipped: binary not installed');
  const topo = await startTopology({ nexus: true, mesh: true, haproxy: true });
  const names = ['direct', 'nexus', 'mesh', 'haproxy'].filter((n) => topo.targets[n] !== undefined);
  const rows = [];
  const light = {};
  try {
    // Light load: rounds alternate between paths so that drift hits every path alike.
    const conns = {};
    for (const name of names) conns[name] = await echoConnection(topo.targets[name]);
    for (const name of names) await sequential(conns[name], 500, 2_000); // warm-up
    const rtts = Object.fromEntries(names.map((n) => [n, []]));
    const rounds = 10;
    for (let r = 0; r < rounds; r++) {
      for (const name of names) {
        rtts[name].push(
          ...(await sequential(conns[name], lightCount / rounds, lightBudgetMs / rounds / names.length)),
        );
      }
    }
    for (const name of names) conns[name].close();
    for (const name of names) light[name] = figures(rtts[name].sort((a, b) => a - b));
    for (const name of names) {
      rows.push(row('light: 1 connection, sequential', name, rtts[name].length, light[name], light.direct));
    }

    // Peak through Nexus, then 80 % of it on every path.
    const peakConns = await Promise.all(
      Array.from({ length: CONNECTIONS }, () => echoConnection(topo.targets.nexus)),
    );
    const peak = await peakRate(peakConns, peakMs);
    for (const c of peakConns) c.close();
    const rate = Math.round(peak * 0.8);
    notes.push(`peak through nexus (closed loop, ${CONNECTIONS} connections): ${Math.round(peak)} req/s`);
    const loaded = {};
    for (const name of names) {
      const cs = await Promise.all(
        Array.from({ length: CONNECTIONS }, () => echoConnection(topo.targets[name])),
      );
      const out = await openLoop(cs, rate, loadMs);
      for (const c of cs) c.close();
      loaded[name] = figures(out.latencies);
      const r = row(
        `80 % of nexus peak: ${rate} req/s open loop`,
        name,
        out.latencies.length,
        loaded[name],
        loaded.direct,
      );
      if (out.lost > 0) r.note = `${out.lost} unanswered`;
      rows.push(r);
    }
  } finally {
    await topo.close();
  }
  const added50 = light.nexus.p50 - light.direct.p50;
  const added99 = light.nexus.p99 - light.direct.p99;
  return {
    title: 'latency: 1 KiB request/response on warm TLS connections (ms)',
    rows,
    notes,
    targets: [
      goal(
        'added latency p50, light load',
        `≤ ${P50_TARGET_MS} ms`,
        `${round(added50, 3)} ms`,
        added50 <= P50_TARGET_MS,
      ),
      goal(
        'added latency p99, light load',
        `≤ ${P99_TARGET_MS} ms`,
        `${round(added99, 3)} ms`,
        added99 <= P99_TARGET_MS,
      ),
    ],
  };
}

function row(load, path, n, f, direct) {
  return {
    load,
    path,
    requests: n,
    p50: round(f.p50, 3),
    p99: round(f.p99, 3),
    'p99.9': round(f.p999, 3),
    'added p50': round(f.p50 - direct.p50, 3),
    'added p99': round(f.p99 - direct.p99, 3),
    'added p99.9': round(f.p999 - direct.p999, 3),
  };
}
