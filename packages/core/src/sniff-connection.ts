/**
 * Sniffing one end-user connection: read the TLS ClientHello (or the HTTP request head) without writing a
 * single byte, under a byte cap, rolling deadlines and a node-wide concurrent-sniff budget
 * (docs/protocol.md §4.1–§4.3).
 */
import type { Socket } from 'node:net';
import { parseClientHello, sniffHttpRequest } from '@nexus-proxy/sni';

/** Default cap on a TLS ClientHello: 32 KiB (the reference's limit, docs/protocol.md §4.1). */
export const DEFAULT_MAX_CLIENT_HELLO_BYTES = 32 * 1024;
/** Default cap on an HTTP request head: 64 KiB (docs/protocol.md §4.2). */
export const DEFAULT_MAX_HTTP_HEAD_BYTES = 64 * 1024;
/** Default time allowed for the first byte: 15 000 ms (docs/protocol.md §4.3). */
export const DEFAULT_SNIFF_FIRST_BYTE_TIMEOUT_MS = 15_000;
/** Default extension of the sniff deadline after each read: 5 000 ms (docs/protocol.md §4.3). */
export const DEFAULT_SNIFF_READ_EXTENSION_MS = 5_000;
/** Default absolute sniff deadline: 30 000 ms (docs/protocol.md §4.3). */
export const DEFAULT_SNIFF_ABSOLUTE_TIMEOUT_MS = 30_000;
/** Default number of connections that may be sniffing at once, per node: 256 (docs/protocol.md §4.3). */
export const DEFAULT_MAX_CONCURRENT_SNIFFS = 256;

/** What a relay port expects: a TLS ClientHello (routed by SNI) or an HTTP/1.x head (routed by Host). */
export type RelayMode = 'tls' | 'http';

/** Sniffing limits. Every field is optional; defaults are the reference values. */
export interface SniffLimits {
  /** Largest ClientHello accepted, in bytes (mode `tls`). Default: `32_768`. */
  maxClientHelloBytes?: number;
  /** Largest HTTP request head accepted, in bytes (mode `http`). Default: `65_536`. */
  maxHttpHeadBytes?: number;
  /** Time allowed for the first byte, in ms. Default: `15_000`. */
  sniffFirstByteTimeoutMs?: number;
  /** After each read the deadline becomes now + this, in ms (never past the absolute one). Default: `5_000`. */
  sniffReadExtensionMs?: number;
  /** Absolute sniff deadline from accept, in ms. Default: `30_000`. */
  sniffAbsoluteTimeoutMs?: number;
}

/** Why a connection was closed before (or instead of) being relayed. */
export type SniffCloseReason =
  | 'sniff-timeout'
  | 'no-sni'
  | 'not-tls'
  | 'not-http'
  | 'too-large'
  | 'bad-host'
  | 'over-budget'
  | 'client-closed'
  | 'client-error'
  | 'shutdown';

/** A connection whose destination is known. */
export interface SniffedConnection {
  /** Normalised hostname from SNI or Host (docs/protocol.md §3). */
  hostname: string;
  /** True when the connection began with a TLS ClientHello. */
  isTls: boolean;
  /**
   * Every byte read while sniffing, including any bytes after the ClientHello / request head that arrived
   * in the same read. Replay it to the backend before anything else (docs/protocol.md §4.3).
   */
  prelude: Buffer;
  /** ALPN protocols offered by the client (mode `tls`; empty otherwise). */
  alpn: string[];
  /** True when the ClientHello carries an Encrypted Client Hello extension (routed by the outer SNI). */
  ech: boolean;
  /** Request method (mode `http`). */
  method?: string;
  /** Request target (mode `http`). */
  path?: string;
}

/** The outcome of {@link sniffConnection}. */
export type SniffResult =
  | { ok: true; sniffed: SniffedConnection }
  | { ok: false; reason: SniffCloseReason; detail?: string };

/**
 * A counter of connections currently sniffing. Share one per node across all relay listeners: sniffing
 * holds buffers and timers, so an unbounded number of slow clients would be a cheap denial of service
 * (docs/protocol.md §4.3, docs/reliability.md item 21).
 */
export class SniffBudget {
  #limit = DEFAULT_MAX_CONCURRENT_SNIFFS;
  #active = 0;

  /** @param limit maximum concurrent sniffs. Default: `256`. */
  constructor(limit: number = DEFAULT_MAX_CONCURRENT_SNIFFS) {
    this.limit = limit;
  }

  /**
   * Maximum number of concurrent sniffs. Settable (a configuration reload): lowering it below `active`
   * cuts nothing; new sniffs are refused until enough finish. Throws `RangeError` unless an integer ≥ 1.
   */
  get limit(): number {
    return this.#limit;
  }

  set limit(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError('SniffBudget limit must be an integer ≥ 1');
    this.#limit = limit;
  }

  /** Connections sniffing right now. */
  get active(): number {
    return this.#active;
  }

  /** Take one slot; false when the budget is exhausted. */
  tryAcquire(): boolean {
    if (this.#active >= this.#limit) return false;
    this.#active++;
    return true;
  }

  /** Give a slot back. */
  release(): void {
    if (this.#active > 0) this.#active--;
  }
}

/** Options of {@link sniffConnection}. */
export interface SniffOptions {
  /** What to expect on this connection. */
  mode: RelayMode;
  /** Caps and deadlines. */
  limits?: SniffLimits;
  /** Concurrent-sniff budget shared by the node. Default: none (unbounded). */
  budget?: SniffBudget;
  /** Aborts the sniff (the socket is destroyed with reason `shutdown`). */
  signal?: AbortSignal;
}

/** Limits with defaults applied. */
export interface ResolvedSniffLimits {
  maxClientHelloBytes: number;
  maxHttpHeadBytes: number;
  sniffFirstByteTimeoutMs: number;
  sniffReadExtensionMs: number;
  sniffAbsoluteTimeoutMs: number;
}

/** Apply defaults to {@link SniffLimits}. */
export function resolveSniffLimits(limits: SniffLimits = {}): ResolvedSniffLimits {
  return Object.freeze({
    maxClientHelloBytes: limits.maxClientHelloBytes ?? DEFAULT_MAX_CLIENT_HELLO_BYTES,
    maxHttpHeadBytes: limits.maxHttpHeadBytes ?? DEFAULT_MAX_HTTP_HEAD_BYTES,
    sniffFirstByteTimeoutMs: limits.sniffFirstByteTimeoutMs ?? DEFAULT_SNIFF_FIRST_BYTE_TIMEOUT_MS,
    sniffReadExtensionMs: limits.sniffReadExtensionMs ?? DEFAULT_SNIFF_READ_EXTENSION_MS,
    sniffAbsoluteTimeoutMs: limits.sniffAbsoluteTimeoutMs ?? DEFAULT_SNIFF_ABSOLUTE_TIMEOUT_MS,
  });
}

/**
 * Read the routing information from a freshly accepted end-user socket.
 *
 * Nothing is ever written to the socket. On success the socket is left **paused** with no listeners of
 * ours attached, so the caller can pipe it without losing a byte; every byte read so far is in
 * `sniffed.prelude`. On failure the socket has been destroyed (no TLS alert, no HTTP error page:
 * docs/protocol.md §4, §4.4) and the result carries the reason. The promise never rejects.
 */
export function sniffConnection(socket: Socket, options: SniffOptions): Promise<SniffResult> {
  const limits = resolveSniffLimits(options.limits);
  const { mode, budget, signal } = options;
  const cap = mode === 'tls' ? limits.maxClientHelloBytes : limits.maxHttpHeadBytes;

  socket.setNoDelay(true);
  if (budget !== undefined && !budget.tryAcquire()) {
    socket.destroy();
    return Promise.resolve({ ok: false, reason: 'over-budget' });
  }

  return new Promise<SniffResult>((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    const started = Date.now();
    const absoluteDeadline = started + limits.sniffAbsoluteTimeoutMs;
    let timer: NodeJS.Timeout | undefined;

    const arm = (deadline: number): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(
        () => fail('sniff-timeout', `no complete ${mode === 'tls' ? 'ClientHello' : 'head'}`),
        Math.max(0, Math.min(deadline, absoluteDeadline) - Date.now()),
      );
    };

    const cleanup = (): void => {
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      budget?.release();
    };

    const fail = (reason: SniffCloseReason, detail?: string): void => {
      if (settled) return;
      cleanup();
      // Swallow a late error (e.g. ECONNRESET racing the destroy) so it cannot crash the process.
      socket.on('error', ignore);
      socket.destroy();
      resolve(detail === undefined ? { ok: false, reason } : { ok: false, reason, detail });
    };

    const succeed = (sniffed: SniffedConnection): void => {
      if (settled) return;
      // Pause before detaching our 'data' listener: removing a listener alone does not stop the flow.
      socket.pause();
      cleanup();
      resolve({ ok: true, sniffed });
    };

    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      total += chunk.length;
      const bytes = chunks.length === 1 ? chunk : Buffer.concat(chunks, total);
      if (chunks.length > 1) {
        chunks.length = 0;
        chunks.push(bytes);
      }
      const verdict = mode === 'tls' ? judgeTls(bytes, cap) : judgeHttp(bytes, cap);
      if (verdict === undefined) {
        // Still incomplete: belt and braces in case a parser reports 'incomplete' past the cap.
        if (total > cap) fail('too-large', `over ${cap} bytes`);
        else arm(Date.now() + limits.sniffReadExtensionMs);
      } else if (verdict.ok) {
        succeed(verdict.sniffed);
      } else {
        fail(verdict.reason, verdict.detail);
      }
    };
    const onEnd = (): void => fail('client-closed', 'EOF while sniffing');
    const onError = (err: Error): void =>
      fail('client-error', (err as NodeJS.ErrnoException).code ?? err.message);
    const onClose = (): void => fail('client-closed');
    const onAbort = (): void => fail('shutdown');

    if (signal?.aborted || socket.destroyed) {
      fail(signal?.aborted ? 'shutdown' : 'client-closed');
      return;
    }
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    arm(started + limits.sniffFirstByteTimeoutMs);
  });
}

/** The routing decision for a ClientHello read so far; `undefined` = incomplete. */
function judgeTls(bytes: Buffer, cap: number): SniffResult | undefined {
  const r = parseClientHello(bytes, { maxSize: cap });
  switch (r.kind) {
    case 'tls':
      // §4.1: no SNI → close (ECH: the outer SNI is what we route by).
      if (r.serverName === undefined) return { ok: false, reason: 'no-sni' };
      return {
        ok: true,
        sniffed: { hostname: r.serverName, isTls: true, prelude: bytes, alpn: r.alpn, ech: r.ech },
      };
    case 'not-tls':
      return { ok: false, reason: 'not-tls', detail: r.reason };
    case 'too-large':
      return { ok: false, reason: 'too-large', detail: `ClientHello over ${r.limit} bytes` };
    default:
      return undefined;
  }
}

/** The routing decision for an HTTP request head read so far; `undefined` = incomplete. */
function judgeHttp(bytes: Buffer, cap: number): SniffResult | undefined {
  const r = sniffHttpRequest(bytes, { maxSize: cap });
  switch (r.kind) {
    case 'http':
      return {
        ok: true,
        sniffed: {
          hostname: r.host,
          isTls: false,
          prelude: bytes,
          alpn: [],
          ech: false,
          method: r.method,
          path: r.path,
        },
      };
    case 'not-http':
      return { ok: false, reason: 'not-http', detail: r.reason };
    case 'bad-host':
      return { ok: false, reason: 'bad-host', detail: r.reason };
    case 'too-large':
      return { ok: false, reason: 'too-large', detail: `request head over ${r.limit} bytes` };
    default:
      return undefined;
  }
}

function ignore(): void {}
