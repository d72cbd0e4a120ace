/**
 * Route discovery past the full mesh (docs/mesh.md "Discovery on NATS"): the engine-independent part.
 *
 * A discovery engine (`mesh-discovery-nats.ts`) publishes this node's local routes under its identity and
 * hands every value it reads back to {@link DiscoveredNodes}, which checks it (`mesh-discovery-records.ts`),
 * assembles each node's route list and writes it into the routing table under the key
 * `discovery:<node id>` — a peer route with no link behind it yet. The first tunnel to such a route opens
 * a link on demand (`mesh-discovery-links.ts`). A node whose heartbeat stops has its routes removed within
 * the liveness TTL; while the engine itself is unreachable nothing expires (the last known routes stay).
 */
import { LogRateLimit } from '@nexus-proxy/common';
import type { Logger } from './logger.js';
import {
  type Checked,
  type NodeRecord,
  parseNodeRecord,
  parseRouteChunk,
  type RouteChunk,
} from './mesh-discovery-records.js';
import type { PeerPolicy } from './peer-limits.js';
import type { RoutingTable } from './routing-table.js';

/** Prefix of the routing table keys of discovered nodes. */
export const DISCOVERY_ROUTE_KEY_PREFIX = 'discovery:';
/** Most remote nodes tracked at once: `10_000`. Records of further nodes are refused. */
export const DISCOVERY_MAX_NODES = 10_000;
/** Most bytes of route chunks held while their node's list is incomplete, all nodes together: 64 MiB. */
export const DISCOVERY_MAX_PENDING_BYTES = 64 * 1024 * 1024;
/** Refusal log lines per minute (the rest are counted in one line). */
const REFUSAL_LOG_LINES_PER_MINUTE = 20;

/** The state of a discovery engine, as `/readyz` and the logs report it. */
export interface MeshDiscoveryStatus {
  /** `connected`: publishing and watching; `degraded`: the engine is unreachable, last known routes kept. */
  state: 'connecting' | 'connected' | 'degraded' | 'closed';
  /** Why it is degraded (the engine's last error or status). */
  reason?: string;
  /** Remote nodes whose routes are in the routing table. */
  nodes: number;
  /** Values refused as malformed, oversize or over the caps, since start. */
  refused: number;
  /** Messages and bytes exchanged with the engine since start (NATS: the client's counters). */
  traffic?: { in: { messages: number; bytes: number }; out: { messages: number; bytes: number } };
}

/** What a running discovery engine offers the node. */
export interface MeshDiscovery {
  status(): MeshDiscoveryStatus;
  /** Withdraws this node's records (so peers drop its routes at once) and stops. Idempotent. */
  close(): Promise<void>;
}

/** The routing table key of a discovered node. */
export function discoveryRouteKey(nodeId: string): string {
  return `${DISCOVERY_ROUTE_KEY_PREFIX}${nodeId}`;
}

interface NodeState {
  record: NodeRecord | undefined;
  /** Chunks read so far and not yet applied, by index (each carries its generation and its size). */
  chunks: Map<number, RouteChunk & { bytes: number }>;
  /** Generation applied to the routing table, if any. */
  applied: string | undefined;
  /** When the node expires unless its heartbeat arrives first (ms, monotonic clock). */
  deadline: number;
}

/** Options of {@link DiscoveredNodes}. */
export interface DiscoveredNodesOptions {
  routes: RoutingTable<unknown, string>;
  /** The mesh's bounds on a peer's routes (cap and allow-lists, keyed by the host of the peer URL). */
  policy: PeerPolicy;
  /** Liveness TTL, ms: a node silent for this long loses its routes. */
  ttlMs: number;
  log: Logger;
  /** Monotonic clock, ms. Default: `performance.now`. */
  now?: () => number;
}

/**
 * The remote nodes a discovery engine has read, and their routes in the routing table. Every method is
 * synchronous and never throws on a value's content.
 */
export class DiscoveredNodes {
  readonly #nodes = new Map<string, NodeState>();
  readonly #routes: RoutingTable<unknown, string>;
  readonly #policy: PeerPolicy;
  readonly #ttlMs: number;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #refusalLog: LogRateLimit;
  /** Bytes of the chunks held in `chunks` (bounded by {@link DISCOVERY_MAX_PENDING_BYTES}). */
  #pendingBytes = 0;
  /** Values refused since start. */
  refused = 0;

  constructor(options: DiscoveredNodesOptions) {
    this.#routes = options.routes;
    this.#policy = options.policy;
    this.#ttlMs = options.ttlMs;
    this.#log = options.log;
    this.#now = options.now ?? (() => performance.now());
    this.#refusalLog = new LogRateLimit({
      perWindow: REFUSAL_LOG_LINES_PER_MINUTE,
      windowMs: 60_000,
      onSuppressed: (reason, suppressed) =>
        this.#log.warn({ reason, suppressed }, 'discovery values refused (lines suppressed)'),
    });
  }

  /** Nodes whose routes are in the routing table. */
  get size(): number {
    let n = 0;
    for (const node of this.#nodes.values()) if (node.applied !== undefined) n++;
    return n;
  }

  /** The peer URL of the node behind a routing table key, if it is a discovered, live node. */
  urlOf(routeKey: string): string | undefined {
    if (!routeKey.startsWith(DISCOVERY_ROUTE_KEY_PREFIX)) return undefined;
    const node = this.#nodes.get(routeKey.slice(DISCOVERY_ROUTE_KEY_PREFIX.length));
    return node?.applied !== undefined ? node.record?.url : undefined;
  }

  /** A node record (heartbeat) was written. */
  nodeWritten(nodeId: string, key: string, bytes: Uint8Array): void {
    const parsed = parseNodeRecord(bytes, this.#policy.maxRoutes);
    const node = this.#accept(nodeId, key, parsed);
    if (node === undefined || !parsed.ok) return;
    node.record = parsed.value;
    node.deadline = this.#now() + this.#ttlMs;
    this.#tryApply(nodeId, node);
  }

  /** A route chunk was written. */
  chunkWritten(nodeId: string, index: number, key: string, bytes: Uint8Array): void {
    const parsed = parseRouteChunk(bytes, this.#policy.maxRoutes);
    let checked = parsed;
    if (parsed.ok && this.#pendingBytes + bytes.length > DISCOVERY_MAX_PENDING_BYTES) {
      checked = { ok: false, reason: 'too many route chunks pending' };
    }
    const node = this.#accept(nodeId, key, checked);
    if (node === undefined || !parsed.ok || parsed.value.gen === node.applied) return;
    this.#dropChunk(node, index);
    node.chunks.set(index, { ...parsed.value, bytes: bytes.length });
    this.#pendingBytes += bytes.length;
    this.#tryApply(nodeId, node);
  }

  /** A node withdrew its record (a graceful leave) or the record was deleted: its routes go at once. */
  nodeDeleted(nodeId: string): void {
    if (this.#nodes.has(nodeId)) this.#remove(nodeId, 'withdrawn');
  }

  /** Removes the nodes whose heartbeat is overdue. Not called while the engine is unreachable. */
  expire(): void {
    const now = this.#now();
    for (const [nodeId, node] of this.#nodes) if (node.deadline <= now) this.#remove(nodeId, 'expired');
  }

  /** Gives every node a full TTL from now (the engine is back: heartbeats resume). */
  refreshDeadlines(): void {
    const deadline = this.#now() + this.#ttlMs;
    for (const node of this.#nodes.values()) node.deadline = deadline;
  }

  /** Removes every discovered route (the engine stops). */
  clear(): void {
    for (const nodeId of [...this.#nodes.keys()]) this.#remove(nodeId, 'shutdown');
    this.#refusalLog.flush();
  }

  #accept<T>(nodeId: string, key: string, parsed: Checked<T>): NodeState | undefined {
    if (!parsed.ok) {
      this.refused++;
      if (this.#refusalLog.admit(parsed.reason))
        this.#log.warn({ key, reason: parsed.reason }, 'refusing discovery value');
      return undefined;
    }
    let node = this.#nodes.get(nodeId);
    if (node === undefined) {
      if (this.#nodes.size >= DISCOVERY_MAX_NODES) {
        this.refused++;
        if (this.#refusalLog.admit('too many nodes'))
          this.#log.warn({ key, limit: DISCOVERY_MAX_NODES }, 'refusing discovery value: too many nodes');
        return undefined;
      }
      node = {
        record: undefined,
        chunks: new Map(),
        applied: undefined,
        deadline: this.#now() + this.#ttlMs,
      };
      this.#nodes.set(nodeId, node);
    }
    return node;
  }

  /** Applies the node's route list once its record and every chunk of the record's generation are in. */
  #tryApply(nodeId: string, node: NodeState): void {
    const record = node.record;
    if (record === undefined || record.gen === node.applied) return;
    const lists: string[][] = [];
    for (let i = 0; i < record.chunks; i++) {
      const chunk = node.chunks.get(i);
      if (chunk?.gen !== record.gen) return; // still arriving
      lists.push(chunk.routes);
    }
    // Applied or refused, this generation's chunks (and any older ones) are no longer needed.
    for (const index of [...node.chunks.keys()]) this.#dropChunk(node, index);
    node.applied = record.gen;
    const all = lists.flat();
    if (all.length > this.#policy.maxRoutes) {
      this.refused++;
      this.#log.warn(
        { nodeId, routes: all.length, limit: this.#policy.maxRoutes },
        'refusing discovered route list: over the cap',
      );
      this.#routes.removePeer(discoveryRouteKey(nodeId));
      return;
    }
    const kept = this.#policy.routesFrom(hostOf(record.url), all);
    if (kept.refused > 0 || kept.truncated > 0) {
      this.#log.warn(
        { nodeId, url: record.url, refused: kept.refused, truncated: kept.truncated },
        'discovered node lists routes it may not have: dropped',
      );
    }
    this.#routes.setPeerRoutes(discoveryRouteKey(nodeId), kept.accepted);
    this.#log.info(
      { nodeId, url: record.url, routes: kept.accepted.length, gen: record.gen },
      'discovered node routes applied',
    );
  }

  #dropChunk(node: NodeState, index: number): void {
    const chunk = node.chunks.get(index);
    if (chunk === undefined) return;
    node.chunks.delete(index);
    this.#pendingBytes -= chunk.bytes;
  }

  #remove(nodeId: string, why: 'expired' | 'withdrawn' | 'shutdown'): void {
    const node = this.#nodes.get(nodeId);
    if (node !== undefined) for (const index of [...node.chunks.keys()]) this.#dropChunk(node, index);
    this.#nodes.delete(nodeId);
    this.#routes.removePeer(discoveryRouteKey(nodeId));
    if (node?.applied !== undefined && why !== 'shutdown') {
      this.#log.info({ nodeId, url: node.record?.url, why }, 'discovered node gone: routes removed');
    }
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return url;
  }
}

/**
 * The peer URL a node advertises: the configured one, else `wss://<host>:<bound peer port>/mesh` with the
 * peer listener's host when it names one (not a wildcard address), else the hub certificate's first DNS
 * name. `undefined` when none is known.
 */
export function advertisedPeerUrl(
  configured: string | undefined,
  listenHost: string | undefined,
  boundPort: number | undefined,
  subjectAltNames: readonly string[] | undefined,
): string | undefined {
  if (configured !== undefined) return configured;
  if (boundPort === undefined) return undefined;
  const wildcard =
    listenHost === undefined || listenHost === '' || listenHost === '0.0.0.0' || listenHost === '::';
  const dns = subjectAltNames?.find((n) => n.startsWith('DNS:') && !n.includes('*'))?.slice(4);
  const host = wildcard ? dns : listenHost;
  if (host === undefined) return undefined;
  return `wss://${host.includes(':') ? `[${host}]` : host}:${boundPort}/mesh`;
}
