/**
 * Sniffing one end-user connection: read the TLS ClientHello (or the HTTP request head) without writing a
 * single byte, under a byte cap, rolling deadlines and a node-wide concurrent-sniff budget shared fairly
 * between source addresses (docs/protocol.md §4.1–§4.3). Reads are gathered and parsed incrementally, so
 * the work is linear in the bytes read however the client splits them.
 */
import type { Socket } from 'node:net';
import {
  type ClientHelloResult,
  ClientHelloReader,
  HttpHeadReader,
  type HttpSniffResult,
} from '@nexus-proxy/sni';
import type { SniffBudget } from './sniff-budget.js';

export { DEFAULT_MAX_CONCURRENT_SNIFFS, SniffBudget, type SniffSlot } from './sniff-budget.js';

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
/**
 * Default time allowed for the first byte while at least half the sniff budget is in use: 3 000 ms. A real
 * client sends its ClientHello or request one round trip after connecting; idle connections holding the
 * budget are what this deadline cuts short.
 */
export const DEFAULT_SNIFF_FIRST_BYTE_TIMEOUT_BUSY_MS = 3_000;

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
  /**
   * Time allowed for the first byte when the connection arrives while at least half the sniff budget is in
   * use, in ms (the smaller of this and `sniffFirstByteTimeoutMs` applies). Default: `3_000`.
   */
  sniffFirstByteTimeoutBusyMs?: number;
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
  | 'evicted'
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
  /**
   * True when the connection yielded no name and was routed to the port's TCP claim (`hostname` is then
   * the route key `tcp:<port>`, docs/edge.md "TCP port claims"). `isTls` says whether a ClientHello
   * without SNI was seen.
   */
  portClaim?: boolean;
}

/** How much work sniffing one connection took. */
export interface SniffStats {
  /** Reads (`data` events) seen while sniffing. */
  reads: number;
  /** Bytes copied and looked at by the parser: linear in the bytes read, whatever the reads. */
  bytesExamined: number;
}

/** The outcome of {@link sniffConnection}. */
export type SniffResult =
  | { ok: true; sniffed: SniffedConnection; stats: SniffStats }
  | { ok: false; reason: SniffCloseReason; detail?: string; stats: SniffStats };

/** Options of {@link sniffConnection}. */
export interface SniffOptions {
  /** What to expect on this connection. */
  mode: RelayMode;
  /** Caps and deadlines. */
  limits?: SniffLimits;
  /**
   * Concurrent-sniff budget shared by the node; the connection counts against its `remoteAddress`, and may
   * be ended with reason `evicted` when its address holds more than its share while others wait. Default:
   * none (unbounded).
   */
  budget?: SniffBudget;
  /** Aborts the sniff (the socket is destroyed with reason `shutdown`). */
  signal?: AbortSignal;
  /**
   * The route key of this port's TCP claim (`tcp:<port>`) when a backend claims it, else `undefined`;
   * asked when the connection yields no name (see {@link PORT_CLAIM_FALLBACK_REASONS}). Default: none.
   */
  portClaim?: () => string | undefined;
}

/**
 * The sniff outcomes a TCP port claim takes over: no name in a ClientHello, bytes of another protocol, a
 * bad Host, or nothing complete before the deadline (a client waiting for the server's banner). Never an
 * oversized prelude (it could not be replayed whole), a closed client or a refusal by a limit.
 */
export const PORT_CLAIM_FALLBACK_REASONS: ReadonlySet<SniffCloseReason> = new Set<SniffCloseReason>([
  'no-sni',
  'not-tls',
  'not-http',
  'bad-host',
  'sniff-timeout',
]);

/** Limits with defaults applied. */
export interface ResolvedSniffLimits {
  maxClientHelloBytes: number;
  maxHttpHeadBytes: number;
  sniffFirstByteTimeoutMs: number;
  sniffFirstByteTimeoutBusyMs: number;
  sniffReadExtensionMs: number;
  sniffAbsoluteTimeoutMs: number;
}

/** Apply defaults to {@link SniffLimits}. */
export function resolveSniffLimits(limits: SniffLimits = {}): ResolvedSniffLimits {
  return Object.freeze({
    maxClientHelloBytes: limits.maxClientHelloBytes ?? DEFAULT_MAX_CLIENT_HELLO_BYTES,
    maxHttpHeadBytes: limits.maxHttpHeadBytes ?? DEFAULT_MAX_HTTP_HEAD_BYTES,
    sniffFirstByteTimeoutMs: limits.sniffFirstByteTimeoutMs ?? DEFAULT_SNIFF_FIRST_BYTE_TIMEOUT_MS,
    sniffFirstByteTimeoutBusyMs:
      limits.sniffFirstByteTimeoutBusyMs ?? DEFAULT_SNIFF_FIRST_BYTE_TIMEOUT_BUSY_MS,
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
  const reader =
    mode === 'tls' ? new ClientHelloReader({ maxSize: cap }) : new HttpHeadReader({ maxSize: cap });
  let reads = 0;
  const stats = (): SniffStats => ({ reads, bytesExamined: reader.bytesExamined });

  socket.setNoDelay(true);
  // Read before taking a slot: a busy budget shortens this connection's first-byte deadline.
  const busy = budget?.busy ?? false;
  let evicted: (() => void) | undefined;
  const slot = budget?.acquire(socket.remoteAddress, () => evicted?.());
  if (budget !== undefined && slot === undefined) {
    socket.destroy();
    return Promise.resolve({ ok: false, reason: 'over-budget', stats: stats() });
  }
  const firstByteMs = busy
    ? Math.min(limits.sniffFirstByteTimeoutMs, limits.sniffFirstByteTimeoutBusyMs)
    : limits.sniffFirstByteTimeoutMs;

  return new Promise<SniffResult>((resolve) => {
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
      slot?.release();
    };

    const fail = (reason: SniffCloseReason, detail?: string): void => {
      if (settled) return;
      const claim = PORT_CLAIM_FALLBACK_REASONS.has(reason) ? options.portClaim?.() : undefined;
      if (claim !== undefined) {
        succeed({
          hostname: claim,
          isTls: reason === 'no-sni',
          prelude: Buffer.from(reader.bytes),
          alpn: [],
          ech: false,
          portClaim: true,
        });
        return;
      }
      cleanup();
      // Swallow a late error (e.g. ECONNRESET racing the destroy) so it cannot crash the process.
      socket.on('error', ignore);
      socket.destroy();
      resolve(
        detail === undefined
          ? { ok: false, reason, stats: stats() }
          : { ok: false, reason, detail, stats: stats() },
      );
    };

    const succeed = (sniffed: SniffedConnection): void => {
      if (settled) return;
      // Pause before detaching our 'data' listener: removing a listener alone does not stop the flow.
      socket.pause();
      cleanup();
      resolve({ ok: true, sniffed, stats: stats() });
    };

    const onData = (chunk: Buffer): void => {
      reads++;
      const verdict =
        reader instanceof ClientHelloReader
          ? judgeTls(reader.push(chunk), reader.bytes)
          : judgeHttp(reader.push(chunk), reader.bytes);
      if (verdict === undefined) {
        // Still incomplete: belt and braces in case a parser reports 'incomplete' past the cap.
        if (reader.bytes.length > cap) fail('too-large', `over ${cap} bytes`);
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
    evicted = () => fail('evicted', 'its address held more than its share of the sniff budget');

    if (signal?.aborted || socket.destroyed) {
      fail(signal?.aborted ? 'shutdown' : 'client-closed');
      return;
    }
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    arm(started + firstByteMs);
  });
}

type Verdict =
  | { ok: true; sniffed: SniffedConnection }
  | { ok: false; reason: SniffCloseReason; detail?: string }
  | undefined;

/** The routing decision for a ClientHello read so far; `undefined` = incomplete. */
function judgeTls(r: ClientHelloResult, bytes: Buffer): Verdict {
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
function judgeHttp(r: HttpSniffResult, bytes: Buffer): Verdict {
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
