import { spawnSync } from 'node:child_process';
import { getHeapSpaceStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import {
  countReceivedBytes,
  RELAY_HEAP_FLAG,
  RELAY_SCAVENGE_BYTES,
  tuneHeapForRelaying,
} from '../src/relay-heap.js';

const newSpaceUsed = (): number =>
  getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;

/** Young garbage: about 300 KiB of small objects nobody keeps. */
function youngGarbage(): number {
  let sum = 0;
  for (let i = 0; i < 6000; i++) sum += [i, { i }].length;
  return sum;
}

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

  it('once tuned, runs a scavenge each time RELAY_SCAVENGE_BYTES have been received, and not before', () => {
    // Untuned: counting collects nothing.
    youngGarbage();
    let before = newSpaceUsed();
    countReceivedBytes(4 * RELAY_SCAVENGE_BYTES);
    expect(newSpaceUsed()).toBeGreaterThanOrEqual(before);

    tuneHeapForRelaying();
    countReceivedBytes(RELAY_SCAVENGE_BYTES - 1000);
    youngGarbage();
    before = newSpaceUsed();
    expect(before).toBeGreaterThan(100 * 1024);
    countReceivedBytes(999);
    expect(newSpaceUsed()).toBeGreaterThanOrEqual(before);
    // The byte that completes RELAY_SCAVENGE_BYTES: the young garbage is gone at once.
    countReceivedBytes(1);
    expect(newSpaceUsed()).toBeLessThan(before / 2);
  });
});
