import { randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';

/**
 * @internal Writes a WebSocket client's binary messages given as a header and payload parts, with one
 * copy per message: the masking pass itself (RFC 6455 §5.3: every client frame is masked, so a client
 * cannot write the caller's buffers as they are). `ws.send` of a joined message costs two copies: the
 * join, then ws's masked copy of it.
 */
export interface MaskedFrameWriter {
  /**
   * Corks the socket until the next tick, so that every message sent in this tick leaves in one socket
   * write (one run of TLS records) instead of one write each. Idempotent within a tick.
   */
  corkForTick(): void;
  /**
   * Writes `header` · payload parts (`payloadLength` bytes in all) as one binary message, byte-identical
   * in layout to `ws.send` (FIN, opcode 2, a fresh random 4-byte mask). The parts are read synchronously
   * and not kept. `onSocketWritten` runs once the socket has written the frame (or failed), as a
   * `ws.send` callback would. Returns false, having written nothing, when ws would not write the message
   * synchronously itself (not open, not a client, an extension negotiated, ws holding messages in a
   * queue): the caller then uses `ws.send`.
   */
  writeData(
    header: Uint8Array,
    payload: readonly Uint8Array[],
    payloadLength: number,
    onSocketWritten: (err?: Error | null) => void,
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

/** Below this many bytes masking runs in JS: the native call costs more than it saves (as in ws). */
const NATIVE_MASK_MIN_LENGTH = 48;
/** Random bytes drawn at once for masking keys, as ws does (8 KiB: 2048 keys per draw). */
const RANDOM_POOL_SIZE = 8 * 1024;
/** ws `Sender` state in which it writes each message synchronously (no compression, no queue). */
const SENDER_IDLE = 0;

let randomPool: Buffer | undefined;
let randomPoolOffset = RANDOM_POOL_SIZE;
let nativeMask: MaskFunction | null | undefined;

/** The optional `bufferutil` package's `mask`, or null when it is not installed or ws is told not to use it. */
function loadNativeMask(): MaskFunction | null {
  if (nativeMask !== undefined) return nativeMask;
  nativeMask = null;
  if (process.env.WS_NO_BUFFER_UTIL) return nativeMask;
  try {
    const require = createRequire(typeof __filename === 'string' ? __filename : import.meta.url);
    const mod = require('bufferutil') as { mask?: unknown };
    if (typeof mod.mask === 'function') nativeMask = mod.mask as MaskFunction;
  } catch {
    // Optional dependency not installed: `ws.send` does the masking.
  }
  return nativeMask;
}

/**
 * @internal A {@link MaskedFrameWriter} for the client WebSocket `ws`, or undefined when `bufferutil`
 * is not available (masking in JS would cost more than the copy it saves).
 */
export function createMaskedFrameWriter(ws: WebSocket): MaskedFrameWriter | undefined {
  const mask = loadNativeMask();
  if (mask === null) return undefined;
  const internals = ws as unknown as WsInternals;
  // The frame's key rotated by 0–3 bytes: a part that starts at message offset p is masked with
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
      mask(source, key, output, offset, length);
      return;
    }
    for (let i = 0; i < length; i++) output[offset + i] = source[i]! ^ key[i & 3]!;
  };

  return {
    corkForTick,
    writeData(header, payload, payloadLength, onSocketWritten): boolean {
      const s = internals._socket;
      const sender = internals._sender;
      if (
        ws.readyState !== WebSocket.OPEN ||
        internals._isServer !== false ||
        s == null ||
        sender == null ||
        sender._state !== SENDER_IDLE ||
        sender._firstFragment !== true ||
        ws.extensions !== ''
      ) {
        return false;
      }
      const messageLength = header.length + payloadLength;
      // RFC 6455 §5.2: 7-bit length, or 126 + 16-bit, or 127 + 64-bit; then the 4-byte masking key.
      const lengthBytes = messageLength < 126 ? 0 : messageLength < 65_536 ? 2 : 8;
      const dataOffset = 2 + lengthBytes + 4;
      const frame = Buffer.allocUnsafe(dataOffset + messageLength);
      frame[0] = 0x82; // FIN · binary
      if (lengthBytes === 0) {
        frame[1] = 0x80 | messageLength;
      } else if (lengthBytes === 2) {
        frame[1] = 0x80 | 126;
        frame.writeUInt16BE(messageLength, 2);
      } else {
        frame[1] = 0x80 | 127;
        frame.writeUInt32BE(0, 2);
        frame.writeUInt32BE(messageLength, 6);
      }
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
      // Straight to the socket, as ws's own `sendFrame` does for a message it frames in one buffer: ws
      // writes synchronously in this state, so the order with its other frames is kept, and
      // `bufferedAmount` counts the frame through the socket's buffer.
      s.write(frame, onSocketWritten);
      return true;
    },
  };
}

/** The parts of a ws `WebSocket` this writer checks and writes through (ws 8). */
interface WsInternals {
  _socket?: Duplex | null;
  _isServer?: boolean;
  _sender?: { _state?: number; _firstFragment?: boolean } | null;
}
