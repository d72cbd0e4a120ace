/**
 * Receive windows that grow with the bandwidth-delay product, between two Nexus ends (docs/protocol.md
 * §1.5, "Windows that grow"). The base window (2 MiB, {@link WINDOW_BYTES}) covers 300 MB/s up to a 7 ms
 * round trip; over a longer path a stream it bounds gets at most window ÷ round trip (20 MB/s at 100 ms).
 * A receiver that sees a window used up in little more than a round trip doubles it, up to
 * {@link MAX_WINDOW_BYTES}, while the session's open windows fit its {@link WindowGrowthPool}, so that what a
 * session's peer may send unread stays bounded whatever its streams do.
 */
import type { StreamEngineTuning } from './engine-options.js';
import { MAX_CREDITS, type ReceiveLedger } from './flow-window.js';
import { MAX_DATA_PAYLOAD } from './frame.js';
import { type PayloadSettings, WINDOW_BYTES } from './frame-size.js';

/** Largest receive window a stream grows to, bytes: 16 MiB, 8 × the base window. */
export const MAX_WINDOW_BYTES = 8 * WINDOW_BYTES;
/**
 * Shortest round trip over which a window grows, ms: 4. Below it the base window already covers 500 MB/s,
 * more than one stream is relayed at, and on one host or a LAN a busy event loop alone makes samples of
 * a few milliseconds (the memory scenario's slow readers grew windows they could not use before this).
 */
export const MIN_GROWTH_RTT_MS = 4;
/** Bytes the windows of a session's open streams may grow up to, all together, by default: 64 MiB. */
export const WINDOW_GROWTH_POOL_BYTES = 64 * 1024 * 1024;

/**
 * What a session's streams may grow their windows into, all together: windows grow only while the open
 * streams' windows, base and growth, add up to less than the pool. Growth is for a session whose streams'
 * windows do not cover the path's bandwidth-delay product; many streams' base windows already do (32
 * streams of 2 MiB fill 64 MiB), and then, their link being shared, none needs more.
 */
export class WindowGrowthPool {
  readonly #size: number;
  /** Bytes of the open streams' windows, base and growth. */
  #used = 0;
  /** Bytes of growth now, and the most at once. */
  #grown = 0;
  #peak = 0;

  constructor(bytes: number = WINDOW_GROWTH_POOL_BYTES) {
    if (!(bytes >= 0)) throw new RangeError('the window growth pool must be ≥ 0 bytes');
    this.#size = bytes;
  }

  /** Bytes a window may still grow by. */
  get free(): number {
    return Math.max(0, this.#size - this.#used);
  }

  /** Most bytes of growth at once so far. */
  get peak(): number {
    return this.#peak;
  }

  /** A stream opened with a window of `bytes` (counted, never refused). */
  join(bytes: number): void {
    this.#used += bytes;
  }

  /** A stream that opened with a window of `bytes` ended. */
  leave(bytes: number): void {
    this.#used -= bytes;
  }

  /** Takes up to `bytes` of growth; returns how many were taken. */
  take(bytes: number): number {
    const n = Math.max(0, Math.min(bytes, this.free));
    this.#used += n;
    this.#grown += n;
    this.#peak = Math.max(this.#peak, this.#grown);
    return n;
  }

  /** Gives back `bytes` of growth. */
  give(bytes: number): void {
    if (!(bytes > 0)) return;
    this.#used -= bytes;
    this.#grown -= bytes;
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
 * only makes a sample longer). As frames are delivered, once more than half the window was delivered since
 * the last check, it doubles the window if that took less than two round trips per window (the rule of QUIC
 * implementations' auto-tuning): the sender was then waiting for credits, not for data. A window used
 * slowly while its reader fell behind ({@link WindowTuner.behind}) narrows back to its base: the reader set
 * the pace. (A burst of frames that finds the reader's buffer full says nothing: a window used up in one
 * round trip arrives as such a burst.)
 */
export class WindowTuner {
  readonly #ledger: ReceiveLedger;
  readonly #growth: WindowGrowth;
  /** The window the stream opened with, frames: what it narrows back to when its reader falls behind. */
  readonly #base: number;
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
  /** Frames the window is above its base, taken from the pool. */
  #grown = 0;
  /** The consumer fell behind (its buffer was full) since the last check. */
  #behind = false;
  /** The stream's window has left the pool ({@link release}). */
  #released = false;

  constructor(ledger: ReceiveLedger, growth: WindowGrowth) {
    this.#ledger = ledger;
    this.#growth = growth;
    this.#base = ledger.window;
    this.#granted = ledger.initialGrant;
    this.#epochAt = growth.now();
    growth.pool.join(this.#base * growth.frameBytes);
  }

  /** The smallest round trip seen, ms (`Infinity` before the first sample). */
  get rtt(): number {
    return this.#rtt;
  }

  /** Frames the window is above its base now. */
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

  /** The consumer fell behind: a frame arrived while its buffer was full. */
  behind(): void {
    this.#behind = true;
  }

  /**
   * `frames` were delivered to the consumer (and counted by the ledger, or about to be): at a check, once
   * more than half the window was delivered since the last, the window may grow (`open`: the stream still
   * receives).
   */
  delivered(frames: number, open: boolean): void {
    this.#delivered += frames;
    const growth = open && !this.#released ? this.#growthNow() : 0;
    if (growth > 0) this.#ledger.grow(growth);
    this.#settle();
  }

  /** Frames to add to the window now, taken from the pool, or 0. */
  #growthNow(): number {
    const window = this.#ledger.window;
    const used = this.#delivered - this.#epochDelivered;
    const { maxWindow, frameBytes, pool, now } = this.#growth;
    if (2 * used <= window) return 0;
    const at = now();
    const fast = at - this.#epochAt < (4 * used * this.#rtt) / window;
    const behind = this.#behind;
    this.#epochAt = at;
    this.#epochDelivered = this.#delivered;
    this.#behind = false;
    if (!fast && behind) this.#narrow();
    // No sample yet: never grow on a guess; nor over a short path (MIN_GROWTH_RTT_MS).
    if (!fast || !Number.isFinite(this.#rtt) || this.#rtt < MIN_GROWTH_RTT_MS) return 0;
    const frames = Math.min(window, maxWindow - window, Math.floor(pool.free / frameBytes));
    if (frames <= 0) return 0;
    pool.take(frames * frameBytes);
    this.#grown += frames;
    return frames;
  }

  /**
   * The window was used slowly and its reader fell behind: the reader, not the window, set the pace. The
   * window narrows back to its base as frames are delivered (what it had grown by returns to the pool as it
   * goes). A reader draining into a socket runs fast until the socket's buffers fill; growth from that start
   * is given back here.
   */
  #narrow(): void {
    const ledger = this.#ledger;
    const excess = ledger.window - ledger.narrowing - this.#base;
    if (excess > 0) ledger.shrink(excess);
  }

  /** What the window has narrowed by since the last call goes back to the pool. */
  #settle(): void {
    const above = Math.max(0, this.#ledger.window - this.#base);
    if (above >= this.#grown) return;
    this.#growth.pool.give((this.#grown - above) * this.#growth.frameBytes);
    this.#grown = above;
  }

  /** The stream receives nothing more: its window leaves the pool (once; later calls do nothing). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    const { pool, frameBytes } = this.#growth;
    pool.give(this.#grown * frameBytes);
    pool.leave(this.#base * frameBytes);
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
