/**
 * The peer mesh's metrics (docs/mesh.md "Scaling"), read from `nexus.mesh.stats()` at each scrape: peer
 * messages and bytes by direction and type, announce apply time, routes per peer, route synchronisation
 * (deltas, gaps, resyncs, announces cut to fit), duplicate links closed, dial contexts.
 */
import type { Nexus, PeerMeshStats } from '@nexus-proxy/core';
import { Counter, Gauge, type Registry } from 'prom-client';

const DIRECTIONS = ['in', 'out'] as const;

/** Registers the mesh metrics; `peerLabel` bounds the `peer` label's values. */
export function registerMeshMetrics(
  nexus: Nexus,
  registers: Registry[],
  peerLabel: (peer: string) => string,
): void {
  const stats = (): PeerMeshStats | undefined => nexus.mesh?.stats();
  const traffic = (field: 'messages' | 'bytes') =>
    function (this: Counter<'direction' | 'type'>) {
      const s = stats();
      this.reset();
      if (s === undefined) return;
      for (const direction of DIRECTIONS)
        for (const [type, counts] of Object.entries(s[direction]))
          this.inc({ direction, type }, counts[field]);
    };
  new Counter({
    name: 'nexus_peer_messages_total',
    help: 'Peer link messages (WebSocket messages), by direction and type.',
    labelNames: ['direction', 'type'],
    registers,
    collect: traffic('messages'),
  });
  new Counter({
    name: 'nexus_peer_bytes_total',
    help: 'Peer link message bytes (WebSocket payload), by direction and type.',
    labelNames: ['direction', 'type'],
    registers,
    collect: traffic('bytes'),
  });
  new Counter({
    name: 'nexus_peer_announces_applied_total',
    help: 'Peer announces applied to the routing table.',
    registers,
    collect() {
      this.reset();
      this.inc(stats()?.announcesApplied ?? 0);
    },
  });
  new Counter({
    name: 'nexus_peer_announce_apply_seconds_total',
    help: 'Time spent applying peer announces to the routing table, seconds.',
    registers,
    collect() {
      this.reset();
      this.inc((stats()?.announceApplyMs ?? 0) / 1_000);
    },
  });
  new Gauge({
    name: 'nexus_peer_link_routes',
    help: 'Routes learned from each peer (summed over its links).',
    labelNames: ['peer'],
    registers,
    collect() {
      this.reset();
      for (const link of stats()?.routesPerLink ?? []) this.inc({ peer: peerLabel(link.peer) }, link.routes);
    },
  });
  new Counter({
    name: 'nexus_peer_route_sync_total',
    help: 'Route synchronisation between Nexus nodes, by event: deltas applied, gaps, resyncs requested and served.',
    labelNames: ['event'],
    registers,
    collect() {
      this.reset();
      const s = stats()?.routeSync;
      if (s === undefined) return;
      this.inc({ event: 'delta_applied' }, s.deltasApplied);
      this.inc({ event: 'gap' }, s.gaps);
      this.inc({ event: 'resync_requested' }, s.resyncsRequested);
      this.inc({ event: 'resync_served' }, s.resyncsServed);
    },
  });
  new Counter({
    name: 'nexus_peer_announces_truncated_total',
    help: 'Full-state announces cut to fit one message for a full-state peer (the routes left out are in nexus_peer_routes_omitted_total).',
    registers,
    collect() {
      this.reset();
      this.inc(stats()?.routeSync.announcesTruncated ?? 0);
    },
  });
  new Counter({
    name: 'nexus_peer_routes_omitted_total',
    help: 'Routes left out of full-state announces that did not fit one message.',
    registers,
    collect() {
      this.reset();
      this.inc(stats()?.routeSync.routesOmitted ?? 0);
    },
  });
  new Counter({
    name: 'nexus_peer_duplicate_links_closed_total',
    help: 'Outbound links closed because the Nexus peer had dialled this node too (one link per pair).',
    registers,
    collect() {
      this.reset();
      this.inc(stats()?.duplicateLinksClosed ?? 0);
    },
  });
  new Counter({
    name: 'nexus_peer_dial_contexts_total',
    help: 'TLS client contexts built for peer dials (one per trust configuration).',
    registers,
    collect() {
      this.reset();
      this.inc(stats()?.dialContextsCreated ?? 0);
    },
  });
  new Counter({
    name: 'nexus_peer_certificate_checks_total',
    help: 'Peer certificates checked (inbound peers, discovered listeners), by the validation that decided: path "direct" (issued directly by a trusted CA) or "full" (PKI.js chain validation).',
    labelNames: ['path'],
    registers,
    collect() {
      this.reset();
      const s = stats();
      this.inc({ path: 'direct' }, s?.certificateChecks.direct ?? 0);
      this.inc({ path: 'full' }, s?.certificateChecks.full ?? 0);
    },
  });
  new Counter({
    name: 'nexus_peer_dial_failures_total',
    help: 'Dials of configured peers that failed: reason "timeout" (the opening handshake timed out) or "other" (refused, TLS or the upgrade refused).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      const s = stats();
      this.inc({ reason: 'timeout' }, s?.dialTimeouts ?? 0);
      this.inc({ reason: 'other' }, (s?.dialFailures ?? 0) - (s?.dialTimeouts ?? 0));
    },
  });
}

/** Route discovery's gauges (docs/mesh.md "Discovery on NATS"), read from `nexus.discovery.status()`. */
export function registerDiscoveryMetrics(nexus: Nexus, registers: Registry[]): void {
  new Gauge({
    name: 'nexus_discovery_degraded',
    help: 'Route discovery cannot reach its store and keeps the last known routes (1), or works (0).',
    registers,
    collect() {
      const state = nexus.discovery?.status().state;
      this.set(state === 'degraded' || state === 'connecting' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'nexus_discovery_nodes',
    help: 'Remote nodes whose discovered routes are in the routing table.',
    registers,
    collect() {
      this.set(nexus.discovery?.status().nodes ?? 0);
    },
  });
  new Counter({
    name: 'nexus_discovery_refused_total',
    help: 'Discovery values refused as malformed, oversize or over the caps.',
    registers,
    collect() {
      this.reset();
      this.inc(nexus.discovery?.status().refused ?? 0);
    },
  });
}
