/** Transfers checked by SHA-256: random sources, hashing (and slow) readers, a pump with backpressure. */
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { type Duplex, Readable } from 'node:stream';

export const MiB = 1024 * 1024;

/** Hex SHA-256 of a buffer. */
export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * A Readable of `prefix` then `total` random bytes (fresh chunks, produced on demand, so 300 MB never sit
 * in memory) that hashes what it emits.
 */
export class RandomSource extends Readable {
  readonly #hash = createHash('sha256');
  #left: number;
  #prefix: Buffer | undefined;
  constructor(
    readonly total: number,
    options: { prefix?: Buffer; chunkSize?: number } = {},
  ) {
    super();
    this.#left = total;
    this.#prefix = options.prefix;
    this.chunkSize = options.chunkSize ?? 64 * 1024;
  }
  readonly chunkSize: number;
  override _read(): void {
    if (this.#prefix !== undefined) {
      const prefix = this.#prefix;
      this.#prefix = undefined;
      this.#hash.update(prefix);
      this.push(prefix);
      return;
    }
    if (this.#left === 0) {
      this.push(null);
      return;
    }
    const n = Math.min(this.chunkSize, this.#left);
    this.#left -= n;
    const chunk = randomBytes(n);
    this.#hash.update(chunk);
    this.push(chunk);
  }
  /** SHA-256 of everything emitted (call once, after the end). */
  digest(): string {
    return this.#hash.digest('hex');
  }
}

/**
 * Consumes a socket, hashing every byte. `throttle(bytesPerSecond)` makes it a slow reader (it pauses the
 * socket between 50 ms slots, a read past a slot's share paid for by the next ones), `pause()` stops reading entirely, `full()` reads at full speed again.
 */
export class HashingReader {
  bytes = 0;
  readonly #hash = createHash('sha256');
  #digest: string | undefined;
  #rate = 0;
  #slotBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #waiters: Array<{ bytes: number; resolve: (digest: string) => void }> = [];
  /** Resolves with the hex digest at the socket's EOF (FIN). Rejects on a socket error. */
  readonly ended: Promise<string>;
  constructor(readonly socket: Duplex) {
    this.ended = new Promise((resolve, reject) => {
      socket.once('end', () => {
        this.#clear();
        resolve(this.digest());
      });
      socket.once('error', reject);
    });
    this.ended.catch(() => {});
    socket.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      this.#hash.update(chunk);
      if (this.#waiters.length > 0) {
        const ready = this.#waiters.filter((w) => this.bytes >= w.bytes);
        this.#waiters = this.#waiters.filter((w) => this.bytes < w.bytes);
        for (const w of ready) w.resolve(this.digest());
      }
      if (this.#rate > 0) {
        this.#slotBytes += chunk.length;
        if (this.#slotBytes >= this.#rate / 20) this.#waitSlot();
      }
    });
  }
  /** Hex digest of everything read; no bytes may be read after the first call. */
  digest(): string {
    this.#digest ??= this.#hash.digest('hex');
    return this.#digest;
  }
  /** Resolves with the digest once `bytes` bytes were read. */
  untilBytes(bytes: number): Promise<string> {
    if (this.bytes >= bytes) return Promise.resolve(this.digest());
    return new Promise((resolve) => this.#waiters.push({ bytes, resolve }));
  }
  /** Read about `bytesPerSecond`. */
  throttle(bytesPerSecond: number): void {
    this.#stopped = false;
    this.#rate = bytesPerSecond;
    this.#slotBytes = 0;
    this.socket.resume();
  }
  /** Stop reading. */
  pause(): void {
    this.#stopped = true;
    this.#clear();
    this.socket.pause();
  }
  /** Read at full speed. */
  full(): void {
    this.#stopped = false;
    this.#rate = 0;
    this.#clear();
    this.socket.resume();
  }
  #waitSlot(): void {
    this.socket.pause();
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // What a chunk read past the slot's share took is owed to the next slots: the rate holds whatever
      // the sizes of the socket's reads.
      this.#slotBytes = Math.max(0, this.#slotBytes - this.#rate / 20);
      if (this.#slotBytes >= this.#rate / 20) this.#waitSlot();
      else if (!this.#stopped) this.socket.resume();
    }, 50);
  }
  #clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** Writes `source` into `socket` with backpressure (no end). Resolves once the last byte is handed over. */
export async function pump(source: Readable, socket: Socket): Promise<void> {
  for await (const chunk of source) {
    if (!socket.write(chunk as Buffer)) await drained(socket);
  }
}

/** Resolves at the socket's next `'drain'`; rejects if it closes first. */
function drained(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      socket.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      socket.off('drain', onDrain);
      reject(new Error('socket closed while writing'));
    };
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}
