/** Default credit window, in frames: about 2 MiB per stream and direction (docs/protocol.md §1.5). */
export const DEFAULT_INITIAL_WINDOW = 64;
/** Default number of delivered frames returned to the sender in one grant (docs/protocol.md §1.5). */
export const DEFAULT_GRANT_BATCH = 8;
/** Largest credit balance a sender keeps; larger grants are clamped (docs/protocol.md §1.5). */
export const MAX_CREDITS = 2 ** 20;

/** Options of {@link SendWindow}. */
export interface SendWindowOptions {
  /**
   * Credits granted up front, in frames (e.g. `connect.credits`). `undefined` or `0`: the window starts
   * unmetered and becomes metered with the first grant. Default: `undefined`.
   */
  initialCredits?: number;
  /** Largest balance, in frames. Default: {@link MAX_CREDITS} (2^20). */
  maxCredits?: number;
  /**
   * Most frames sent while unmetered (before the first grant). Default: no limit (a peer that never
   * grants, such as a v1 backend, must not stall the stream). A sender that knows the peer meters (it
   * granted on an earlier stream) sets the window it granted then.
   */
  unmeteredLimit?: number;
  /**
   * Whether the frames sent while unmetered are spent out of the first grant: the peer counts every
   * frame it receives from the stream's first on, so its first grant is a window counted from there
   * (docs/protocol.md §1.5). The balance may then start negative; later grants pay it off. Default: `false`.
   */
  chargeUnmetered?: boolean;
}

/**
 * The sender's side of credit flow control for one stream and direction (docs/protocol.md §1.5): one credit
 * per DATA frame. Until the first grant the window is *unmetered* (legacy v1 peers never grant, and a
 * sender that waited for them would stall), bounded only by `unmeteredLimit`; from the first grant on,
 * every frame spends one credit and sending stops at zero.
 */
export class SendWindow {
  #metered: boolean;
  #available: number;
  readonly #max: number;
  readonly #charge: boolean;
  #unmeteredLimit: number;
  #unmeteredSent = 0;

  constructor(options: SendWindowOptions = {}) {
    this.#max = options.maxCredits ?? MAX_CREDITS;
    this.#charge = options.chargeUnmetered ?? false;
    this.#unmeteredLimit = options.unmeteredLimit ?? Number.POSITIVE_INFINITY;
    this.#metered = false;
    this.#available = 0;
    if (options.initialCredits !== undefined) this.grant(options.initialCredits);
  }

  /** True once a grant has been received; before that, sending is limited only by `unmeteredLimit`. */
  get metered(): boolean {
    return this.#metered;
  }

  /**
   * Frames that may be sent now: while unmetered, what is left of `unmeteredLimit` (`Infinity` without
   * one). Negative when frames sent unmetered were charged to a smaller first grant.
   */
  get available(): number {
    return this.#metered ? this.#available : this.#unmeteredLimit - this.#unmeteredSent;
  }

  /** True when one more frame may be sent. */
  canSend(): boolean {
    return this.#metered ? this.#available > 0 : this.#unmeteredSent < this.#unmeteredLimit;
  }

  /**
   * Spends the credit for one frame (`frames` for several). Returns `false`, spending nothing, when the
   * balance is too small; while unmetered, `false` only past `unmeteredLimit`.
   */
  spend(frames = 1): boolean {
    if (!this.#metered) {
      if (this.#unmeteredSent + frames > this.#unmeteredLimit) return false;
      this.#unmeteredSent += frames;
      return true;
    }
    if (frames > this.#available) return false;
    this.#available -= frames;
    return true;
  }

  /**
   * Adds a grant of `credits` frames and switches to metered mode. A grant that is not a positive number
   * is ignored (`0`/absent means "no credit flow control", §1.4); the balance is clamped at `maxCredits`.
   * With `chargeUnmetered`, the first grant is reduced by the frames sent before it. Returns the frames
   * that may be sent now.
   */
  grant(credits: number): number {
    if (credits > 0) {
      if (!this.#metered) {
        this.#metered = true;
        this.#available = this.#charge ? -this.#unmeteredSent : 0;
      }
      this.#available = Math.min(this.#max, this.#available + Math.floor(credits));
    }
    return this.available;
  }
}

/** Options of {@link ReceiveLedger}. */
export interface ReceiveLedgerOptions {
  /** Credits granted to the sender in total, in frames. Default: {@link DEFAULT_INITIAL_WINDOW} (64). */
  window?: number;
  /**
   * Delivered frames collected before a grant is returned, in frames. Default: {@link DEFAULT_GRANT_BATCH}
   * (8). Clamped to `window`, or a window smaller than the batch could never be refilled.
   */
  batch?: number;
  /**
   * Frames beyond the window tolerated before {@link ReceiveLedger.received} reports an overrun. Default: `0`.
   * Useful where the sender legitimately sends unmetered before it has seen the first grant.
   */
  slack?: number;
  /**
   * Credits granted when the stream opens, in frames (at most `window`); the rest of the window starts
   * as pending credit, granted back like delivered frames (a shared `ReceiveBudget` may allow less than
   * the window up front). Default: `window`.
   */
  initialGrant?: number;
}

/**
 * The receiver's side of credit flow control for one stream and direction (docs/protocol.md §1.5). It
 * counts frames as they arrive ({@link received}) and as they are *delivered* to their destination
 * ({@link delivered}), and returns credits in batches. Invariant for a well-behaved sender:
 * `outstanding + buffered + pending === window`.
 *
 * Grants are never lost: {@link delivered} and {@link flush} hand out the grant to send; a caller that
 * could not send it gives it back with {@link requeue}, and it is included in the next grant.
 */
export class ReceiveLedger {
  #window: number;
  readonly #batch: number;
  readonly #slack: number;
  readonly #initialGrant: number;
  #outstanding: number;
  #buffered = 0;
  #pending: number;
  /** Frames the window is still to narrow by, out of deliveries to come ({@link shrink}). */
  #debt = 0;

  constructor(options: ReceiveLedgerOptions = {}) {
    const window = options.window ?? DEFAULT_INITIAL_WINDOW;
    if (!Number.isInteger(window) || window < 1) throw new RangeError(`window must be a positive integer`);
    const batch = options.batch ?? DEFAULT_GRANT_BATCH;
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer`);
    this.#window = window;
    this.#batch = Math.min(batch, window);
    this.#slack = Math.max(0, options.slack ?? 0);
    const initial = options.initialGrant ?? window;
    if (!Number.isInteger(initial) || initial < 1 || initial > window) {
      throw new RangeError('initialGrant must be an integer in 1..window');
    }
    this.#initialGrant = initial;
    this.#outstanding = initial;
    this.#pending = window - initial;
  }

  /** The credit to announce when the stream opens (`connect.credits` or the first `resume_stream`). */
  get initialGrant(): number {
    return this.#initialGrant;
  }

  /** The window, in frames. */
  get window(): number {
    return this.#window;
  }

  /** The grant batch, in frames (after clamping to the window). */
  get batch(): number {
    return this.#batch;
  }

  /** Credits the sender holds as far as this side knows (negative after an overrun). */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** Frames received and not yet delivered. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Frames delivered whose credits have not been granted back yet. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Counts one arriving DATA frame. Returns `false` when the sender has now sent more frames than it
   * held credits for (plus `slack`): a credit overrun (`MUX_ERR_CREDIT_OVERRUN`). The frame is counted
   * either way.
   */
  received(): boolean {
    this.#outstanding -= 1;
    this.#buffered += 1;
    return this.#outstanding >= -this.#slack;
  }

  /**
   * Counts `frames` (default 1) frames handed to their destination. Returns the grant to send now —
   * every pending credit once at least `batch` have accumulated — or `0`. Delivering more frames than
   * are buffered counts only the buffered ones.
   */
  delivered(frames = 1): number {
    this.countDelivered(frames);
    return this.#pending >= this.#batch ? this.#take() : 0;
  }

  /**
   * Counts `frames` (default 1) frames handed to their destination, granting nothing: for a caller that
   * sizes its grants itself ({@link take}), as a stream under a receive budget does.
   */
  countDelivered(frames = 1): void {
    const n = Math.min(Math.max(0, Math.floor(frames)), this.#buffered);
    this.#buffered -= n;
    // A window narrowing ({@link shrink}) keeps the credits of delivered frames instead of granting them.
    const kept = Math.min(this.#debt, n);
    this.#debt -= kept;
    this.#window -= kept;
    this.#pending += n - kept;
  }

  /** Returns at most `frames` pending credits as a grant to send now (what a budget allows), or `0`. */
  take(frames: number): number {
    const n = Math.min(this.#pending, Math.max(0, Math.floor(frames)));
    this.#pending -= n;
    this.#outstanding += n;
    return n;
  }

  /** Returns every pending credit, even fewer than a batch (e.g. when the consumer has drained), or `0`. */
  flush(): number {
    return this.#pending > 0 ? this.#take() : 0;
  }

  /**
   * Widens the window by `frames` (docs/protocol.md §1.5, "Windows that grow"): they become pending credit,
   * sent with the next grant.
   */
  grow(frames: number): void {
    let n = Math.max(0, Math.floor(frames));
    const cancelled = Math.min(this.#debt, n);
    this.#debt -= cancelled;
    n -= cancelled;
    this.#window += n;
    this.#pending += n;
  }

  /**
   * Narrows the window by `frames`: out of the pending credits first, then by keeping the credits of frames
   * delivered from now on. Credits already granted are never taken back, so the peer's balance is spent
   * down, not cut.
   */
  shrink(frames: number): void {
    const n = Math.max(0, Math.floor(frames));
    const now = Math.min(this.#pending, n);
    this.#pending -= now;
    this.#window -= now;
    this.#debt += n - now;
  }

  /** Frames the window is still to narrow by ({@link shrink}). */
  get narrowing(): number {
    return this.#debt;
  }

  /** Gives back a grant returned by {@link delivered}/{@link flush} that could not be sent. */
  requeue(credits: number): void {
    const n = Math.max(0, Math.floor(credits));
    this.#pending += n;
    this.#outstanding -= n;
  }

  #take(): number {
    const grant = this.#pending;
    this.#pending = 0;
    this.#outstanding += grant;
    return grant;
  }
}
