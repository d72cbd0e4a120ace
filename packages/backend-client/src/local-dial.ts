import net from 'node:net';
import { DialError } from './errors.js';
import type { LocalReads } from './local-reads.js';

/** Where a stream goes locally. */
export interface DialTarget {
  host: string;
  port: number;
}

/** Options of {@link dialLocal}. */
export interface DialLocalOptions {
  /** Give up after this long, ms. */
  timeoutMs: number;
  /** Aborting destroys the half-open socket and rejects. */
  signal?: AbortSignal;
  /**
   * Bytes written to the socket before anything else, e.g. a PROXY protocol header (see
   * `buildProxyHeader`). Default: none.
   */
  header?: Uint8Array;
  /**
   * Reads the socket through `onread` (see {@link LocalReads}); the socket then starts paused, and
   * nothing is read before `reads.attach()`. Default: `'data'` events.
   */
  reads?: LocalReads;
}

/**
 * Opens a TCP connection to a local service. Resolves with the connected socket (half-open allowed, so
 * a FIN from either side is propagated instead of closing both directions); rejects with
 * {@link DialError} on refusal, timeout or abort. Every path clears its timer and listeners, and a
 * socket that did not resolve is destroyed (docs/reliability.md item 12: no leaked socket, no leaked timer).
 */
export function dialLocal(target: DialTarget, options: DialLocalOptions): Promise<net.Socket> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(new DialError(`dial ${formatTarget(target)} aborted`));
  const reads = options.reads;
  const socket = net.connect({
    host: target.host,
    port: target.port,
    allowHalfOpen: true,
    noDelay: true,
    ...(reads !== undefined ? { onread: reads.onread } : {}),
  });
  // Not read before the relay attaches: a service that speaks first must not be read into nowhere.
  if (reads !== undefined) socket.pause();
  // Queued while connecting, so it leaves first: the relay only starts piping once this resolves.
  if (options.header !== undefined && options.header.byteLength > 0) socket.write(options.header);
  return awaitConnect(socket, `dial ${formatTarget(target)}`, options);
}

/**
 * Waits for an already created socket to connect (used for `net.Socket`s a connect handler returns while
 * still connecting). Same guarantees as {@link dialLocal}.
 */
export function awaitConnect(
  socket: net.Socket,
  what: string,
  options: DialLocalOptions,
): Promise<net.Socket> {
  const { signal } = options;
  return new Promise<net.Socket>((resolve, reject) => {
    if (!socket.connecting && !socket.destroyed) {
      resolve(socket);
      return;
    }
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (error: DialError): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socket);
    };
    const onError = (err: Error): void =>
      fail(new DialError(`${what} failed: ${err.message}`, { cause: err }));
    const onClose = (): void => fail(new DialError(`${what} failed: socket closed`));
    const onAbort = (): void => fail(new DialError(`${what} aborted`));
    const timer = setTimeout(
      () => fail(new DialError(`${what} timed out after ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    socket.once('connect', onConnect);
    socket.once('error', onError);
    socket.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    if (socket.destroyed) onClose();
  });
}

/** `host:port`, with brackets around IPv6 literals. */
export function formatTarget(target: DialTarget): string {
  return target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
}
