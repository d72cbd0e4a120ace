import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { RELAY_HEAP_FLAG } from '../src/relay-heap.js';

/**
 * A child process keeps ~6 MiB of young objects alive across scavenges, which makes V8 grow its young
 * generation, and prints the largest new-space size it saw; with `flag` set at run time first (as
 * tuneHeapForRelaying does), the young generation must stay near its initial size.
 */
function largestNewSpace(flag: string | undefined): { initial: number; largest: number } {
  const script = `
    const v8 = require('node:v8');
    ${flag === undefined ? '' : `v8.setFlagsFromString(${JSON.stringify(flag)});`}
    const size = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    const initial = size();
    let largest = initial;
    const kept = [];
    for (let round = 0; round < 400; round++) {
      const batch = [];
      for (let i = 0; i < 2000; i++) batch.push({ round, i, pad: [i, i + 1, i + 2] });
      kept.push(batch);
      if (kept.length > 40) kept.shift();
      largest = Math.max(largest, size());
    }
    process.stdout.write(JSON.stringify({ initial, largest }));
  `;
  const out = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  expect(out.status, out.stderr).toBe(0);
  return JSON.parse(out.stdout) as { initial: number; largest: number };
}

describe('tuneHeapForRelaying', () => {
  it('keeps the young generation near its initial size where V8 would grow it', () => {
    const untuned = largestNewSpace(undefined);
    // Untuned, V8 grows it many times over (1 MiB → 32 MiB with Node 20); tuned, it stays within one
    // doubling (the semi-spaces of its initial configuration).
    expect(untuned.largest).toBeGreaterThan(4 * untuned.initial);
    const tuned = largestNewSpace(RELAY_HEAP_FLAG);
    expect(tuned.largest).toBeLessThanOrEqual(2 * tuned.initial);
  });
});
