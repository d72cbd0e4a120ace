/**
 * Prometheus metrics of a node, fed only by the node's events and `stats()` snapshots (core has no metrics
 * dependency). Every metric lives in its own `Registry`, so embedding the CLI never touches prom-client's
 * global one. No label ever carries an end user's address, and label values are bounded: `route` is the
 * hostname pattern the node's routing decision matched (`stream-open` carries it; past the cap, `other`),
 * reasons are capped per metric.
 */
import type { Nexus, NexusEvents, StreamOpenEvent } from '@nexus-proxy/core';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { registerBandwidthMetrics } from './bandwidth-metrics.js';
import { registerDiscoveryMetrics, registerMeshMetrics } from './mesh-metrics.js';
import { registerOutboundMetrics } from './outbound-metrics.js';
import { registerRegistrationMetrics } from './registration-metrics.js';
import { registerStunMetrics } from './stun-metrics.js';
import { registerUdpMetrics } from './udp-metrics.js';

/** Label value for values over a cardinality cap. */
export const OTHER_LABEL = 'other';
/** Most distinct `route` label values. Default: `1_000`. */
export const DEFAULT_MAX_ROUTE_LABELS = 1_000;
/** Most distinct `reason` label values per metric. Default: `64`. */
export const DEFAULT_MAX_REASON_LABELS = 64;
/** Buckets of `nexus_stream_duration_seconds`, seconds. */
export const STREAM_DURATION_BUCKETS = [0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1_800, 3_600, 14_400];

/** Options of {@link createNexusMetrics}. */
export interface NexusMetricsOptions {
  /** Registry to register in. Default: a new one. */
  registry?: Registry;
  /** Most distinct `route` label values; later ones count as `other`. Default: `1_000`. */
  maxRouteLabels?: number;
  /** Most distinct `reason` label values per metric; later ones count as `other`. Default: `64`. */
  maxReasonLabels?: number;
  /** Also collect prom-client's process and Node.js metrics (event-loop lag, heap, GC). Default: `true`. */
  defaultMetrics?: boolean;
}

/** A relayed stream that is open right now (no end-user address: the node's events carry none). */
export interface OpenStreamInfo {
  id: string;
  /** Hostname the end user asked for (SNI or Host). */
  hostname: string;
  /** The routing table pattern it matched (from `stream-open`), or `other` past the label cap. */
  route: string;
  /** Relay port. */
  port: number;
  isTls: boolean;
  via: StreamOpenEvent['via'];
  /** ms since the epoch. */
  openedAt: number;
}

/** Running totals since the metrics were attached. */
export interface NexusTotals {
  streamsOpened: number;
  streamsClosed: number;
  bytesUp: number;
  bytesDown: number;
  routeMisses: number;
  sniffFailures: number;
  authFailures: number;
}

/** The metrics of one node. */
export interface NexusMetrics {
  readonly registry: Registry;
  /** `Content-Type` of {@link NexusMetrics.metrics}. */
  readonly contentType: string;
  /** The Prometheus text exposition. */
  metrics(): Promise<string>;
  /** Streams open right now, oldest first. */
  openStreams(): OpenStreamInfo[];
  totals(): NexusTotals;
  /** Count a configuration reload (`SIGHUP`). */
  recordReload(ok: boolean): void;
  /** Stop listening to the node's events. */
  close(): void;
}

/** Keeps at most `max` distinct values; the rest become {@link OTHER_LABEL}. */
class BoundedLabel {
  readonly #seen = new Set<string>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  of(value: string): string {
    if (this.#seen.has(value)) return value;
    if (this.#seen.size >= this.#max) return OTHER_LABEL;
    this.#seen.add(value);
    return value;
  }
}

/** Attaches metrics to `nexus` (before `listen()`, so no stream is missed). */
export function createNexusMetrics(nexus: Nexus, options: NexusMetricsOptions = {}): NexusMetrics {
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  const maxReasons = options.maxReasonLabels ?? DEFAULT_MAX_REASON_LABELS;
  const routeLabels = new BoundedLabel(options.maxRouteLabels ?? DEFAULT_MAX_ROUTE_LABELS);
  const reasons = () => new BoundedLabel(maxReasons);
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  const open = new Map<string, OpenStreamInfo>();
  const totals: NexusTotals = {
    streamsOpened: 0,
    streamsClosed: 0,
    bytesUp: 0,
    bytesDown: 0,
    routeMisses: 0,
    sniffFailures: 0,
    authFailures: 0,
  };

  new Gauge({
    name: 'nexus_backend_sessions',
    help: 'Authenticated backend sessions.',
    registers,
    collect() {
      this.set(nexus.hub.stats().sessions);
    },
  });
  new Gauge({
    name: 'nexus_backend_sessions_authenticating',
    help: 'Backend WebSockets that have not authenticated yet.',
    registers,
    collect() {
      this.set(nexus.hub.stats().authenticating);
    },
  });
  new Gauge({
    name: 'nexus_upload_buffered_bytes',
    help: 'Bytes from end users that streams to backends hold before sending them (limits.maxBufferedUploadBytes).',
    registers,
    collect() {
      this.set(nexus.bufferedUploads.bytes);
    },
  });
  const backendConnections = new Counter({
    name: 'nexus_backend_connections_total',
    help: 'Backend sessions authenticated.',
    registers,
  });
  const backendDisconnections = new Counter({
    name: 'nexus_backend_disconnections_total',
    help: 'Backend sessions ended, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const authFailures = new Counter({
    name: 'nexus_backend_auth_failures_total',
    help: 'Backend authentications refused, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const backendRefused = new Counter({
    name: 'nexus_backend_refused_total',
    help: 'Backends turned away before their WebSocket opened (max-sessions, max-pending-auth, address-pending-limit, address-session-limit), by reason.',
    labelNames: ['reason'],
    registers,
  });
  new Gauge({
    name: 'nexus_streams_open',
    help: 'Relayed end-user streams open right now, by where they go (local backend or peer).',
    labelNames: ['via'],
    registers,
    collect() {
      let local = 0;
      for (const s of open.values()) if (s.via === 'local') local++;
      this.set({ via: 'local' }, local);
      this.set({ via: 'peer' }, open.size - local);
    },
  });
  const streamsOpened = new Counter({
    name: 'nexus_streams_opened_total',
    help: 'Relayed end-user streams opened, by route pattern and destination.',
    labelNames: ['route', 'via'],
    registers,
  });
  const streamsClosed = new Counter({
    name: 'nexus_streams_closed_total',
    help: 'Relayed end-user streams closed, by route pattern and close reason.',
    labelNames: ['route', 'reason'],
    registers,
  });
  const bytesReceived = new Counter({
    name: 'nexus_stream_bytes_received_total',
    help: 'Bytes received from end users on closed streams, by route pattern.',
    labelNames: ['route'],
    registers,
  });
  const bytesSent = new Counter({
    name: 'nexus_stream_bytes_sent_total',
    help: 'Bytes sent to end users on closed streams, by route pattern.',
    labelNames: ['route'],
    registers,
  });
  const duration = new Histogram({
    name: 'nexus_stream_duration_seconds',
    help: 'Lifetime of relayed end-user streams.',
    buckets: STREAM_DURATION_BUCKETS,
    registers,
  });
  const sniffFailures = new Counter({
    name: 'nexus_sniff_failures_total',
    help: 'End-user connections closed by a relay listener without relaying, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const routeMisses = new Counter({
    name: 'nexus_route_misses_total',
    help: 'End-user connections for a hostname no backend or peer serves, by relay mode and reason.',
    labelNames: ['mode', 'reason'],
    registers,
  });
  new Gauge({
    name: 'nexus_local_routes',
    help: 'Hostname patterns served by local backends.',
    registers,
    collect() {
      this.set(nexus.routes.stats().localPatterns);
    },
  });
  new Gauge({
    name: 'nexus_peer_links',
    help: 'Open peer links (both directions).',
    registers,
    collect() {
      this.set(nexus.mesh?.linkCount ?? 0);
    },
  });
  new Gauge({
    name: 'nexus_peer_routes',
    help: 'Distinct hostname patterns learned from peers.',
    registers,
    collect() {
      this.set(nexus.routes.stats().peerPatterns);
    },
  });
  const peerLabels = new BoundedLabel(options.maxRouteLabels ?? DEFAULT_MAX_ROUTE_LABELS);
  registerMeshMetrics(nexus, registers, (peer) => peerLabels.of(peer));
  registerDiscoveryMetrics(nexus, registers);
  registerStunMetrics(nexus, registers);
  registerOutboundMetrics(nexus, registers);
  registerUdpMetrics(nexus, registers);
  registerRegistrationMetrics(nexus, registers);
  registerBandwidthMetrics(nexus, registers);
  const peerRefused = new Counter({
    name: 'nexus_peer_refused_total',
    help: 'Peers refused at the peer listener, by reason.',
    labelNames: ['reason'],
    registers,
  });
  new Gauge({
    name: 'nexus_hub_certificate_expiry_timestamp_seconds',
    help: 'End of validity of the hub certificate being served, unix seconds.',
    registers,
    collect() {
      const info = nexus.certificateInfo();
      if (info === undefined) this.reset();
      else this.set(Math.floor(info.notAfter.getTime() / 1_000));
    },
  });
  const certificatesIssued = new Counter({
    name: 'nexus_certificates_issued_total',
    help: 'Hub certificates issued by ACME.',
    registers,
  });
  const certificateFailures = new Counter({
    name: 'nexus_certificate_failures_total',
    help: 'Failed ACME issuances.',
    registers,
  });
  const reloads = new Counter({
    name: 'nexus_config_reloads_total',
    help: 'Configuration reloads, by result (success or failure).',
    labelNames: ['result'],
    registers,
  });

  const disconnectReason = reasons();
  const authReason = reasons();
  const closeReason = reasons();
  const sniffReason = reasons();
  const refusedReason = reasons();

  const handlers: { [K in keyof NexusEvents]?: (...args: NexusEvents[K]) => void } = {
    'backend-connected': () => backendConnections.inc(),
    'backend-disconnected': (e) => backendDisconnections.inc({ reason: disconnectReason.of(e.reason) }),
    'auth-failed': (e) => {
      totals.authFailures++;
      authFailures.inc({ reason: authReason.of(e.reason) });
    },
    'stream-open': (e) => {
      // The pattern the node's routing decision matched (bounded: past the cap, `other`).
      const route = routeLabels.of(e.route);
      open.set(e.id, {
        id: e.id,
        hostname: e.hostname,
        route,
        port: e.port,
        isTls: e.isTls,
        via: e.via,
        openedAt: Date.now(),
      });
      totals.streamsOpened++;
      streamsOpened.inc({ route, via: e.via });
    },
    'stream-close': (e) => {
      const route = open.get(e.id)?.route ?? OTHER_LABEL;
      open.delete(e.id);
      totals.streamsClosed++;
      totals.bytesUp += e.bytesUp;
      totals.bytesDown += e.bytesDown;
      streamsClosed.inc({ route, reason: closeReason.of(e.reason) });
      bytesReceived.inc({ route }, e.bytesUp);
      bytesSent.inc({ route }, e.bytesDown);
      duration.observe(e.durationMs / 1_000);
    },
    'route-miss': (e) => {
      totals.routeMisses++;
      // A fixed set of reasons (no-route, invalid-hostname, peers-unavailable): no cardinality cap needed.
      routeMisses.inc({ mode: e.isTls ? 'tls' : 'http', reason: e.reason });
    },
    'sniff-failed': (e) => {
      totals.sniffFailures++;
      sniffFailures.inc({ reason: sniffReason.of(String(e.reason)) });
    },
    'peer-refused': (e) => peerRefused.inc({ reason: refusedReason.of(e.reason) }),
    // Four fixed reasons (the hub's caps): no cardinality cap needed.
    'backend-refused': (e) => backendRefused.inc({ reason: e.reason }),
    'certificate-issued': () => certificatesIssued.inc(),
    'certificate-failed': () => certificateFailures.inc(),
  };
  const emitter = nexus as unknown as {
    on(event: string, fn: (...args: unknown[]) => void): void;
    off(event: string, fn: (...args: unknown[]) => void): void;
  };
  for (const [event, fn] of Object.entries(handlers)) emitter.on(event, fn as (...args: unknown[]) => void);

  return {
    registry,
    contentType: registry.contentType,
    metrics: () => registry.metrics(),
    openStreams: () => [...open.values()],
    totals: () => ({ ...totals }),
    recordReload: (ok) => reloads.inc({ result: ok ? 'success' : 'failure' }),
    close() {
      for (const [event, fn] of Object.entries(handlers))
        emitter.off(event, fn as (...args: unknown[]) => void);
    },
  };
}
