/**
 * Route discovery on NATS JetStream key-value (docs/mesh.md "Discovery on NATS"), with the official
 * `@nats-io` clients, imported only when a node runs discovery.
 *
 * The node writes its records (`mesh-discovery-records.ts`) into the bucket — route chunks first, then its
 * node record, which it rewrites every `ttl / 3` as a heartbeat — and watches every key. What it reads goes
 * to {@link DiscoveredNodes}; tunnels to the nodes found there open links on demand ({@link OnDemandLinks}).
 * Liveness is judged on this side, from when each heartbeat arrived, so it needs neither synchronised
 * clocks nor server-side expiry notices; the bucket's own `max_age` only clears what dead nodes left.
 * When NATS is unreachable, nothing expires: the last known routes stay, the status says `degraded`,
 * and once the client reconnects the node binds the bucket again (recreating it if the server lost it),
 * republishes and watches from a fresh snapshot.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import { InvalidConfigError } from './errors.js';
import type { AddressInfo } from 'node:net';
import type { ResolvedNexusConfig } from './config.js';
import type { ResolvedNatsDiscovery } from './config/types.js';
import type { HubTlsContext } from './hub-tls.js';
import { type Logger, noopLogger } from './logger.js';
import {
  advertisedPeerUrl,
  DiscoveredNodes,
  type MeshDiscovery,
  type MeshDiscoveryStatus,
} from './mesh-discovery.js';
import { OnDemandLinks } from './mesh-discovery-links.js';
import {
  chunkKey,
  discoveryNodeId,
  encodeNodeRecord,
  encodeRouteChunks,
  nodeKey,
  parseDiscoveryKey,
} from './mesh-discovery-records.js';
import type { PeerMesh } from './mesh.js';
import { PeerPolicy, type PeerPolicyOptions } from './peer-limits.js';
import type { RoutingTable } from './routing-table.js';

/** The bucket's `max_age`: what a dead node left behind is cleared after an hour. */
const BUCKET_MAX_AGE_MS = 60 * 60 * 1_000;
/** Route chunks are rewritten this often even when unchanged (well inside the bucket's `max_age`). */
const CHUNK_REFRESH_MS = 20 * 60 * 1_000;
/** Local route changes within this window are published together. */
const PUBLISH_COALESCE_MS = 20;
/** Delay before binding the bucket again after a failure, ms (doubled up to the maximum). */
const REBIND_MIN_MS = 500;
const REBIND_MAX_MS = 10_000;
/** Time allowed for one JetStream request, ms. */
const REQUEST_TIMEOUT_MS = 5_000;

/** Options of {@link startNatsDiscovery}. */
export interface NatsDiscoveryOptions extends Pick<PeerPolicyOptions, 'maxPeerRoutes' | 'peerAllowedRoutes'> {
  config: ResolvedNatsDiscovery;
  /** The URL other nodes dial for this node (`wss://host:port/mesh`); its hash is the node's id. */
  peerUrl: string;
  routes: RoutingTable<unknown, string>;
  mesh: PeerMesh;
  logger: Logger;
  /** Delay between reconnect attempts to NATS, ms. Default: `1_000`. */
  reconnectWaitMs?: number;
}

/**
 * Starts the configured discovery of a node whose mesh runs (`createNexus`): the peer URL it advertises is
 * `meshDiscovery.nats.peerUrl`, else derived from the peer listener (see {@link advertisedPeerUrl}).
 * Throws `InvalidConfigError` when no peer URL can be derived or the credentials file cannot be read.
 */
export function startMeshDiscovery(
  config: ResolvedNexusConfig,
  blocks: { mesh: PeerMesh; routes: RoutingTable<unknown, string>; peer: AddressInfo | undefined },
  tls: HubTlsContext,
  logger: Logger | undefined,
): Promise<MeshDiscovery> | undefined {
  const nats = config.meshDiscovery?.nats;
  if (nats === undefined) return undefined;
  const peerUrl = advertisedPeerUrl(
    nats.peerUrl,
    config.peerListen?.host,
    blocks.peer?.port,
    tls.info()?.subjectAltNames,
  );
  if (peerUrl === undefined) {
    throw new InvalidConfigError('meshDiscovery.nats.peerUrl', 'is required: no peer URL can be derived');
  }
  return startNatsDiscovery({
    config: nats,
    peerUrl,
    routes: blocks.routes,
    mesh: blocks.mesh,
    logger: logger ?? noopLogger,
    maxPeerRoutes: config.limits.maxPeerRoutes,
    ...(config.peerAuthentication.allowedRoutes !== undefined
      ? { peerAllowedRoutes: config.peerAuthentication.allowedRoutes }
      : {}),
  });
}

/**
 * Starts discovery in the background (a NATS server that is down at start is retried; the status says
 * `connecting` meanwhile). Throws `InvalidConfigError` when the credentials file cannot be read.
 */
export async function startNatsDiscovery(options: NatsDiscoveryOptions): Promise<MeshDiscovery> {
  const credentials = await readCredentials(options.config.credentialsFile);
  const discovery = new NatsDiscovery(options, credentials);
  discovery.start();
  return discovery;
}

type Credentials = { creds: Uint8Array } | { token: string } | undefined;

async function readCredentials(file: string | undefined): Promise<Credentials> {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new InvalidConfigError('meshDiscovery.nats.credentialsFile', `cannot read ${file} (${code})`);
  }
  if (text.includes('BEGIN NATS USER JWT')) return { creds: new TextEncoder().encode(text) };
  const token = text.trim();
  if (token === '') throw new InvalidConfigError('meshDiscovery.nats.credentialsFile', `${file} is empty`);
  return { token };
}

class NatsDiscovery implements MeshDiscovery {
  readonly #options: NatsDiscoveryOptions;
  readonly #credentials: Credentials;
  readonly #log: Logger;
  readonly #nodeId: string;
  readonly #nodes: DiscoveredNodes;
  readonly #links: OnDemandLinks;
  readonly #epoch = randomBytes(6).toString('hex');
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #unsubscribe: () => void;
  #state: MeshDiscoveryStatus['state'] = 'connecting';
  #reason: string | undefined = 'connecting to NATS';
  #nc: NatsConnection | undefined;
  #kv: KV | undefined;
  #watch: { stop(): void } | undefined;
  #gen = '';
  #genCounter = 0;
  #chunks: string[] = [];
  #routeCount = 0;
  /** Chunks written in the bucket by the last successful publish (stale ones beyond the count are deleted). */
  #written = 0;
  #publishTimer: NodeJS.Timeout | undefined;
  /** Serialises writes: a publish, a heartbeat and a rebind never interleave. */
  #queue: Promise<void> = Promise.resolve();
  #rebindTimer: NodeJS.Timeout | undefined;
  #connectTimer: NodeJS.Timeout | undefined;
  #rebindDelay = REBIND_MIN_MS;

  constructor(options: NatsDiscoveryOptions, credentials: Credentials) {
    this.#options = options;
    this.#credentials = credentials;
    this.#log = options.logger.child({ component: 'discovery' });
    this.#nodeId = discoveryNodeId(options.peerUrl);
    const policy = new PeerPolicy(options);
    this.#nodes = new DiscoveredNodes({
      routes: options.routes,
      policy,
      ttlMs: options.config.ttlMs,
      log: this.#log,
    });
    this.#links = new OnDemandLinks({
      dial: (url) => options.mesh.dialOnce(url),
      urlOf: (key) => this.#nodes.urlOf(key),
      idleMs: options.config.linkIdleMs,
      log: this.#log,
    });
    options.mesh.onDemand = this.#links;
    this.#setRoutes(options.routes.localPatterns());
    this.#unsubscribe = options.routes.subscribeLocalPatterns((patterns) => {
      this.#setRoutes(patterns);
      this.#publishTimer ??= setTimeout(() => {
        this.#publishTimer = undefined;
        this.#enqueue('publish', () => this.#publishChunks());
      }, PUBLISH_COALESCE_MS);
    });
  }

  status(): MeshDiscoveryStatus {
    const s = this.#nc?.stats();
    return {
      state: this.#state,
      ...(this.#reason !== undefined ? { reason: this.#reason } : {}),
      nodes: this.#nodes.size,
      refused: this.#nodes.refused,
      ...(s !== undefined
        ? {
            traffic: {
              in: { messages: s.inMsgs, bytes: s.inBytes },
              out: { messages: s.outMsgs, bytes: s.outBytes },
            },
          }
        : {}),
    };
  }

  start(): void {
    const ttl = this.#options.config.ttlMs;
    this.#every(Math.max(100, Math.floor(ttl / 3)), () =>
      this.#enqueue('heartbeat', () => this.#putRecord()),
    );
    this.#every(Math.max(100, Math.floor(ttl / 10)), () => {
      if (this.#state === 'connected') this.#nodes.expire();
    });
    this.#every(CHUNK_REFRESH_MS, () => this.#enqueue('refresh', () => this.#publishChunks()));
    this.#log.info(
      { nodeId: this.#nodeId, peerUrl: this.#options.peerUrl, bucket: this.#options.config.bucket },
      'route discovery on NATS starting',
    );
    void this.#connect();
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#reason = undefined;
    this.#unsubscribe();
    for (const timer of [...this.#timers, this.#publishTimer, this.#rebindTimer, this.#connectTimer])
      clearTimeout(timer);
    this.#links.close();
    this.#options.mesh.onDemand = undefined;
    this.#watch?.stop();
    const kv = this.#kv;
    const nc = this.#nc;
    // Withdraw: the record first (peers drop this node's routes at once), then the chunks.
    if (kv !== undefined && nc !== undefined && !nc.isClosed()) {
      const withdraw = (async () => {
        await this.#queue.catch(() => {});
        await kv.purge(nodeKey(this.#nodeId));
        for (let i = 0; i < this.#written; i++) await kv.purge(chunkKey(this.#nodeId, i));
      })();
      await withTimeout(withdraw, 2_000).catch((err: unknown) =>
        this.#log.warn({ err: (err as Error)?.message }, 'could not withdraw discovery records'),
      );
    }
    await nc?.close().catch(() => {});
    this.#nodes.clear();
    this.#log.info('route discovery stopped');
  }

  // ───────────────────────────── connection ─────────────────────────────

  async #connect(): Promise<void> {
    try {
      const { connect, credsAuthenticator, tokenAuthenticator } = await import('@nats-io/transport-node');
      const credentials = this.#credentials;
      const nc = await connect({
        servers: [...this.#options.config.servers],
        name: `nexus-proxy ${this.#options.peerUrl}`,
        waitOnFirstConnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: this.#options.reconnectWaitMs ?? 1_000,
        timeout: REQUEST_TIMEOUT_MS,
        ...(credentials === undefined
          ? {}
          : {
              authenticator:
                'creds' in credentials
                  ? credsAuthenticator(credentials.creds)
                  : tokenAuthenticator(credentials.token),
            }),
      });
      if (this.#state === 'closed') {
        await nc.close();
        return;
      }
      this.#nc = nc;
      this.#followStatus(nc).catch(() => {});
      // The client gave up for good (it retries disconnects forever; an authorization refusal ends it).
      void nc.closed().then((err) => {
        if (this.#state === 'closed' || this.#nc !== nc) return;
        this.#nc = undefined;
        this.#kv = undefined;
        this.#degrade(`NATS connection closed${err ? `: ${err.message}` : ''}`);
        this.#scheduleConnect();
      });
      this.#scheduleBind(0);
    } catch (err) {
      this.#degrade(`cannot connect to NATS: ${(err as Error)?.message}`);
      this.#scheduleConnect();
    }
  }

  /** A new connection later (the previous one failed or was closed for good): credentials may be fixed. */
  #scheduleConnect(): void {
    if (this.#state === 'closed' || this.#connectTimer !== undefined) return;
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = undefined;
      void this.#connect();
    }, REBIND_MAX_MS);
    this.#connectTimer.unref?.();
  }

  async #followStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.#state === 'closed') return;
      if (s.type === 'disconnect') this.#degrade('NATS connection lost');
      else if (s.type === 'reconnect') this.#scheduleBind(0);
    }
  }

  /** Binds the bucket (creating it when missing), republishes everything and watches from a snapshot. */
  async #bind(): Promise<void> {
    const nc = this.#nc;
    if (nc === undefined || this.#state === 'closed') return;
    const { jetstream } = await import('@nats-io/jetstream');
    const { Kvm } = await import('@nats-io/kv');
    const kv = await new Kvm(jetstream(nc, { timeout: REQUEST_TIMEOUT_MS })).create(
      this.#options.config.bucket,
      {
        history: 1,
        ttl: BUCKET_MAX_AGE_MS,
      },
    );
    this.#kv = kv;
    await this.#publishChunks();
    this.#watch?.stop();
    const iterator = await kv.watch({ key: '>' });
    this.#watch = iterator;
    void (async () => {
      for await (const entry of iterator) this.#read(entry);
      // Ended without being stopped by a rebind or close: watch again.
      if (this.#watch === iterator && this.#state !== 'closed') throw new Error('the watch ended');
    })().catch((err: unknown) => {
      this.#degrade(`watch failed: ${(err as Error)?.message}`);
      this.#scheduleBind(this.#rebindDelay);
    });
    const wasDegraded = this.#state !== 'connected';
    this.#state = 'connected';
    this.#reason = undefined;
    this.#rebindDelay = REBIND_MIN_MS;
    // Heartbeats resume now: nobody is judged on the silence of the outage.
    this.#nodes.refreshDeadlines();
    if (wasDegraded) this.#log.info({ bucket: this.#options.config.bucket }, 'route discovery connected');
  }

  #scheduleBind(delayMs: number): void {
    if (this.#state === 'closed' || this.#rebindTimer !== undefined) return;
    this.#rebindTimer = setTimeout(() => {
      this.#rebindTimer = undefined;
      this.#enqueue('bind', () => this.#bind());
    }, delayMs);
    this.#rebindTimer.unref?.();
  }

  /** The last known routes stay; the status and the logs say why discovery is degraded. */
  #degrade(reason: string): void {
    if (this.#state === 'closed') return;
    const changed = this.#state !== 'degraded' || this.#reason !== reason;
    this.#state = 'degraded';
    this.#reason = reason;
    if (changed)
      this.#log.warn(
        { reason, nodes: this.#nodes.size },
        'route discovery degraded: keeping the last known routes',
      );
  }

  /** Runs `task` after the previous one; a failure degrades and schedules a rebind. */
  #enqueue(what: string, task: () => Promise<void>): void {
    this.#queue = this.#queue.then(async () => {
      if (this.#state === 'closed') return;
      if (what !== 'bind' && this.#state !== 'connected') return; // the rebind publishes everything
      try {
        await task();
      } catch (err) {
        this.#degrade(`${what} failed: ${(err as Error)?.message}`);
        if (this.#nc !== undefined && !this.#nc.isClosed()) {
          this.#scheduleBind(this.#rebindDelay);
          this.#rebindDelay = Math.min(REBIND_MAX_MS, this.#rebindDelay * 2);
        }
      }
    });
  }

  // ───────────────────────────── writing ─────────────────────────────

  #setRoutes(patterns: readonly string[]): void {
    this.#gen = `${this.#epoch}-${++this.#genCounter}`;
    const capped = patterns.slice(0, this.#options.maxPeerRoutes ?? Number.POSITIVE_INFINITY);
    this.#chunks = encodeRouteChunks(this.#gen, capped);
    this.#routeCount = capped.length;
  }

  /** Chunks first, then the record naming their generation, then the chunks a longer list left over. */
  async #publishChunks(): Promise<void> {
    const kv = this.#kv;
    if (kv === undefined) return;
    const chunks = this.#chunks;
    for (let i = 0; i < chunks.length; i++) await kv.put(chunkKey(this.#nodeId, i), chunks[i] as string);
    await this.#putRecord();
    for (let i = chunks.length; i < this.#written; i++) await kv.delete(chunkKey(this.#nodeId, i));
    this.#written = chunks.length;
  }

  async #putRecord(): Promise<void> {
    const kv = this.#kv;
    if (kv === undefined) return;
    const record = { url: this.#options.peerUrl, gen: this.#gen, chunks: this.#chunks.length };
    await kv.put(nodeKey(this.#nodeId), encodeNodeRecord({ ...record, routes: this.#routeCount }));
  }

  // ───────────────────────────── reading ─────────────────────────────

  #read(entry: KvWatchEntry): void {
    const key = parseDiscoveryKey(entry.key);
    if (key.kind === 'other') {
      this.#log.debug({ key: entry.key }, 'ignoring a key discovery does not use');
      return;
    }
    if (key.nodeId === this.#nodeId) return;
    const deleted = entry.operation !== 'PUT';
    if (key.kind === 'node') {
      if (deleted) this.#nodes.nodeDeleted(key.nodeId);
      // A record the server has kept past twice the TTL (read in the first snapshot) is a dead node's.
      else if (Date.now() - entry.created.getTime() <= 2 * this.#options.config.ttlMs)
        this.#nodes.nodeWritten(key.nodeId, entry.key, entry.value);
    } else if (!deleted) {
      this.#nodes.chunkWritten(key.nodeId, key.index, entry.key, entry.value);
    }
  }

  #every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref?.();
    this.#timers.push(timer);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]);
}
