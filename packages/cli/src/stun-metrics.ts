/**
 * The STUN Binding server's metrics (docs/edge.md "STUN"), read from `nexus.stun.stats()` at each scrape:
 * datagrams received, answers sent by kind, datagrams dropped by reason. Nothing when `stunPort` is off.
 */
import type { Nexus, StunServerStats } from '@nexus-proxy/core';
import { Counter, type Registry } from 'prom-client';

/** Registers the STUN metrics of `nexus`. */
export function registerStunMetrics(nexus: Nexus, registers: Registry[]): void {
  const stats = (): StunServerStats | undefined => nexus.stun?.stats();
  new Counter({
    name: 'nexus_stun_requests_total',
    help: 'Datagrams received on the STUN port.',
    registers,
    collect() {
      this.reset();
      this.inc(stats()?.received ?? 0);
    },
  });
  new Counter({
    name: 'nexus_stun_responses_total',
    help: 'STUN answers sent: success (XOR-MAPPED-ADDRESS) or error (420 Unknown Attribute).',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      const s = stats();
      if (s === undefined) return;
      this.inc({ result: 'success' }, s.responses);
      this.inc({ result: 'error' }, s.errorResponses);
    },
  });
  new Counter({
    name: 'nexus_stun_dropped_total',
    help: 'Datagrams on the STUN port that got no answer, by reason (malformed, rate-limited…).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(stats()?.dropped ?? {})) this.inc({ reason }, n);
    },
  });
}
