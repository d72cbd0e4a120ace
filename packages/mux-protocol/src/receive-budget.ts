/**
 * A node-wide budget for DATA received and not yet delivered (docs/protocol.md §1.5, docs/security.md):
 * every stream that shares a {@link ReceiveBudget} grants credits to its peer only while the budget has
 * room, so the frames the node may have to hold for slow consumers, across all those streams, stay under
 * the budget plus a small per-stream floor.
 */
import { MAX_DATA_PAYLOAD } from './frame.js';

/** Default node-wide budget: 256 MiB of DATA granted and not yet delivered. */
export const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024;
/**
 * Frames every stream may always have granted and undelivered, budget or not (64 KiB with the base
 * protocol's frames): no stream ever waits for another to progress, so none can deadlock.
 */
export const RECEIVE_BUDGET_FLOOR = 2;

/**
 * The shared budget, counted in frames of at most {@link MAX_DATA_PAYLOAD} bytes. Streams take their
 * part through a {@link ReceiveBudgetShare}; a share that could not get all it wanted waits in a FIFO
 * and is called back, in turn, as room returns (a deferred grant is never lost).
 */
export class ReceiveBudget {
  #capacity: number;
  #used = 0;
  /** Shares waiting for room, in arrival order (a Set keeps insertion order; add/delete are O(1)). */
  readonly #waiting = new Set<ReceiveBudgetShare>();
  #waking = false;

  /** `maxBytes`: the budget in bytes (at least one frame). */
  constructor(maxBytes: number = DEFAULT_MAX_BUFFERED_BYTES) {
    this.#capacity = framesOf(maxBytes);
  }

  /** Frames the budget holds in all. */
  get capacity(): number {
    return this.#capacity;
  }

  /**
   * Sets the budget to `maxBytes` (a reload). Streams holding more than a smaller budget keep it until
   * they deliver; a larger one calls waiting streams back at once.
   */
  resize(maxBytes: number): void {
    const capacity = framesOf(maxBytes);
    if (capacity === this.#capacity) return;
    this.#capacity = capacity;
    this.#wake();
  }

  /** Frames taken by streams now (granted or buffered beyond their floor). */
  get used(): number {
    return this.#used;
  }

  /** Bytes the frames taken may hold at most. */
  get usedBytes(): number {
    return this.#used * MAX_DATA_PAYLOAD;
  }

  /** Shares waiting for room. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /**
   * Opens a stream's share; `onRoom` is called when room returns after the share had to wait. Each of
   * the stream's frames takes `units` frames of {@link MAX_DATA_PAYLOAD} bytes (frames larger than that,
   * docs/protocol.md §1.11, take several).
   */
  share(onRoom: () => void, units = 1): ReceiveBudgetShare {
    return new ReceiveBudgetShare(this, onRoom, units);
  }

  /** Takes up to `frames`; returns how many were taken. */
  take(frames: number): number {
    const n = Math.max(0, Math.min(frames, this.#capacity - this.#used));
    this.#used += n;
    return n;
  }

  /** Returns `frames` taken before, then calls waiting shares back in turn while there is room. */
  give(frames: number): void {
    if (frames <= 0) return;
    this.#used -= frames;
    this.#wake();
  }

  wait(share: ReceiveBudgetShare): void {
    this.#waiting.add(share);
  }

  leave(share: ReceiveBudgetShare): void {
    this.#waiting.delete(share);
  }

  #wake(): void {
    // Re-entrant calls (a woken share delivers and gives back at once) are served by the running loop.
    if (this.#waking) return;
    this.#waking = true;
    try {
      // Each share is called once per pass; one that still lacks room queues itself again at the end.
      let turns = this.#waiting.size;
      while (turns-- > 0 && this.#used < this.#capacity) {
        const next = this.#waiting.values().next();
        if (next.done) break;
        this.#waiting.delete(next.value);
        next.value.roomReturned();
      }
    } finally {
      this.#waking = false;
    }
  }
}

/**
 * One stream's part of a {@link ReceiveBudget}. The stream reports its commitment — frames its peer may
 * still send plus frames received and not delivered (`outstanding + buffered` of its `ReceiveLedger`) —
 * and asks before granting more: the first {@link RECEIVE_BUDGET_FLOOR} frames are free, the rest come
 * out of the budget.
 */
export class ReceiveBudgetShare {
  readonly #budget: ReceiveBudget;
  readonly #onRoom: () => void;
  /** Budget units (frames of {@link MAX_DATA_PAYLOAD} bytes) one of the stream's frames takes. */
  readonly #units: number;
  /** Units taken from the budget. */
  #taken = 0;
  #closed = false;

  constructor(budget: ReceiveBudget, onRoom: () => void, units = 1) {
    if (!Number.isInteger(units) || units < 1) throw new RangeError('units must be a positive integer');
    this.#budget = budget;
    this.#onRoom = onRoom;
    this.#units = units;
  }

  /** Units (frames of {@link MAX_DATA_PAYLOAD} bytes) this share holds in the budget. */
  get taken(): number {
    return this.#taken;
  }

  /**
   * With `committed` frames committed now, how many of `wanted` more may be granted. Takes what they
   * need from the budget; when fewer than `wanted`, the share waits for room (`onRoom`).
   */
  afford(committed: number, wanted: number): number {
    if (this.#closed || wanted <= 0) return this.#closed ? wanted : 0;
    const units = this.#units;
    const held = Math.max(0, committed);
    const need = Math.max(0, held + wanted - RECEIVE_BUDGET_FLOOR) * units - this.#taken;
    if (need > 0) this.#taken += this.#budget.take(need);
    const allowed = Math.min(wanted, RECEIVE_BUDGET_FLOOR + Math.floor(this.#taken / units) - held);
    if (allowed < wanted) this.#budget.wait(this);
    return Math.max(0, allowed);
  }

  /** The commitment fell to `committed` (frames delivered): gives back what it no longer needs. */
  settle(committed: number): void {
    if (this.#closed) return;
    const needed = Math.max(0, Math.max(0, committed) - RECEIVE_BUDGET_FLOOR) * this.#units;
    if (this.#taken <= needed) return;
    const excess = this.#taken - needed;
    this.#taken = needed;
    this.#budget.give(excess);
  }

  /** The stream receives nothing more through the budget: gives everything back; later asks are free. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.leave(this);
    const taken = this.#taken;
    this.#taken = 0;
    this.#budget.give(taken);
  }

  /** @internal Called by the budget when room returned. */
  roomReturned(): void {
    if (!this.#closed) this.#onRoom();
  }
}

/** `maxBytes` in whole frames of {@link MAX_DATA_PAYLOAD} bytes, at least one. */
function framesOf(maxBytes: number): number {
  if (!(maxBytes > 0)) throw new RangeError('maxBufferedBytes must be > 0');
  return Math.max(1, Math.floor(maxBytes / MAX_DATA_PAYLOAD));
}
