/**
 * The UDP relay (docs/edge.md "UDP relay"): the node's `udpRelayPorts`. Datagrams are grouped into flows
 * by source address and port, per relay port; each flow is one stream (`transport: "udp"`) to a backend
 * that claims `udp:<port>`, picked by weighted round robin when the flow starts and kept for its life, or
 * a tunnel to a peer announcing the route. One datagram is one DATA frame, both ways.
 *
 * Nothing here ever waits. A datagram that its flow cannot queue (the backend or the link is not keeping
 * up) is dropped and counted, so one stalled flow never holds the port's reader and never delays another
 * flow. Flows live in one bounded table (`udpMaxFlows`, least recently used evicted with a `disconnect`)
 * under one reaper that ends flows idle past their port's timeout: the longest `flow_idle_timeout_seconds`
 * among the backends claiming the port, or `udpFlowIdleTimeoutDefaultSeconds` without one, within
 * [`udpFlowIdleTimeoutMinSeconds`, `udpFlowIdleTimeoutMaxSeconds`].
 */
import type dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import type { MuxStream } from '@nexus-proxy/mux-protocol';
import type { BackendSession } from './backend-session.js';
import type { ClaimPolicy } from './current-claims.js';
import { isDatagramStream } from './datagram-relay.js';
import { LimitError, NexusError, NexusErrorCode, NoRouteError } from './errors.js';
import { type FlowEndReason, type FlowEntry, FlowTable } from '@nexus-proxy/common';
import type { BackendHub } from './hub.js';
import { type Logger, noopLogger } from './logger.js';
import type { PeerMesh } from './mesh.js';
import { formatClientIp, openRoute } from './node-dispatch.js';
import { backendBandwidthKey, tunnelBandwidthKey } from './relay-bandwidth.js';
import type { BandwidthAccount, BandwidthScheduler } from './bandwidth-scheduler.js';
import { portRouteKey } from './route-key.js';
import type { RoutingTable } from './routing-table.js';
import { bindUdpSocket } from './udp-bind.js';

/** Why a datagram was not relayed. */
export type UdpDropReason =
  /** Larger than `udpMaxDatagramBytes`. */
  | 'oversize'
  /** Empty: a DATA frame cannot carry it. */
  | 'empty'
  /** No backend claims the port and no peer announces it. */
  | 'no-route'
  /** Every backend of the route is at its stream limits. */
  | 'backend-limit'
  /** Its flow's queue toward the backend (or peer) is full: they are not keeping up. */
  | 'queue-full'
  /** An answer could not be sent to the end user. */
  | 'send-failed'
  /** Over its backend's share of the bandwidth cap (`totalBandwidthMbps`, docs/edge.md). */
  | 'bandwidth'
  /** The node is shutting down. */
  | 'shutdown';

const DROP_REASONS: readonly UdpDropReason[] = [
  'oversize',
  'empty',
  'no-route',
  'backend-limit',
  'queue-full',
  'send-failed',
  'bandwidth',
  'shutdown',
];

/** Why a flow ended: the table's reasons, or `backend` (the backend or peer closed it). */
export type UdpFlowEndReason = FlowEndReason | 'backend';

/** Counters of one relay port. */
export interface UdpPortStats {
  /** The port as configured (`0`: the bound one is in `boundPort`). */
  port: number;
  boundPort: number;
  /** Flows open now. */
  flows: number;
  /** Flows opened since start. */
  flowsOpened: number;
  /** Flows ended, by reason. */
  flowsEnded: Record<UdpFlowEndReason, number>;
  /** Datagrams received from end users and relayed toward backends. */
  datagramsIn: number;
  /** Datagrams sent back to end users. */
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Datagrams not relayed, by reason. */
  dropped: Record<UdpDropReason, number>;
  /** Idle timeout of the port's flows now, seconds. */
  idleTimeoutSeconds: number;
}

/** One open flow, as `/status` lists them (grouped). */
export interface UdpFlowsByTarget {
  port: number;
  /** The backend session id, or `peer` for flows tunnelled to another node. */
  target: string;
  flows: number;
}

/** Options of {@link UdpRelay}. */
export interface UdpRelayOptions {
  /** `udpRelayPorts` (`0` = any free port). */
  ports: readonly number[];
  /** Address to bind; `undefined` = every interface, IPv4 and IPv6. */
  host?: string | undefined;
  /** `udpMaxFlows`. */
  maxFlows: number;
  /** `udpMaxDatagramBytes`. */
  maxDatagramBytes: number;
  routes: RoutingTable<BackendSession>;
  hub: BackendHub;
  /** The mesh, once it runs. */
  mesh(): PeerMesh | undefined;
  /** The claim policy in force (its UDP timeout bounds and default). */
  claims(): Pick<
    ClaimPolicy,
    'udpFlowIdleTimeoutDefaultSeconds' | 'udpFlowIdleTimeoutMinSeconds' | 'udpFlowIdleTimeoutMaxSeconds'
  >;
  /** The bandwidth cap: datagrams the node sends (both ways) are charged to the flow's backend. */
  bandwidth?: BandwidthScheduler;
  logger?: Logger;
}

interface Port {
  readonly configured: number;
  boundPort: number;
  socket: dgram.Socket | undefined;
  stats: Omit<UdpPortStats, 'port' | 'boundPort' | 'flows' | 'idleTimeoutSeconds'>;
  /** Counts a failed answer (one callback for every send of the port). */
  readonly onSent: (err: Error | null) => void;
}

interface Flow extends FlowEntry {
  readonly key: string;
  readonly port: Port;
  readonly stream: MuxStream;
  /** Session id, or `peer`. */
  readonly target: string;
  /** Its bandwidth account, while a cap was set when it opened. */
  readonly account: BandwidthAccount | undefined;
}

/** The node's UDP relay ports and their flows. */
export class UdpRelay {
  readonly #options: UdpRelayOptions;
  readonly #log: Logger;
  readonly #ports: Port[];
  readonly #flows: FlowTable<Flow>;
  #closed = false;

  constructor(options: UdpRelayOptions) {
    this.#options = options;
    this.#log = (options.logger ?? noopLogger).child({ component: 'udp-relay' });
    this.#ports = options.ports.map((configured) => {
      const port: Port = {
        configured,
        boundPort: configured,
        socket: undefined,
        stats: {
          flowsOpened: 0,
          flowsEnded: { evicted: 0, expired: 0, closed: 0, backend: 0 },
          datagramsIn: 0,
          datagramsOut: 0,
          bytesIn: 0,
          bytesOut: 0,
          dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<UdpDropReason, number>,
        },
        onSent: (err) => {
          if (err) port.stats.dropped['send-failed']++;
        },
      };
      return port;
    });
    this.#flows = new FlowTable<Flow>({
      maxFlows: options.maxFlows,
      timeoutMs: (flow) => this.idleTimeoutSeconds(flow.port.boundPort) * 1_000,
      timeoutKey: (flow) => flow.port.boundPort,
      minTimeoutMs: options.claims().udpFlowIdleTimeoutMinSeconds * 1_000,
      onEnd: (flow, reason) => this.#ended(flow, reason),
    });
  }

  /** Binds every port. Rejects with `NEXUS_ERR_LISTEN` when one cannot be bound (the others are released). */
  async listen(): Promise<AddressInfo[]> {
    if (this.#closed) throw new NexusError(NexusErrorCode.Closed, 'the UDP relay is closed');
    const bound: AddressInfo[] = [];
    try {
      for (const port of this.#ports) {
        const socket = await bindUdpSocket('the UDP relay', port.configured, this.#options.host);
        port.socket = socket;
        port.boundPort = socket.address().port;
        socket.on('message', (msg, rinfo) => this.#onDatagram(port, msg, rinfo));
        socket.on('error', (err) =>
          this.#log.warn({ err: err.message, port: port.boundPort }, 'UDP socket error'),
        );
        bound.push(socket.address());
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    this.#log.info({ ports: bound.map((a) => a.port) }, 'UDP relay listening');
    return bound;
  }

  /** Flows open now, all ports. */
  get flowCount(): number {
    return this.#flows.size;
  }

  /**
   * The idle timeout of flows on relay port `port` now, seconds: the longest that the backends claiming
   * `udp:<port>` claimed, else the default, within the policy's bounds.
   */
  idleTimeoutSeconds(port: number): number {
    const policy = this.#options.claims();
    let longest = 0;
    const pool = this.#options.routes.localPool(portRouteKey('udp', port));
    for (const member of pool?.stats().members ?? []) {
      const claim = member.target.identity.udpRoutes?.find((r) => r.port === port);
      if (claim !== undefined) longest = Math.max(longest, claim.flowIdleTimeoutSeconds);
    }
    const seconds = longest > 0 ? longest : policy.udpFlowIdleTimeoutDefaultSeconds;
    return Math.min(
      Math.max(seconds, policy.udpFlowIdleTimeoutMinSeconds),
      policy.udpFlowIdleTimeoutMaxSeconds,
    );
  }

  /** Counters per port. */
  stats(): UdpPortStats[] {
    const open = new Map<Port, number>();
    for (const flow of this.#flows.values()) open.set(flow.port, (open.get(flow.port) ?? 0) + 1);
    return this.#ports.map((p) => ({
      port: p.configured,
      boundPort: p.boundPort,
      flows: open.get(p) ?? 0,
      ...p.stats,
      flowsEnded: { ...p.stats.flowsEnded },
      dropped: { ...p.stats.dropped },
      idleTimeoutSeconds: this.idleTimeoutSeconds(p.boundPort),
    }));
  }

  /** Open flows grouped by port and target (a backend session, or `peer`). */
  flowsByTarget(): UdpFlowsByTarget[] {
    const groups = new Map<string, UdpFlowsByTarget>();
    for (const flow of this.#flows.values()) {
      const key = `${flow.port.boundPort}/${flow.target}`;
      const group = groups.get(key);
      if (group !== undefined) group.flows++;
      else groups.set(key, { port: flow.port.boundPort, target: flow.target, flows: 1 });
    }
    return [...groups.values()].sort((a, b) => a.port - b.port || b.flows - a.flows);
  }

  /** Ends the flows idle past their timeout now (the reaper does it every second). */
  sweep(): void {
    this.#flows.sweep();
  }

  /** Stops receiving, ends every flow (`disconnect{shutdown}`) and releases the ports. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#flows.close();
    await Promise.all(
      this.#ports.map((port) => {
        const socket = port.socket;
        port.socket = undefined;
        return socket === undefined ? undefined : new Promise<void>((r) => socket.close(() => r()));
      }),
    );
  }

  #onDatagram(port: Port, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const dropped = this.#relay(port, msg, rinfo);
    if (dropped !== undefined) port.stats.dropped[dropped]++;
  }

  /** Sends `msg` on its flow (a new one for a new source); why not, when it was dropped. */
  #relay(port: Port, msg: Buffer, rinfo: dgram.RemoteInfo): UdpDropReason | undefined {
    if (msg.length > this.#options.maxDatagramBytes) return 'oversize';
    if (msg.length === 0) return 'empty';
    if (this.#closed) return 'shutdown';
    const key = `${port.boundPort}|${rinfo.address}|${rinfo.port}`;
    let flow = this.#flows.get(key);
    if (flow?.stream.detached) {
      // Its backend ended it a moment ago ('end' is on its way): this datagram starts a new flow.
      this.#flows.delete(key, flow);
      port.stats.flowsEnded.backend++;
      flow = undefined;
    }
    if (flow === undefined) {
      const opened = this.#open(port, key, rinfo);
      if (typeof opened === 'string') return opened;
      flow = opened;
    } else {
      this.#flows.touch(key, flow);
    }
    if (flow.account !== undefined && !flow.account.tryCharge(msg.length)) return 'bandwidth';
    if (!flow.stream.sendDatagram(msg)) return 'queue-full';
    port.stats.datagramsIn++;
    port.stats.bytesIn += msg.length;
    return undefined;
  }

  /** A new flow: a stream to a backend (or peer) claiming the port, answered on the port's socket. */
  #open(port: Port, key: string, rinfo: dgram.RemoteInfo): Flow | UdpDropReason {
    const { routes, hub } = this.#options;
    const connPort = port.boundPort;
    let session: BackendSession | undefined;
    let stream: MuxStream;
    let pattern = '';
    try {
      const route = routes.resolve(portRouteKey('udp', connPort));
      const init = {
        connPort,
        clientIp: formatClientIp(rinfo.address, rinfo.port),
        isTls: false,
        transport: 'udp' as const,
      };
      // The local pool is asked through the hub so that the flow learns its backend (for /status).
      const opened = openRoute(route, init, { hub, mesh: this.#options.mesh() });
      if (!isDatagramStream(opened.stream)) {
        opened.stream.destroy();
        return 'no-route';
      }
      stream = opened.stream as MuxStream;
      session = opened.session;
      pattern = opened.route;
    } catch (err) {
      if (NoRouteError.is(err)) return 'no-route';
      if (LimitError.is(err)) return 'backend-limit';
      this.#log.error({ err, port: connPort }, 'opening a UDP flow failed');
      return 'no-route';
    }
    const bandwidth = this.#options.bandwidth;
    let account: BandwidthAccount | undefined;
    if (bandwidth?.enabled === true) {
      const k = session !== undefined ? backendBandwidthKey(session) : tunnelBandwidthKey(pattern);
      account = bandwidth.account(k.id, k.group);
    }
    const flow: Flow = {
      key,
      port,
      stream,
      target: session?.id ?? 'peer',
      account,
      lastActive: 0,
      lastMoved: 0,
    };
    this.#flows.add(key, flow);
    port.stats.flowsOpened++;
    const { address, port: remotePort } = rinfo;
    stream.on('error', noop);
    stream.on('data', (datagram: Buffer) => {
      const socket = port.socket;
      if (socket === undefined) return;
      this.#flows.touch(key, flow);
      if (account !== undefined && !account.tryCharge(datagram.length)) {
        port.stats.dropped.bandwidth++;
        return;
      }
      port.stats.datagramsOut++;
      port.stats.bytesOut += datagram.length;
      socket.send(datagram, remotePort, address, port.onSent);
    });
    // The backend (or the peer) ended the flow, or the session went: forget it; the next datagram from
    // the same source starts a new flow.
    stream.once('end', () => {
      if (this.#flows.delete(key, flow)) port.stats.flowsEnded.backend++;
      if (!stream.writableEnded) stream.end();
    });
    stream.once('close', () => account?.release());
    return flow;
  }

  /** The table ended a flow: tell the backend (`disconnect`), after what was already queued. */
  #ended(flow: Flow, reason: FlowEndReason): void {
    flow.port.stats.flowsEnded[reason]++;
    flow.stream.disconnect(
      reason === 'expired' ? 'timeout' : reason === 'evicted' ? 'flow_evicted' : 'shutdown',
    );
  }
}

function noop(): void {}
