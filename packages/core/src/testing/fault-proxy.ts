/**
 * A TCP fault-injection proxy for reliability tests (docs/reliability.md): put it between two parts (end user ↔
 * node, backend ↔ hub WebSocket, node ↔ node) and add latency, cap bandwidth, black-hole, cut or reset the
 * link mid-test. It relays bytes without terminating anything, so it works for raw TCP, TLS and WebSockets.
 */
import { EventEmitter } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { InvalidConfigError, NexusError, NexusErrorCode } from '../errors.js';
import { type DirectionFaults, FaultPump, TRANSPARENT } from './_fault-pump.js';

/** Default address the proxy listens on. */
export const DEFAULT_FAULT_PROXY_HOST = '127.0.0.1';
/** Default bytes one direction of a link holds while a delay or throttle is active: 1 MiB. */
export const DEFAULT_FAULT_PROXY_HIGH_WATER_MARK = 1024 * 1024;
/** Default throttle burst: 50 ms worth of the rate (at least 1 byte). */
export const DEFAULT_THROTTLE_BURST_MS = 50;

/**
 * Which bytes a fault applies to. `upstream`: from the connecting side (the proxy's client) to the target.
 * `downstream`: from the target back to the client. `both`: both directions.
 */
export type FaultDirection = 'upstream' | 'downstream' | 'both';

/** Options shared by the fault commands. */
export interface FaultOptions {
  /** Direction the fault applies to. Default: `'both'`. */
  direction?: FaultDirection;
}

/** Options of `throttle()`. */
export interface ThrottleOptions extends FaultOptions {
  /**
   * Token-bucket size in bytes: the most sent at once, and what a fresh bucket lets through immediately.
   * Default: {@link DEFAULT_THROTTLE_BURST_MS} ms worth of the rate, at least 1.
   */
  burstBytes?: number;
}

/** Options of `pause()`. */
export interface PauseOptions {
  /** How a refused connection is closed: `reset` (RST) or `close` (FIN). Default: `'reset'`. */
  refuse?: 'reset' | 'close';
}

/** A TCP address. */
export interface FaultProxyTarget {
  host: string;
  port: number;
}

/** Options of {@link createFaultProxy}. */
export interface FaultProxyOptions {
  /** Where every accepted connection is relayed to. */
  target: FaultProxyTarget;
  /** Address to listen on. Default: `'127.0.0.1'`. */
  listenHost?: string;
  /** Port to listen on. Default: `0` (any free port). */
  port?: number;
  /**
   * Bytes one direction of a link holds (while a delay or throttle is active) before it stops reading its
   * source. Default: {@link DEFAULT_FAULT_PROXY_HIGH_WATER_MARK} (1 MiB).
   */
  highWaterMark?: number;
}

/**
 * `connecting`: the target is being dialled. `open`: relaying. `closing`: a FIN, an error or a cut was
 * seen and the sockets are winding down. `closed`: both sockets are closed.
 */
export type FaultLinkState = 'connecting' | 'open' | 'closing' | 'closed';

/** Counters of a proxy, over its whole life. */
export interface FaultProxyStats {
  /** Connections accepted and relayed (refused ones excluded). */
  accepted: number;
  /** Connections refused while paused. */
  refused: number;
  /** Links not yet closed. */
  active: number;
  /** Bytes forwarded from clients to the target. */
  bytesUp: number;
  /** Bytes forwarded from the target to clients. */
  bytesDown: number;
}

/** Events of {@link FaultProxy}. */
export interface FaultProxyEvents {
  /** A connection was accepted; the target is being dialled. */
  link: [link: FaultLink];
  /** A connection was refused because the proxy is paused. */
  refused: [];
  /** The listener failed. */
  error: [error: Error];
}

/** Events of {@link FaultLink}. */
export interface FaultLinkEvents {
  /** Both sockets are closed. */
  close: [];
}

const directions = (direction: FaultDirection = 'both'): ('upstream' | 'downstream')[] =>
  direction === 'both' ? ['upstream', 'downstream'] : [direction];

function checkDelay(ms: number): void {
  if (!Number.isFinite(ms) || ms < 0) throw new InvalidConfigError('delay.ms', 'must be a finite number ≥ 0');
}

function checkRate(bytesPerSecond: number, burstBytes: number | undefined): void {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) {
    throw new InvalidConfigError('throttle.bytesPerSecond', 'must be a finite number > 0');
  }
  if (burstBytes !== undefined && (!Number.isInteger(burstBytes) || burstBytes < 1)) {
    throw new InvalidConfigError('throttle.burstBytes', 'must be an integer ≥ 1');
  }
}

const defaultBurst = (bytesPerSecond: number): number =>
  Math.max(1, Math.floor((bytesPerSecond * DEFAULT_THROTTLE_BURST_MS) / 1000));

/** Fault state of both directions, changed by the commands. */
class FaultState {
  upstream: DirectionFaults = { ...TRANSPARENT };
  downstream: DirectionFaults = { ...TRANSPARENT };

  delay(ms: number, options?: FaultOptions): void {
    checkDelay(ms);
    for (const d of directions(options?.direction)) this[d] = { ...this[d], delayMs: ms };
  }

  throttle(bytesPerSecond: number, options?: ThrottleOptions): void {
    checkRate(bytesPerSecond, options?.burstBytes);
    const burstBytes = options?.burstBytes ?? defaultBurst(bytesPerSecond);
    for (const d of directions(options?.direction)) this[d] = { ...this[d], bytesPerSecond, burstBytes };
  }

  blackhole(options?: FaultOptions): void {
    for (const d of directions(options?.direction)) this[d] = { ...this[d], blackhole: true };
  }

  heal(): void {
    this.upstream = { ...TRANSPARENT };
    this.downstream = { ...TRANSPARENT };
  }
}

/**
 * One relayed connection: the accepted client socket and the socket to the target. Its fault commands
 * apply to this link only.
 */
export class FaultLink extends EventEmitter<FaultLinkEvents> {
  /** Sequence number, from 1, in accept order. */
  readonly id: number;
  /** Remote port of the accepted client: match it with the client socket's `localPort`. */
  readonly clientPort: number;
  /** Resolves once both sockets are closed. */
  readonly closed: Promise<void>;

  readonly #client: Socket;
  readonly #target: Socket;
  readonly #up: FaultPump;
  readonly #down: FaultPump;
  readonly #faults = new FaultState();
  #state: FaultLinkState = 'connecting';
  #openSockets = 2;

  /** @internal Created by {@link FaultProxy} for each accepted connection. */
  constructor(
    id: number,
    client: Socket,
    target: FaultProxyTarget,
    faults: { upstream: DirectionFaults; downstream: DirectionFaults },
    highWaterMark: number,
    counters: FaultProxyStats,
  ) {
    super();
    this.id = id;
    this.clientPort = client.remotePort ?? 0;
    this.#client = client;
    // allowHalfOpen on both sockets: a FIN from one end only ends the other end's write side, so
    // half-closed exchanges pass through unchanged (docs/reliability.md items 5 and 6).
    this.#target = connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    client.setNoDelay(true);
    const now = () => performance.now();
    this.#up = new FaultPump(client, this.#target, {
      highWaterMark,
      now,
      onForward: (n) => {
        counters.bytesUp += n;
      },
    });
    this.#down = new FaultPump(this.#target, client, {
      highWaterMark,
      now,
      onForward: (n) => {
        counters.bytesDown += n;
      },
    });
    this.#faults.upstream = { ...faults.upstream };
    this.#faults.downstream = { ...faults.downstream };
    this.#apply();
    this.closed = new Promise((resolve) => this.once('close', () => resolve()));

    this.#target.once('connect', () => {
      if (this.#state !== 'connecting') return;
      this.#state = 'open';
      this.#up.start();
      this.#down.start();
    });
    client.on('error', () => this.#failed('upstream'));
    this.#target.on('error', () => this.#failed('downstream'));
    client.once('end', () => this.#closing());
    this.#target.once('end', () => this.#closing());
    client.once('close', () => this.#socketClosed());
    this.#target.once('close', () => this.#socketClosed());
  }

  /** Current state. */
  get state(): FaultLinkState {
    return this.#state;
  }

  /** Bytes forwarded from the client to the target. */
  get bytesUp(): number {
    return this.#up.forwarded;
  }

  /** Bytes forwarded from the target to the client. */
  get bytesDown(): number {
    return this.#down.forwarded;
  }

  /** Bytes read from the client and held by the proxy (delayed, throttled or blackholed). */
  get bufferedUp(): number {
    return this.#up.queuedBytes;
  }

  /** Bytes read from the target and held by the proxy. */
  get bufferedDown(): number {
    return this.#down.queuedBytes;
  }

  /** Add `ms` of latency to every chunk (and to the FIN), preserving order. */
  delay(ms: number, options?: FaultOptions): this {
    this.#faults.delay(ms, options);
    this.#apply();
    return this;
  }

  /** Cap the bandwidth to `bytesPerSecond` with a token bucket, preserving order. */
  throttle(bytesPerSecond: number, options?: ThrottleOptions): this {
    this.#faults.throttle(bytesPerSecond, options);
    this.#apply();
    return this;
  }

  /**
   * Forward nothing more and stop reading the source, so TCP backpressure builds up at the writer, as
   * with a peer that vanished: no FIN, no RST. Bytes held are delivered, in order, by `heal()`.
   */
  blackhole(options?: FaultOptions): this {
    this.#faults.blackhole(options);
    this.#apply();
    return this;
  }

  /** Back to a transparent relay; whatever was held is forwarded at once. */
  heal(): this {
    this.#faults.heal();
    this.#up.heal();
    this.#down.heal();
    return this;
  }

  /**
   * Close with a FIN. `upstream` ends the target's input, `downstream` the client's: a half-close, after
   * which the proxy discards what that side's peer still sends. Once both directions are cut (the default)
   * the sockets are closed as soon as the FINs are written, so anything either end sends later meets an RST.
   */
  cut(options?: FaultOptions): this {
    if (this.#state === 'closed') return this;
    if (this.#state === 'connecting') {
      this.#state = 'closing';
      this.#target.destroy();
      this.#client.destroySoon();
      return this;
    }
    this.#closing();
    for (const d of directions(options?.direction)) (d === 'upstream' ? this.#up : this.#down).cut();
    if (this.#up.stopped && this.#down.stopped) {
      this.#client.destroySoon();
      this.#target.destroySoon();
    }
    return this;
  }

  /** Destroy both sockets with an RST: both ends see `ECONNRESET`. */
  reset(): this {
    if (this.#state === 'closed') return this;
    this.#closing();
    this.#up.dispose();
    this.#down.dispose();
    if (!this.#client.destroyed) this.#client.resetAndDestroy();
    if (this.#target.connecting) this.#target.destroy();
    else if (!this.#target.destroyed) this.#target.resetAndDestroy();
    return this;
  }

  /** @internal Destroy both sockets at once (proxy shutdown). */
  destroy(): void {
    this.#up.dispose();
    this.#down.dispose();
    this.#client.destroy();
    this.#target.destroy();
  }

  #apply(): void {
    this.#up.setFaults(this.#faults.upstream);
    this.#down.setFaults(this.#faults.downstream);
  }

  #closing(): void {
    if (this.#state === 'open' || this.#state === 'connecting') this.#state = 'closing';
  }

  /** A socket failed: pass an RST on to the other end (held back while that direction is blackholed). */
  #failed(direction: 'upstream' | 'downstream'): void {
    if (this.#state === 'connecting') {
      // The target refused or failed: refuse the client the same way.
      this.#state = 'closing';
      this.#target.destroy();
      if (!this.#client.destroyed) this.#client.resetAndDestroy();
      return;
    }
    this.#closing();
    (direction === 'upstream' ? this.#up : this.#down).sourceFailed();
  }

  #socketClosed(): void {
    if (--this.#openSockets > 0) return;
    this.#state = 'closed';
    this.#up.dispose();
    this.#down.dispose();
    this.emit('close');
  }
}

/**
 * A loopback TCP proxy with commands to inject faults mid-test. Faults set on the proxy apply to every
 * current link and to links accepted later; faults set on a {@link FaultLink} apply to that link only.
 * While no fault is active a link is a plain pipe with backpressure.
 */
export class FaultProxy extends EventEmitter<FaultProxyEvents> {
  readonly #server: Server;
  readonly #listenHost: string;
  readonly #listenPort: number;
  readonly #highWaterMark: number;
  readonly #links = new Map<number, FaultLink>();
  readonly #faults = new FaultState();
  readonly #stats: FaultProxyStats = { accepted: 0, refused: 0, active: 0, bytesUp: 0, bytesDown: 0 };
  #target: FaultProxyTarget;
  #nextId = 1;
  #paused: PauseOptions | undefined;
  #closed = false;

  constructor(options: FaultProxyOptions) {
    super();
    const { target } = options;
    if (typeof target?.host !== 'string' || !Number.isInteger(target.port) || target.port < 1) {
      throw new InvalidConfigError('target', 'must be { host, port } with a port ≥ 1');
    }
    this.#target = { host: target.host, port: target.port };
    this.#listenHost = options.listenHost ?? DEFAULT_FAULT_PROXY_HOST;
    this.#listenPort = options.port ?? 0;
    this.#highWaterMark = options.highWaterMark ?? DEFAULT_FAULT_PROXY_HIGH_WATER_MARK;
    if (!Number.isInteger(this.#highWaterMark) || this.#highWaterMark < 1) {
      throw new InvalidConfigError('highWaterMark', 'must be an integer ≥ 1');
    }
    // pauseOnConnect: nothing is read from a client before its target is connected.
    this.#server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
      this.#accept(socket),
    );
    this.#server.on('error', (err) => this.emit('error', err));
  }

  /** Start listening; resolves with the proxy once the port is bound. */
  listen(): Promise<this> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(this.#listenPort, this.#listenHost, () => {
        this.#server.off('error', onError);
        resolve(this);
      });
    });
  }

  /** Where clients connect. Throws a `NEXUS_ERR_CLOSED` error if the proxy is not listening. */
  get address(): { host: string; port: number } {
    const address = this.#server.address() as AddressInfo | null;
    if (address === null) throw new NexusError(NexusErrorCode.Closed, 'the fault proxy is not listening');
    return { host: address.address, port: address.port };
  }

  /** The listening port. */
  get port(): number {
    return this.address.port;
  }

  /** Where new links are relayed to. */
  get target(): FaultProxyTarget {
    return { ...this.#target };
  }

  /** Relay links accepted from now on to `target` (e.g. a restarted node on a new port). */
  retarget(target: FaultProxyTarget): void {
    this.#target = { host: target.host, port: target.port };
  }

  /** Links not yet closed, in accept order. */
  get links(): FaultLink[] {
    return [...this.#links.values()];
  }

  /** The open link with this id. */
  link(id: number): FaultLink | undefined {
    return this.#links.get(id);
  }

  /** Whether new connections are being refused. */
  get paused(): boolean {
    return this.#paused !== undefined;
  }

  /** A snapshot of the counters. */
  stats(): FaultProxyStats {
    return { ...this.#stats, active: this.#links.size };
  }

  /** Add latency to every link, current and future. */
  delay(ms: number, options?: FaultOptions): this {
    this.#faults.delay(ms, options);
    for (const link of this.#links.values()) link.delay(ms, options);
    return this;
  }

  /** Cap the bandwidth of every link, current and future (one bucket per link and direction). */
  throttle(bytesPerSecond: number, options?: ThrottleOptions): this {
    this.#faults.throttle(bytesPerSecond, options);
    for (const link of this.#links.values()) link.throttle(bytesPerSecond, options);
    return this;
  }

  /** Black-hole every link, current and future. */
  blackhole(options?: FaultOptions): this {
    this.#faults.blackhole(options);
    for (const link of this.#links.values()) link.blackhole(options);
    return this;
  }

  /** Remove every fault from the proxy and all its links, and accept connections again. */
  heal(): this {
    this.#faults.heal();
    this.#paused = undefined;
    for (const link of this.#links.values()) link.heal();
    return this;
  }

  /** Close every current link with a FIN. */
  cut(options?: FaultOptions): this {
    for (const link of this.#links.values()) link.cut(options);
    return this;
  }

  /** Reset every current link (RST both ways). */
  reset(): this {
    for (const link of this.#links.values()) link.reset();
    return this;
  }

  /** Refuse new connections (accept and close at once), as a restarting node would. Links stay up. */
  pause(options: PauseOptions = {}): this {
    this.#paused = { refuse: options.refuse ?? 'reset' };
    return this;
  }

  /** Accept new connections again. */
  resume(): this {
    this.#paused = undefined;
    return this;
  }

  /** Stop listening and destroy every link; resolves when every socket and the listener are closed. */
  async close(): Promise<void> {
    this.#closed = true;
    const links = [...this.#links.values()];
    for (const link of links) link.destroy();
    await Promise.all([
      ...links.map((l) => l.closed),
      new Promise<void>((resolve) => {
        if (!this.#server.listening) resolve();
        else this.#server.close(() => resolve());
      }),
    ]);
  }

  #accept(socket: Socket): void {
    socket.on('error', () => {});
    if (this.#closed) {
      socket.destroy();
      return;
    }
    if (this.#paused !== undefined) {
      this.#stats.refused++;
      // destroySoon: FIN now, and the socket does not outlive the proxy waiting for the client's FIN.
      if (this.#paused.refuse === 'close') socket.destroySoon();
      else socket.resetAndDestroy();
      this.emit('refused');
      return;
    }
    this.#stats.accepted++;
    const link = new FaultLink(
      this.#nextId++,
      socket,
      this.#target,
      { upstream: this.#faults.upstream, downstream: this.#faults.downstream },
      this.#highWaterMark,
      this.#stats,
    );
    this.#links.set(link.id, link);
    link.once('close', () => this.#links.delete(link.id));
    this.emit('link', link);
  }
}

/** Create a {@link FaultProxy} relaying to `options.target` and wait until it listens. */
export function createFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  return new FaultProxy(options).listen();
}
