/**
 * Reads of an accepted end-user socket sized as DATA frames: during a burst, each read goes into a buffer
 * of {@link FRAME_READ_SIZE} bytes (one 128 KiB frame between two Nexus ends, docs/protocol.md §1.11) with
 * room for the frame's headers in front (see `lendFrameRoom` in `@nexus-proxy/common`), so that one read
 * becomes one frame, written to the hub link in one TLS write without a copy. Node's own reads are 64 KiB
 * each: a 128 KiB frame then spans two reads and is copied into one buffer, and a frame of one read goes
 * out as a small head and the read, two TLS writes and two socket writes (docs/benchmarks.md, "Uploads:
 * the node and the backend client against the floor").
 *
 * Node offers `onread` (reads into buffers of the caller's) only to sockets it dials, not to the sockets a
 * `net.Server` accepts; {@link readInFrames} installs the same mechanism on an accepted socket through
 * `net.Socket`'s private fields, checking their shape first and leaving the socket as it is when they are
 * not what it expects. What is read is pushed to the socket's readable side as Node would push its own
 * reads: `'data'`, `pipe`, `pause`, backpressure and the end are unchanged for the socket's consumers.
 *
 * Between bursts a socket reads into one buffer shared by every socket and the bytes are copied out at once,
 * as Node's own reads are, so that a quiet socket holds no buffer of its own (the memory per idle stream);
 * a socket in a burst holds one until its next read, at most {@link FRAME_BUFFERS_MAX} in the process, and
 * none while its consumer does not take what it reads (the policy: `BurstReads` in `@nexus-proxy/common`).
 * A node installs it when it accepts the socket, and sizes every read by what its streams hold of uploads
 * (`UploadBudget` in `relay-uploads.ts`): whole frames while there is room, 16 KiB once there is none.
 */
import type { Socket } from 'node:net';
import {
  BufferPool,
  type BufferReturn,
  BurstReads,
  FRAME_ROOM,
  lendFrameRoom,
  ReadBufferBudget,
} from '@nexus-proxy/common';
import { countReceivedBytes } from '@nexus-proxy/common/relay-heap';

/**
 * Bytes a socket reads at most at once during a burst: one DATA frame of the size two Nexus ends agree on
 * (128 KiB), less the frame's headers toward a backend (WebSocket 10 bytes, DATA 17), so that the whole
 * frame fills eight 16 KiB TLS records exactly. The backend client relays a frame as the plaintext of each
 * record it reads (see `takeBinaryMessagesAsViews` in `@nexus-proxy/common`): a frame that spilled 27 bytes
 * into a ninth record would cost it one more, tiny, write to its local socket per frame.
 */
export const FRAME_READ_SIZE = 128 * 1024 - 27;
/** Bytes a socket reads at most at once between bursts, into the shared buffer: Node's own read size. */
export const SHARED_READ_SIZE = 64 * 1024;
/** A read of at least this many bytes starts (or continues) a burst: the next read gets a buffer of its own. */
export const BURST_MIN_READ = SHARED_READ_SIZE / 2;
/**
 * Buffers of their own that sockets of the process hold at once for their next read (8 MiB): a socket holds
 * its buffer until that read comes, however long it waits (a stalled stream, an end user that went quiet).
 * Past the bound, a burst's reads land in the shared buffer and are copied into a frame buffer, as the
 * first read of every burst is.
 */
export const FRAME_BUFFERS_MAX = 64;

/** The bound on frame buffers installed for next reads, and the buffer every other socket reads into. */
const budget = new ReadBufferBudget(FRAME_BUFFERS_MAX, SHARED_READ_SIZE);

/** Buffers of their own that sockets hold for their next read now (for tests and metrics). */
export function installedFrameBuffers(): number {
  return budget.installed;
}

/** What {@link readInFrames} needs of `net.Socket`'s private state. */
interface SocketInternals {
  kBuffer: symbol;
  kBufferGen: symbol;
  kBufferCb: symbol;
}

/** The private symbols of `net.Socket`'s `onread`, found once by their descriptions (null: not found). */
let internals: SocketInternals | null | undefined;

function findInternals(socket: Socket): SocketInternals | null {
  const found = new Map<string, symbol>();
  for (const s of Object.getOwnPropertySymbols(socket)) {
    if (s.description !== undefined) found.set(s.description, s);
  }
  const kBuffer = found.get('kBuffer');
  const kBufferGen = found.get('kBufferGen');
  const kBufferCb = found.get('kBufferCb');
  if (kBuffer === undefined || kBufferGen === undefined || kBufferCb === undefined) return null;
  return { kBuffer, kBufferGen, kBufferCb };
}

/**
 * Free frame buffers kept for good: a socket in a burst reads into one while the frame of its last read is
 * written. More are kept while busy, up to {@link FRAME_BUFFERS_MAX} (8 MiB), and given back to the
 * collector once idle (`BufferPool`).
 */
const FRAME_POOL_KEEP = 2;

/**
 * The frame buffers reads go into ({@link FRAME_ROOM} + {@link FRAME_READ_SIZE} bytes), taken back once
 * what was read into them has been written onward ({@link frameReadReturn}): a relay under load then
 * allocates no buffer per read, and reads into memory the last frame just left, still in the cache.
 */
const framePool = new BufferPool(FRAME_ROOM + FRAME_READ_SIZE, FRAME_POOL_KEEP, {
  maxFree: FRAME_BUFFERS_MAX,
});

/**
 * The memory of each frame buffer handed out and not taken back: a chunk comes back once at most, and
 * only a chunk read into one of them. A set, not a map to the whole buffer: a young buffer that never
 * comes back (its relay ended first) must die in a scavenge, and V8's scavenges keep a weak map's values
 * alive (they then waited for a mark-compact: 73 of them per 384 MB uploaded when none came back).
 */
const handedOut = new WeakSet<ArrayBufferLike>();

/** A buffer of `size` bytes (at most {@link FRAME_READ_SIZE}) after {@link FRAME_ROOM} bytes lent for framing in place. */
function frameBuffer(size: number): Buffer {
  const reused = framePool.free > 0;
  const whole = framePool.take();
  // New memory outside the JS heap: counted toward the relay heap's scavenges (relay-heap).
  if (!reused) countReceivedBytes(whole.length);
  handedOut.add(whole.buffer);
  const view = lendFrameRoom(whole);
  return size < view.length ? view.subarray(0, size) : view;
}

/**
 * Where a chunk that a socket read in frames goes back once its write has called back (a `BufferReturn`
 * for `WrittenBuffers` in `@nexus-proxy/common`): nothing may read or keep it then, as with any buffer a
 * writer reuses. Chunks of any other memory are left alone.
 */
export const frameReadReturn: BufferReturn = {
  give(chunk: Buffer): void {
    const memory = chunk.buffer;
    if (chunk.byteOffset !== FRAME_ROOM || !handedOut.has(memory)) return;
    handedOut.delete(memory);
    framePool.give(Buffer.from(memory, 0, memory.byteLength));
  },
};

/**
 * Keeps the memory of `chunk` out of the pool for good (a sniffed prelude, which its owner may keep and
 * write again): {@link frameReadReturn} will not take it back.
 */
export function keepFrameRead(chunk: Uint8Array): void {
  handedOut.delete(chunk.buffer);
}

/** Free frame buffers the pool holds now (for tests). */
export function freeFrameBuffers(): number {
  return framePool.free;
}

/**
 * Reads `socket` (an accepted TCP socket, not TLS) in frame-sized buffers from now on; returns false,
 * having changed nothing, when the socket is not one Node reads with a handle of its own, already reads into
 * buffers of the caller's, or `net.Socket`'s private fields are not as expected. The socket's consumer must
 * not read what a chunk held once it was written onward: a frame writer may have framed it in place.
 * `readSize`, when given, says how many bytes the socket may read at once from now on (at most
 * {@link FRAME_READ_SIZE}; asked before each read): the node's upload budget (`UploadBudget`).
 */
export function readInFrames(socket: Socket, readSize?: () => number): boolean {
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: unknown } | null })._handle;
  if (handle == null || typeof handle.useUserBuffer !== 'function') return false;
  if ((socket as { encrypted?: unknown }).encrypted !== undefined || socket.destroyed) return false;
  if (internals === undefined) internals = findInternals(socket);
  const k = internals;
  if (k === null) return false;
  const fields = socket as unknown as Record<symbol, unknown>;
  if (fields[k.kBuffer] !== null || fields[k.kBufferGen] !== null || fields[k.kBufferCb] !== null)
    return false;

  const burst = new BurstReads(budget, BURST_MIN_READ);
  /** The socket's own buffer installed for its next read (during a burst), else undefined. */
  let own: Buffer | undefined;
  /** The consumer took the last read: false stops the reads until it resumes the socket. */
  let taken = true;
  const next = (): Buffer => {
    const size = readSize === undefined ? FRAME_READ_SIZE : Math.min(readSize(), FRAME_READ_SIZE);
    // A socket whose reads stopped holds no buffer of its own while it waits.
    own = burst.ownNext(taken && !socket.destroyed) ? frameBuffer(size) : undefined;
    if (own !== undefined) return own;
    const landing = budget.landing();
    return size < landing.length ? landing.subarray(0, size) : landing;
  };
  const read = (bytes: number, buffer: Uint8Array): boolean => {
    const chunk = own;
    own = undefined;
    const bursting = burst.read(bytes);
    let out: Buffer;
    if (chunk !== undefined && buffer === chunk) {
      out = bytes === chunk.length ? chunk : chunk.subarray(0, bytes);
    } else {
      // The socket's own buffer, if it had one, was not read into: back to the pool.
      if (chunk !== undefined) frameReadReturn.give(chunk);
      if (bursting) {
        // A large read landed in the shared buffer (the first of a burst, or past the bound): into a frame
        // buffer, framed in place.
        out = frameBuffer(bytes);
        out.set(buffer.subarray(0, bytes));
      } else {
        out = Buffer.from(buffer.subarray(0, bytes));
        // A buffer of its own outside the JS heap, as the hub links' TLS reads are: counted, so that a
        // tuned relay frees them with scavenges, not mark-compacts (relay-heap in @nexus-proxy/common).
        countReceivedBytes(bytes);
      }
    }
    // As Node's own reads: false stops reading until the consumer resumes the socket.
    taken = socket.push(out);
    return taken;
  };
  const release = (): void => {
    own = undefined;
    burst.release();
  };
  socket.once('end', release);
  socket.once('close', release);
  fields[k.kBufferGen] = next;
  fields[k.kBufferCb] = read;
  const first = next();
  fields[k.kBuffer] = first;
  (handle.useUserBuffer as (buffer: Uint8Array) => void).call(handle, first);
  return true;
}
