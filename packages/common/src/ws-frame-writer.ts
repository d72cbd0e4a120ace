/**
 * Writes binary WebSocket messages given as a header and payload parts straight to the socket under a
 * `ws` WebSocket, for both ends of a connection, every DATA message as ONE buffer written on its own:
 * Node's TLS socket hands a single buffer to OpenSSL as it is, but copies buffers written together (a
 * frame header and its payload, or several frames) into one new allocation first (docs/benchmarks.md,
 * "One buffer per DATA frame").
 * - A payload read into a buffer with room in front (see frame-room.ts) becomes its frame in place: the
 *   headers go into the room, a client masks the payload where it is (RFC 6455 §5.3). No copy at all.
 * - Otherwise a client masks header and parts into one buffer (one copy: the masking pass itself); a
 *   server writes a one-part payload after a small head written first (no copy), and copies a payload
 *   of several parts into one buffer.
 * DATA is never corked with other messages: it leaves at once, the tick's other messages before it.
 * The writer reads private fields of `ws` (see ws-internals.ts) and declines, writing nothing, whenever
 * ws would not write the message synchronously itself; the caller then uses `ws.send`.
 */
import { randomFillSync } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import { FreeBytes, SizedBufferPools, WrittenBuffers } from './buffer-pool.js';
import { nativeBufferUtil } from './bufferutil.js';
import { frameRoom } from './frame-room.js';
import { checkWsInternals, WS_SENDER_IDLE, wsInternals } from './ws-internals.js';

/** Writes binary messages of an open WebSocket with fewer copies and fewer socket writes. */
export interface WsFrameWriter {
  /**
   * False when {@link WsFrameWriter.writeData} can never write (a client WebSocket without the optional
   * `bufferutil` package: masking in JS would cost more than the copy it saves). Callers then send every
   * message joined, through `ws.send`.
   */
  readonly writesData: boolean;
  /**
   * Corks the socket until the next tick, so that the small messages sent in this tick (grants, control
   * messages) leave in one socket write instead of one write each. Idempotent within a tick. A DATA
   * message written in the tick uncorks first: it never shares a write with other messages.
   */
  corkForTick(): void;
  /**
   * Writes `message` (under {@link SMALL_MESSAGE_MAX} bytes: grants and other control messages) as one
   * binary message, byte-identical to what `ws.send` writes, straight to the socket corked for the tick
   * (see {@link WsFrameWriter.corkForTick}): the tick's small messages leave in one socket write, in the
   * order they and ws's own frames were written. `onWritten` goes to the socket's write as ws would pass
   * it. Returns false, having written nothing, in the cases {@link WsFrameWriter.writeData} declines, and
   * for a larger message (or one of 48 bytes or more on a client without `bufferutil`): the caller then
   * uses `ws.send`. ws's cold `send` path (options, its queue, a frame list per message) costs more than
   * the message (docs/benchmarks.md, "Grants through the frame writer").
   */
  writeMessage(message: Uint8Array, onWritten?: (err?: Error | null) => void): boolean;
  /**
   * Writes `header` · payload parts (`payloadLength` bytes in all) as one binary message, byte-identical
   * to what `ws.send` writes (FIN, opcode 2; on a client, a fresh random 4-byte mask). `onWritten` runs
   * once the socket has written the frame (or failed), never synchronously. Until then the parts must
   * stay as they are; a part lent for framing in place (see frame-room.ts) may have been overwritten
   * (a client's is masked), so nothing may read it again. Returns false, having written nothing, when ws
   * would not write the message synchronously itself (not open, compression negotiated, a fragmented
   * message or a Blob in progress, its private fields not as expected, a client without `bufferutil`):
   * the caller then uses `ws.send`.
   */
  writeData(
    header: Uint8Array,
    payload: readonly Uint8Array[],
    payloadLength: number,
    onWritten: (err?: Error | null) => void,
  ): boolean;
}

/** `bufferutil`'s signature (the native masking ws itself uses when the package is installed). */
type MaskFunction = (
  source: Uint8Array,
  mask: Uint8Array,
  output: Uint8Array,
  offset: number,
  length: number,
) => void;

/** `WebSocket.OPEN` (the WHATWG value `ws` uses). */
const OPEN = 1;
/** Below this many bytes masking runs in JS: the native call costs more than it saves (as in ws). */
const NATIVE_MASK_MIN_LENGTH = 48;
/** Messages at least this long go through `ws.send` rather than {@link WsFrameWriter.writeMessage}. */
export const SMALL_MESSAGE_MAX = 4 * 1024;
/** Random bytes drawn at once for masking keys, as ws does (8 KiB: 2048 keys per draw). */
const RANDOM_POOL_SIZE = 8 * 1024;
/**
 * Frames copied (a client's masked, a server's of several parts) of at least this many bytes are built
 * in buffers the writer reuses (see BufferPool); shorter ones come from Node's shared slab
 * (`Buffer.allocUnsafe` below 4 KiB).
 */
const POOLED_FRAME_MIN_LENGTH = 4 * 1024;
/** Header bytes a copied frame has beyond its DATA payload: the DATA header and the frame header, rounded. */
const FRAME_OVERHEAD = 64;
/**
 * Payload sizes of the reused frame buffers, a half-step apart, up to a 128 KiB payload (the frame size
 * two Nexus ends agree on, docs/protocol.md §1.11): each frame is copied into the smallest that takes it.
 * A larger frame brings its own.
 */
const FRAME_SIZES = [4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128].map((k) => k * 1024);
/** Free bytes each size keeps for good (256 KiB, ~2.75 MiB for all of them). */
const FRAME_POOL_KEEP_BYTES = 256 * 1024;
/**
 * Free bytes the frame buffers keep past that while writers are busy, together (16 MiB): the frames a hub
 * link's socket holds at once come back in waves as it writes, and without it each wave allocated anew
 * (docs/benchmarks.md, "10 000 streams: a bound on what the reads hold"); trimmed back once idle.
 */
const FRAME_POOL_BUSY_BYTES = 16 * 1024 * 1024;
/** The copied frames' buffers, shared by every writer (a free one serves any of them). */
const framePool = new SizedBufferPools(
  FRAME_SIZES,
  FRAME_OVERHEAD,
  FRAME_POOL_KEEP_BYTES,
  new FreeBytes(FRAME_POOL_BUSY_BYTES),
);

const NO_PARTS: readonly Uint8Array[] = [];

let randomPool: Buffer | undefined;
let randomPoolOffset = RANDOM_POOL_SIZE;

/** The optional `bufferutil` package's `mask`, or null when it is not installed or ws is told not to use it. */
function loadNativeMask(): MaskFunction | null {
  return nativeBufferUtil()?.mask ?? null;
}

/** A {@link WsFrameWriter} for `ws`, server or client side (open or not: each call checks). */
export function createWsFrameWriter(ws: WebSocket): WsFrameWriter {
  const internals = wsInternals(ws);
  const mask = internals._isServer === false ? loadNativeMask() : null;
  const writesData = internals._isServer !== false || mask !== null;
  /** Whether ws's private fields have the expected shape; checked once, on the first write. */
  let shapeChecked: boolean | undefined;
  // A client frame's key rotated by 0–3 bytes: a part that starts at message offset p is masked with
  // key[(p + i) & 3], i.e. with rotation p & 3 from its own first byte (RFC 6455 §5.3).
  const keys = [Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(4)] as const;
  let corked: Duplex | undefined;
  const uncork = (): void => {
    const s = corked;
    corked = undefined;
    s?.uncork();
  };
  const corkForTick = (): void => {
    if (corked !== undefined) return;
    const s = internals._socket;
    if (s == null || s.destroyed || !s.writable) return;
    corked = s;
    s.cork();
    process.nextTick(uncork);
  };

  const maskPart = (source: Uint8Array, output: Buffer, offset: number, position: number): void => {
    const length = source.length;
    const key = keys[position & 3]!;
    if (length >= NATIVE_MASK_MIN_LENGTH) {
      mask!(source, key, output, offset, length);
      return;
    }
    for (let i = 0; i < length; i++) output[offset + i] = source[i]! ^ key[i & 3]!;
  };

  // Copied frames go out of buffers taken back from the socket's write callbacks (see BufferPool).
  const frames = new WrittenBuffers(framePool);

  /** A fresh key from a CSPRNG pool for every frame, as ws draws its own (RFC 6455 §5.3), at `frame[k]`. */
  const drawKey = (frame: Buffer, k: number): void => {
    if (randomPoolOffset === RANDOM_POOL_SIZE) {
      randomPool ??= Buffer.alloc(RANDOM_POOL_SIZE);
      randomFillSync(randomPool, 0, RANDOM_POOL_SIZE);
      randomPoolOffset = 0;
    }
    const pool = randomPool!;
    for (let i = 0; i < 4; i++) frame[k + i] = pool[randomPoolOffset + i]!;
    randomPoolOffset += 4;
    for (let r = 0; r < 4; r++) {
      const key = keys[r]!;
      for (let i = 0; i < 4; i++) key[i] = frame[k + ((r + i) & 3)]!;
    }
  };

  /**
   * Frame header (`headLength` bytes, with a client's fresh key), `header` and the parts into `frame`
   * from 0: masked on a client, copied on a server. A part that already sits where it belongs (framed in
   * place) is masked where it is, or left as it is.
   */
  const buildFrame = (
    frame: Buffer,
    header: Uint8Array,
    payload: readonly Uint8Array[],
    messageLength: number,
    lengthBytes: number,
    masked: boolean,
  ): void => {
    const dataOffset = 2 + lengthBytes + (masked ? 4 : 0);
    writeFrameHeader(frame, messageLength, lengthBytes, masked ? 0x80 : 0);
    if (!masked) {
      frame.set(header, dataOffset);
      let position = dataOffset + header.length;
      for (const part of payload) {
        if (part.buffer !== frame.buffer || part.byteOffset !== frame.byteOffset + position) {
          frame.set(part, position);
        }
        position += part.length;
      }
      return;
    }
    drawKey(frame, dataOffset - 4);
    maskPart(header, frame, dataOffset, 0);
    let position = header.length;
    for (const part of payload) {
      maskPart(part, frame, dataOffset + position, position);
      position += part.length;
    }
  };

  /**
   * The socket, when ws would write a message to it synchronously itself (open, no compression, its
   * sender idle and not in a fragmented message, its private fields as expected); otherwise undefined.
   */
  const writableSocket = (): Duplex | undefined => {
    if (ws.readyState !== OPEN || ws.extensions !== '') return undefined;
    if (shapeChecked === undefined) shapeChecked = checkWsInternals(ws) === undefined;
    const s = internals._socket;
    const sender = internals._sender;
    if (
      !shapeChecked ||
      s == null ||
      sender == null ||
      sender._state !== WS_SENDER_IDLE ||
      sender._firstFragment !== true
    ) {
      return undefined;
    }
    return s;
  };

  return {
    writesData,
    corkForTick,
    writeMessage(message, onWritten): boolean {
      const messageLength = message.length;
      const masked = internals._isServer !== true;
      if (
        messageLength >= SMALL_MESSAGE_MAX ||
        (masked && mask === null && messageLength >= NATIVE_MASK_MIN_LENGTH)
      ) {
        return false;
      }
      const s = writableSocket();
      if (s === undefined) return false;
      if (corked !== s) corkForTick();
      const lengthBytes = messageLength < 126 ? 0 : 2;
      const frame = Buffer.allocUnsafe(2 + lengthBytes + (masked ? 4 : 0) + messageLength);
      buildFrame(frame, message, NO_PARTS, messageLength, lengthBytes, masked);
      // Straight to the socket, as ws's own `sendFrame` does (see writeData).
      s.write(frame, onWritten);
      return true;
    },
    writeData(header, payload, payloadLength, onWritten): boolean {
      if (!writesData) return false;
      const s = writableSocket();
      if (s === undefined) return false;
      // The tick's other messages leave first, in a write of their own: this frame must not join them.
      if (corked === s) uncork();
      // Straight to the socket, as ws's own `sendFrame` does: ws writes synchronously in this state, so
      // the order with its other frames is kept, and `bufferedAmount` counts the frame through the
      // socket's buffer.
      const masked = internals._isServer !== true;
      const messageLength = header.length + payloadLength;
      const lengthBytes = messageLength < 126 ? 0 : messageLength < 65_536 ? 2 : 8;
      const headLength = 2 + lengthBytes + (masked ? 4 : 0);
      const frameLength = headLength + messageLength;
      const first = payload[0];
      if (payload.length === 1 && frameRoom(first!) >= headLength + header.length) {
        // Framed in place: the headers go into the room the reader left in front of the payload.
        const frame = Buffer.from(first!.buffer, first!.byteOffset - headLength - header.length, frameLength);
        buildFrame(frame, header, payload, messageLength, lengthBytes, masked);
        s.write(frame, onWritten);
        return true;
      }
      if (!masked && payload.length === 1) {
        // One part: a small head, then the part as it is, each a write of its own (no copy).
        const head = Buffer.allocUnsafe(headLength + header.length);
        writeFrameHeader(head, messageLength, lengthBytes, 0);
        head.set(header, headLength);
        s.write(head);
        s.write(first!, onWritten);
        return true;
      }
      if (frameLength < POOLED_FRAME_MIN_LENGTH) {
        const frame = Buffer.allocUnsafe(frameLength);
        buildFrame(frame, header, payload, messageLength, lengthBytes, masked);
        s.write(frame, onWritten);
        return true;
      }
      const pooled = framePool.take(frameLength);
      buildFrame(pooled, header, payload, messageLength, lengthBytes, masked);
      frames.add(pooled, onWritten);
      s.write(frameLength === pooled.length ? pooled : pooled.subarray(0, frameLength), frames.written);
      return true;
    },
  };
}

/**
 * The first 2 + `lengthBytes` bytes of a final binary frame (RFC 6455 §5.2): FIN · opcode 2, then the
 * 7-bit length, or 126 + 16-bit, or 127 + 64-bit; `maskBit` is 0x80 on a client's frames.
 */
function writeFrameHeader(out: Buffer, messageLength: number, lengthBytes: number, maskBit: number): void {
  out[0] = 0x82;
  if (lengthBytes === 0) {
    out[1] = maskBit | messageLength;
  } else if (lengthBytes === 2) {
    out[1] = maskBit | 126;
    out.writeUInt16BE(messageLength, 2);
  } else {
    out[1] = maskBit | 127;
    out.writeUInt32BE(0, 2);
    out.writeUInt32BE(messageLength, 6);
  }
}
