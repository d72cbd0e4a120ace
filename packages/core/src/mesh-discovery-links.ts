/**
 * Links opened on demand to discovered nodes (docs/mesh.md "Discovery on NATS"): the first tunnel to a
 * route whose node we have no link to dials that node's peer URL (the mesh's normal dial: shared TLS
 * context, bounded dials, mutual TLS, the peer wire protocol unchanged), and a link that carried no tunnel
 * for the idle time is closed. A node that cannot be reached is not dialled again for
 * {@link ON_DEMAND_REDIAL_AFTER_MS}: tunnels to it fail at once meanwhile.
 */
import type { Logger } from './logger.js';
import type { PeerLink } from './peer-link.js';
import type { PeerLinksRoute } from './routing-table.js';

/** Default idle time after which a link opened on demand is closed: `60_000` ms. */
export const DEFAULT_ON_DEMAND_LINK_IDLE_MS = 60_000;
/** A failed on-demand dial is not retried for this long: `1_000` ms. */
export const ON_DEMAND_REDIAL_AFTER_MS = 1_000;
/** Close reason of a link closed for lack of tunnels. */
export const ON_DEMAND_IDLE_REASON = 'idle';

/** What the mesh asks of on-demand links (`PeerMesh.setOnDemandLinks`). */
export interface OnDemandLinkProvider {
  /** The open link to the node behind a routing table key, if any. */
  linkFor(routeKey: string): PeerLink | undefined;
  /** Opens a link for a route none of whose links is open; `undefined` when there is nothing to dial. */
  connect(route: PeerLinksRoute<string>): Promise<void> | undefined;
}

/** Options of {@link OnDemandLinks}. */
export interface OnDemandLinksOptions {
  /** Dials one peer URL once (no redial); resolves with the open link, or `undefined` when it failed. */
  dial(url: string): Promise<PeerLink | undefined>;
  /** The peer URL of a discovered node's routing table key; `undefined` for any other key. */
  urlOf(routeKey: string): string | undefined;
  /** Idle time after which a link without tunnels is closed, ms. */
  idleMs: number;
  log: Logger;
  /** Monotonic clock, ms. Default: `performance.now`. */
  now?: () => number;
}

interface OnDemandLink {
  link: PeerLink;
  /** Since when the link has had no tunnel (ms, monotonic); `undefined` while it carries some. */
  idleSince: number | undefined;
}

/** The on-demand links of one node, keyed by peer URL. */
export class OnDemandLinks implements OnDemandLinkProvider {
  readonly #options: OnDemandLinksOptions;
  readonly #now: () => number;
  readonly #links = new Map<string, OnDemandLink>();
  readonly #pending = new Map<string, Promise<PeerLink | undefined>>();
  /** When a dial to a URL last failed (bounded: one entry per discovered node at most). */
  readonly #failedAt = new Map<string, number>();
  readonly #sweep: NodeJS.Timeout;
  #closed = false;

  constructor(options: OnDemandLinksOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
    this.#sweep = setInterval(() => this.sweep(), Math.max(100, Math.floor(options.idleMs / 4)));
    this.#sweep.unref?.();
  }

  /** Links open now. */
  get size(): number {
    return this.#links.size;
  }

  /** The open link to the node behind a routing table key (a tunnel is about to use it). */
  linkFor(routeKey: string): PeerLink | undefined {
    const url = this.#options.urlOf(routeKey);
    const entry = url === undefined ? undefined : this.#links.get(url);
    if (entry === undefined || entry.link.closed) return undefined;
    entry.idleSince = undefined;
    return entry.link;
  }

  /**
   * Opens a link to the first discovered node of `route` (its links were tried and none was open).
   * Resolves when the dial ended, either way; `undefined` when there is nothing to dial (no discovered
   * node in the route, or its last dial failed moments ago).
   */
  connect(route: PeerLinksRoute<string>): Promise<void> | undefined {
    if (this.#closed) return undefined;
    for (const key of route.linkIds) {
      const url = this.#options.urlOf(key);
      if (url === undefined) continue;
      const failed = this.#failedAt.get(url);
      if (failed !== undefined && this.#now() - failed < ON_DEMAND_REDIAL_AFTER_MS) continue;
      return this.#dial(url).then(() => undefined);
    }
    return undefined;
  }

  /** Closes the links idle for the idle time, forgets the closed ones. */
  sweep(): void {
    const now = this.#now();
    for (const [url, entry] of this.#links) {
      if (entry.link.closed) {
        this.#links.delete(url);
        continue;
      }
      if (entry.link.tunnels.stats().tunnels > 0) {
        entry.idleSince = undefined;
        continue;
      }
      entry.idleSince ??= now;
      if (now - entry.idleSince >= this.#options.idleMs) {
        this.#options.log.info({ url, idleMs: this.#options.idleMs }, 'closing idle on-demand peer link');
        this.#links.delete(url);
        entry.link.close(ON_DEMAND_IDLE_REASON);
      }
    }
    for (const [url, at] of this.#failedAt) {
      if (now - at >= ON_DEMAND_REDIAL_AFTER_MS) this.#failedAt.delete(url);
    }
  }

  /** Stops the sweep; the links themselves close with the mesh. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweep);
  }

  #dial(url: string): Promise<PeerLink | undefined> {
    const open = this.#links.get(url);
    if (open !== undefined && !open.link.closed) return Promise.resolve(open.link);
    let pending = this.#pending.get(url);
    if (pending !== undefined) return pending;
    this.#options.log.info({ url }, 'opening on-demand peer link');
    pending = Promise.resolve()
      .then(() => this.#options.dial(url))
      .catch((err: unknown) => {
        this.#options.log.warn({ url, err: (err as Error)?.message }, 'on-demand dial failed');
        return undefined;
      })
      .then((link) => {
        this.#pending.delete(url);
        if (link === undefined || link.closed) {
          this.#failedAt.set(url, this.#now());
          return undefined;
        }
        this.#failedAt.delete(url);
        if (this.#closed) {
          link.close('shutdown');
          return undefined;
        }
        this.#links.set(url, { link, idleSince: undefined });
        return link;
      });
    this.#pending.set(url, pending);
    return pending;
  }
}
