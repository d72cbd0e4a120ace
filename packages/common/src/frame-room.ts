/**
 * Room for a frame's headers in front of a payload, so that a DATA frame can be built where its payload
 * was read: the WebSocket frame header (at most 14 bytes, with a client's masking key) and the DATA
 * header (17 bytes) are written into the {@link FRAME_ROOM} bytes before the payload, and the frame
 * leaves in ONE socket write. Node's TLS socket hands a single buffer to OpenSSL as it is, but copies
 * several written together into one new allocation first (docs/benchmarks.md, "One buffer per DATA
 * frame").
 *
 * A reader takes a buffer from a {@link BufferPool} of `FRAME_ROOM + readSize` bytes, marks it with
 * {@link lendFrameRoom}, reads into the view that function returns, and writes (a prefix of) that view
 * to a stream. By marking it the reader lends the frame writer the room AND the payload bytes: the
 * writer may overwrite the room, and a client's writer masks the payload in place (RFC 6455 §5.3), so
 * nothing may read the payload once it is written. The reader takes the buffer back only when the
 * stream's write of it has called back (see `WrittenBuffers`), which a stream on a frame writer does
 * only once the socket wrote the frame.
 */

/** Bytes kept in front of a payload for its frame's headers: 14 (WebSocket, masked) + 17 (DATA), rounded. */
export const FRAME_ROOM = 32;

/** The memory of every buffer marked by {@link lendFrameRoom}. */
const lent = new WeakSet<ArrayBufferLike>();

/**
 * Marks `buffer`, a whole `ArrayBuffer` of its own (`Buffer.allocUnsafeSlow`, or a `BufferPool`'s)
 * longer than {@link FRAME_ROOM}, as lent for framing in place, and returns the view after the room:
 * read into it, and write what was read to the stream as a view that starts where it starts.
 * A buffer that is not a whole `ArrayBuffer` of its own is returned as it is, unmarked.
 */
export function lendFrameRoom(buffer: Buffer): Buffer {
  if (buffer.byteOffset !== 0 || buffer.byteLength !== buffer.buffer.byteLength) return buffer;
  if (buffer.length <= FRAME_ROOM) return buffer;
  lent.add(buffer.buffer);
  return buffer.subarray(FRAME_ROOM);
}

/**
 * The bytes in front of `payload` that a frame writer may use for the frame's headers, and whether it
 * may mask `payload` in place: {@link FRAME_ROOM} for a view that starts right after the room of a
 * buffer marked by {@link lendFrameRoom}, else 0 (any other view, of any other memory: never touched).
 */
export function frameRoom(payload: Uint8Array): number {
  return payload.byteOffset === FRAME_ROOM && lent.has(payload.buffer) ? FRAME_ROOM : 0;
}
