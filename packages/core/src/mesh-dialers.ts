/**
 * The mesh's outbound side (docs/mesh.md "Changing a running mesh", "Scaling"): one dialer per configured
 * peer URL, each redialling with backoff while its link is down; the first dials spread over a jitter
 * window, at most `maxConcurrentDials` in flight, one TLS client context per trust configuration; and a
 * dialer whose link was given up for the pair's other link (mesh-pairs.ts) waits for that link to end.
 */
import type { BackoffSettings } from '@nexus-proxy/common';
import type { WebSocket } from 'ws';
import type { Logger } from './logger.js';
import { DialLimiter, openPeerSocket, PeerDialer } from './mesh-dial.js';
import { BACKOFF_RESET_AFTER_MS, PEER_REMOVED_REASON } from './mesh-options.js';
import type { PeerLink } from './peer-link.js';

/** What {@link MeshDialers} needs from its mesh. */
export interface MeshDialersOptions {
  urls: readonly string[];
  reconnect: BackoffSettings;
  random: () => number;
  maxConcurrentDials: number;
  initialDialJitterMs: number;
  log: Logger;
  /** The options of the next dial (the client context of the current certificate and trust). */
  dialOptions(): Parameters<typeof openPeerSocket>[1];
  /** The mesh is closed: nothing more is dialled. */
  closed(): boolean;
  /** A dial opened: the mesh makes the link. */
  opened(
    ws: WebSocket,
    url: string,
    fingerprints: { localFingerprint?: string; remoteFingerprint?: string },
  ): PeerLink;
}

/** Every dialer of one mesh. */
export class MeshDialers {
  readonly #o: MeshDialersOptions;
  readonly #limiter: DialLimiter;
  /** One per configured URL (a URL listed twice gets two links). */
  #dialers: PeerDialer[];
  #started = false;
  #failed = 0;
  #timedOut = 0;

  constructor(options: MeshDialersOptions) {
    this.#o = options;
    this.#limiter = new DialLimiter(options.maxConcurrentDials);
    this.#dialers = options.urls.map((url) => this.#dialer(url));
  }

  /** The URLs dialled, in the order they were added. */
  get urls(): readonly string[] {
    return this.#dialers.map((d) => d.url);
  }

  /** The bound on dials in flight, shared with dials made outside the dialers (`PeerMesh.dialOnce`). */
  get limiter(): DialLimiter {
    return this.#limiter;
  }

  /** Dials in flight now, and the most ever at once. */
  get inFlight(): number {
    return this.#limiter.inFlight;
  }

  get peak(): number {
    return this.#limiter.peak;
  }

  /** Dials of configured peers that failed (refused, timed out, TLS or upgrade refused), in all. */
  get failed(): number {
    return this.#failed;
  }

  /** Of those, the dials whose opening handshake timed out (`connectTimeoutMs`). */
  get timedOut(): number {
    return this.#timedOut;
  }

  /** Starts every dialer, spread over the jitter window (idempotent). */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    // Spread over the jitter window and bounded in concurrency: no handshake storm at start.
    for (const dialer of this.#dialers) {
      const delay = Math.floor(this.#o.random() * this.#o.initialDialJitterMs);
      if (delay === 0) this.#dialLimited(dialer);
      else this.#after(dialer, delay);
    }
  }

  /**
   * Replaces the URLs (validated by the caller): new ones dial at once (once started), removed ones stop
   * and close their link (`peer_removed`), URLs in both lists keep their dialer and link.
   */
  set(wanted: string[]): void {
    const kept: PeerDialer[] = [];
    for (const dialer of this.#dialers) {
      const i = wanted.indexOf(dialer.url);
      if (i === -1) this.#stop(dialer);
      else {
        wanted.splice(i, 1);
        kept.push(dialer);
      }
    }
    this.#dialers = kept;
    for (const url of wanted) {
      const dialer = this.#dialer(url);
      this.#dialers.push(dialer);
      this.#o.log.info({ url }, 'peer added');
      if (this.#started) this.#dialLimited(dialer);
    }
  }

  /**
   * `link` (outbound) is given up for the pair's other link `kept`: its dialer dials again only once
   * `kept` has ended. Returns `false`, changing nothing, when no dialer owns `link` (a link opened on
   * demand, which closes when idle on its own).
   */
  park(link: PeerLink, kept: PeerLink): boolean {
    const dialer = this.#dialers.find((d) => d.link === link);
    if (dialer === undefined) return false;
    dialer.parkedBy = kept;
    return true;
  }

  /** Stops every dialer (the mesh closes; the links are closed by the mesh). */
  close(): void {
    this.#limiter.clear();
    for (const dialer of this.#dialers) {
      if (dialer.timer !== undefined) clearTimeout(dialer.timer);
      dialer.timer = undefined;
      if (dialer.ws !== undefined && dialer.link === undefined) dialer.ws.terminate();
    }
  }

  #dialer(url: string): PeerDialer {
    return new PeerDialer(url, this.#o.reconnect, this.#o.random);
  }

  /** A removed peer: no more dials, and its outbound link (or the dial in flight) ends. */
  #stop(dialer: PeerDialer): void {
    dialer.stopped = true;
    if (dialer.timer !== undefined) clearTimeout(dialer.timer);
    dialer.timer = undefined;
    this.#o.log.info({ url: dialer.url, linked: dialer.link !== undefined }, 'peer removed');
    if (dialer.link !== undefined) dialer.link.close(PEER_REMOVED_REASON);
    else dialer.ws?.terminate();
  }

  /** Dials once a slot of the concurrency bound is free. */
  #dialLimited(dialer: PeerDialer): void {
    this.#limiter.run((release) => {
      if (this.#o.closed() || dialer.stopped) release();
      else this.#dial(dialer, release);
    });
  }

  #dial(dialer: PeerDialer, release: () => void): void {
    dialer.ws = openPeerSocket(dialer.url, this.#o.dialOptions(), release, {
      opened: (ws, fingerprints) => {
        if (this.#o.closed() || dialer.stopped) {
          ws.terminate();
          return;
        }
        const link = this.#o.opened(ws, dialer.url, fingerprints);
        dialer.link = link;
        link.once('close', () => {
          dialer.link = undefined;
          dialer.ws = undefined;
          if (Date.now() - link.openedAt >= BACKOFF_RESET_AFTER_MS) dialer.backoff.reset();
          this.#schedule(dialer);
        });
      },
      failed: (err) => {
        if (this.#o.closed() || dialer.stopped) return;
        dialer.ws = undefined;
        this.#failed++;
        // ws names no code for it: its handshake timer fails with "Opening handshake has timed out".
        if (err?.message.includes('timed out') === true) this.#timedOut++;
        this.#o.log.warn({ url: dialer.url, err: err?.message }, 'cannot reach peer');
        this.#schedule(dialer);
      },
    });
  }

  #schedule(dialer: PeerDialer): void {
    if (this.#o.closed() || dialer.stopped || dialer.timer !== undefined) return;
    const kept = dialer.parkedBy;
    if (kept !== undefined) {
      dialer.parkedBy = undefined;
      if (!kept.closed) {
        // The pair's other link carries everything; dial again only once it is gone.
        kept.once('close', () => this.#schedule(dialer));
        return;
      }
    }
    const delay = dialer.backoff.next();
    this.#o.log.debug(
      { url: dialer.url, delayMs: delay, attempt: dialer.backoff.attempt },
      'redialling peer',
    );
    this.#after(dialer, delay);
  }

  #after(dialer: PeerDialer, delay: number): void {
    dialer.timer = setTimeout(() => {
      dialer.timer = undefined;
      this.#dialLimited(dialer);
    }, delay);
    dialer.timer.unref?.();
  }
}
