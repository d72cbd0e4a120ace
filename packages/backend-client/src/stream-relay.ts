import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { LocalReads } from './local-reads.js';

/** Health-check settings of one relayed stream (docs/protocol.md §1.6). */
export interface RelayHealthCheck {
  /** Idle time (no byte either way) before a probe, ms. */
  inactivityTimeoutMs: number;
  /** Wait for the pong, ms. */
  pongTimeoutMs: number;
  /** Sends `ping_client`; `onPong` must be called when `pong_client` arrives. */
  ping(): void;
  /** No pong in time: close the stream with reason `timeout`. */
  onTimeout(): void;
}

/** Time a local socket may take to flush our FIN after its stream closed, before it is destroyed, ms. */
export const LOCAL_LINGER_MS = 5_000;

/**
 * Joins a mux stream and a local socket both ways (docs/protocol.md §1.7):
 * - each side's end is forwarded as a half-close (`end()`), not a teardown, so a request whose sender
 *   shut down its write side still gets its whole response (docs/reliability.md item 6);
 * - the local service's last bytes are written to the stream before `end()`, so they leave before the
 *   stream's `disconnect` (docs/reliability.md item 5: `pipe` ends the destination only after it wrote
 *   everything it read);
 * - an error on either side destroys the other; a stream that closes first lets the local socket flush
 *   what it already has (bounded by {@link LOCAL_LINGER_MS}) and then destroys it.
 * Byte counters and health checks hook `'data'`, which is only safe once both sides are piped: attaching
 * it earlier would start the stream flowing and lose the prelude.
 */
export class StreamRelay {
  /** Bytes from the hub to the local service. */
  bytesIn = 0;
  /** Bytes from the local service to the hub. */
  bytesOut = 0;
  readonly #stream: Duplex;
  readonly #local: Duplex;
  readonly #health: RelayHealthCheck | undefined;
  /** The local socket is read through `onread` (see {@link LocalReads}) instead of piped. */
  readonly #reads: LocalReads | undefined;
  #lastActivity = Date.now();
  #idleTimer: NodeJS.Timeout | undefined;
  #pongTimer: NodeJS.Timeout | undefined;
  #lingerTimer: NodeJS.Timeout | undefined;
  #done = false;

  /**
   * @param onLocalError closes the stream after a local socket error (to send reason `local_error`);
   *   default: `stream.destroy(err)`.
   * @param reads how `local` is read when it was created with their `onread` (it is then a `net.Socket`,
   *   still paused); default: piped.
   */
  constructor(
    stream: Duplex,
    local: Duplex,
    health?: RelayHealthCheck,
    onLocalError?: (err: Error) => void,
    reads?: LocalReads,
  ) {
    this.#stream = stream;
    this.#local = local;
    this.#health = health;
    this.#reads = reads;

    stream.on('data', (chunk: Uint8Array) => {
      this.bytesIn += chunk.byteLength;
      this.#lastActivity = Date.now();
    });
    const countOut = (bytes: number): void => {
      this.bytesOut += bytes;
      this.#lastActivity = Date.now();
    };
    if (reads === undefined) local.on('data', (chunk: Uint8Array) => countOut(chunk.byteLength));
    local.on('error', (err: Error) => {
      if (!stream.destroyed) (onLocalError ?? ((e: Error) => stream.destroy(e)))(err);
    });
    local.once('close', () => {
      this.#stopTimers();
      clearTimeout(this.#lingerTimer);
      // A local socket that closed without ending (reset, destroyed) never ended the stream: cut it.
      if (!stream.writableEnded && !stream.destroyed) stream.destroy();
    });
    stream.once('close', () => this.#onStreamClose());
    // v1 has no half-close on the wire (docs/protocol.md §1.7): EOF from a backend-role stream means the hub
    // disconnected it. `pipe` forwards it to the local socket as a FIN after every delivered byte; our
    // writable side is ended too (nobody is left to read a response), so the stream can close.
    stream.once('end', () => {
      this.#unpipeLocal();
      if (!stream.writableEnded) stream.end();
    });
    stream.pipe(local);
    if (reads === undefined) local.pipe(stream);
    else reads.attach(local as Socket, stream, countOut);
    if (health !== undefined) this.#armIdle(health.inactivityTimeoutMs);
  }

  /** Destroys the local side at once (session dropped: nothing more can be delivered). */
  destroy(): void {
    this.#stopTimers();
    this.#local.destroy();
  }

  /** `pong_client` arrived for this stream. */
  onPong(): void {
    if (this.#pongTimer === undefined) return;
    clearTimeout(this.#pongTimer);
    this.#pongTimer = undefined;
    this.#lastActivity = Date.now();
    if (this.#health !== undefined && !this.#done) this.#armIdle(this.#health.inactivityTimeoutMs);
  }

  #onStreamClose(): void {
    this.#done = true;
    this.#stopTimers();
    const local = this.#local;
    if (local.destroyed) return;
    this.#stream.unpipe(local);
    this.#unpipeLocal();
    if (local.writableFinished) {
      local.destroy();
      return;
    }
    // Let what the hub already delivered reach the service, then let go of the socket.
    local.resume();
    local.once('finish', () => local.destroy());
    local.end();
    this.#lingerTimer = setTimeout(() => local.destroy(), LOCAL_LINGER_MS);
  }

  /** Stops forwarding what the local socket reads to the stream. */
  #unpipeLocal(): void {
    if (this.#reads === undefined) this.#local.unpipe(this.#stream);
    else this.#reads.detach();
  }

  #armIdle(delayMs: number): void {
    const health = this.#health!;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#done) return;
      const idleFor = Date.now() - this.#lastActivity;
      if (idleFor < health.inactivityTimeoutMs) {
        this.#armIdle(health.inactivityTimeoutMs - idleFor);
        return;
      }
      this.#pongTimer = setTimeout(() => {
        this.#pongTimer = undefined;
        if (!this.#done) health.onTimeout();
      }, health.pongTimeoutMs);
      health.ping();
    }, delayMs);
  }

  #stopTimers(): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    if (this.#pongTimer !== undefined) clearTimeout(this.#pongTimer);
    this.#idleTimer = undefined;
    this.#pongTimer = undefined;
  }
}
