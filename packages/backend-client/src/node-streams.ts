import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '@nexus-proxy/common';
import type { ConnectMessage, MuxStream } from '@nexus-proxy/mux-protocol';
import type { ResolvedBackendClientOptions, StreamRequest } from './client-options.js';
import { DialError, NoMappingError } from './errors.js';
import { awaitConnect, dialLocal, formatTarget } from './local-dial.js';
import { LocalReads } from './local-reads.js';
import type { NodeConnectionEvents, StreamOpenEvent } from './node-connection-events.js';
import { resolveStreamTarget, resolveTarget } from './port-mappings.js';
import { buildProxyHeader } from './proxy-protocol.js';
import { StreamRelay } from './stream-relay.js';
import { type UdpFlow, UdpTargets, type UdpTargetStats } from './udp-targets.js';

/** Most node ports whose mapping fallback is logged at info once each (later ones at debug). */
const MAX_FALLBACK_PORTS_REPORTED = 64;

interface StreamEntry {
  readonly stream: MuxStream;
  readonly abort: AbortController;
  relay: StreamRelay | UdpFlow | undefined;
  /** Our own close reason, when we closed the stream. */
  reason: string | undefined;
  /** Removes the pre-relay EOF watcher. */
  unwatch: () => void;
}

/** What {@link NodeStreams} needs from the connection that owns it. */
export interface NodeStreamsHost {
  readonly node: string;
  readonly log: Logger;
  readonly emit: <K extends keyof NodeConnectionEvents>(event: K, ...args: NodeConnectionEvents[K]) => void;
  /** The options in force now (streams opened later use the new port mappings and health checks). */
  options(): ResolvedBackendClientOptions;
  /** The session is connected: a stream that arrives otherwise is refused with `shutdown`. */
  connected(): boolean;
}

/**
 * The streams of one hub address, across its sessions: each hub `connect` dialled to its local service
 * (connect handler or port mapping, PROXY header) and relayed, closed from either side with its reason,
 * and counted for `stats()`.
 */
export class NodeStreams {
  readonly #host: NodeStreamsHost;
  readonly #streams = new Map<string, StreamEntry>();
  /** Node ports whose fallback to the 443/80 mapping has been logged at info. */
  readonly #fallbackReported = new Set<number>();
  #streamsTotal = 0;
  #dialFailures = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  /** The local sockets of UDP flows. */
  readonly #udp: UdpTargets;

  constructor(host: NodeStreamsHost) {
    this.#host = host;
    this.#udp = new UdpTargets(host);
  }

  /** Counters of the UDP flows. */
  udpStats(): UdpTargetStats {
    return this.#udp.stats();
  }

  /** Streams open now. */
  get size(): number {
    return this.#streams.size;
  }

  /** The counters `stats()` reports: bytes include those of the streams still open. */
  totals(): { streamsTotal: number; dialFailures: number; bytesIn: number; bytesOut: number } {
    let bytesIn = this.#bytesIn;
    let bytesOut = this.#bytesOut;
    for (const entry of this.#streams.values()) {
      bytesIn += entry.relay?.bytesIn ?? 0;
      bytesOut += entry.relay?.bytesOut ?? 0;
    }
    return { streamsTotal: this.#streamsTotal, dialFailures: this.#dialFailures, bytesIn, bytesOut };
  }

  /** Resolves once every open stream has closed, or after `graceMs`. */
  waitDone(graceMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, graceMs);
      const pending = new Set<MuxStream>();
      function done(): void {
        clearTimeout(timer);
        for (const stream of pending) stream.off('close', onClose);
        resolve();
      }
      function onClose(this: MuxStream): void {
        pending.delete(this);
        if (pending.size === 0) done();
      }
      for (const entry of this.#streams.values()) {
        pending.add(entry.stream);
        entry.stream.once('close', onClose);
      }
    });
  }

  /** Closes every open stream from this side with `reason` on the wire. */
  closeAll(reason: string): void {
    for (const entry of this.#streams.values()) this.#closeStream(entry, reason);
  }

  /**
   * The session is ending: the local side of every stream goes first (docs/reliability.md items 10 and
   * 11), before the session forgets them.
   */
  endLocal(): void {
    for (const entry of this.#streams.values()) {
      entry.reason ??= 'session_ended';
      entry.abort.abort();
      entry.relay?.destroy();
    }
  }

  /** After the session closed: no stream of it outlives it, so nothing can leak into the next one. */
  destroyAll(): void {
    for (const entry of this.#streams.values()) if (!entry.stream.destroyed) entry.stream.destroy();
  }

  /** A stream the hub opened with `connect`: dial the local side, then relay. */
  open(stream: MuxStream, connect: ConnectMessage): void {
    const { node, log } = this.#host;
    const id = connect.client_id;
    const entry: StreamEntry = {
      stream,
      abort: new AbortController(),
      relay: undefined,
      reason: undefined,
      unwatch: () => {},
    };
    // A MuxStream error must never become an uncaught exception; the close path reports it.
    stream.on('error', (err: Error) => log.debug({ id, err: err.message }, 'stream error'));
    stream.on('pong', () => entry.relay?.onPong());
    if (!this.#host.connected()) {
      this.#closeStream(entry, 'shutdown');
      return;
    }
    this.#streams.set(id, entry);
    this.#streamsTotal++;
    const event: StreamOpenEvent = {
      node,
      id,
      hostname: connect.hostname,
      clientIp: connect.client_ip,
      connPort: connect.conn_port,
      isTls: connect.is_tls,
    };
    this.#host.emit('stream-open', event);
    stream.once('close', () => {
      entry.abort.abort();
      this.#streams.delete(id);
      const bytesIn = entry.relay?.bytesIn ?? 0;
      const bytesOut = entry.relay?.bytesOut ?? 0;
      this.#bytesIn += bytesIn;
      this.#bytesOut += bytesOut;
      const reason = entry.reason ?? stream.closeReason ?? 'normal';
      if (reason === 'dial_failed') this.#dialFailures++;
      this.#host.emit('stream-close', { node, id, reason, bytesIn, bytesOut });
    });
    // Until the local side is piped nobody reads the stream, so a hub `disconnect` during the dial ends
    // its readable side without any 'end'. A 'readable' listener sees that EOF without consuming (the
    // prelude stays buffered, and credits are only returned once it is read): then abort the dial
    // (docs/reliability.md item 12) and let the stream close.
    const onReadable = (): void => {
      if (stream.closeReason === undefined || entry.relay !== undefined) return;
      entry.abort.abort();
      this.#discard(entry);
      stream.end();
    };
    stream.on('readable', onReadable);
    entry.unwatch = () => stream.off('readable', onReadable);
    const request: StreamRequest = {
      ...event,
      transport: connect.transport ?? 'tcp',
      signal: entry.abort.signal,
    };
    if (request.transport === 'udp') {
      this.#openUdp(entry, request);
      return;
    }
    this.#openLocal(request).then(
      ({ local, reads }) => {
        if (stream.destroyed || entry.abort.signal.aborted) {
          local.destroy();
          return;
        }
        entry.unwatch();
        entry.relay = new StreamRelay(
          stream,
          local,
          this.#healthCheck(entry),
          (err) => {
            log.debug({ id, err: err.message }, 'local socket error');
            this.#closeStream(entry, 'local_error');
          },
          reads,
        );
      },
      (err: Error) => {
        if (stream.destroyed) return;
        log.warn({ id, host: request.hostname, connPort: request.connPort, err: err.message }, 'dial failed');
        this.#closeStream(entry, 'dial_failed');
      },
    );
  }

  /** A UDP flow: its own socket toward the target the port maps to (no connect handler, no PROXY header). */
  #openUdp(entry: StreamEntry, request: StreamRequest): void {
    const { stream } = entry;
    const { portMappings } = this.#host.options();
    const target = portMappings ? resolveTarget(portMappings, request.connPort, request.hostname) : undefined;
    if (target === undefined) {
      const err = new NoMappingError(request.connPort, request.hostname);
      this.#host.log.warn({ id: request.id, connPort: request.connPort, err: err.message }, 'dial failed');
      this.#closeStream(entry, 'dial_failed');
      return;
    }
    this.#udp.open(stream, target, request.connPort, request.signal).then(
      (flow) => {
        if (stream.destroyed || entry.abort.signal.aborted) {
          flow.destroy();
          return;
        }
        entry.unwatch();
        entry.relay = flow;
        flow.start();
      },
      (err: Error) => {
        if (stream.destroyed) return;
        this.#host.log.warn({ id: request.id, connPort: request.connPort, err: err.message }, 'dial failed');
        this.#closeStream(entry, 'dial_failed');
      },
    );
  }

  /** The local side of a stream; `reads` when it is a socket dialled here (read through `onread`). */
  async #openLocal(request: StreamRequest): Promise<{ local: Duplex; reads?: LocalReads }> {
    const { connectHandler, portMappings, dialTimeoutMs } = this.#host.options();
    if (connectHandler !== undefined) {
      let local: Duplex | undefined;
      try {
        local = await connectHandler(request);
      } catch (err) {
        throw new DialError(`connect handler failed: ${(err as Error)?.message ?? String(err)}`, {
          cause: err,
        });
      }
      if (local !== undefined) {
        if (local instanceof net.Socket && local.connecting) {
          const connected = await awaitConnect(local, 'connect handler socket', {
            timeoutMs: dialTimeoutMs,
            signal: request.signal,
          });
          return { local: connected };
        }
        return { local };
      }
    }
    const resolved = portMappings ? resolveStreamTarget(portMappings, request) : undefined;
    if (resolved === undefined) throw new NoMappingError(request.connPort, request.hostname);
    const { target, mappedPort } = resolved;
    if (mappedPort !== request.connPort) this.#reportFallback(request, mappedPort);
    this.#host.log.debug({ id: request.id, target: formatTarget(target) }, 'dialling local service');
    const reads = new LocalReads();
    const local = await dialLocal(target, {
      timeoutMs: dialTimeoutMs,
      signal: request.signal,
      reads,
      ...(target.proxyProtocol !== undefined
        ? { header: buildProxyHeader({ version: target.proxyProtocol, ...request }) }
        : {}),
    });
    return { local, reads };
  }

  /**
   * Says once per node port (info) that its streams use the 443/80 mapping; later streams at debug. The
   * set of ports said is bounded by {@link MAX_FALLBACK_PORTS_REPORTED}.
   */
  #reportFallback(request: StreamRequest, mappedPort: number): void {
    const fields = {
      id: request.id,
      connPort: request.connPort,
      mappedPort,
      kind: request.isTls ? 'tls' : 'http',
    };
    if (this.#fallbackReported.has(request.connPort)) {
      this.#host.log.debug(fields, 'using the fallback port mapping');
      return;
    }
    if (this.#fallbackReported.size < MAX_FALLBACK_PORTS_REPORTED)
      this.#fallbackReported.add(request.connPort);
    this.#host.log.info(
      fields,
      `no port mapping for node port ${request.connPort}: using the ${mappedPort} mapping for ${request.isTls ? 'TLS' : 'HTTP'} streams (add a mapping for ${request.connPort} to choose)`,
    );
  }

  #healthCheck(entry: StreamEntry) {
    const health = this.#host.options().healthChecks;
    if (!health.enabled) return undefined;
    return {
      inactivityTimeoutMs: health.inactivityTimeoutMs,
      pongTimeoutMs: health.pongTimeoutMs,
      ping: () => entry.stream.ping(),
      onTimeout: () => {
        this.#host.log.info({ id: entry.stream.id }, 'stream health check timed out');
        this.#closeStream(entry, 'timeout');
      },
    };
  }

  /**
   * Ends a stream from this side with `reason` on the wire: the local socket goes first (nothing it
   * still sends can be delivered), then `disconnect{reason}` follows whatever was already queued.
   */
  #closeStream(entry: StreamEntry, reason: string): void {
    entry.reason ??= reason;
    entry.abort.abort();
    entry.relay?.destroy();
    entry.stream.disconnect(reason);
    if (entry.relay === undefined) this.#discard(entry);
  }

  /** Not piped (dial failed, aborted): drop what the stream buffered so that it can reach 'close'. */
  #discard(entry: StreamEntry): void {
    entry.unwatch();
    entry.stream.resume();
  }
}
