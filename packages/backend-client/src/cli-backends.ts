/**
 * The running backends of `nexus-backend` and how a new configuration is applied to them (SIGHUP):
 * a backend whose connection settings are unchanged keeps its sessions and open streams and takes the
 * new port mappings and health checks for the streams that follow; a backend whose hub addresses, token
 * or CA changed reconnects (its old client drains and closes); a backend that is gone closes; a new one
 * connects.
 */
import type { Logger } from '@nexus-proxy/common';
import { type BackendClient, createBackendClient } from './backend-client.js';
import type { BackendClientOptions } from './client-options.js';

/** One backend as the command line or the configuration file describes it. */
export interface BackendSpec {
  /** `backends[].name`, or `cli` for the flags. */
  readonly name: string;
  /**
   * What the sessions depend on (hub addresses, token or token file, CA): when it changes, the backend
   * reconnects; otherwise a reload updates it in place.
   */
  readonly connection: string;
  readonly options: BackendClientOptions;
}

/** What a reload did, by backend name. */
export interface BackendReloadSummary {
  /** Kept their sessions; new port mappings and health checks apply to new streams. */
  readonly updated: string[];
  /** Hub addresses, token or CA changed: closed and connected again. */
  readonly reconnected: string[];
  readonly added: string[];
  readonly removed: string[];
}

interface Running {
  readonly spec: BackendSpec;
  readonly client: BackendClient;
}

/** The backends of one `nexus-backend` process. */
export class BackendSet {
  readonly #logger: Logger;
  #running = new Map<string, Running>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** The running clients, in configuration order. */
  get clients(): BackendClient[] {
    return [...this.#running.values()].map((r) => r.client);
  }

  /** Starts the backends of `specs` (the first configuration). */
  start(specs: readonly BackendSpec[]): void {
    for (const spec of specs) this.#running.set(spec.name, { spec, client: this.#connect(spec) });
  }

  /**
   * Applies a new set of backends. Every new client is created (and its options validated) before
   * anything running is touched, so an invalid set throws and changes nothing.
   */
  async apply(specs: readonly BackendSpec[]): Promise<BackendReloadSummary> {
    const summary: BackendReloadSummary = { updated: [], reconnected: [], added: [], removed: [] };
    const next = new Map<string, Running>();
    const toStart: Running[] = [];
    const toUpdate: Array<{ running: Running; spec: BackendSpec }> = [];
    for (const spec of specs) {
      const old = this.#running.get(spec.name);
      if (old !== undefined && old.spec.connection === spec.connection) {
        // Validated now (throws before anything changed); applied below.
        createBackendClient(spec.options);
        toUpdate.push({ running: old, spec });
        next.set(spec.name, { spec, client: old.client });
        continue;
      }
      const running = { spec, client: createBackendClient(spec.options) };
      toStart.push(running);
      next.set(spec.name, running);
      (old === undefined ? summary.added : summary.reconnected).push(spec.name);
    }
    const toClose = [...this.#running.entries()]
      .filter(([name, r]) => next.get(name)?.client !== r.client)
      .map(([name, r]) => {
        if (!next.has(name)) summary.removed.push(name);
        return r.client;
      });
    for (const { running, spec } of toUpdate) {
      running.client.updateStreamOptions({
        portMappings: spec.options.portMappings,
        healthChecks: spec.options.healthChecks,
      });
      summary.updated.push(spec.name);
    }
    this.#running = next;
    for (const r of toStart) this.#watch(r.client).connect();
    await Promise.all(toClose.map((c) => c.close()));
    return summary;
  }

  /** Closes every client (graceful: open streams get the close grace). */
  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }

  #connect(spec: BackendSpec): BackendClient {
    const client = this.#watch(createBackendClient(spec.options));
    client.connect();
    return client;
  }

  #watch(client: BackendClient): BackendClient {
    // The routed name goes under `host`: `hostname` is pino's field for the machine's name.
    client.on('stream-open', ({ hostname, ...s }) =>
      this.#logger.debug({ ...s, host: hostname }, 'stream open'),
    );
    client.on('stream-close', (s) => this.#logger.debug(s, 'stream closed'));
    return client;
  }
}
