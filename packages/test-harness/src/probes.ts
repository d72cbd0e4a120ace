/** Process probes: memory sampling with forced GC, and counts of active handles. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { delay } from './wait.js';

/** Peak and baseline of `process.memoryUsage()` over a sampling period, bytes. */
export interface MemorySummary {
  baseRss: number;
  peakRss: number;
  baseArrayBuffers: number;
  peakArrayBuffers: number;
  /** The largest settled post-GC sample (see `live()`): what was still referenced, not garbage. */
  liveRss: number;
  liveArrayBuffers: number;
  samples: number;
}

/** A running {@link sampleMemory}. */
export interface MemorySampler {
  /** Takes a settled post-GC sample now (the summary keeps the largest); resolves with it. */
  live(): Promise<NodeJS.MemoryUsage>;
  /** Stops sampling after a last settled post-GC sample. */
  stop(): Promise<MemorySummary>;
}

let gcFunction: (() => void) | undefined;
/** Runs a full garbage collection (V8's `gc`, exposed at run time), so memory samples show live data. */
export function forceGc(): void {
  if (gcFunction === undefined) {
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as () => void;
  }
  gcFunction();
}

/**
 * `process.memoryUsage()` after a full GC that has settled: V8 frees the backing stores of collected
 * ArrayBuffers on a background thread, so a reading taken right after one `gc()` may still count them.
 */
export async function settledMemory(): Promise<NodeJS.MemoryUsage> {
  forceGc();
  await delay(20);
  forceGc();
  return process.memoryUsage();
}

/** Samples memory every `intervalMs` until `stop()`; the baseline is a settled post-GC sample. */
export async function sampleMemory(intervalMs = 20): Promise<MemorySampler> {
  const base = await settledMemory();
  const summary: MemorySummary = {
    baseRss: base.rss,
    peakRss: base.rss,
    baseArrayBuffers: base.arrayBuffers,
    peakArrayBuffers: base.arrayBuffers,
    liveRss: base.rss,
    liveArrayBuffers: base.arrayBuffers,
    samples: 1,
  };
  const record = (m: NodeJS.MemoryUsage): void => {
    summary.peakRss = Math.max(summary.peakRss, m.rss);
    summary.peakArrayBuffers = Math.max(summary.peakArrayBuffers, m.arrayBuffers);
    summary.samples++;
  };
  const timer = setInterval(() => record(process.memoryUsage()), intervalMs);
  const live = async (): Promise<NodeJS.MemoryUsage> => {
    const m = await settledMemory();
    record(m);
    summary.liveRss = Math.max(summary.liveRss, m.rss);
    summary.liveArrayBuffers = Math.max(summary.liveArrayBuffers, m.arrayBuffers);
    return m;
  };
  return {
    live,
    async stop() {
      await live();
      clearInterval(timer);
      return summary;
    },
  };
}

/** Counts of `process.getActiveResourcesInfo()` by kind (TCPSocketWrap, Timeout, …). */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
