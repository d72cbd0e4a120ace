// Bulk throughput of one TLS stream, download and upload, side by side in one run:
// direct (client → service), nexus (client → relay → hub → backend client → service), mesh (client → node A
// → peer link → node B → backend client → service, when core exports PeerMesh), and HAProxy SNI passthrough
// (when installed) as a reference for the routing-only part; and the floors of any Node.js design with the
// same TLS hops: bare `pipe` relays, one TLS hop (`floor1`, beside the node) and two (`floor2`, beside the mesh).
// Each row carries its proxy processes' CPU per MB (from /proc), and the Nexus rows their ratio to their floor.
import { readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { download, goal, MB, round, upload } from '../lib/load.mjs';
import { cpuOf } from '../lib/proc-stats.mjs';
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
/** Target ratios vs direct (issue: bulk through one node ≥ 0.5×, through the mesh ≥ 0.35×). */
const NEXUS_TARGET = 0.5;
const MESH_TARGET = 0.35;

/**
 * @param {{ quick?: boolean, size?: number, runs?: number, profileDir?: string }} options
 *   `size`: bytes per transfer (default 1 GB, quick 64 MB); `runs`: rounds (default 3, quick 1);
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
  /** CPU seconds of a path's proxy processes so far. */
  const proxyCpu = (target) => Object.values(cpuOf({ p: target.pids ?? [] })).reduce((sum, v) => sum + v, 0);
  /** Which floor a Nexus path is compared with. */
  const floorOf = { nexus: 'floor1', mesh: 'floor2' };
  const rows = [];
  const ratios = {};
  try {
    const order = ['direct', 'nexus', 'mesh', 'floor1', 'floor2', 'haproxy'].filter(
      (n) => topo.targets[n] !== undefined,
    );
    // Warm-up: handshakes, JIT, socket buffers.
    for (const name of order) await download(topo.targets[name], 8 * MB, 10_000);
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
          const cpuBefore = proxyCpu(target);
          const r = await fn(target, bytes, timeoutMs);
          r.cpuMsPerMB = ((proxyCpu(target) - cpuBefore) * 1000) / (r.bytes / MB);
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
            errors: [],
          };
          t.bytes += r.bytes;
          t.rates.push(rateOf(r));
          t.ratios.push(rateOf(r) / directRate);
          if (name !== 'direct') t.cpu.push(r.cpuMsPerMB);
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
