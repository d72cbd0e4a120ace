/**
 * The bandwidth cap's metrics (docs/edge.md "Bandwidth fair share"), read from `nexus.bandwidth.stats()`
 * at each scrape: the cap, the bytes sent and the time spent waiting for a share per backend (labelled
 * with what the scheduler shows it as: the backend's hostnames, or `tunnel:<route>`; bounded by the
 * scheduler, past its cap `other`), and how many backends wait right now. Only bytes relayed under a cap
 * are counted: an unlimited node meters nothing.
 */
import type { BandwidthScheduler, BandwidthStats, Nexus } from '@nexus-proxy/core';
import { Counter, Gauge, type Registry } from 'prom-client';

/** Registers the bandwidth metrics of `nexus`. */
export function registerBandwidthMetrics(nexus: Nexus, registers: Registry[]): void {
  // A node handle of an embedder's own making may have no scheduler: nothing to count then.
  const scheduler = (): BandwidthScheduler | undefined => nexus.bandwidth;
  const stats = (): BandwidthStats | undefined => scheduler()?.stats();
  new Gauge({
    name: 'nexus_bandwidth_cap_bytes_per_second',
    help: 'The bandwidth cap (totalBandwidthMbps) in bytes per second; 0 = unlimited.',
    registers,
    collect() {
      this.set((scheduler()?.totalBandwidthMbps ?? 0) * 125_000);
    },
  });
  new Gauge({
    name: 'nexus_bandwidth_throttled_backends',
    help: 'Backends (and tunnelled routes) waiting for their share of the bandwidth cap right now.',
    registers,
    collect() {
      this.set(stats()?.throttledAccounts ?? 0);
    },
  });
  new Counter({
    name: 'nexus_bandwidth_sent_bytes_total',
    help: 'Bytes relayed under the bandwidth cap, both directions, by backend (its hostnames) or tunnel:<route>.',
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset();
      for (const g of stats()?.groups ?? []) this.inc({ backend: g.group }, g.bytesSent);
    },
  });
  new Counter({
    name: 'nexus_bandwidth_throttled_seconds_total',
    help: 'Time spent waiting for a share of the bandwidth cap, by backend (its hostnames) or tunnel:<route>.',
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset();
      for (const g of stats()?.groups ?? []) this.inc({ backend: g.group }, g.throttledMs / 1_000);
    },
  });
}
