/**
 * UDP flows toward local targets (docs/edge.md "UDP relay"): a hub stream opened with `transport: "udp"`
 * gets its own local UDP socket, connected to the target its port maps to, so the target's answers come
 * back to that flow alone. One DATA frame from the hub is one datagram to the target; one datagram from
 * the target is one DATA frame back.
 *
 * Nothing waits: a datagram the socket cannot send, or that the stream cannot queue (the hub's credits
 * are spent), is dropped and counted. The sockets are bounded (`udp.maxSockets` per hub address, the least
 * recently used flow closed past it) and swept by one reaper: a flow idle for its port's
 * `flowIdleTimeoutSeconds` (`udpRoutes`), or `udp.idleTimeoutMs`, is closed with `disconnect{timeout}`.
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { type FlowEndReason, type FlowEntry, FlowTable, type Logger } from '@nexus-proxy/common';
import type { MuxStream } from '@nexus-proxy/mux-protocol';
import type { ResolvedBackendClientOptions } from './client-options.js';
import { DialError } from './errors.js';
import type { HostPort } from './port-mappings.js';

/**
 * How much longer than its port's timeout a flow may idle here, ms: the node ends idle flows (it sees the
 * end user's side too); this reaper is the backstop that frees sockets the node's `disconnect` never freed.
 */
export const UDP_IDLE_GRACE_MS = 5_000;

/** What {@link UdpTargets} needs from its owner. */
export interface UdpTargetsHost {
  readonly log: Logger;
  /** The options in force now (the bound and timeouts apply to flows opened later). */
  options(): ResolvedBackendClientOptions;
}

/** Counters of the UDP flows of one hub address. */
export interface UdpTargetStats {
  /** Flows open now. */
  flows: number;
  /** Datagrams sent to local targets, and received from them and sent to the hub. */
  datagramsToTarget: number;
  datagramsFromTarget: number;
  /** Datagrams dropped: the local socket refused one, or the stream could not queue one. */
  dropped: number;
}

/** One UDP flow; relays like a `StreamRelay` (`bytesIn`, `bytesOut`, `destroy()`). */
export class UdpFlow implements FlowEntry {
  /** Bytes from the hub (sent to the target), and from the target (sent to the hub). */
  bytesIn = 0;
  bytesOut = 0;
  lastActive = 0;
  lastMoved = 0;
  readonly stream: MuxStream;
  readonly connPort: number;
  readonly #socket: dgram.Socket;
  readonly #owner: UdpTargets;
  #closed = false;

  constructor(owner: UdpTargets, stream: MuxStream, socket: dgram.Socket, connPort: number) {
    this.#owner = owner;
    this.stream = stream;
    this.#socket = socket;
    this.connPort = connPort;
  }

  /** Starts relaying both ways (the stream must have no other reader). */
  start(): void {
    const stream = this.stream;
    const socket = this.#socket;
    const owner = this.#owner;
    // The hub ended the flow (or the session went): the socket goes, the stream closes.
    stream.once('end', () => {
      this.destroy();
      if (!stream.writableEnded) stream.end();
    });
    const onSent = (err: Error | null) => {
      if (err) owner.counted('dropped');
    };
    stream.on('data', (datagram: Buffer) => {
      owner.touch(this);
      this.bytesIn += datagram.length;
      owner.counted('datagramsToTarget');
      socket.send(datagram, onSent);
    });
    socket.on('message', (datagram) => {
      owner.touch(this);
      if (!stream.sendDatagram(datagram)) {
        owner.counted('dropped');
        return;
      }
      this.bytesOut += datagram.length;
      owner.counted('datagramsFromTarget');
    });
    // A connected UDP socket reports an ICMP "port unreachable" as an error: the target may come back.
    socket.on('error', (err) =>
      owner.log.debug({ id: stream.id, err: err.message }, 'local UDP socket error'),
    );
  }

  /** Closes the local socket (the stream is the owner's business). Idempotent. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#owner.forget(this);
    try {
      this.#socket.close();
    } catch {
      // Already closed.
    }
  }

  /** Health-check pongs do not concern UDP flows. */
  onPong(): void {}
}

/** The UDP flows of one hub address. */
export class UdpTargets {
  readonly log: Logger;
  readonly #host: UdpTargetsHost;
  #table: FlowTable<UdpFlow> | undefined;
  #tableBound = 0;
  readonly #stats: Omit<UdpTargetStats, 'flows'> = {
    datagramsToTarget: 0,
    datagramsFromTarget: 0,
    dropped: 0,
  };

  constructor(host: UdpTargetsHost) {
    this.#host = host;
    this.log = host.log;
  }

  /** Counters. */
  stats(): UdpTargetStats {
    return { flows: this.#table?.size ?? 0, ...this.#stats };
  }

  /**
   * Opens the local socket of a UDP flow, connected to `target`, for `stream`; `start()` the flow once
   * nothing else reads the stream. Rejects
   * with `DialError` when the target's name does not resolve, the socket cannot connect, or `signal`
   * aborts first.
   */
  async open(stream: MuxStream, target: HostPort, connPort: number, signal: AbortSignal): Promise<UdpFlow> {
    let address = target.host;
    let family = isIP(address);
    if (family === 0) {
      try {
        ({ address, family } = await lookup(target.host));
      } catch (err) {
        throw new DialError(`cannot resolve ${target.host}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (signal.aborted) throw new DialError('the stream ended before its UDP target was ready');
    const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.connect(target.port, address, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      socket.close();
      throw new DialError(`cannot reach ${address}:${target.port} over UDP: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (signal.aborted) {
      socket.close();
      throw new DialError('the stream ended before its UDP target was ready');
    }
    const flow = new UdpFlow(this, stream, socket, connPort);
    this.#flows().add(stream.id, flow);
    return flow;
  }

  /** @internal Traffic on `flow`. */
  touch(flow: UdpFlow): void {
    this.#table?.touch(flow.stream.id, flow);
  }

  /** @internal Counts one datagram event. */
  counted(what: keyof Omit<UdpTargetStats, 'flows'>): void {
    this.#stats[what]++;
  }

  /** @internal The flow's socket closed. */
  forget(flow: UdpFlow): void {
    this.#table?.delete(flow.stream.id, flow);
  }

  /** The idle timeout of flows on node port `port` here, ms: its claimed timeout plus {@link UDP_IDLE_GRACE_MS}. */
  idleTimeoutMs(port: number): number {
    const options = this.#host.options();
    const claimed = options.attestation?.identity.udpRoutes.find((r) => r.port === port);
    const seconds = claimed?.flowIdleTimeoutSeconds;
    const base = seconds !== undefined && seconds > 0 ? seconds * 1_000 : options.udp.idleTimeoutMs;
    return base + UDP_IDLE_GRACE_MS;
  }

  /** The table, made again when `udp.maxSockets` changed (a reload) and no flow is open. */
  #flows(): FlowTable<UdpFlow> {
    const max = this.#host.options().udp.maxSockets;
    if (this.#table === undefined || (this.#tableBound !== max && this.#table.size === 0)) {
      this.#tableBound = max;
      this.#table = new FlowTable<UdpFlow>({
        maxFlows: max,
        timeoutMs: (flow) => this.idleTimeoutMs(flow.connPort),
        timeoutKey: (flow) => flow.connPort,
        onEnd: (flow, reason) => this.#ended(flow, reason),
      });
    }
    return this.#table;
  }

  #ended(flow: UdpFlow, reason: FlowEndReason): void {
    flow.destroy();
    flow.stream.disconnect(
      reason === 'expired' ? 'timeout' : reason === 'evicted' ? 'flow_evicted' : 'shutdown',
    );
  }
}
