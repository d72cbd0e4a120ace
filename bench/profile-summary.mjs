#!/usr/bin/env node
// Top self-time functions of a V8 `.cpuprofile` (as written by `node --cpu-prof`):
//   node bench/profile-summary.mjs <file.cpuprofile> [--top 15]
// Self time of a function = the sampling intervals in which it was the innermost frame, summed over every
// node of the call tree with the same function name and location. Percentages are of busy (non-idle) time.
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function location(callFrame) {
  const { url, lineNumber } = callFrame;
  if (!url) return '';
  let path = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (path.startsWith(root)) path = relative(root, path);
  return `${path}:${lineNumber + 1}`;
}

/**
 * @param {string} file a `.cpuprofile`
 * @param {number} top how many functions
 * @returns {{ busyMs: number, idleMs: number, functions: Array<{ rank: number, function: string, location: string, selfMs: number, selfPct: number }> }}
 */
export function summarizeProfile(file, top = 15) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  // timeDeltas[i] is the time between sample i-1 and sample i; charge it to sample i's frame.
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const byFunction = new Map();
  let idleUs = 0;
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const { callFrame } = byId.get(id);
    const name = callFrame.functionName || '(anonymous)';
    if (name === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    const key = `${name}\u0000${location(callFrame)}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  }
  const functions = [...byFunction]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, us], i) => {
      const [fn, loc] = key.split('\u0000');
      return {
        rank: i + 1,
        function: fn,
        location: loc,
        selfMs: Math.round(us / 100) / 10,
        selfPct: Math.round((us / Math.max(1, busyUs)) * 1000) / 10,
      };
    });
  return { busyMs: Math.round(busyUs / 1000), idleMs: Math.round(idleUs / 1000), functions };
}

/** Prints a summary as a Markdown table. */
export function printProfile(summary, log = console.log) {
  log(`busy ${summary.busyMs} ms, idle ${summary.idleMs} ms`);
  log('| # | self ms | self % | function | location |');
  log('|--:|--:|--:|---|---|');
  for (const f of summary.functions) {
    log(`| ${f.rank} | ${f.selfMs} | ${f.selfPct} | \`${f.function}\` | ${f.location} |`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const topIndex = args.indexOf('--top');
  const file = args.find((a, i) => !a.startsWith('--') && (topIndex < 0 || i !== topIndex + 1));
  const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 15;
  if (file === undefined || !Number.isInteger(top) || top <= 0) {
    console.error('usage: node bench/profile-summary.mjs <file.cpuprofile> [--top 15]');
    process.exit(2);
  }
  printProfile(summarizeProfile(file, top));
}
