/**
 * Fleet registration's metrics (docs/edge.md "Fleet registration"), read from
 * `nexus.registration.stats()` at each scrape. Nothing when `registrationURL` is not set.
 */
import type { FleetRegistrationStats, Nexus } from '@nexus-proxy/core';
import { Counter, Gauge, type Registry } from 'prom-client';

const STATES = ['registering', 'registered', 'retrying', 'failed', 'stopped'] as const;

/** Registers the fleet registration metrics of `nexus`. */
export function registerRegistrationMetrics(nexus: Nexus, registers: Registry[]): void {
  const stats = (): FleetRegistrationStats | undefined => nexus.registration?.stats();
  new Counter({
    name: 'nexus_registration_attempts_total',
    help: 'Registration and heartbeat requests to the orchestrator, by result.',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      const s = stats();
      if (s === undefined) return;
      this.inc({ result: 'success' }, s.successes);
      this.inc({ result: 'failure' }, s.failures);
    },
  });
  new Gauge({
    name: 'nexus_registration_state',
    help: 'Where fleet registration is: 1 for the current state (registered, retrying, failed…), 0 for the others.',
    labelNames: ['state'],
    registers,
    collect() {
      this.reset();
      const s = stats();
      if (s === undefined) return;
      for (const state of STATES) this.set({ state }, s.state === state ? 1 : 0);
    },
  });
  new Gauge({
    name: 'nexus_registration_heartbeat_interval_seconds',
    help: 'The heartbeat interval the orchestrator asked for (at least 5 s).',
    registers,
    collect() {
      this.reset();
      const ms = stats()?.heartbeatIntervalMs;
      if (ms !== undefined) this.set(ms / 1_000);
    },
  });
  new Gauge({
    name: 'nexus_registration_last_success_timestamp_seconds',
    help: 'When the orchestrator last accepted a registration or heartbeat, unix seconds.',
    registers,
    collect() {
      this.reset();
      const at = stats()?.lastSuccessAt;
      if (at !== undefined) this.set(at / 1_000);
    },
  });
}
