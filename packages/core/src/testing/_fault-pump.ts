/**
 * One direction of a fault-proxy link: reads a source socket and writes a sink socket, either as a plain
 * pipe with backpressure (no fault active) or through a FIFO queue that applies delay, throttle and
 * blackhole faults without ever reordering, dropping or duplicating a byte.
 */
import type { Socket } from 'node:net';

/** The faults active on one direction. */
export interface DirectionFaults {
  /** Added latency per chunk, in ms; `0` = none. */
  delayMs: number;
  /** Bandwidth cap in bytes per second; `0` = unlimited. */
  bytesPerSecond: number;
  /** Token-bucket size in bytes (largest burst sent at once); meaningful only with `bytesPerSecond`. */
  burstBytes: number;
  /** Forward nothing and stop reading the source. */
  blackhole: boolean;
}

/** No fault: a transparent pipe. */
export const TRANSPARENT: Readonly<DirectionFaults> = Object.freeze({
  delayMs: 0,
  bytesPerSecond: 0,
  burstBytes: 0,
  blackhole: false,
});

/** A queued chunk, or `null` for the source's EOF, with the time it may be forwarded. */
interface Entry {
  chunk: Buffer | null;
  releaseAt: number;
}

export interface FaultPumpOptions {
  /** Bytes held in the queue before the source is paused. */
  highWaterMark: number;
  /** Monotonic clock in ms. */
  now: () => number;
  /** Called with the size of every chunk written to the sink. */
  onForward: (bytes: number) => void;
}

export class FaultPump {
  /** Bytes read from the source. */
  received = 0;
  /** Bytes written to the sink. */
  forwarded = 0;
  /** Bytes read from the source and not yet written to the sink. */
  queuedBytes = 0;
  /** The source's EOF was written to the sink (`sink.end()`). */
  eofForwarded = false;

  readonly #source: Socket;
  readonly #sink: Socket;
  readonly #options: FaultPumpOptions;
  #faults: DirectionFaults = { ...TRANSPARENT };
  #queue: Entry[] = [];
  #head = 0;
  #tokens = 0;
  #lastRefill = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #sinkBlocked = false;
  #started = false;
  /** Cut, reset or disposed: everything read from now on is discarded. */
  #stopped = false;
  /** The source failed while blackholed; the sink is reset once the blackhole lifts. */
  #pendingAbort = false;

  constructor(source: Socket, sink: Socket, options: FaultPumpOptions) {
    this.#source = source;
    this.#sink = sink;
    this.#options = options;
  }

  /** The current faults (a copy). */
  get faults(): DirectionFaults {
    return { ...this.#faults };
  }

  /** Start relaying (both sockets are connected). */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#source.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#source.on('end', () => this.#onEnd());
    this.#sink.on('drain', () => {
      if (!this.#sinkBlocked) return;
      this.#sinkBlocked = false;
      this.#process();
    });
    this.#process();
  }

  /** Replace the faults. Chunks already queued keep their release time, except when a blackhole lifts. */
  setFaults(next: DirectionFaults): void {
    const prev = this.#faults;
    this.#faults = { ...next };
    if (
      next.bytesPerSecond > 0 &&
      (prev.bytesPerSecond !== next.bytesPerSecond || prev.burstBytes !== next.burstBytes)
    ) {
      // A new cap starts with a full bucket.
      this.#tokens = next.burstBytes;
      this.#lastRefill = this.#options.now();
    }
    if (prev.blackhole && !next.blackhole && this.#pendingAbort) {
      this.#abortSink();
      return;
    }
    this.#process();
  }

  /** Remove every fault and release everything queued now, in order. */
  heal(): void {
    for (let i = this.#head; i < this.#queue.length; i++)
      this.#queue[i]!.releaseAt = Number.NEGATIVE_INFINITY;
    this.setFaults(TRANSPARENT);
  }

  /** The source failed (RST, EPIPE…): reset the sink, unless blackholed (then once the blackhole lifts). */
  sourceFailed(): void {
    if (this.#stopped) return;
    if (this.#faults.blackhole) this.#pendingAbort = true;
    else this.#abortSink();
  }

  /** Whether this direction was cut, reset or disposed. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Drop the queue, send FIN to the sink and discard whatever the source still sends. */
  cut(): void {
    this.#stop();
    this.#endSink();
    this.#updateFlow();
  }

  /** Drop the queue and stop every timer; the sockets are left to the caller. */
  dispose(): void {
    this.#stop();
  }

  #stop(): void {
    this.#stopped = true;
    this.#clearTimer();
    this.#queue = [];
    this.#head = 0;
    this.queuedBytes = 0;
  }

  #abortSink(): void {
    this.#stop();
    const sink = this.#sink;
    if (sink.destroyed) return;
    if (sink.connecting) sink.destroy();
    else sink.resetAndDestroy();
  }

  #isTransparent(): boolean {
    const f = this.#faults;
    return f.delayMs === 0 && f.bytesPerSecond === 0 && !f.blackhole;
  }

  #onData(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.#stopped) return;
    // Fast path: a plain pipe while no fault is active and nothing is queued.
    if (this.#head === this.#queue.length && !this.#sinkBlocked && this.#isTransparent()) {
      this.#write(chunk);
      return;
    }
    this.queuedBytes += chunk.length;
    this.#enqueue(chunk);
    this.#process();
  }

  #onEnd(): void {
    if (this.#stopped) return;
    if (this.#head === this.#queue.length && this.#isTransparent()) {
      this.#endSink();
      return;
    }
    // The FIN travels through the queue like data: delayed, and never ahead of a byte.
    this.#enqueue(null);
    this.#process();
  }

  /** Only the head entry is ever waited on, so a later entry never leaves first, whatever its time. */
  #enqueue(chunk: Buffer | null): void {
    this.#queue.push({ chunk, releaseAt: this.#options.now() + this.#faults.delayMs });
  }

  #write(chunk: Buffer): void {
    const sink = this.#sink;
    if (sink.destroyed || sink.writableEnded) return;
    this.forwarded += chunk.length;
    this.#options.onForward(chunk.length);
    if (!sink.write(chunk)) {
      this.#sinkBlocked = true;
      this.#updateFlow();
    }
  }

  #endSink(): void {
    if (this.eofForwarded) return;
    this.eofForwarded = true;
    const sink = this.#sink;
    if (!sink.destroyed && !sink.writableEnded) sink.end();
  }

  #process(): void {
    this.#clearTimer();
    if (!this.#started) return;
    if (!this.#stopped && !this.#faults.blackhole) this.#drainQueue();
    this.#updateFlow();
  }

  /** Forward every queued entry whose time has come, within the sink's backpressure and the cap. */
  #drainQueue(): void {
    const { now } = this.#options;
    while (this.#head < this.#queue.length) {
      if (this.#sinkBlocked) return;
      const entry = this.#queue[this.#head]!;
      const t = now();
      if (entry.releaseAt > t) {
        this.#schedule(entry.releaseAt - t);
        return;
      }
      if (entry.chunk === null) {
        this.#shift();
        this.#endSink();
        continue;
      }
      let piece = entry.chunk;
      const { bytesPerSecond, burstBytes } = this.#faults;
      if (bytesPerSecond > 0) {
        this.#tokens = Math.min(burstBytes, this.#tokens + ((t - this.#lastRefill) * bytesPerSecond) / 1000);
        this.#lastRefill = t;
        const want = Math.min(piece.length, burstBytes);
        if (this.#tokens < want) {
          this.#schedule(((want - this.#tokens) * 1000) / bytesPerSecond);
          return;
        }
        this.#tokens -= want;
        if (want < piece.length) {
          entry.chunk = piece.subarray(want);
          piece = piece.subarray(0, want);
        } else {
          this.#shift();
        }
      } else {
        this.#shift();
      }
      this.queuedBytes -= piece.length;
      this.#write(piece);
    }
  }

  #shift(): void {
    this.#head++;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#process();
      },
      Math.max(1, Math.ceil(ms)),
    );
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /**
   * Read the source only while the sink keeps up and the queue is below its high-water mark; never while
   * blackholed, so the kernel buffers fill and the writer sees TCP backpressure (docs/reliability.md item 13).
   * Once stopped, read and discard so the peer's FIN is seen.
   */
  #updateFlow(): void {
    if (!this.#started) return;
    const source = this.#source;
    if (source.destroyed) return;
    const reading =
      this.#stopped ||
      (!this.#faults.blackhole && !this.#sinkBlocked && this.queuedBytes < this.#options.highWaterMark);
    if (reading) {
      if (source.isPaused()) source.resume();
    } else if (!source.isPaused()) {
      source.pause();
    }
  }
}
