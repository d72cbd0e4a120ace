import type { OnReadOpts, Socket } from 'node:net';
import type { Writable } from 'node:stream';
import {
  type BufferPool,
  BurstReads,
  FRAME_ROOM,
  FreeBytes,
  HeldReadBudget,
  lendFrameRoom,
  ReadBufferBudget,
  SizedBufferPools,
  WrittenBuffers,
} from '@nexus-proxy/common';

/** Bytes a local socket reads at most at once between bursts: Node's own read size. */
export const LOCAL_READ_SIZE = 64 * 1024;
/**
 * Bytes a local socket reads at most at once into a chunk of its own during a burst: one DATA frame of
 * the size two Nexus ends agree on (docs/protocol.md §1.11), so that each read becomes one frame.
 */
export const CHUNK_READ_SIZE = 128 * 1024;
/**
 * Reads of at least this many bytes go to the stream in a reused chunk; shorter ones in a buffer of
 * their own (a stream holding many small reads while it waits for credits never holds a chunk for each).
 */
export const REUSED_CHUNK_MIN_READ = LOCAL_READ_SIZE / 2;
/**
 * A read into a chunk of its own that brings at most this many bytes is copied into a buffer of its size,
 * and the chunk is read into again: a stream holds the memory of what it carries, not a whole chunk per
 * read. The stream's high-water mark counts bytes, so with reads of half a chunk or less a stream waiting
 * for credits held two to four times its mark in chunks (10 000 streams: 5.7 GiB outside the JS heap,
 * docs/benchmarks.md, "10 000 streams: where the backend's CPU goes").
 */
export const SHORT_READ_MAX = CHUNK_READ_SIZE / 2;
/** Free bytes each size of read buffer keeps while nothing is relayed (512 KiB, 4.5 MiB for all nine). */
const POOL_KEEP_BYTES = 512 * 1024;
/**
 * Chunks that local sockets of the process hold installed for their next read at once (8 MiB): a socket
 * holds its chunk until that read comes, however long it waits (a stream without credit, a quiet
 * service); 10 000 sockets in a burst held 1.25 GiB so (docs/benchmarks.md, "10 000 streams: where the
 * backend's CPU goes"). Past the bound a burst's reads land in the shared buffer and are copied out, as
 * the first read of every burst is. The same bound as the node's end-user sockets (`FRAME_BUFFERS_MAX`).
 */
export const INSTALLED_CHUNKS_MAX = 64;

/**
 * Memory that the process's local sockets hold in writes to their streams not yet called back, at most,
 * before a socket stops reading after its read and waits its turn (128 MiB, half of a node's default receive
 * budget, `DEFAULT_MAX_BUFFERED_BYTES`): what lets
 * 10 000 streams waiting for credit hold a bounded amount instead of their high-water marks, 2.5 GB
 * (docs/benchmarks.md, "10 000 streams: a bound on what the reads hold"). Streams whose readers stopped
 * reading can fill it, but not stop the others: see `HeldReadBudget`'s trickle.
 */
export const HELD_BYTES_MAX = 128 * 1024 * 1024;

/**
 * Free bytes the read buffers' pools keep past their floors while reads are busy, together (64 MiB, half
 * of {@link HELD_BYTES_MAX}): streams that take their turns in waves give back and take again that much,
 * and without it each wave allocated anew (docs/benchmarks.md, "10 000 streams: a bound on what the reads
 * hold"). Trimmed back to the floors once idle (`BufferPool`).
 */
const freeWhileBusy = new FreeBytes(HELD_BYTES_MAX / 2);

/**
 * The read buffers of every relayed local socket of the process, each with room for its frame's headers in
 * front (see `lendFrameRoom` in `@nexus-proxy/common`), in sizes a half-step apart: chunks of
 * {@link CHUNK_READ_SIZE} that sockets read into during a burst, and the smaller ones that a read is copied
 * into (one that landed in the shared buffer, or a short read into a chunk), the smallest that takes it, so
 * that what a stream holds is at most 1.5 times what it carries. What a socket reads into one becomes its
 * DATA frame in place, written to the hub in one socket write; a relay under load allocates nothing new per
 * read (each `ArrayBuffer` is memory outside the JS heap that only a full collection returns). Reads under
 * {@link COPY_MIN_READ} go to Node's shared slab instead.
 */
const readBuffers = new SizedBufferPools(
  [8, 12, 16, 24, 32, 48, 64, 96, 128].map((k) => k * 1024),
  FRAME_ROOM,
  POOL_KEEP_BYTES,
  freeWhileBusy,
);
/** The pool of the chunks sockets read into during a burst. */
const chunks = readBuffers.poolFor(FRAME_ROOM + CHUNK_READ_SIZE)!;
/** Reads shorter than this are copied with `Buffer.from` (Node's 8 KiB slabs below 4 KiB). */
const COPY_MIN_READ = 4 * 1024;

/** The pool of the smallest read buffer that takes `bytes`, or undefined below COPY_MIN_READ. */
function copyPool(bytes: number): BufferPool | undefined {
  return bytes < COPY_MIN_READ ? undefined : readBuffers.poolFor(FRAME_ROOM + bytes);
}

/**
 * The bound on chunks installed for next reads, and the buffer every other local socket reads into (between
 * bursts, or past the bound); what a read brings there is copied out at once. It takes a whole chunk's read,
 * so that a socket past the bound still reads as much at once as one with a chunk of its own.
 */
const budget = new ReadBufferBudget(INSTALLED_CHUNKS_MAX, CHUNK_READ_SIZE);
/**
 * Bytes of the shared buffer a socket reads into after a read that did not fill its buffer (and first):
 * it is likely to go quiet then, and a quiet socket's next read may come once the reads hold their bound,
 * so 10 000 quiet sockets may each bring this much past it (40 MiB), not a whole chunk (1.25 GB).
 */
export const SMALL_LANDING_SIZE = 4 * 1024;
const smallLanding = Buffer.allocUnsafeSlow(SMALL_LANDING_SIZE);

/** The bound on what the reads hold in streams (see {@link HELD_BYTES_MAX}). */
const held = new HeldReadBudget(HELD_BYTES_MAX, FRAME_ROOM + CHUNK_READ_SIZE);

/** Chunks that local sockets hold installed for their next read now (for tests and metrics). */
export function installedChunks(): number {
  return budget.installed;
}

/** Bytes the reads of local sockets hold in streams now, and sockets waiting for room (for tests and metrics). */
export function heldReads(): { bytes: number; waiting: number; max: number } {
  return { bytes: held.held, waiting: held.waiting, max: held.max };
}

/** Sets the bound on what reads hold in streams (tests; an embedding with other memory to spare). */
export function setHeldReadsMax(bytes: number): void {
  held.max = bytes;
}

/**
 * The local → hub direction of one relayed local socket, read with `net.Socket`'s `onread` instead of
 * `'data'` events, so that relaying allocates no new buffer per read: Node's own reads allocate a 64 KiB
 * `ArrayBuffer` each, memory outside the JS heap that costs a relay mark-compacts (see `BufferPool` in
 * `@nexus-proxy/common`, and docs/benchmarks.md, "The backend client's download").
 *
 * During a burst of large reads ({@link REUSED_CHUNK_MIN_READ} or more) the socket reads straight into a
 * chunk of its own, which goes to the stream as it is and back to a process-wide pool when the stream's
 * write of it completes (a writer may reuse its buffer then, as with any socket). The chunk is lent for
 * framing in place: the hub link's frame writer puts the headers in front of the payload and masks it
 * where it is, so nothing reads a chunk once it was written. Between bursts it reads
 * into one buffer shared by every socket, and what a read brings is copied out at once: a quiet socket
 * holds no memory of its own. At most {@link INSTALLED_CHUNKS_MAX} sockets of the process hold a chunk
 * installed for their next read; past that, a burst's reads land in the shared buffer too (the policy:
 * `BurstReads` in `@nexus-proxy/common`, shared with the node's end-user sockets).
 *
 * Pass {@link LocalReads.onread} when creating the socket, which must start paused (`socket.pause()`
 * before it connects); {@link LocalReads.attach} then forwards what it reads to a stream, like
 * `socket.pipe(stream)`: backpressure (the socket is not read while the stream is full), and the
 * socket's end ends the stream.
 */
export class LocalReads {
  #socket: Socket | undefined;
  #target: Writable | undefined;
  #onBytes: ((bytes: number) => void) | undefined;
  /** Reads stopped because the stream was full; resumed on its `'drain'`. */
  #waitingForDrain = false;
  /** Reads stopped because the process's reads hold {@link HELD_BYTES_MAX}; resumed in turn. */
  #waitingForRoom = false;
  /**
   * The buffers written to the stream and not yet called back, counted in {@link held}, each given back
   * to its pool when its write calls back (a copy under {@link COPY_MIN_READ} has none: it is dropped).
   */
  readonly #written = new WrittenBuffers(readBuffers, held);
  /** The chunk the socket reads into next (its payload area, after the frame room), or undefined. */
  #installed: Buffer | undefined;
  /** The whole pooled buffer of {@link #installed}. */
  #installedBuffer: Buffer | undefined;
  /** Whether the next read goes into a chunk of its own, within the process-wide bound. */
  readonly #burst = new BurstReads(budget, REUSED_CHUNK_MIN_READ);
  /** The last read filled the buffer it came into (the socket had more). */
  #filled = false;
  /** Counted among the sockets that share {@link held} (from attach until the socket or stream is gone). */
  #joined = false;

  /** The `onread` option of the socket these reads are for. */
  readonly onread: OnReadOpts = {
    buffer: () => this.#nextBuffer(),
    callback: (bytes: number, buffer: Uint8Array): boolean => this.#read(bytes, buffer),
  };

  /**
   * Forwards what `socket` reads to `target` from now on (resuming the socket), counting the bytes with
   * `onBytes`; `socket`'s end ends `target`.
   */
  attach(socket: Socket, target: Writable, onBytes?: (bytes: number) => void): void {
    this.#socket = socket;
    this.#target = target;
    this.#onBytes = onBytes;
    target.on('drain', this.#drained);
    socket.once('end', this.#ended);
    // The chunk installed for the next read is no longer counted once no read can come into it.
    socket.once('end', this.#release);
    socket.once('close', this.#release);
    socket.once('close', this.#settle);
    target.once('close', this.#settle);
    held.join();
    this.#joined = true;
    // Not in turn: the first read lands in the small landing (SMALL_LANDING_SIZE), so a new stream's first
    // bytes (a request's answer) do not wait behind every socket that waits for room, and 10 000 streams
    // attached at once bring 4 KiB each past the bound. One that has more then waits its turn.
    socket.resume();
  }

  /**
   * Stops forwarding, as `unpipe` would: the socket is paused; if it is resumed later (to let it reach
   * its end), what it reads is discarded.
   */
  detach(): void {
    const target = this.#target;
    if (target === undefined) return;
    this.#target = undefined;
    this.#waitingForRoom = false;
    target.off('drain', this.#drained);
    this.#socket?.off('end', this.#ended);
    this.#socket?.pause();
  }

  /**
   * Node asks for the buffer of the socket's next read after every read, also after one that stopped the
   * reads: a socket waiting for its stream's drain gets the shared buffer then, and holds no chunk while
   * it waits.
   */
  #nextBuffer(): Buffer {
    const may =
      !this.#waitingForDrain &&
      !this.#waitingForRoom &&
      !this.#written.failed &&
      this.#socket?.destroyed === false;
    if (this.#burst.ownNext(may)) {
      const whole = chunks.take();
      this.#installedBuffer = whole;
      this.#installed = lendFrameRoom(whole);
      return this.#installed;
    }
    this.#installed = undefined;
    this.#installedBuffer = undefined;
    // A socket that stops here (its stream is full, or it waits for room) reads again only when let: on its
    // turn, when the stream drains with room in the bound, or in the trickle's turn. Its next read is one
    // the bound admits, so it may be a whole landing: a turn is then one read of up to a frame, not a small
    // read and a frame (each a DATA frame of its own; docs/benchmarks.md, "1 000 streams: whole reads
    // after a turn, and pools that keep the size in use").
    if (this.#waitingForRoom || this.#waitingForDrain) return budget.landing();
    // A read that filled its buffer is followed by more: the whole landing buffer, while there is room.
    // Else the socket is likely to go quiet with this buffer installed, and whatever it reads next, maybe
    // once the reads hold their bound, is one small read ({@link SMALL_LANDING_SIZE}).
    return this.#filled && !held.full ? budget.landing() : smallLanding;
  }

  #read(bytes: number, buffer: Uint8Array): boolean {
    // Read into a chunk of the socket's own (`buffer` is that chunk) or into a shared buffer.
    this.#filled = bytes === buffer.length;
    const chunk = this.#installed;
    const whole = this.#installedBuffer;
    this.#installed = undefined;
    this.#installedBuffer = undefined;
    const target = this.#target;
    if (target === undefined || target.destroyed || target.writableEnded) {
      if (whole !== undefined) chunks.give(whole);
      this.#burst.read(0);
      return true; // discarded
    }
    this.#onBytes?.(bytes);
    this.#burst.read(bytes);
    const written = this.#written;
    const heldBefore = written.bytes;
    let ok: boolean;
    if (chunk !== undefined && whole !== undefined && bytes > SHORT_READ_MAX && !written.failed) {
      // A large read into a chunk of its own: the chunk goes to the stream as it is.
      written.add(whole);
      ok = target.write(bytes === chunk.length ? chunk : chunk.subarray(0, bytes), written.written);
    } else {
      // Landed in the shared buffer, or a short read into a chunk: copied into the smallest reused buffer
      // that takes it (the chunk goes back for the next read).
      const pool = written.failed ? undefined : copyPool(bytes);
      let out: Buffer;
      if (pool === undefined) {
        out = Buffer.from(buffer.subarray(0, bytes));
        written.add(out);
      } else {
        const pooled = pool.take();
        out = lendFrameRoom(pooled).subarray(0, bytes);
        out.set(buffer.subarray(0, bytes));
        written.add(pooled);
      }
      if (whole !== undefined) chunks.give(whole);
      ok = target.write(out, written.written);
    }
    if (!ok) {
      this.#waitingForDrain = true;
      return false; // Node stops reading the socket until it is resumed
    }
    // A quiet socket's short read (into the small landing, SMALL_LANDING_SIZE, after a short read or as its
    // first) into a stream that held nothing: likely a message of an exchange (a request's answer), not a
    // bulk transfer. It goes on reading instead of queueing behind every socket that waits for room: its
    // next message would wait a whole turn of that queue (at 1 000 bulk streams, hundreds of ms;
    // docs/benchmarks.md, "An exchange among 1 000 bulk streams"). Past the bound by this one small read,
    // as a resumed socket is. A bulk socket's turn ends as before: its reads land in whole buffers.
    if (!this.#filled && heldBefore === 0 && buffer === smallLanding) return true;
    if (held.yields(written.bytes)) {
      this.#waitForRoom();
      return false;
    }
    return true;
  }

  /** Resumes the socket now if the process's reads have room and no socket waits for it, else in turn. */
  #resumeInTurn(): void {
    if (held.full || held.waiting > 0) this.#waitForRoom();
    else this.#socket?.resume();
  }

  #waitForRoom(): void {
    if (this.#waitingForRoom) return;
    this.#waitingForRoom = true;
    held.wait(this.#wake);
  }

  /**
   * Its turn came: resumes the socket, unless it no longer waits (detached, closed). The trickle's turn
   * (the budget still used up) is for a socket whose stream sent everything it read; one whose stream
   * still holds something queues again.
   */
  readonly #wake = (trickle: boolean): boolean => {
    if (!this.#waitingForRoom) return false;
    if (trickle && this.#written.bytes > 0) {
      held.wait(this.#wake);
      return false;
    }
    this.#waitingForRoom = false;
    const socket = this.#socket;
    if (this.#target === undefined || socket === undefined || socket.destroyed) return false;
    if (this.#waitingForDrain) return false; // resumed by the drain
    socket.resume();
    return true;
  };

  /** No read comes any more (the socket's end or close): the installed chunk leaves the bound's count. */
  readonly #release = (): void => {
    this.#installed = undefined;
    this.#installedBuffer = undefined;
    this.#burst.release();
  };

  /** The socket or the stream is gone: what its writes hold leaves the count of {@link held}. */
  readonly #settle = (): void => {
    this.#waitingForRoom = false;
    this.#written.settle();
    if (this.#joined) {
      this.#joined = false;
      held.leave();
    }
  };

  readonly #drained = (): void => {
    if (!this.#waitingForDrain) return;
    this.#waitingForDrain = false;
    this.#resumeInTurn();
  };

  readonly #ended = (): void => {
    const target = this.#target;
    this.detach();
    if (target !== undefined && !target.writableEnded) target.end();
  };
}
