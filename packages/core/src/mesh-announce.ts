/**
 * What a node tells its peers about its routes, and what it keeps of theirs (docs/protocol.md §2.2, §2.6,
 * docs/mesh.md "Links, announces, routes").
 *
 * Every link starts with a full-state announce (the reference's message) carrying this node's
 * capabilities under `nexus`, a key the reference ignores. A peer whose own first announce carries them
 * too is a Nexus peer: from then on it gets only route deltas (added and removed patterns, numbered by a
 * per-node sequence within a random epoch), the full table as `route_state` parts when it asks after a gap
 * or when the first announce could not hold the table. Any other peer is a full-state peer and gets one
 * full-state announce per change, as the reference sends them. Local changes within the coalescing
 * window make one message per link (more only when a delta is larger than the peer's message limit).
 */
import { randomBytes } from 'node:crypto';
import {
  type AnnounceMessage,
  encodePeerMessage,
  type PeerCapabilities,
  ROUTE_DELTAS_VERSION,
  type RouteStateMessage,
  type RouteSyncMessage,
} from '@nexus-proxy/mux-protocol';
import type { Logger } from './logger.js';
import type { PeerLinkInfo } from './mesh-options.js';
import type { FilteredAnnounce, PeerPolicy } from './peer-limits.js';
import type { PeerLink } from './peer-link.js';
import type { LocalPatternChange, RoutingTable } from './routing-table.js';

/** The smallest message limit a peer may advertise; a smaller one is read as this: 64 KiB. */
export const MIN_PEER_MESSAGE_BYTES = 65_536;
/** Room left in every split message for its envelope (type, epoch, sequence, keys), bytes. */
const ENVELOPE_BYTES = 256;
/** A link serves at most one `route_resync` per this long; later ones wait for the window to end, ms. */
const RESYNC_INTERVAL_MS = 1_000;
/** A link waiting this long for the `route_state` it asked for asks again at the next delta, ms. */
const RESYNC_RETRY_MS = 5_000;

/** How this node sends routes to a link: not known yet, full-state announces, or deltas. */
export type RouteSyncMode = 'pending' | 'full' | 'delta';

/** Counters of route synchronisation (part of `PeerMesh.stats()`). */
export interface RouteSyncStats {
  /** Full-state announces cut to fit the message limit of a full-state peer, and the routes left out. */
  announcesTruncated: number;
  routesOmitted: number;
  /** Gaps (or epoch changes) detected in a Nexus peer's deltas; each asks for a resync. */
  gaps: number;
  /** `route_resync` messages sent and served. */
  resyncsRequested: number;
  resyncsServed: number;
  /** Route deltas applied. */
  deltasApplied: number;
}

/** Options of {@link MeshAnnouncer}. */
export interface MeshAnnouncerOptions {
  routes: RoutingTable<unknown, string>;
  policy: PeerPolicy;
  coalesceMs: number;
  /** Speak route deltas with Nexus peers (advertise the capability). `false`: full state to everyone. */
  deltas: boolean;
  log: Logger;
  /** The routes learned on a link changed (`hostnames` is computed when read). */
  routesChanged(info: PeerLinkInfo & { hostnames: string[]; version: number | undefined }): void;
  /** A Nexus peer's first announce arrived on `link` (its capabilities): the one-link-per-pair check. */
  nexusPeer(link: PeerLink, caps: PeerCapabilities): void;
}

interface Receiving {
  /** The peer's epoch and the last sequence applied; `undefined` before a baseline. */
  epoch: string | undefined;
  seq: number | undefined;
  /** When this node asked for (or waits for) a `route_state`; deltas are ignored meanwhile. */
  awaitingSince: number | undefined;
  /** A `route_state` being reassembled. */
  parts: { epoch: string; seq: number; next: number; hostnames: string[]; dropped: number } | undefined;
}

interface LinkSync {
  link: PeerLink;
  info: PeerLinkInfo;
  mode: RouteSyncMode;
  /** Local changes happened while the mode was pending: send the table once it is known. */
  dirty: boolean;
  /** The first announce held only part of the table. */
  helloPartial: boolean;
  /** Routes left out of the first announce, of how many (reported if the peer is a full-state peer). */
  helloOmitted: number;
  helloTotal: number;
  /** The peer's message limit (deltas and states to it are split at it). */
  peerMaxBytes: number;
  rx: Receiving;
  lastResyncServedAt: number;
  resyncTimer: NodeJS.Timeout | undefined;
}

/** The announce side and the route-keeping side of every link of one mesh. */
export class MeshAnnouncer {
  /** Random per mesh instance: the scope of this node's sequence numbers, and part of its identity. */
  readonly epoch = randomBytes(16).toString('hex');
  readonly #o: MeshAnnouncerOptions;
  readonly #links = new Map<string, LinkSync>();
  #version = 0;
  #seq = 0;
  readonly #added = new Set<string>();
  readonly #removed = new Set<string>();
  /** A change whose patterns are unknown (`notify()`): Nexus peers get the whole table. */
  #wholeTable = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly stats: RouteSyncStats = {
    announcesTruncated: 0,
    routesOmitted: 0,
    gaps: 0,
    resyncsRequested: 0,
    resyncsServed: 0,
    deltasApplied: 0,
  };
  announcesApplied = 0;
  announceApplyMs = 0;
  announceApplyMaxMs = 0;

  constructor(options: MeshAnnouncerOptions) {
    this.#o = options;
  }

  /** The full-state announce counter (every local change and every new link). */
  get version(): number {
    return this.#version;
  }

  /** The route-delta sequence number (every change sent as deltas). */
  get seq(): number {
    return this.#seq;
  }

  /** How routes are sent to `linkId`, if it is open. */
  modeOf(linkId: string): RouteSyncMode | undefined {
    return this.#links.get(linkId)?.mode;
  }

  /** Local patterns changed: coalesced, then one message per link. */
  localChanged(change: LocalPatternChange): void {
    for (const p of change.added) if (!this.#removed.delete(p)) this.#added.add(p);
    for (const p of change.removed) if (!this.#added.delete(p)) this.#removed.add(p);
    this.#schedule();
  }

  /** A change this node cannot itemise: full-state peers get an announce, Nexus peers the whole table. */
  notify(): void {
    this.#wholeTable = true;
    this.#schedule();
  }

  /** A new link: its first announce (with this node's capabilities), and its messages from now on. */
  attach(link: PeerLink, info: PeerLinkInfo): void {
    const sync: LinkSync = {
      link,
      info,
      mode: 'pending',
      dirty: false,
      helloPartial: false,
      helloOmitted: 0,
      helloTotal: 0,
      peerMaxBytes: this.#o.policy.maxMessageBytes,
      rx: { epoch: undefined, seq: undefined, awaitingSince: undefined, parts: undefined },
      lastResyncServedAt: 0,
      resyncTimer: undefined,
    };
    this.#links.set(link.id, sync);
    link.on('announce', (message) => this.#onAnnounce(sync, message));
    link.on('route-sync', (message) => this.#onRouteSync(sync, message));
    link.once('close', () => {
      if (sync.resyncTimer !== undefined) clearTimeout(sync.resyncTimer);
      this.#links.delete(link.id);
    });
    this.#sendHello(sync);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const sync of this.#links.values())
      if (sync.resyncTimer !== undefined) clearTimeout(sync.resyncTimer);
  }

  // ───────────────────────────── sending ─────────────────────────────

  #schedule(): void {
    if (this.#closed) return;
    ++this.#version;
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, this.#o.coalesceMs);
    this.#timer.unref?.();
  }

  #flush(): void {
    if (this.#closed) return;
    const added = [...this.#added];
    const removed = [...this.#removed];
    const whole = this.#wholeTable;
    this.#added.clear();
    this.#removed.clear();
    this.#wholeTable = false;
    if (added.length === 0 && removed.length === 0 && !whole) return;
    const deltaLinks: LinkSync[] = [];
    let fullLinks = 0;
    for (const sync of this.#links.values()) {
      if (sync.mode === 'delta') deltaLinks.push(sync);
      else if (sync.mode === 'full') fullLinks++;
      else sync.dirty = true;
    }
    this.#o.log.debug(
      { version: this.#version, added: added.length, removed: removed.length, links: this.#links.size },
      'announcing local route changes',
    );
    if (whole) {
      ++this.#seq;
      for (const sync of deltaLinks) this.#sendState(sync);
    } else {
      // The same messages (and sequence numbers) to every Nexus peer: split at the smallest limit.
      const budget = Math.min(...deltaLinks.map((s) => s.peerMaxBytes), this.#o.policy.maxMessageBytes);
      for (const [r, a] of splitDelta(removed, added, budget)) {
        const message: RouteSyncMessage = {
          type: 'route_delta',
          epoch: this.epoch,
          seq: ++this.#seq,
          version: this.#version,
          added: a,
          removed: r,
        };
        const text = encodePeerMessage(message);
        for (const sync of deltaLinks) sync.link.sendRouteSync(message, text);
      }
    }
    if (fullLinks > 0) {
      const full = this.#fullAnnounce(this.#version, undefined);
      for (const sync of this.#links.values()) {
        if (sync.mode !== 'full') continue;
        sync.link.sendAnnounce(this.#version, [], undefined, full.text);
        if (full.omitted > 0) this.#truncated(sync, full.omitted, full.total);
      }
    }
  }

  /** The first announce of a link: the table as far as it fits one message, and the capabilities. */
  #sendHello(sync: LinkSync): void {
    const version = ++this.#version;
    const caps: PeerCapabilities | undefined = this.#o.deltas
      ? {
          deltas: ROUTE_DELTAS_VERSION,
          epoch: this.epoch,
          seq: this.#seq,
          max_message_bytes: this.#o.policy.maxMessageBytes,
          // §1.11: what this node accepts, so that a Nexus peer sends it larger tunnel frames, and tells
          // what it accepts in turn.
          max_data_payload: sync.link.offeredDataPayload,
        }
      : undefined;
    const hello = this.#fullAnnounce(version, caps);
    sync.helloPartial = hello.omitted > 0;
    sync.helloOmitted = hello.omitted;
    sync.helloTotal = hello.total;
    sync.link.sendAnnounce(version, [], caps, hello.text);
    // A node that speaks no deltas knows the mode at once; its announce may have been cut already.
    if (!this.#o.deltas) {
      sync.mode = 'full';
      if (hello.omitted > 0) this.#truncated(sync, hello.omitted, hello.total);
    }
  }

  /**
   * A full-state announce cut to this node's own message limit (what a node assumes its full-state peers
   * accept, docs/mesh.md): the first routes, sorted, and `partial` in the capabilities when cut.
   */
  #fullAnnounce(
    version: number,
    caps: PeerCapabilities | undefined,
  ): { text: string; omitted: number; total: number } {
    const all = this.#o.routes.localPatterns();
    const kept = fitNames(all, this.#o.policy.maxMessageBytes - ENVELOPE_BYTES);
    const nexus = caps === undefined ? undefined : kept < all.length ? { ...caps, partial: true } : caps;
    const message: AnnounceMessage = {
      type: 'announce',
      version,
      hostnames: kept < all.length ? all.slice(0, kept) : all,
      ...(nexus !== undefined ? { nexus } : {}),
    };
    return { text: encodePeerMessage(message), omitted: all.length - kept, total: all.length };
  }

  #truncated(sync: LinkSync, omitted: number, total: number): void {
    this.stats.announcesTruncated++;
    this.stats.routesOmitted += omitted;
    this.#o.log.warn(
      { ...sync.info, routes: total, omitted, limit: this.#o.policy.maxMessageBytes },
      'the route table does not fit one announce for a full-state peer: sent the first routes only',
    );
  }

  /** The whole table as of the current sequence number, in parts that fit the peer's limit. */
  #sendState(sync: LinkSync): void {
    const all = this.#o.routes.localPatterns();
    const parts = splitNames(all, sync.peerMaxBytes - ENVELOPE_BYTES);
    parts.forEach((hostnames, part) => {
      const message: RouteStateMessage = {
        type: 'route_state',
        epoch: this.epoch,
        seq: this.#seq,
        version: this.#version,
        part,
        hostnames,
        last: part === parts.length - 1,
      };
      sync.link.sendRouteSync(message);
    });
  }

  /** A peer asked for the table: served at once, or once the link's resync window ends. */
  #serveResync(sync: LinkSync): void {
    if (sync.mode !== 'delta' || sync.resyncTimer !== undefined) return;
    const wait = sync.lastResyncServedAt + RESYNC_INTERVAL_MS - Date.now();
    const serve = (): void => {
      sync.resyncTimer = undefined;
      if (this.#closed || sync.link.closed) return;
      sync.lastResyncServedAt = Date.now();
      this.stats.resyncsServed++;
      this.#sendState(sync);
    };
    if (wait <= 0) serve();
    else {
      sync.resyncTimer = setTimeout(serve, wait);
      sync.resyncTimer.unref?.();
    }
  }

  // ───────────────────────────── receiving ─────────────────────────────

  #onAnnounce(sync: LinkSync, message: AnnounceMessage): void {
    if (this.#closed) return;
    if (sync.mode === 'pending') this.#resolveMode(sync, message.nexus);
    // The pair check may have closed this very link: a closed link's routes are gone for good.
    if (sync.link.closed) return;
    const caps = sync.mode === 'delta' ? message.nexus : undefined;
    this.#applyFull(sync, message.hostnames, message.version);
    if (caps !== undefined) {
      sync.rx.epoch = caps.epoch;
      sync.rx.seq = caps.seq;
      sync.rx.parts = undefined;
      // The rest of the table follows as route_state parts.
      sync.rx.awaitingSince = caps.partial === true ? Date.now() : undefined;
    }
  }

  /** The peer's first announce tells what it is; what waited for that is sent now. */
  #resolveMode(sync: LinkSync, caps: PeerCapabilities | undefined): void {
    if (this.#o.deltas && caps !== undefined && caps.deltas >= ROUTE_DELTAS_VERSION) {
      sync.mode = 'delta';
      sync.peerMaxBytes = Math.max(
        MIN_PEER_MESSAGE_BYTES,
        Math.min(caps.max_message_bytes ?? this.#o.policy.maxMessageBytes, Number.MAX_SAFE_INTEGER),
      );
      if (sync.dirty || sync.helloPartial) this.#sendState(sync);
      this.#o.nexusPeer(sync.link, caps);
    } else {
      sync.mode = 'full';
      if (sync.dirty) {
        const full = this.#fullAnnounce(this.#version, undefined);
        sync.link.sendAnnounce(this.#version, [], undefined, full.text);
        if (full.omitted > 0) this.#truncated(sync, full.omitted, full.total);
      } else if (sync.helloOmitted > 0) {
        this.#truncated(sync, sync.helloOmitted, sync.helloTotal);
      }
    }
    sync.dirty = false;
  }

  #onRouteSync(sync: LinkSync, message: RouteSyncMessage): void {
    if (this.#closed) return;
    if (sync.mode !== 'delta') {
      this.#o.log.debug({ ...sync.info, type: message.type }, 'ignoring route sync from a full-state peer');
      return;
    }
    const rx = sync.rx;
    switch (message.type) {
      case 'route_resync':
        this.#serveResync(sync);
        return;
      case 'route_delta': {
        if (rx.awaitingSince !== undefined) {
          if (Date.now() - rx.awaitingSince >= RESYNC_RETRY_MS) this.#askResync(sync, true);
          return;
        }
        if (message.epoch !== rx.epoch || rx.seq === undefined || message.seq > rx.seq + 1) {
          this.#askResync(sync, false);
          return;
        }
        if (message.seq <= rx.seq) return; // older than the baseline: already in it
        rx.seq = message.seq;
        newerVersion(sync.link, message.version);
        this.#applyDelta(sync, message.added, message.removed);
        return;
      }
      default:
        this.#onStatePart(sync, message);
    }
  }

  #onStatePart(sync: LinkSync, message: RouteStateMessage): void {
    const rx = sync.rx;
    if (message.part === 0) {
      rx.parts = { epoch: message.epoch, seq: message.seq, next: 0, hostnames: [], dropped: 0 };
    }
    const parts = rx.parts;
    if (
      parts === undefined ||
      parts.epoch !== message.epoch ||
      parts.seq !== message.seq ||
      parts.next !== message.part
    ) {
      // A part out of order: the state is lost, ask again.
      rx.parts = undefined;
      this.#askResync(sync, true);
      return;
    }
    parts.next++;
    // Bounded: more than twice the route cap cannot survive the cap anyway.
    const room = 2 * this.#o.policy.maxRoutes - parts.hostnames.length;
    if (room < message.hostnames.length) parts.dropped += message.hostnames.length - Math.max(0, room);
    for (const h of message.hostnames.slice(0, Math.max(0, room))) parts.hostnames.push(h);
    if (!message.last) return;
    rx.parts = undefined;
    rx.epoch = parts.epoch;
    rx.seq = parts.seq;
    rx.awaitingSince = undefined;
    newerVersion(sync.link, message.version);
    this.#applyFull(sync, parts.hostnames, sync.link.lastAnnounceVersion, parts.dropped);
  }

  #askResync(sync: LinkSync, again: boolean): void {
    if (!again) this.stats.gaps++;
    this.stats.resyncsRequested++;
    const rx = sync.rx;
    rx.awaitingSince = Date.now();
    this.#o.log.info({ ...sync.info, epoch: rx.epoch, seq: rx.seq }, 'route deltas out of sequence: resync');
    sync.link.sendRouteSync({
      type: 'route_resync',
      ...(rx.epoch !== undefined ? { epoch: rx.epoch } : {}),
      ...(rx.seq !== undefined ? { seq: rx.seq } : {}),
    });
  }

  /** Replaces everything the link announced (a full-state announce, or a reassembled route state). */
  #applyFull(sync: LinkSync, hostnames: readonly string[], version: number | undefined, dropped = 0): void {
    if (sync.link.closed) return;
    const started = performance.now();
    const kept = this.#o.policy.routesFrom(sync.link.peer, hostnames);
    kept.truncated += dropped;
    this.#warnDropped(sync, kept);
    this.#o.routes.setPeerRoutes(sync.link.id, kept.accepted);
    this.#applied(sync, started, version);
  }

  #applyDelta(sync: LinkSync, added: readonly string[], removed: readonly string[]): void {
    if (sync.link.closed) return;
    const started = performance.now();
    const routes = this.#o.routes;
    routes.removePeerRoutes(sync.link.id, removed);
    const kept = this.#o.policy.routesFrom(sync.link.peer, added, Number.POSITIVE_INFINITY);
    const result = routes.addPeerRoutes(sync.link.id, kept.accepted, this.#o.policy.maxRoutes);
    kept.truncated += result.truncated;
    this.#warnDropped(sync, kept);
    this.stats.deltasApplied++;
    this.#applied(sync, started, sync.link.lastAnnounceVersion);
  }

  #warnDropped(sync: LinkSync, kept: FilteredAnnounce): void {
    if (kept.refused === 0 && kept.truncated === 0) return;
    this.#o.log.warn(
      { ...sync.info, refused: kept.refused, truncated: kept.truncated, limit: this.#o.policy.maxRoutes },
      'peer announced routes it may not have: dropped',
    );
  }

  #applied(sync: LinkSync, started: number, version: number | undefined): void {
    const tookMs = performance.now() - started;
    this.announcesApplied++;
    this.announceApplyMs += tookMs;
    this.announceApplyMaxMs = Math.max(this.announceApplyMaxMs, tookMs);
    const routes = this.#o.routes;
    const id = sync.link.id;
    this.#o.log.info(
      { ...sync.info, version, seq: sync.rx.seq, routes: routes.peerRouteCount(id) },
      'peer routes updated',
    );
    this.#o.routesChanged({
      ...sync.info,
      version,
      get hostnames() {
        return routes.peerPatterns(id);
      },
    });
  }
}

/** A route-sync message's `version` becomes the link's announce version when it is newer. */
function newerVersion(link: PeerLink, version: number): void {
  if (version > (link.lastAnnounceVersion ?? 0)) link.lastAnnounceVersion = version;
}

/** Bytes a name takes in a JSON list (its literal and a comma). Local patterns are ASCII. */
function nameBytes(name: string): number {
  return name.length + 3;
}

/** How many of `names` (from the first) fit in `budget` bytes of JSON list. */
export function fitNames(names: readonly string[], budget: number): number {
  let used = 0;
  for (let i = 0; i < names.length; i++) {
    used += nameBytes(names[i]!);
    if (used > budget) return i;
  }
  return names.length;
}

/** `names` in consecutive parts of at most `budget` bytes of JSON list each (at least one part). */
export function splitNames(names: readonly string[], budget: number): string[][] {
  const parts: string[][] = [[]];
  let used = 0;
  for (const name of names) {
    const bytes = nameBytes(name);
    if (used + bytes > budget && parts[parts.length - 1]!.length > 0) {
      parts.push([]);
      used = 0;
    }
    parts[parts.length - 1]!.push(name);
    used += bytes;
  }
  return parts;
}

/** A delta as `[removed, added]` pairs of at most `budget` bytes each (one pair when it fits): removals first. */
function splitDelta(removed: string[], added: string[], budget: number): Array<[string[], string[]]> {
  const room = budget - ENVELOPE_BYTES;
  let bytes = 0;
  for (const n of removed) bytes += nameBytes(n);
  for (const n of added) bytes += nameBytes(n);
  if (bytes <= room) return [[removed, added]];
  return [
    ...(removed.length > 0 ? splitNames(removed, room) : []).map((r): [string[], string[]] => [r, []]),
    ...(added.length > 0 ? splitNames(added, room) : []).map((a): [string[], string[]] => [[], a]),
  ];
}
