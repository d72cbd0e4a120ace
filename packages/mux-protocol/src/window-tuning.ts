/**
 * Receive windows that grow with the bandwidth-delay product, between two Nexus ends (docs/protocol.md
 * §1.5, "Windows that grow"). The base window (2 MiB, {@link WINDOW_BYTES}) covers 300 MB/s up to a 7 ms
 * round trip; over a longer path a stream it bounds gets at most window ÷ round trip (20 MB/s at 100 ms).
 * A receiver that sees a window used up in little more than a round trip doubles it, up to
 * {@link MAX_WINDOW_BYTES}, out of a session-wide {@link WindowGrowthPool}, so that what a session's peer
 * may send unread stays bounded whatever its streams do.
 */
import type { StreamEngineTuning } from './engine-options.js';
import { MAX_CREDITS } from './flow-window.js';
import { MAX_DATA_PAYLOAD } from './frame.js';
import { type PayloadSettings, WINDOW_BYTES } from './frame-size.js';

/** Largest receive window a stream grows to, bytes: 16 MiB, 8 × the base window. */
export const MAX_WINDOW_BYTES = 8 * WINDOW_BYTES;
/** Bytes a session's streams may add to their windows, all together, by default: 64 MiB. */
export const WINDOW_GROWTH_POOL_BYTES = 64 * 1024 * 1024;

/** Bytes a session's streams may add to their windows beyond the base window, all together. */
export class WindowGrowthPool {
  readonly #size: number;
  #free: number;
  #peak = 0;

  constructor(bytes: number = WINDOW_GROWTH_POOL_BYTES) {
    if (!(bytes >= 0)) throw new RangeError('the window growth pool must be ≥ 0 bytes');
    this.#size = bytes;
    this.#free = bytes;
  }

  /** Bytes still free. */
  get free(): number {
    return this.#free;
  }

  /** Most bytes taken at once so far. */
  get peak(): number {
    return this.#peak;
  }

  /** Takes up to `bytes`; returns how many were taken. */
  take(bytes: number): number {
    const n = Math.max(0, Math.min(bytes, this.#free));
    this.#free -= n;
    this.#peak = Math.max(this.#peak, this.#size - this.#free);
    return n;
  }

  give(bytes: number): void {
    if (bytes > 0) this.#free += bytes;
  }
}

/** What a stream needs to grow its window: the largest window, the session's pool, a clock in ms. */
export interface WindowGrowth {
  /** Largest window, frames. */
  maxWindow: number;
  /** Bytes of one of the stream's frames (what the pool counts). */
  frameBytes: number;
  pool: WindowGrowthPool;
  now: () => number;
}

/**
 * One stream's receive-side tuning. It estimates the round trip the way a TCP receiver does (dynamic
 * right-sizing, Linux's `tcp_rcv_rtt_measure`): from sending a grant to the arrival of the first
 * frame that could only have been sent with it, keeping the smallest sample (a sender with credit to spare
 * only makes a sample longer). At each grant, once more than half the window was delivered since the last
 * check, it doubles the window if that took less than two round trips per window (the rule of QUIC
 * implementations' auto-tuning): the sender was then waiting for credits, not for data.
 */
export class WindowTuner {
  readonly #growth: WindowGrowth;
  /** Frames the peer was granted in all. */
  #granted: number;
  #received = 0;
  #delivered = 0;
  /** The frame count past which a frame proves the grant sent at `#probeSentAt` arrived; -1: none out. */
  #probeAbove = -1;
  #probeSentAt = 0;
  /** Smallest round trip seen, ms. */
  #rtt = Number.POSITIVE_INFINITY;
  #epochAt: number;
  #epochDelivered = 0;
  /** Frames added to the window, taken from the pool. */
  #grown = 0;

  constructor(initialGrant: number, growth: WindowGrowth) {
    this.#growth = growth;
    this.#granted = initialGrant;
    this.#epochAt = growth.now();
  }

  /** The smallest round trip seen, ms (`Infinity` before the first sample). */
  get rtt(): number {
    return this.#rtt;
  }

  /** Frames added to the window so far. */
  get grown(): number {
    return this.#grown;
  }

  /** A grant of `frames` is being sent. */
  granted(frames: number): void {
    if (this.#probeAbove < 0) {
      this.#probeAbove = this.#granted;
      this.#probeSentAt = this.#growth.now();
    }
    this.#granted += frames;
  }

  /** A DATA frame arrived. */
  received(): void {
    this.#received++;
    if (this.#probeAbove >= 0 && this.#received > this.#probeAbove) {
      const sample = this.#growth.now() - this.#probeSentAt;
      if (sample < this.#rtt) this.#rtt = sample;
      this.#probeAbove = -1;
    }
  }

  /** `frames` were delivered to the consumer. */
  delivered(frames: number): void {
    this.#delivered += frames;
  }

  /** Frames to add to a window of `window` frames now (taken from the pool), or 0. */
  growth(window: number): number {
    const used = this.#delivered - this.#epochDelivered;
    const { maxWindow, frameBytes, pool, now } = this.#growth;
    if (2 * used <= window || window >= maxWindow) return 0;
    const at = now();
    const fast = at - this.#epochAt < (4 * used * this.#rtt) / window;
    this.#epochAt = at;
    this.#epochDelivered = this.#delivered;
    // No sample yet (Infinity × 0 aside): never grow on a guess.
    if (!fast || !Number.isFinite(this.#rtt)) return 0;
    const frames = Math.min(window, maxWindow - window, Math.floor(pool.free / frameBytes));
    if (frames <= 0) return 0;
    pool.take(frames * frameBytes);
    this.#grown += frames;
    return frames;
  }

  /** The stream receives nothing more: its growth goes back to the pool. */
  release(): void {
    this.#growth.pool.give(this.#grown * this.#growth.frameBytes);
    this.#grown = 0;
  }
}

/**
 * An engine's pool for its streams' growth, from its options: none when `windowGrowth` is `false` or the
 * window is set explicitly (`initialWindow`).
 */
export function windowGrowthPool(options: StreamEngineTuning): WindowGrowthPool | undefined {
  const growth = options.windowGrowth;
  if (growth && !(growth.maxWindowBytes === undefined || growth.maxWindowBytes > 0)) {
    throw new RangeError('windowGrowth.maxWindowBytes must be > 0');
  }
  if (growth === false || options.initialWindow !== undefined) return undefined;
  return new WindowGrowthPool(growth?.poolBytes);
}

/**
 * A new stream's window growth (for its `MuxStreamInit`): toward a Nexus end only, one that accepts frames
 * larger than 32 768 bytes (docs/protocol.md §1.11); the reference keeps the base protocol's window.
 */
export function streamWindowGrowth(
  pool: WindowGrowthPool | undefined,
  payload: PayloadSettings,
  options: StreamEngineTuning,
  now: () => number,
): { windowGrowth?: WindowGrowth } {
  if (pool === undefined || payload.sendDataPayload <= MAX_DATA_PAYLOAD) return {};
  const frameBytes = payload.maxDataPayload;
  const maxBytes = (options.windowGrowth || undefined)?.maxWindowBytes ?? MAX_WINDOW_BYTES;
  const maxWindow = Math.min(MAX_CREDITS, Math.floor(maxBytes / frameBytes));
  if (maxWindow <= payload.initialWindow) return {};
  return { windowGrowth: { maxWindow, frameBytes, pool, now } };
}
