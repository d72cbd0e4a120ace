/**
 * Writes binary WebSocket messages given as a header and payload parts straight to the socket under a
 * `ws` WebSocket, for both ends of a connection: a server's frames go out unmasked, the parts as they
 * are (no copy at all); a client's frames are masked (RFC 6455 §5.3) from the parts into one buffer (one
 * copy: the masking pass itself). `ws.send` of a joined message costs one copy more either way: the join.
 * The writer reads private fields of `ws` (see ws-internals.ts) and declines, writing nothing, whenever
 * ws would not write the message synchronously itself; the caller then uses `ws.send`.
 */
import { randomFillSync } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import { BufferPool, WrittenBuffers } from './buffer-pool.js';
import { nativeBufferUtil } from './bufferutil.js';
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
   * Corks the socket until the next tick, so that every message sent in this tick leaves in one socket
   * write (one run of TLS records, one syscall) instead of one write each. Idempotent within a tick.
   */
  corkForTick(): void;
  /**
   * Writes `header` · payload parts (`payloadLength` bytes in all) as one binary message, byte-identical
   * in layout to what `ws.send` writes (FIN, opcode 2; on a client, a fresh random 4-byte mask), and
   * corks the socket for the tick. `onWritten` runs once the socket has written the frame (or failed).
   * A server's parts are written as they are and must stay unchanged until then; a client's are copied
   * before this returns. Returns false, having written nothing, when ws would not write the message
   * synchronously itself (not open, compression negotiated, a fragmented message or a Blob in progress,
   * its private fields not as expected, a client without `bufferutil`): the caller then uses `ws.send`.
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
/** Random bytes drawn at once for masking keys, as ws does (8 KiB: 2048 keys per draw). */
const RANDOM_POOL_SIZE = 8 * 1024;
/**
 * Masked frames of at least this many bytes are built in buffers the writer reuses (see BufferPool);
 * shorter ones come from Node's shared slab (`Buffer.allocUnsafe` below 4 KiB).
 */
const POOLED_FRAME_MIN_LENGTH = 4 * 1024;
/** Capacity of a reused frame buffer at least: a 32 KiB payload, its DATA header and the frame header. */
const POOLED_FRAME_CAPACITY = 32 * 1024 + 64;
/** Reused frame buffers kept while none is being written, for all client writers of the process (~1 MiB). */
const FRAME_POOL_SIZE = 32;
/** The masked frames' buffers, shared by every client writer (a free one serves any of them). */
const framePool = new BufferPool(POOLED_FRAME_CAPACITY, FRAME_POOL_SIZE);

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

  // Masked frames go out of buffers taken back from the socket's write callbacks (see BufferPool).
  const frames = mask === null ? undefined : new WrittenBuffers(framePool);

  /** A client frame: the header, a fresh key, then `header` · parts masked into one buffer. */
  const maskedFrame = (
    header: Uint8Array,
    payload: readonly Uint8Array[],
    messageLength: number,
    lengthBytes: number,
    frame: Buffer,
  ): Buffer => {
    const dataOffset = 2 + lengthBytes + 4;
    writeFrameHeader(frame, messageLength, lengthBytes, 0x80);
    // A fresh key from a CSPRNG pool for every frame, as ws draws its own (RFC 6455 §5.3).
    if (randomPoolOffset === RANDOM_POOL_SIZE) {
      randomPool ??= Buffer.alloc(RANDOM_POOL_SIZE);
      randomFillSync(randomPool, 0, RANDOM_POOL_SIZE);
      randomPoolOffset = 0;
    }
    const pool = randomPool!;
    const k = dataOffset - 4;
    for (let i = 0; i < 4; i++) frame[k + i] = pool[randomPoolOffset + i]!;
    randomPoolOffset += 4;
    for (let r = 0; r < 4; r++) {
      const key = keys[r]!;
      for (let i = 0; i < 4; i++) key[i] = frame[k + ((r + i) & 3)]!;
    }
    maskPart(header, frame, dataOffset, 0);
    let position = header.length;
    for (const part of payload) {
      maskPart(part, frame, dataOffset + position, position);
      position += part.length;
    }
    return frame;
  };

  return {
    writesData,
    corkForTick,
    writeData(header, payload, payloadLength, onWritten): boolean {
      if (!writesData || ws.readyState !== OPEN || ws.extensions !== '') return false;
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
        return false;
      }
      corkForTick();
      // Straight to the socket, as ws's own `sendFrame` does: ws writes synchronously in this state, so
      // the order with its other frames is kept, and `bufferedAmount` counts the frame through the
      // socket's buffer.
      const messageLength = header.length + payloadLength;
      const lengthBytes = messageLength < 126 ? 0 : messageLength < 65_536 ? 2 : 8;
      if (internals._isServer !== true) {
        const frameLength = 2 + lengthBytes + 4 + messageLength;
        if (frameLength < POOLED_FRAME_MIN_LENGTH || frames === undefined) {
          s.write(
            maskedFrame(header, payload, messageLength, lengthBytes, Buffer.allocUnsafe(frameLength)),
            onWritten,
          );
          return true;
        }
        const frame = maskedFrame(header, payload, messageLength, lengthBytes, framePool.take(frameLength));
        frames.add(frame, onWritten);
        s.write(frameLength === frame.length ? frame : frame.subarray(0, frameLength), frames.written);
        return true;
      }
      // A server frame: its header and `header` in one small buffer, then the parts as they are.
      const head = Buffer.allocUnsafe(2 + lengthBytes + header.length);
      writeFrameHeader(head, messageLength, lengthBytes, 0);
      head.set(header, 2 + lengthBytes);
      const last = payload.length - 1;
      if (last < 0) {
        s.write(head, onWritten);
        return true;
      }
      s.write(head);
      for (let i = 0; i < last; i++) s.write(payload[i]!);
      s.write(payload[last]!, onWritten);
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
