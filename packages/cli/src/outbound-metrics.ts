/**
 * Outbound connections (SOCKS5 egress, docs/edge.md "Outbound connections"), read from
 * `nexus.hub.outbound.stats()` at each scrape: connections established and refused by reason, addresses
 * the address policy refused by reason, and the connections open and being dialled now. Every label value
 * comes from a fixed set (the checks' and the policy's reasons).
 */
import type { Nexus } from '@nexus-proxy/core';
import { Counter, Gauge, type Registry } from 'prom-client';

/** Registers the outbound-connection metrics of `nexus`. */
export function registerOutboundMetrics(nexus: Nexus, registers: Registry[]): void {
  const stats = () => nexus.hub.outbound.stats();
  new Counter({
    name: 'nexus_outbound_connections_total',
    help: 'Outbound connection requests from backends, by result: "opened", or why it was refused or failed (the check, address-refused, dial-failed…).',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      const s = stats();
      this.inc({ result: 'opened' }, s.opened);
      for (const [result, n] of Object.entries(s.refused)) this.inc({ result }, n ?? 0);
    },
  });
  new Counter({
    name: 'nexus_outbound_address_refusals_total',
    help: 'Addresses the outbound address policy refused (a literal, or each address a name resolved to), by reason: loopback, private, cloud-metadata…',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(stats().addressRefusals)) this.inc({ reason }, n);
    },
  });
  new Gauge({
    name: 'nexus_outbound_connections_open',
    help: 'Outbound connections open now, over all backends.',
    registers,
    collect() {
      this.set(stats().open);
    },
  });
  new Gauge({
    name: 'nexus_outbound_dials_in_flight',
    help: 'Outbound connections being dialled now, over all backends.',
    registers,
    collect() {
      this.set(stats().dialling);
    },
  });
}
