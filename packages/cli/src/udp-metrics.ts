/**
 * The UDP relay's metrics (docs/edge.md "UDP relay"), read from `nexus.udp.stats()` at each scrape: flows
 * open per relay port, datagrams and bytes each way, flows ended by reason, datagrams dropped by reason.
 * Labels are the configured relay ports and fixed reason sets. Nothing when `udpRelayPorts` is empty.
 */
import type { Nexus, UdpPortStats } from '@nexus-proxy/core';
import { Counter, Gauge, type Registry } from 'prom-client';

/** Registers the UDP relay metrics of `nexus`. */
export function registerUdpMetrics(nexus: Nexus, registers: Registry[]): void {
  const stats = (): UdpPortStats[] => nexus.udp?.stats() ?? [];
  const label = (s: UdpPortStats) => String(s.boundPort);
  new Gauge({
    name: 'nexus_udp_flows',
    help: 'UDP flows open now, by relay port.',
    labelNames: ['port'],
    registers,
    collect() {
      this.reset();
      for (const s of stats()) this.set({ port: label(s) }, s.flows);
    },
  });
  new Counter({
    name: 'nexus_udp_datagrams_total',
    help: 'UDP datagrams relayed, by relay port and direction (in: from end users, out: to end users).',
    labelNames: ['port', 'direction'],
    registers,
    collect() {
      this.reset();
      for (const s of stats()) {
        this.inc({ port: label(s), direction: 'in' }, s.datagramsIn);
        this.inc({ port: label(s), direction: 'out' }, s.datagramsOut);
      }
    },
  });
  new Counter({
    name: 'nexus_udp_bytes_total',
    help: 'UDP payload bytes relayed, by relay port and direction.',
    labelNames: ['port', 'direction'],
    registers,
    collect() {
      this.reset();
      for (const s of stats()) {
        this.inc({ port: label(s), direction: 'in' }, s.bytesIn);
        this.inc({ port: label(s), direction: 'out' }, s.bytesOut);
      }
    },
  });
  new Counter({
    name: 'nexus_udp_dropped_total',
    help: 'UDP datagrams not relayed, by relay port and reason (oversize, queue-full, no-route…).',
    labelNames: ['port', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const s of stats()) {
        for (const [reason, n] of Object.entries(s.dropped)) this.inc({ port: label(s), reason }, n);
      }
    },
  });
  new Counter({
    name: 'nexus_udp_flows_ended_total',
    help: 'UDP flows ended, by relay port and reason (expired, evicted, backend, closed).',
    labelNames: ['port', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const s of stats()) {
        for (const [reason, n] of Object.entries(s.flowsEnded)) this.inc({ port: label(s), reason }, n);
      }
    },
  });
}
