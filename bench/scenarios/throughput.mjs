// Bulk throughput of one TLS stream, download and upload, side by side in one run:
// direct (client → service), nexus (client → relay → hub → backend client → service), mesh (client → node A
// → peer link → node B → backend client → service, when core exports PeerMesh), and HAProxy SNI passthrough
// (when installed) as a reference for the routing-only part; and the floors of any Node.js design with the
// same TLS hops: bare `pipe` relays, one TLS hop (`floor1`, beside the node) and two (`floor2`, beside the mesh).
// Each row carries its proxy processes' CPU per MB (from /proc), and the Nexus rows their ratio to their floor.
// Each row also carries the CPU per MB of every process on the path (load generator, service, proxies) and
// the cores they kept busy: where every path keeps the machine's cores busy, the ratio to direct is set by
// CPU per MB, and the notes say what the targets would allow the proxies to spend.
import { availableParallelism } from 'node:os';
import { readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { download, goal, MB, round, upload } from '../lib/load.mjs';
import { cpuSeconds } from '../lib/proc-stats.mjs';
import { haproxyAvailable, meshAvailable, startTopology } from '../lib/topology.mjs';
import { summarizeProfile } from '../profile-summary.mjs';

const GB = 1e9;

/** MB/s of one transfer. */
const rateOf = (r) => r.bytes / MB / (r.ms / 1000);

function median(values) {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
/**
 * Bytes moved each way through every path before the measured rounds (full runs). A long-running node and
 * backend client compile their hot paths once, and once more when byte counts pass 2^30 and 2^31 (V8's
 * small-integer and int32 ranges: the code that added them is deoptimised and compiled again for doubles).
 * Measured in docs/benchmarks.md ("Warm-up past the JIT's one-time work"): with an 8 MB warm-up those
 * events fell in the first measured rounds and cost Nexus 10–20 % of its CPU per MB there. 1.1 GB each
 * way is 2.2 GB through every process, past both.
 */
const WARM_UP_BYTES = 1.1 * GB;
/** Target ratios vs direct (issue: bulk through one node ≥ 0.5×, through the mesh ≥ 0.35×). */
const NEXUS_TARGET = 0.5;
const MESH_TARGET = 0.35;

/**
 * @param {{ quick?: boolean, size?: number, runs?: number, warmUp?: number, profileDir?: string }} options
 *   `size`: bytes per transfer (default 1 GB, quick 64 MB); `runs`: rounds (default 3, quick 1);
 *   `warmUp`: bytes each way through every path first (default {@link WARM_UP_BYTES}, quick 8 MB);
 *   `profileDir`: `--cpu-prof` the node child.
 */
export async function run(options = {}) {
  const bytes = options.size ?? (options.quick ? 64 * MB : 1 * GB);
  // Several rounds: each path's figure is the median of its rounds, with the spread (min–max) beside it,
  // and each round's ratio is taken against the direct path of the same round.
  const rounds = options.runs ?? (options.quick ? 1 : 3);
  // At least 20 MB/s or the transfer is cut and reported as partial.
  const timeoutMs = Math.max(30_000, (bytes / (20 * MB)) * 1000);
  const notes = [];
  if (!(await meshAvailable())) notes.push('mesh skipped: @nexus-proxy/core does not export PeerMesh yet');
  if (!haproxyAvailable()) notes.push('haproxy skipped: binary not installed (apt-get install -y haproxy)');
  const topo = await startTopology({
    nexus: true,
    mesh: true,
    haproxy: true,
    floor: true,
    profileDir: options.profileDir,
  });
  /** CPU seconds of a path's proxy processes so far, each. */
  const proxyCpu = (target) => (target.pids ?? []).map(cpuSeconds);
  const servicePid = topo.processes.service.pid;
  /** CPU seconds of this process (the load generator: TLS client, payload check). */
  const ownCpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  /** Which floor a Nexus path is compared with. */
  const floorOf = { nexus: 'floor1', mesh: 'floor2' };
  const rows = [];
  const ratios = {};
  /** Per path: medians of CPU ms/MB (all processes, the two ends, the proxies, the busiest proxy), cores busy. */
  const cpu = {};
  try {
    const order = ['direct', 'nexus', 'mesh', 'floor1', 'floor2', 'haproxy'].filter(
      (n) => topo.targets[n] !== undefined,
    );
    // Warm-up, each path both ways: handshakes, socket buffers, and the JIT's one-time work (see WARM_UP_BYTES).
    const warmUp = options.warmUp ?? (options.quick ? 8 * MB : WARM_UP_BYTES);
    for (const name of warmUp > 0 ? order : []) {
      for (const fn of [download, upload]) await fn(topo.targets[name], warmUp, Math.max(10_000, timeoutMs));
    }
    // Rounds alternate between paths so that noise from the rest of the machine hits every path alike.
    const perRound = new Map();
    for (let i = 0; i < rounds; i++) {
      for (const [direction, fn] of [
        ['download', download],
        ['upload', upload],
      ]) {
        const results = new Map();
        for (const name of order) {
          const target = topo.targets[name];
          const before = { proxies: proxyCpu(target), service: cpuSeconds(servicePid), own: ownCpu() };
          const r = await fn(target, bytes, timeoutMs);
          const perMB = (seconds) => (seconds * 1000) / (r.bytes / MB);
          const proxies = proxyCpu(target).map((s, i) => perMB(s - before.proxies[i]));
          r.cpuMsPerMB = proxies.reduce((sum, v) => sum + v, 0);
          r.busiestMsPerMB = Math.max(...proxies, 0);
          r.allMsPerMB =
            r.cpuMsPerMB + perMB(cpuSeconds(servicePid) - before.service) + perMB(ownCpu() - before.own);
          r.endsMsPerMB = r.allMsPerMB - r.cpuMsPerMB;
          results.set(name, r);
        }
        const directRate = rateOf(results.get('direct'));
        for (const [name, r] of results) {
          const key = `${direction}:${name}`;
          const t = perRound.get(key) ?? {
            direction,
            name,
            bytes: 0,
            rates: [],
            ratios: [],
            floorRatios: [],
            cpu: [],
            all: [],
            ends: [],
            busiest: [],
            cores: [],
            errors: [],
          };
          t.bytes += r.bytes;
          t.rates.push(rateOf(r));
          t.ratios.push(rateOf(r) / directRate);
          if (name !== 'direct') t.cpu.push(r.cpuMsPerMB);
          if (name !== 'direct') t.busiest.push(r.busiestMsPerMB);
          t.all.push(r.allMsPerMB);
          t.ends.push(r.endsMsPerMB);
          t.cores.push((r.allMsPerMB * rateOf(r)) / 1000);
          const floor = results.get(floorOf[name]);
          if (floor !== undefined) t.floorRatios.push(rateOf(r) / rateOf(floor));
          if (r.error) t.errors.push(r.error);
          perRound.set(key, t);
        }
      }
    }
    for (const t of perRound.values()) {
      const ratio = median(t.ratios);
      ratios[`${t.direction}:${t.name}`] = ratio;
      cpu[`${t.direction}:${t.name}`] = {
        all: median(t.all),
        ends: median(t.ends),
        proxies: t.cpu.length > 0 ? median(t.cpu) : 0,
        busiest: t.busiest.length > 0 ? median(t.busiest) : 0,
        cores: t.cores,
      };
      rows.push({
        direction: t.direction,
        path: t.name,
        MB: round(t.bytes / MB, 0),
        rounds: t.rates.length,
        'MB/s median': round(median(t.rates), 1),
        'MB/s min–max': `${round(Math.min(...t.rates), 1)}–${round(Math.max(...t.rates), 1)}`,
        'vs direct median': round(ratio, 3),
        'vs direct min–max': `${round(Math.min(...t.ratios), 3)}–${round(Math.max(...t.ratios), 3)}`,
        'vs its floor': t.floorRatios.length > 0 ? round(median(t.floorRatios), 3) : '',
        'proxy CPU ms/MB': t.cpu.length > 0 ? round(median(t.cpu), 2) : '',
        'CPU ms/MB all': round(median(t.all), 2),
        'cores busy': round(median(t.cores), 2),
        note: t.errors.join('; '),
      });
    }
  } finally {
    await topo.close();
  }
  const targets = [];
  for (const direction of ['download', 'upload']) {
    const r = ratios[`${direction}:nexus`];
    targets.push(
      goal(
        `bulk ${direction} via one node`,
        `≥ ${NEXUS_TARGET}× direct`,
        `${round(r, 2)}×`,
        r >= NEXUS_TARGET,
      ),
    );
    const m = ratios[`${direction}:mesh`];
    if (m !== undefined) {
      targets.push(
        goal(
          `bulk ${direction} via 2-node mesh`,
          `≥ ${MESH_TARGET}× direct`,
          `${round(m, 2)}×`,
          m >= MESH_TARGET,
        ),
      );
    } else {
      targets.push({
        target: `bulk ${direction} via 2-node mesh`,
        goal: `≥ ${MESH_TARGET}× direct`,
        achieved: 'n/a',
        met: 'skipped',
      });
    }
  }
  for (const direction of ['download', 'upload']) {
    const f1 = ratios[`${direction}:floor1`];
    const f2 = ratios[`${direction}:floor2`];
    if (f1 !== undefined && f2 !== undefined) {
      notes.push(
        `${direction}: bare Node relays reach ${round(f1, 2)}× direct with one TLS hop and ${round(f2, 2)}× with two (the floors of the node and mesh paths)`,
      );
    }
  }
  notes.push(...cpuNotes(cpu));
  const result = {
    title: `throughput: one TLS stream, ${round(bytes / MB, 0)} MB each way`,
    rows,
    targets,
    notes,
  };
  if (options.profileDir !== undefined) {
    const newest = readdirSync(options.profileDir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => join(options.profileDir, f))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
    // The file name only: results are shared, the machine's paths are not.
    if (newest !== undefined) result.profile = { file: basename(newest), top: summarizeProfile(newest, 15) };
  }
  return result;
}

/**
 * What the CPU figures say about the targets. Where every path keeps the machine's cores about equally busy,
 * MB/s is cores ÷ CPU per MB, so a path's ratio to direct is about direct's CPU per MB over the path's. A
 * target ratio r then leaves the path's proxies a budget of direct's CPU per MB ÷ r less what the two ends
 * spend on that path: at 0.5×, about what the load generator and the service spend together.
 */
function cpuNotes(cpu) {
  const notes = [];
  const cores = Object.values(cpu).flatMap((c) => c.cores);
  if (cores.length === 0) return notes;
  notes.push(
    `CPU: every path kept ${round(Math.min(...cores), 2)}–${round(Math.max(...cores), 2)} of this machine's ${availableParallelism()} cores busy (load generator, service and proxies; from /proc), so MB/s follows CPU per MB`,
  );
  for (const direction of ['download', 'upload']) {
    const direct = cpu[`${direction}:direct`];
    if (direct === undefined) continue;
    const parts = [];
    for (const [name, target] of [
      ['nexus', NEXUS_TARGET],
      ['floor1', NEXUS_TARGET],
      ['mesh', MESH_TARGET],
      ['floor2', MESH_TARGET],
    ]) {
      const c = cpu[`${direction}:${name}`];
      if (c === undefined) continue;
      // The proxies' budget at the target: (ends + proxies) ≤ direct's all ÷ target, the ends as measured on this path.
      const budget = direct.all / target - c.ends;
      parts.push(
        `${name} ${round(c.proxies, 2)} (budget at ${target}×: ${round(budget, 2)}; busiest process ${round(c.busiest, 2)})`,
      );
    }
    notes.push(
      `${direction}: direct spends ${round(direct.all, 2)} ms/MB in all; the proxies spend, ms/MB: ${parts.join(', ')}`,
    );
  }
  return notes;
}
