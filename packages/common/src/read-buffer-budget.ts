import { Fifo } from './fifo.js';

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

/**
 * A socket waiting for {@link HeldReadBudget} room: resumes it and returns true, or returns false if it no
 * longer waits. `trickle`: the budget is still used up and this is the trickle's turn, which is only for a
 * socket whose stream holds nothing; one that holds something queues itself again (`wait`) and returns false.
 */
export type HeldReadWaiter = (trickle: boolean) => boolean;

/** While the budget stays used up, the oldest waiter whose stream holds nothing is resumed anyway every this many ms. */
export const HELD_READ_TRICKLE_MS = 50;
/** Waiters the trickle looks at, at most, for one whose stream holds nothing. */
const TRICKLE_SCAN = 64;

/**
 * A process-wide bound on the memory that sockets' reads hold in streams that have not sent them yet
 * (written to the stream, write not called back). Each stream's writable high-water mark bounds what one
 * stream holds, but not how many streams hold it: 10 000 streams waiting for credit at two 128 KiB frames
 * each held 2.5–4.3 GB outside the JS heap, and allocating it ran V8's full collections over and over
 * (docs/benchmarks.md, "10 000 streams: a bound on what the reads hold"). Past {@link HeldReadBudget.max}
 * a socket stops reading after its read and waits in a FIFO; as writes call back and room returns, the
 * waiters are resumed in turn, a few per turn of the event loop (as many as the room takes reads of
 * `grain` bytes). While sockets wait, one whose stream holds its even share of the budget (`max` over the
 * sockets that joined) stops too, so a turn is a share. Streams that never send (their readers stopped reading, a hostile end user's) can fill
 * the budget, but not stop the others: while it stays used up with sockets waiting, the oldest one whose
 * stream holds nothing (it sent what it read, so it is not one of those) reads anyway, one every
 * {@link HELD_READ_TRICKLE_MS}. What the reads hold is therefore at most the bound, plus one read per socket
 * resumed when it was reached, plus one read per stream that stopped sending after a trickled read.
 */
export class HeldReadBudget {
  #held = 0;
  readonly #waiting = new Fifo<HeldReadWaiter>();
  #wakeScheduled = false;
  #trickle: NodeJS.Timeout | undefined;
  /** Sockets reading against the budget now (joined, not yet left). */
  #members = 0;

  /**
   * @param max bytes held at most before sockets wait (each socket may pass it by one read)
   * @param grain bytes one resumed socket is expected to take (one read at most)
   */
  constructor(
    public max: number,
    readonly grain: number,
  ) {}

  /** Bytes held now. */
  get held(): number {
    return this.#held;
  }

  /** Sockets waiting for room now (some may have stopped waiting: closed, detached). */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** The budget is used up: a socket that holds something waits. */
  get full(): boolean {
    return this.#held >= this.max;
  }

  /**
   * Whether a socket whose stream holds `bytes` should let the others have their turn: the budget is used
   * up, or sockets wait and it holds its even share of the budget or more — so that while the budget is
   * shared, each turn is a share, not a whole stream's high-water mark.
   */
  yields(bytes: number): boolean {
    return (
      this.#held >= this.max || (this.#waiting.length > 0 && bytes * Math.max(1, this.#members) >= this.max)
    );
  }

  /** A socket starts reading against the budget (for its even share). */
  join(): void {
    this.#members++;
  }

  /** A socket stopped reading against the budget for good. */
  leave(): void {
    this.#members--;
  }

  hold(bytes: number): void {
    this.#held += bytes;
  }

  release(bytes: number): void {
    this.#held -= bytes;
    if (this.#held < this.max && this.#waiting.length > 0) this.#scheduleWake();
  }

  /** Queues `waiter`, called when room returns and its turn comes. */
  wait(waiter: HeldReadWaiter): void {
    this.#waiting.push(waiter);
    if (this.#held < this.max) this.#scheduleWake();
    else this.#trickle ??= setInterval(this.#trickleOne, HELD_READ_TRICKLE_MS).unref();
  }

  /** The budget stayed used up: the oldest socket still waiting whose stream holds nothing reads. */
  readonly #trickleOne = (): void => {
    if (this.#waiting.length === 0) {
      clearInterval(this.#trickle);
      this.#trickle = undefined;
      return;
    }
    for (let looked = 0; looked < TRICKLE_SCAN && this.#waiting.length > 0; looked++) {
      if (this.#waiting.shift()!(true)) break;
    }
  };

  #scheduleWake(): void {
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    setImmediate(this.#wake);
  }

  readonly #wake = (): void => {
    this.#wakeScheduled = false;
    let room = this.max - this.#held;
    while (room > 0 && this.#waiting.length > 0) {
      if (this.#waiting.shift()!(false)) room -= this.grain;
    }
  };
}
