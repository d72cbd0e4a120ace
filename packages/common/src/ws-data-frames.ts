/**
 * Binary WebSocket messages taken out of a `ws` WebSocket's socket reads as views, without the join.
 *
 * `ws`'s Receiver joins the reads a message spans (a TLS socket delivers plaintext 16 KiB at a time) into
 * one new buffer: one copy and one more buffer outside the JS heap per message. A {@link WsFrameSplitter}
 * sits in front of it: it parses every frame header (RFC 6455 §5.2) itself, hands each final, unfragmented
 * binary frame (FIN · opcode 2) to the caller as the list of views of the reads it came in (unmasked in
 * place on the server side: the reads are fresh buffers that only this socket holds), and passes
 * everything else byte for byte to ws's own Receiver: control frames, text, fragmented messages and their
 * continuations, frames over ws's `maxPayload`, anything malformed. ws therefore keeps its state, its
 * limits, its close codes and its errors; the caller keeps listening to `'message'` for what ws delivers.
 * See docs/architecture.md, "Shared mechanisms", and docs/benchmarks.md, "Binary messages as views".
 */
import type WebSocket from 'ws';
import { nativeBufferUtil } from './bufferutil.js';
import {
  checkWsReceiverInternals,
  WS_RECEIVER_GET_INFO,
  type WsReceiver,
  wsInternals,
} from './ws-internals.js';

/** A final binary message: the views it came in, in order (`length` bytes in all; none when empty). */
export type BinaryPartsHandler = (parts: Buffer[], length: number) => void;

/** `WebSocket.OPEN` (the WHATWG value `ws` uses). */
const OPEN = 1;
/** Longest frame header: 2 bytes, a 64-bit length, a 4-byte mask key. */
const MAX_HEADER_LENGTH = 14;
/**
 * Views of one message kept at most: past this, they are copied into one buffer of the frame's length and
 * the rest of the frame after them, so that a peer dribbling a frame in tiny reads can neither hold one
 * small object per byte nor make the joins quadratic. A 128 KiB frame over TLS comes in 9 or 10 reads.
 */
const MAX_PARTS = 64;
/**
 * Parts shorter than this are copied rather than kept as views of their read, so that what a stream
 * buffers holds about as much memory as it counts (a frame's last few bytes would otherwise keep a whole
 * 16 KiB read alive; ws's own views of short messages do).
 */
const COPY_BELOW = 1024;
/** Below this many bytes unmasking runs in JS: the native call costs more than it saves (as in ws). */
const NATIVE_UNMASK_MIN_LENGTH = 32;
/** 2^53 - 1 split at 32 bits: a 64-bit length whose high word is above this is refused by ws. */
const MAX_LENGTH_HIGH_WORD = 2 ** 21 - 1;

enum State {
  /** Reading a frame header (possibly across reads, in `#header`). */
  Header = 0,
  /** Collecting the views of a binary frame of our own. */
  Own = 1,
  /** Passing a frame's payload to ws. */
  Pass = 2,
}

/** The ws Receiver as the splitter sees it: where passed bytes go, and whether it still reads. */
export interface SplitterReceiver {
  /** ws's own `write`: parses `chunk`; false when the socket should pause until ws's `'drain'`. */
  write(chunk: Buffer): boolean;
  /** Bytes ws has been given and not yet parsed (a deferred event, a decompression). */
  readonly writableLength: number;
  /** True once ws read a close frame. */
  readonly writableEnded: boolean;
  /** Set once ws refused a frame. */
  readonly errored: Error | null;
  readonly destroyed: boolean;
}

/** Options of {@link WsFrameSplitter}. */
export interface WsFrameSplitterOptions {
  /** ws's Receiver. */
  receiver: SplitterReceiver;
  /** Hands ws bytes; default: `receiver.write` (give ws's own when that one leads back here). */
  pass?: (chunk: Buffer) => boolean;
  /** The server side: frames arrive masked (RFC 6455 §5.3). */
  isServer: boolean;
  /** Largest binary frame taken as views (ws's `maxPayload`); larger ones go to ws, which refuses them. */
  maxLength: number;
  onBinary: BinaryPartsHandler;
  /** Asked at each frame that could be taken: false leaves it to ws (which emits `'message'`). */
  accept?: () => boolean;
}

/** The frame parser in front of one ws Receiver (see the module comment). */
export class WsFrameSplitter {
  readonly #receiver: SplitterReceiver;
  readonly #pass: (chunk: Buffer) => boolean;
  readonly #isServer: boolean;
  readonly #maxLength: number;
  readonly #onBinary: BinaryPartsHandler;
  readonly #accept: (() => boolean) | undefined;
  #state = State.Header;
  /** The bytes of a header that began in an earlier read. */
  readonly #header = Buffer.alloc(MAX_HEADER_LENGTH);
  #headerBytes = 0;
  /** Payload bytes of the current frame still to come. */
  #remaining = 0;
  /** A fragmented message is in progress (its frames, and everything until its last, go to ws). */
  #fragmented = false;
  #parts: Buffer[] = [];
  /** The frame's one buffer once it came in more than MAX_PARTS reads (then `#parts` is just it). */
  #joined: Buffer | undefined;
  #length = 0;
  /** The frame's mask key rotated by 0–3 bytes (server side): a part at message offset p uses key p & 3. */
  readonly #keys = [Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(4)] as const;
  #masked = false;

  constructor(options: WsFrameSplitterOptions) {
    this.#receiver = options.receiver;
    this.#pass = options.pass ?? ((chunk) => options.receiver.write(chunk));
    this.#isServer = options.isServer;
    this.#maxLength = options.maxLength;
    this.#onBinary = options.onBinary;
    this.#accept = options.accept;
  }

  /**
   * Parses one read of the socket. Returns false when the socket should pause (ws asked for it, as its
   * own `socketOnData` does when its Receiver's `write` returns false).
   */
  write(chunk: Buffer): boolean {
    const receiver = this.#receiver;
    // ws read a close frame or refused a frame: it drops whatever follows, and so does the splitter.
    if (isDone(receiver)) return true;
    let flowing = true;
    let pos = 0;
    /** Where the bytes for ws not yet written begin (consecutive frames for ws go in one write). */
    let passFrom = -1;
    const end = chunk.length;
    while (pos < end) {
      if (this.#state === State.Own) {
        pos = this.#collect(chunk, pos, end);
        continue;
      }
      if (this.#state === State.Pass) {
        if (passFrom < 0) passFrom = pos;
        const take = Math.min(this.#remaining, end - pos);
        this.#remaining -= take;
        if (this.#remaining === 0) this.#state = State.Header;
        pos += take;
        continue;
      }
      // A header, all in this read (the usual case)...
      const available = end - pos;
      if (this.#headerBytes === 0 && available >= 2) {
        const length = frameHeaderLength(chunk, pos);
        if (available >= length) {
          if (!this.#begin(chunk, pos, length, passFrom >= 0)) {
            if (passFrom < 0) passFrom = pos;
            pos += length;
            continue;
          }
          // Ours: what ws is owed before it goes first, and ws may have stopped on it.
          if (passFrom >= 0) {
            if (!this.#pass(chunk.subarray(passFrom, pos))) flowing = false;
            passFrom = -1;
            if (isDone(receiver)) return flowing;
          }
          pos += length;
          if (this.#remaining === 0) this.#deliver();
          continue;
        }
      }
      // ... or across reads: copied into #header until complete; ws first gets what it is owed.
      if (passFrom >= 0) {
        if (!this.#pass(chunk.subarray(passFrom, pos))) flowing = false;
        passFrom = -1;
        if (isDone(receiver)) return flowing;
      }
      const need = this.#headerBytes < 2 ? 2 : frameHeaderLength(this.#header, 0);
      const copy = Math.min(available, need - this.#headerBytes);
      chunk.copy(this.#header, this.#headerBytes, pos, pos + copy);
      this.#headerBytes += copy;
      pos += copy;
      if (this.#headerBytes < 2) continue;
      const full = frameHeaderLength(this.#header, 0);
      if (this.#headerBytes < full) continue;
      this.#headerBytes = 0;
      if (this.#begin(this.#header, 0, full, false)) {
        if (this.#remaining === 0) this.#deliver();
        continue;
      }
      // ws gets a copy of the header: #header is reused.
      if (!this.#pass(Buffer.from(this.#header.subarray(0, full)))) flowing = false;
      if (isDone(receiver)) return flowing;
    }
    if (passFrom >= 0 && !this.#pass(chunk.subarray(passFrom, end))) flowing = false;
    return flowing;
  }

  /**
   * A complete header at `head[at..at+length)`: returns true when the frame is ours (state Own, or
   * Header when its payload is empty: the caller delivers it), false when it goes to ws (state Pass with
   * `#remaining` its payload, or Header: the caller hands ws the header). `pending`: bytes before this
   * frame are still owed to ws, which is then not idle.
   */
  #begin(head: Buffer, at: number, length: number, pending: boolean): boolean {
    const b0 = head[at]!;
    const b1 = head[at + 1]!;
    const masked = (b1 & 0x80) !== 0;
    let payload = b1 & 0x7f;
    let valid = true;
    if (payload === 126) payload = head.readUInt16BE(at + 2);
    else if (payload === 127) {
      const high = head.readUInt32BE(at + 2);
      valid = high <= MAX_LENGTH_HIGH_WORD;
      payload = high * 2 ** 32 + head.readUInt32BE(at + 6);
    }
    this.#remaining = valid ? payload : 0;
    if (
      valid &&
      b0 === 0x82 &&
      !this.#fragmented &&
      masked === this.#isServer &&
      payload <= this.#maxLength &&
      !pending &&
      // ws parses everything it was given at once, unless it holds an event for later: then it goes on
      // getting the frames, so that their order is kept.
      this.#receiver.writableLength === 0 &&
      (this.#accept === undefined || this.#accept())
    ) {
      this.#masked = masked;
      if (masked) {
        const k = at + length - 4;
        for (let r = 0; r < 4; r++) {
          const key = this.#keys[r]!;
          for (let i = 0; i < 4; i++) key[i] = head[k + ((r + i) & 3)]!;
        }
      }
      this.#parts = [];
      this.#length = 0;
      this.#state = payload === 0 ? State.Header : State.Own;
      return true;
    }
    // ws's: follow its fragmented-message state (a refused frame stops everything anyway).
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    if ((opcode === 1 || opcode === 2) && !fin) this.#fragmented = true;
    else if (opcode === 0 && fin) this.#fragmented = false;
    this.#state = this.#remaining === 0 ? State.Header : State.Pass;
    return false;
  }

  /** Takes this read's share of an own frame's payload, as a view; delivers the frame once complete. */
  #collect(chunk: Buffer, pos: number, end: number): number {
    const take = Math.min(this.#remaining, end - pos);
    const part = chunk.subarray(pos, pos + take);
    if (this.#masked) unmaskPart(part, this.#keys[this.#length & 3]!);
    this.#length += take;
    this.#remaining -= take;
    const joined = this.#joined;
    if (joined !== undefined) {
      // Past MAX_PARTS reads: the rest of the frame is copied into one buffer (linear, as ws would).
      joined.set(part, this.#length - take);
    } else {
      const parts = this.#parts;
      // A short view would hold its whole read (16 KiB) for a few bytes while its stream buffers it: copied.
      parts.push(take < COPY_BELOW && take < chunk.buffer.byteLength >>> 2 ? Buffer.from(part) : part);
      if (parts.length > MAX_PARTS) {
        const whole = Buffer.allocUnsafe(this.#length + this.#remaining);
        let at = 0;
        for (const p of parts) {
          whole.set(p, at);
          at += p.length;
        }
        this.#joined = whole;
        this.#parts = [whole];
      }
    }
    if (this.#remaining === 0) this.#deliver();
    return pos + take;
  }

  #deliver(): void {
    const parts = this.#parts;
    const length = this.#length;
    this.#parts = [];
    this.#joined = undefined;
    this.#length = 0;
    this.#state = State.Header;
    this.#onBinary(parts, length);
  }
}

/** True once ws read a close frame or refused a frame: it parses nothing more. */
function isDone(receiver: SplitterReceiver): boolean {
  return receiver.writableEnded || receiver.errored != null || receiver.destroyed;
}

/** Length of the frame header whose first two bytes are at `head[at]` (2, 4 or 10, plus 4 when masked). */
function frameHeaderLength(head: Buffer, at: number): number {
  const b1 = head[at + 1]!;
  const code = b1 & 0x7f;
  return (code === 126 ? 4 : code === 127 ? 10 : 2) + (b1 & 0x80 ? 4 : 0);
}

function unmaskPart(part: Buffer, key: Buffer): void {
  const length = part.length;
  const native = length >= NATIVE_UNMASK_MIN_LENGTH ? nativeBufferUtil() : null;
  if (native !== null) {
    native.unmask(part, key);
    return;
  }
  for (let i = 0; i < length; i++) part[i] = part[i]! ^ key[i & 3]!;
}

/**
 * Takes final binary messages of `ws` out of its socket reads as views (see {@link WsFrameSplitter}),
 * handing them to `onBinary` (while `accept`, when given, returns true: a handshake may want ws's own
 * `'message'` events until it is done; the rest of the read that ends it still goes to ws); ws keeps receiving everything else, and emits `'message'` for the
 * binary messages it still assembles (fragmented ones, or any the splitter left to it). Call it when the
 * WebSocket is open, between two messages (ws has emitted every message it read so far, in its
 * `'open'`, `'connection'` or `'message'` events). Returns false, changing nothing, when it cannot: not
 * open, an extension negotiated, ws's Receiver in the middle of a frame or of a fragmented message, or
 * ws's private fields not as expected (ws-internals.ts); ws then delivers every message itself.
 */
export function takeBinaryMessagesAsViews(
  ws: WebSocket,
  onBinary: BinaryPartsHandler,
  accept?: () => boolean,
): boolean {
  if (ws.readyState !== OPEN || ws.extensions !== '') return false;
  if (checkWsReceiverInternals(ws) !== undefined) return false;
  const internals = wsInternals(ws);
  const receiver = internals._receiver as WsReceiver;
  // Only between two messages: the splitter's first byte must start a frame of a new message.
  if (
    receiver._bufferedBytes !== 0 ||
    receiver._state !== WS_RECEIVER_GET_INFO ||
    receiver._fragmented !== 0 ||
    receiver.writableLength !== 0 ||
    receiver._maxPayload <= 0
  ) {
    return false;
  }
  const write = receiver.write;
  const splitter = new WsFrameSplitter({
    receiver,
    pass: (chunk) => write.call(receiver, chunk),
    isServer: internals._isServer === true,
    maxLength: receiver._maxPayload,
    onBinary,
    ...(accept !== undefined ? { accept } : {}),
  });
  // ws feeds its Receiver with `_receiver.write(chunk)` for every socket read (socketOnData, and the
  // rest of a closed socket's buffer): each goes through the splitter instead.
  receiver.write = (chunk: Buffer) => splitter.write(chunk);
  return true;
}
