/**
 * The routing table: which local backends and which peers serve a hostname (docs/protocol.md §3.3).
 *
 * Local routes are weighted pools of targets (backend sessions) per pattern; peer routes are sets of
 * peer links per pattern, replaced wholesale by a full-state announce (docs/protocol.md §2.2) or changed
 * pattern by pattern by a route delta (§2.6). Lookup order
 * is local exact, local wildcard, peer exact, peer wildcard. Empty pools are deleted at once, so an exact
 * pool that lost its last backend never shadows a wildcard (docs/reliability.md item 15). Port-claim route
 * keys (`tcp:443`, `route-key.ts`) are exact patterns like any other.
 */
import { normalizeHostname, normalizeHostnamePattern } from '@nexus-proxy/sni';
import type { NoRouteReason } from './errors.js';
import { normalizeRouteKey } from './route-key.js';
import { WeightedRoundRobin } from './weighted-round-robin.js';

/**
 * Default most patterns served by local backends on one node (`limits.maxLocalRoutes`): `10_000`, what a
 * peer keeps of one announce (`limits.maxPeerRoutes`).
 */
export const DEFAULT_MAX_LOCAL_ROUTES = 10_000;

/** A hostname pattern (`app.example.com`, `*.example.com`) or a route key (`tcp:443`), normalised. */
function normalizePattern(pattern: string): string | undefined {
  return normalizeRouteKey(pattern) ?? normalizeHostnamePattern(pattern);
}

/** A hostname or a route key, normalised. */
function normalizeName(name: string): string | undefined {
  return normalizeRouteKey(name) ?? normalizeHostname(name);
}

/** What every route that matched says: the name asked for and the pattern that matched it. */
export interface RouteMatch {
  /** The hostname, normalised (case, trailing dot, IDNA). */
  hostname: string;
  /** The pattern that matched: the hostname itself, or `*.suffix`. */
  pattern: string;
  /** True when `pattern` is a wildcard. */
  wildcard: boolean;
}

/**
 * A decision for local backends: the weighted pool serving the pattern. The pool is live (the caller
 * picks from it, and may try its other members when one is full); nothing was picked yet.
 */
export interface LocalPoolRoute<T> extends RouteMatch {
  kind: 'local';
  pool: WeightedRoundRobin<T>;
}

/**
 * A decision for peers: every link announcing the pattern, in rotation order (this decision took the
 * rotation's next turn), so a caller whose tunnel is refused can try the next one. A snapshot.
 */
export interface PeerLinksRoute<L> extends RouteMatch {
  kind: 'peer';
  linkIds: readonly L[];
}

/** A decision without a route. */
export interface NoRoute {
  kind: 'none';
  /** The hostname, normalised when it was valid, as given otherwise. */
  hostname: string;
  /** `invalid-hostname` or `no-route` (see `NoRouteReason`). */
  reason: Exclude<NoRouteReason, 'peers-unavailable'>;
}

/**
 * The one routing decision for a hostname ({@link RoutingTable.resolve}): a local pool, peer links, or
 * no route. The node dispatches on `kind`.
 */
export type RouteDecision<T, L = string> = LocalPoolRoute<T> | PeerLinksRoute<L> | NoRoute;

/** A lookup answered by a local backend. */
export interface LocalRoute<T> {
  kind: 'local';
  /** The backend picked by weighted round robin. */
  target: T;
  /** The pattern that matched: the hostname itself, or `*.suffix`. */
  pattern: string;
}

/** A lookup answered by one or more peers. */
export interface PeerRoute<L> {
  kind: 'peer';
  /** The peer link picked by round robin among the links announcing the pattern. */
  linkId: L;
  /**
   * Every link announcing the pattern, starting with `linkId` and continuing in rotation order, so a
   * caller whose tunnel is refused can try the next one. A snapshot: later changes do not affect it.
   */
  linkIds: readonly L[];
  /** The pattern that matched. */
  pattern: string;
}

/** Result of {@link RoutingTable.lookup}. */
export type Route<T, L = string> = LocalRoute<T> | PeerRoute<L>;

/** A pattern learned from peers and how many links announce it ({@link RoutingTable.peerRoutes}). */
export interface PeerRouteSummary {
  pattern: string;
  links: number;
}

/** A local route given to the constructor. */
export interface LocalRouteInit<T> {
  pattern: string;
  target: T;
  /** Default: 1. */
  weight?: number;
}

/** Options of {@link RoutingTable}. */
export interface RoutingTableOptions<T> {
  /** Initial local routes. */
  routes?: Iterable<LocalRouteInit<T>>;
  /**
   * Called after the set of locally served patterns changed (a pattern gained its first or lost its last
   * backend): the moment to send peers a new announce. Not called for weight changes or for a second
   * backend joining an existing pattern.
   */
  onLocalPatternsChange?: (patterns: readonly string[]) => void;
}

/** The locally served patterns that appeared and disappeared in one change ({@link RoutingTable.subscribeLocalChanges}). */
export interface LocalPatternChange {
  added: readonly string[];
  removed: readonly string[];
}

/** Plain snapshot of a {@link RoutingTable}. */
export interface RoutingTableStats {
  /** Locally served patterns (exact and wildcard). */
  localPatterns: number;
  /** Local (pattern, target) registrations. */
  localEntries: number;
  /** Patterns learned from peers (distinct). */
  peerPatterns: number;
  /** Peer links with at least one route. */
  peerLinks: number;
}

interface PeerPool<L> {
  /** Copy-on-write, so lookups can hand it out as a snapshot. */
  links: readonly L[];
  cursor: number;
}

/**
 * Routes hostnames to local targets (`T`, e.g. a backend session) and peer links (`L`, e.g. a link id).
 * Patterns are exact hostnames or single-label wildcards (`*.example.com`), normalised on the way in.
 */
export class RoutingTable<T, L = string> {
  readonly #localExact = new Map<string, WeightedRoundRobin<T>>();
  // Keyed by the suffix after "*." so a lookup is one Map.get on the hostname minus its first label.
  readonly #localWildcard = new Map<string, WeightedRoundRobin<T>>();
  readonly #targetPatterns = new Map<T, Set<string>>();
  readonly #peerExact = new Map<string, PeerPool<L>>();
  readonly #peerWildcard = new Map<string, PeerPool<L>>();
  readonly #linkPatterns = new Map<L, Set<string>>();
  readonly #onLocalPatternsChange: ((patterns: readonly string[]) => void) | undefined;
  readonly #localPatternListeners = new Set<(patterns: readonly string[]) => void>();
  readonly #localChangeListeners = new Set<(change: LocalPatternChange) => void>();
  #localVersion = 0;

  constructor(options: RoutingTableOptions<T> = {}) {
    this.#onLocalPatternsChange = options.onLocalPatternsChange;
    if (options.routes) for (const r of options.routes) this.addLocal(r.pattern, r.target, r.weight);
  }

  /** Incremented every time the set of locally served patterns changes (an announce `version` source). */
  get localVersion(): number {
    return this.#localVersion;
  }

  /**
   * Register `target` for `pattern` with `weight` (≤ 0 or absent → 1). Registering the same pair again
   * updates the weight. Returns false (and changes nothing) when `pattern` is not a valid hostname or
   * wildcard.
   */
  addLocal(pattern: string, target: T, weight?: number): boolean {
    const result = this.#addLocal(pattern, target, weight);
    if (result === undefined) return false;
    if (result.created) this.#localPatternsChanged([result.normalized], []);
    return true;
  }

  #addLocal(
    pattern: string,
    target: T,
    weight: number | undefined,
  ): { normalized: string; created: boolean } | undefined {
    const normalized = normalizePattern(pattern);
    if (normalized === undefined) return undefined;
    const [map, key] = this.#localSlot(normalized);
    let pool = map.get(key);
    const created = pool === undefined;
    if (pool === undefined) {
      pool = new WeightedRoundRobin<T>();
      map.set(key, pool);
    }
    pool.add(target, weight);
    let patterns = this.#targetPatterns.get(target);
    if (patterns === undefined) {
      patterns = new Set();
      this.#targetPatterns.set(target, patterns);
    }
    patterns.add(normalized);
    return { normalized, created };
  }

  /**
   * Register `target` for every pattern at once (a backend's whole set, docs/mesh.md "Scaling"): like
   * {@link RoutingTable.addLocal} per pattern, but the local-pattern listeners hear of it once, so a backend
   * with n names costs O(n) here instead of n notifications of the whole table. Returns the patterns
   * registered (normalised) and those refused as invalid.
   */
  addLocalMany(
    patterns: Iterable<string>,
    target: T,
    weight?: number,
  ): { registered: string[]; invalid: string[] } {
    const registered: string[] = [];
    const invalid: string[] = [];
    const created: string[] = [];
    for (const pattern of patterns) {
      const result = this.#addLocal(pattern, target, weight);
      if (result === undefined) invalid.push(pattern);
      else {
        registered.push(result.normalized);
        if (result.created) created.push(result.normalized);
      }
    }
    if (created.length > 0) this.#localPatternsChanged(created, []);
    return { registered, invalid };
  }

  /** Unregister `target` from `pattern`. Returns false if it was not registered there. */
  removeLocal(pattern: string, target: T): boolean {
    const normalized = normalizePattern(pattern);
    if (normalized === undefined) return false;
    const removed = this.#removeLocal(normalized, target) !== false;
    if (removed) {
      const patterns = this.#targetPatterns.get(target);
      patterns?.delete(normalized);
      if (patterns?.size === 0) this.#targetPatterns.delete(target);
    }
    return removed;
  }

  /**
   * Unregister `target` from every pattern at once (its session ended, docs/protocol.md §1.7). Returns the
   * patterns it was removed from.
   */
  removeTarget(target: T): string[] {
    const patterns = this.#targetPatterns.get(target);
    if (patterns === undefined) return [];
    this.#targetPatterns.delete(target);
    const out = [...patterns];
    const gone: string[] = [];
    for (const p of out) if (this.#removeLocal(p, target, false) === 'emptied') gone.push(p);
    if (gone.length > 0) this.#localPatternsChanged([], gone);
    return out;
  }

  /** Replace every route learned from `linkId` with `patterns` (a full-state announce). Invalid ones are skipped. */
  setPeerRoutes(linkId: L, patterns: Iterable<string>): void {
    const next = new Set<string>();
    for (const p of patterns) {
      const normalized = typeof p === 'string' ? normalizePattern(p) : undefined;
      if (normalized !== undefined) next.add(normalized);
    }
    const previous = this.#linkPatterns.get(linkId);
    if (previous) {
      for (const p of previous) if (!next.has(p)) this.#removePeer(p, linkId);
    }
    for (const p of next) if (!previous?.has(p)) this.#addPeer(p, linkId);
    if (next.size === 0) this.#linkPatterns.delete(linkId);
    else this.#linkPatterns.set(linkId, next);
  }

  /**
   * Add routes learned from `linkId` (a route delta, docs/protocol.md §2.6) without touching its others,
   * keeping the link at most `maxRoutes` patterns. Invalid patterns are skipped. O(patterns given).
   */
  addPeerRoutes(
    linkId: L,
    patterns: Iterable<string>,
    maxRoutes = Number.POSITIVE_INFINITY,
  ): { added: number; truncated: number } {
    let set = this.#linkPatterns.get(linkId);
    let added = 0;
    let truncated = 0;
    for (const p of patterns) {
      const normalized = typeof p === 'string' ? normalizePattern(p) : undefined;
      if (normalized === undefined || set?.has(normalized)) continue;
      if ((set?.size ?? 0) >= maxRoutes) {
        truncated++;
        continue;
      }
      if (set === undefined) {
        set = new Set();
        this.#linkPatterns.set(linkId, set);
      }
      set.add(normalized);
      this.#addPeer(normalized, linkId);
      added++;
    }
    return { added, truncated };
  }

  /** Remove some routes learned from `linkId` (a route delta). O(patterns given). */
  removePeerRoutes(linkId: L, patterns: Iterable<string>): number {
    const set = this.#linkPatterns.get(linkId);
    if (set === undefined) return 0;
    let removed = 0;
    for (const p of patterns) {
      const normalized = typeof p === 'string' ? normalizePattern(p) : undefined;
      if (normalized === undefined || !set.delete(normalized)) continue;
      this.#removePeer(normalized, linkId);
      removed++;
    }
    if (set.size === 0) this.#linkPatterns.delete(linkId);
    return removed;
  }

  /** Forget every route learned from `linkId` (the link died, docs/protocol.md §2.2). */
  removePeer(linkId: L): void {
    const previous = this.#linkPatterns.get(linkId);
    if (previous === undefined) return;
    for (const p of previous) this.#removePeer(p, linkId);
    this.#linkPatterns.delete(linkId);
  }

  /**
   * The routing decision for `hostname` (normalised here, once; an invalid name has no route): local
   * exact, local wildcard, peer exact, peer wildcard (docs/protocol.md §3.3). A local decision hands out the pool
   * without picking; a peer decision takes the next turn of the links' rotation.
   */
  resolve(hostname: string): RouteDecision<T, L> {
    const host = normalizeName(hostname);
    if (host === undefined) return { kind: 'none', hostname, reason: 'invalid-hostname' };
    const dot = host.indexOf('.');
    // A wildcard suffix always has a dot, so only names with at least two dots can match one.
    const suffix = dot > 0 && host.indexOf('.', dot + 1) !== -1 ? host.slice(dot + 1) : undefined;

    const exact = this.#localExact.get(host);
    if (exact !== undefined)
      return { kind: 'local', hostname: host, pattern: host, wildcard: false, pool: exact };
    if (suffix !== undefined) {
      const wild = this.#localWildcard.get(suffix);
      if (wild !== undefined)
        return { kind: 'local', hostname: host, pattern: `*.${suffix}`, wildcard: true, pool: wild };
    }
    const peerExact = this.#peerExact.get(host);
    if (peerExact !== undefined)
      return { kind: 'peer', hostname: host, pattern: host, wildcard: false, linkIds: rotate(peerExact) };
    if (suffix !== undefined) {
      const peerWild = this.#peerWildcard.get(suffix);
      if (peerWild !== undefined)
        return {
          kind: 'peer',
          hostname: host,
          pattern: `*.${suffix}`,
          wildcard: true,
          linkIds: rotate(peerWild),
        };
    }
    return { kind: 'none', hostname: host, reason: 'no-route' };
  }

  /**
   * Route `hostname` like {@link RoutingTable.resolve}, and pick: a local target by weighted round robin,
   * a peer link by round robin. `undefined` when nothing serves it.
   */
  lookup(hostname: string): Route<T, L> | undefined {
    const decision = this.resolve(hostname);
    switch (decision.kind) {
      case 'local':
        return { kind: 'local', target: decision.pool.pick()!, pattern: decision.pattern };
      case 'peer':
        return {
          kind: 'peer',
          linkId: decision.linkIds[0]!,
          linkIds: decision.linkIds,
          pattern: decision.pattern,
        };
      default:
        return undefined;
    }
  }

  /** True when a local backend serves `hostname` (exactly or by wildcard). Does not advance any rotation. */
  hasLocal(hostname: string): boolean {
    const host = normalizeName(hostname);
    if (host === undefined) return false;
    if (this.#localExact.has(host)) return true;
    const dot = host.indexOf('.');
    return dot > 0 && this.#localWildcard.has(host.slice(dot + 1));
  }

  /** True when a local backend or a peer serves `hostname` (a name or a route key). Advances no rotation. */
  has(hostname: string): boolean {
    if (this.hasLocal(hostname)) return true;
    const host = normalizeName(hostname);
    if (host === undefined) return false;
    if (this.#peerExact.has(host)) return true;
    const dot = host.indexOf('.');
    return dot > 0 && this.#peerWildcard.has(host.slice(dot + 1));
  }

  /** How many patterns are served locally (O(1)). */
  get localPatternCount(): number {
    return this.#localExact.size + this.#localWildcard.size;
  }

  /** How many of `patterns` no local backend serves yet (invalid ones and repeats not counted). O(patterns). */
  countNewLocal(patterns: Iterable<string>): number {
    const fresh = new Set<string>();
    for (const p of patterns) {
      const normalized = normalizePattern(p);
      if (normalized === undefined) continue;
      const [map, key] = this.#localSlot(normalized);
      if (!map.has(key)) fresh.add(normalized);
    }
    return fresh.size;
  }

  /** The patterns served locally, sorted: the `hostnames` of an announce (docs/protocol.md §2.2). */
  localPatterns(): string[] {
    const out: string[] = [...this.#localExact.keys()];
    for (const suffix of this.#localWildcard.keys()) out.push(`*.${suffix}`);
    return out.sort();
  }

  /**
   * Like {@link RoutingTable.subscribeLocalPatterns}, but the listener hears only what changed: the patterns
   * that gained their first local backend and those that lost their last (the mesh's route deltas). Costs
   * O(change) per notification. Returns a function that removes it.
   */
  subscribeLocalChanges(listener: (change: LocalPatternChange) => void): () => void {
    this.#localChangeListeners.add(listener);
    return () => {
      this.#localChangeListeners.delete(listener);
    };
  }

  /** The patterns currently announced by `linkId`, sorted. */
  peerPatterns(linkId: L): string[] {
    return [...(this.#linkPatterns.get(linkId) ?? [])].sort();
  }

  /** How many patterns `linkId` announces (no copy, no sort). */
  peerRouteCount(linkId: L): number {
    return this.#linkPatterns.get(linkId)?.size ?? 0;
  }

  /** Every pattern learned from peers with the number of links announcing it, sorted by pattern. */
  peerRoutes(): PeerRouteSummary[] {
    const out: PeerRouteSummary[] = [];
    for (const [host, pool] of this.#peerExact) out.push({ pattern: host, links: pool.links.length });
    for (const [suffix, pool] of this.#peerWildcard)
      out.push({ pattern: `*.${suffix}`, links: pool.links.length });
    return out.sort((a, b) => a.pattern.localeCompare(b.pattern));
  }

  /** The local pool for an exact `pattern` (for stats); undefined when nobody serves it. */
  localPool(pattern: string): WeightedRoundRobin<T> | undefined {
    const normalized = normalizePattern(pattern);
    if (normalized === undefined) return undefined;
    const [map, key] = this.#localSlot(normalized);
    return map.get(key);
  }

  /**
   * Adds a listener called, like the `onLocalPatternsChange` option, after the set of locally served
   * patterns changed (the mesh subscribes to send announces). Returns a function that removes it.
   */
  subscribeLocalPatterns(listener: (patterns: readonly string[]) => void): () => void {
    this.#localPatternListeners.add(listener);
    return () => {
      this.#localPatternListeners.delete(listener);
    };
  }

  /** A plain snapshot for metrics. */
  stats(): RoutingTableStats {
    let localEntries = 0;
    for (const pool of this.#localExact.values()) localEntries += pool.size;
    for (const pool of this.#localWildcard.values()) localEntries += pool.size;
    return {
      localPatterns: this.#localExact.size + this.#localWildcard.size,
      localEntries,
      peerPatterns: this.#peerExact.size + this.#peerWildcard.size,
      peerLinks: this.#linkPatterns.size,
    };
  }

  #localSlot(normalized: string): [Map<string, WeightedRoundRobin<T>>, string] {
    return normalized.startsWith('*.')
      ? [this.#localWildcard, normalized.slice(2)]
      : [this.#localExact, normalized];
  }

  #peerSlot(normalized: string): [Map<string, PeerPool<L>>, string] {
    return normalized.startsWith('*.')
      ? [this.#peerWildcard, normalized.slice(2)]
      : [this.#peerExact, normalized];
  }

  /** `false` when `target` was not registered there, `'emptied'` when it was the pattern's last backend. */
  #removeLocal(normalized: string, target: T, notify = true): boolean | 'emptied' {
    const [map, key] = this.#localSlot(normalized);
    const pool = map.get(key);
    if (pool === undefined || !pool.remove(target)) return false;
    if (pool.size > 0) return true;
    // Delete the empty pool: an empty exact pool must not shadow a wildcard (docs/protocol.md §3.3).
    map.delete(key);
    if (notify) this.#localPatternsChanged([], [normalized]);
    return 'emptied';
  }

  #addPeer(normalized: string, linkId: L): void {
    const [map, key] = this.#peerSlot(normalized);
    const pool = map.get(key);
    if (pool === undefined) map.set(key, { links: [linkId], cursor: 0 });
    else pool.links = [...pool.links, linkId];
  }

  #removePeer(normalized: string, linkId: L): void {
    const [map, key] = this.#peerSlot(normalized);
    const pool = map.get(key);
    if (pool === undefined) return;
    const links = pool.links.filter((l) => l !== linkId);
    if (links.length === 0) map.delete(key);
    else {
      pool.links = links;
      if (pool.cursor >= links.length) pool.cursor = 0;
    }
  }

  #localPatternsChanged(added: readonly string[], removed: readonly string[]): void {
    this.#localVersion++;
    if (this.#localChangeListeners.size > 0) {
      const change: LocalPatternChange = { added, removed };
      for (const listener of [...this.#localChangeListeners]) listener(change);
    }
    if (this.#onLocalPatternsChange === undefined && this.#localPatternListeners.size === 0) return;
    // One sorted copy for every listener: each notification costs O(patterns), never more.
    const patterns = this.localPatterns();
    this.#onLocalPatternsChange?.(patterns);
    for (const listener of [...this.#localPatternListeners]) listener(patterns);
  }
}

/** The pool's links starting at its cursor, and the cursor moved on by one (round robin). */
function rotate<L>(pool: PeerPool<L>): readonly L[] {
  const { links } = pool;
  const start = pool.cursor % links.length;
  pool.cursor = (start + 1) % links.length;
  return start === 0 ? links : [...links.slice(start), ...links.slice(0, start)];
}
