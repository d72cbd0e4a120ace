/**
 * Reads into buffers of the caller's (`onread`) in bursts, with a process-wide bound on the buffers that
 * sockets hold installed for their next read. During a burst of large reads a socket reads straight into
 * a buffer of its own, which becomes a DATA frame in place; but Node installs that buffer when the previous
 * read comes and the socket holds it until the next one, however long that takes (a stalled stream, a
 * peer that went quiet): 10 000 sockets × 128 KiB is 1.25 GiB outside the JS heap. So at most
 * {@link ReadBufferBudget.max} buffers are installed at once in the process; past the bound, and between
 * bursts, a socket reads into one landing buffer shared by every socket and the bytes are copied out at
 * once. Used by the node's end-user sockets (`frame-reads.ts` in core) and the backend client's local
 * sockets (`local-reads.ts`), which differ in where a read goes, not in when a socket may hold a buffer.
 */
export class ReadBufferBudget {
  #installed = 0;
  #landing: Buffer | undefined;

  /**
   * @param max buffers installed for next reads at most, across every socket sharing this budget
   * @param landingSize bytes of the shared landing buffer (the most one read brings there)
   */
  constructor(
    readonly max: number,
    readonly landingSize: number,
  ) {}

  /** Buffers installed for next reads now. */
  get installed(): number {
    return this.#installed;
  }

  /** The buffer shared by every socket that holds none of its own. */
  landing(): Buffer {
    this.#landing ??= Buffer.allocUnsafeSlow(this.landingSize);
    return this.#landing;
  }

  /** Counts one more installed buffer, if under the bound. */
  take(): boolean {
    if (this.#installed >= this.max) return false;
    this.#installed++;
    return true;
  }

  /** One installed buffer was read into or dropped. */
  give(): void {
    this.#installed--;
  }
}

/**
 * One socket's bursts against a {@link ReadBufferBudget}: whether its next read goes into a buffer of its
 * own, and the budget's count of it, given back exactly once, by the read into it ({@link BurstReads.read})
 * or when the socket stops reading for good ({@link BurstReads.release}: its end, its close).
 */
export class BurstReads {
  /** The last read was large: a burst goes on. */
  #bursting = false;
  /** The socket holds one of the budget's buffers installed for its next read. */
  #holding = false;

  /**
   * @param budget the process-wide bound
   * @param minRead a read of at least this many bytes starts (or continues) a burst
   */
  constructor(
    readonly budget: ReadBufferBudget,
    readonly minRead: number,
  ) {}

  /** A burst goes on (the last read was large). */
  get bursting(): boolean {
    return this.#bursting;
  }

  /** The socket holds a buffer of its own counted by the budget. */
  get holding(): boolean {
    return this.#holding;
  }

  /**
   * Whether the socket's next read goes into a buffer of its own (counted until {@link BurstReads.read} or
   * {@link BurstReads.release}): during a burst, when `may` (the caller's own conditions: not stopped,
   * not destroyed), and under the budget's bound. Else it goes into {@link ReadBufferBudget.landing}.
   */
  ownNext(may: boolean): boolean {
    this.#drop(); // a buffer asked for again replaces the one installed
    if (!this.#bursting || !may || !this.budget.take()) return false;
    this.#holding = true;
    return true;
  }

  /** A read of `bytes` came (into the buffer installed for it): returns whether it continues a burst. */
  read(bytes: number): boolean {
    this.#drop();
    this.#bursting = bytes >= this.minRead;
    return this.#bursting;
  }

  /** The socket stops reading for good (its end, its close): its buffer's count goes back, the burst ends. */
  release(): void {
    this.#bursting = false;
    this.#drop();
  }

  #drop(): void {
    if (!this.#holding) return;
    this.#holding = false;
    this.budget.give();
  }
}
