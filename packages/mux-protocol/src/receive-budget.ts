/**
 * A node-wide budget for DATA received and not yet delivered (docs/protocol.md §1.5, docs/security.md):
 * every stream that shares a {@link ReceiveBudget} grants credits to its peer only while the budget has
 * room, so the frames the node may have to hold for slow consumers, across all those streams, stay under
 * the budget plus a small per-stream floor.
 */
import type { ReceiveLedger } from './flow-window.js';
import { MAX_DATA_PAYLOAD } from './frame.js';

/** Default node-wide budget: 256 MiB of DATA granted and not yet delivered. */
export const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024;
/**
 * Frames every stream may always have granted and undelivered, budget or not (64 KiB with the base
 * protocol's frames): no stream ever waits for another to progress, so none can deadlock. A stream with
 * larger frames (docs/protocol.md §1.11) has a floor of as many of its frames as fit in the same 64 KiB,
 * and at least one ({@link ReceiveBudgetShare.floor}): 128 KiB with frames of 128 KiB.
 */
export const RECEIVE_BUDGET_FLOOR = 2;
/**
 * Budget units (frames of {@link MAX_DATA_PAYLOAD} bytes) a share gives back at once, at least, while it
 * stays open (128 KiB): a share above its part
 * returns the excess in pieces that make a useful grant for the stream waiting, not frame by frame as
 * it delivers.
 */
export const RECEIVE_BUDGET_GRAIN = 4;
/**
 * Budget units a share may take beyond its floor when its stream opens (256 KiB); from there it at most
 * doubles what it holds with each grant, up to its limit. Streams opened in a burst (a thousand end users
 * connecting before any data flows) would otherwise take the whole budget in the order they opened, at
 * 62 frames each, and leave the later ones their floor until the first ones had used those windows up.
 */
export const RECEIVE_BUDGET_START = 8;
/**
 * While the budget is less used than this fraction of its capacity (one quarter), a share takes its whole
 * part at once instead of growing from {@link RECEIVE_BUDGET_START}: a stream opened on a quiet node gets
 * its full window in its `connect` (the 64 credits the reference grants and expects), so a first answer
 * larger than the start is not held back by round trips of grants over a long path. Growth from the start
 * applies only once streams share a budget that is filling up — the burst the start is for.
 */
export const RECEIVE_BUDGET_RELAXED = 0.25;

/**
 * The shared budget, counted in frames of at most {@link MAX_DATA_PAYLOAD} bytes. Streams take their
 * part through a {@link ReceiveBudgetShare}. The budget is split evenly: a share takes at most
 * {@link ReceiveBudget.shareLimit} frames (the capacity over the open shares), and keeps what
 * it took up to that part while it delivers, so a stream granting again and again needs no new room each
 * time and grants in batches (with a full budget and one frame of room handed around, every delivered
 * frame would become a one-frame grant). A share that could not get its part because the budget was full
 * waits in a FIFO and is called back, in turn, as room returns (a deferred grant is never lost).
 */
export class ReceiveBudget {
  #capacity: number;
  #used = 0;
  /** Shares open now (not closed): what the budget is split over. */
  #shares = 0;
  /** Shares waiting for room, in arrival order (a Set keeps insertion order; add/delete are O(1)). */
  readonly #waiting = new Set<ReceiveBudgetShare>();
  /** Shares held at their limit that wanted more: called back only when the limit rises. */
  readonly #atLimit = new Set<ReceiveBudgetShare>();
  /** The lowest limit a share in `#atLimit` was held at. */
  #cappedAt = Number.POSITIVE_INFINITY;
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
    this.#limitMayHaveRisen();
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

  /** Shares open now. */
  get shares(): number {
    return this.#shares;
  }

  /**
   * Most units (frames of {@link MAX_DATA_PAYLOAD} bytes) one share may take now: the capacity split
   * evenly over the open shares (rounded down, at least one), so that shares at their limit never leave
   * another waiting. It binds only where the windows do not all fit: 256 MiB covers 128 streams' full
   * 2 MiB windows; at 1 000 streams each may take 8 units (256 KiB) beyond its floor.
   */
  get shareLimit(): number {
    return Math.max(1, Math.floor(this.#capacity / Math.max(1, this.#shares)));
  }

  /**
   * Opens a stream's share; `onRoom` is called when room returns after the share had to wait. Each of
   * the stream's frames takes `units` frames of {@link MAX_DATA_PAYLOAD} bytes (frames larger than that,
   * docs/protocol.md §1.11, take several).
   */
  share(onRoom: () => void, units = 1): ReceiveBudgetShare {
    const share = new ReceiveBudgetShare(this, onRoom, units);
    this.#shares++;
    return share;
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

  /** `share` could not take its part: the budget is full. It is called back when room returns. */
  wait(share: ReceiveBudgetShare): void {
    this.#waiting.add(share);
  }

  /** `share` wanted more than its limit: it is called back when the limit rises (shares close, a reload). */
  capped(share: ReceiveBudgetShare): void {
    this.#atLimit.add(share);
    this.#cappedAt = Math.min(this.#cappedAt, this.shareLimit);
  }

  /** A share closed: it waits no more, and the budget is split over one share fewer. */
  leave(share: ReceiveBudgetShare): void {
    this.#waiting.delete(share);
    this.#atLimit.delete(share);
    this.#shares--;
    if (this.#limitMayHaveRisen()) this.#wake();
  }

  /**
   * When the limit rose above the one shares were held at, they queue for room again (once per rise, not
   * once per share closing: the limit changes only when the share count crosses a step).
   */
  #limitMayHaveRisen(): boolean {
    if (this.#atLimit.size === 0 || this.shareLimit <= this.#cappedAt) return false;
    for (const share of this.#atLimit) this.#waiting.add(share);
    this.#atLimit.clear();
    this.#cappedAt = Number.POSITIVE_INFINITY;
    return true;
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
 * out of the budget, at most {@link ReceiveBudget.shareLimit} of them.
 */
export class ReceiveBudgetShare {
  readonly #budget: ReceiveBudget;
  readonly #onRoom: () => void;
  /** Budget units (frames of {@link MAX_DATA_PAYLOAD} bytes) one of the stream's frames takes. */
  readonly #units: number;
  /** Frames of the stream always allowed beyond the budget. */
  readonly #floor: number;
  /** Units taken from the budget. */
  #taken = 0;
  #closed = false;

  constructor(budget: ReceiveBudget, onRoom: () => void, units = 1) {
    if (!Number.isInteger(units) || units < 1) throw new RangeError('units must be a positive integer');
    this.#budget = budget;
    this.#onRoom = onRoom;
    this.#units = units;
    this.#floor = Math.max(1, Math.floor(RECEIVE_BUDGET_FLOOR / units));
  }

  /** Frames of the stream it may always have granted and undelivered, beyond the budget. */
  get floor(): number {
    return this.#floor;
  }

  /** Units (frames of {@link MAX_DATA_PAYLOAD} bytes) this share holds in the budget. */
  get taken(): number {
    return this.#taken;
  }

  /** The stream's frames its share of the budget covers now, beyond its floor. */
  get takenFrames(): number {
    return Math.floor(this.#taken / this.#units);
  }

  /**
   * With `committed` frames committed now, how many of `wanted` more may be granted. Takes what they
   * need from the budget, up to the share's limit — all of it while the budget is used below
   * {@link RECEIVE_BUDGET_RELAXED}, otherwise at most {@link RECEIVE_BUDGET_START} frames or as many as it
   * holds already (the share grows as its stream uses it); when the budget is full, the share
   * waits for room (`onRoom`), and when it wanted more than its limit, it is called back once the limit
   * rises.
   */
  afford(committed: number, wanted: number): number {
    if (this.#closed || wanted <= 0) return this.#closed ? wanted : 0;
    const budget = this.#budget;
    const units = this.#units;
    const held = Math.max(0, committed);
    // In budget units: what the grant needs beyond the floor, this share's limit, and its growth.
    const wants = Math.max(0, held + wanted - this.#floor) * units;
    const limit = this.#limit();
    const whole = Math.min(wants, limit) - this.#taken;
    const relaxed = budget.used + whole <= budget.capacity * RECEIVE_BUDGET_RELAXED;
    const step = relaxed ? whole : Math.max(RECEIVE_BUDGET_START, this.#taken);
    const need = Math.min(whole, step);
    if (need > 0) {
      const got = budget.take(need);
      this.#taken += got;
      if (got < need) budget.wait(this);
    }
    if (wants > limit) budget.capped(this);
    return Math.max(0, Math.min(wanted, this.#floor + this.takenFrames - held));
  }

  /** The share's limit in whole frames of its stream, so that it never holds units it cannot use. */
  #limit(): number {
    return Math.floor(this.#budget.shareLimit / this.#units) * this.#units;
  }

  /**
   * The commitment fell to `committed` (frames delivered): gives back what it no longer needs beyond its
   * part of the budget ({@link ReceiveBudget.shareLimit}), once that is at least
   * {@link RECEIVE_BUDGET_GRAIN} frames; the rest stays for its next grants.
   */
  settle(committed: number): void {
    if (this.#closed) return;
    const needed = Math.max(0, Math.max(0, committed) - this.#floor) * this.#units;
    const keep = Math.max(needed, Math.min(this.#taken, this.#limit()));
    if (this.#taken - keep < RECEIVE_BUDGET_GRAIN) return;
    const excess = this.#taken - keep;
    this.#taken = keep;
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

/**
 * The grant a stream under a budget sends now, taken from its ledger, or `0`: what the budget allows
 * (its floor and its share), once that is at least a batch or half of what the peer may then hold. So a
 * stream the budget leaves 10 frames is refilled 5 at a time, not a frame at a time as it delivers (a
 * grant of what happens to be free, sent per frame delivered, cost a control message each way per DATA
 * frame at 1 000 streams). Never stalls: when the peer holds nothing and nothing is buffered, the whole
 * room is granted.
 */
export function grantWithinBudget(ledger: ReceiveLedger, share: ReceiveBudgetShare): number {
  const pending = ledger.pending;
  if (pending === 0) return 0;
  const committed = ledger.outstanding + ledger.buffered;
  // Room the peer may hold now; it grows (afford) only when the stream grants, i.e. uses it.
  const room = share.floor + share.takenFrames;
  if (room - committed < Math.min(ledger.batch, Math.ceil(room / 2))) return 0;
  const allowed = share.afford(committed, pending);
  return allowed > 0 ? ledger.take(allowed) : 0;
}

/** `maxBytes` in whole frames of {@link MAX_DATA_PAYLOAD} bytes, at least one. */
function framesOf(maxBytes: number): number {
  if (!(maxBytes > 0)) throw new RangeError('maxBufferedBytes must be > 0');
  return Math.max(1, Math.floor(maxBytes / MAX_DATA_PAYLOAD));
}
