/**
 * Both ends of a tunnel (docs/protocol.md §2.4). The origin opens one on a link that announces the route the
 * routing table chose; the destination relays it to a local backend, or closes it at once. Both ends
 * relay through `relayMuxStream`, like every other relay of the node.
 */
import type { Duplex } from 'node:stream';
import type { MuxStream, TunnelRequestMessage } from '@nexus-proxy/mux-protocol';
import { isDatagramStream, relayDatagrams } from './datagram-relay.js';
import type { Logger } from './logger.js';
import type { PeerLink } from './peer-link.js';
import { relayMuxStream } from './relay.js';
import type { UploadBudget } from './relay-uploads.js';
import type { PeerLinksRoute } from './routing-table.js';

/** What the destination knows about a tunnelled end user (the local stream's `connect` fields). */
export interface LocalStreamInit {
  /** The origin node's relay port the end user connected to. */
  connPort: number;
  /** End user's `ip:port`. */
  clientIp: string;
  /** True when the stream began with a TLS ClientHello. */
  isTls: boolean;
  /** `'udp'`: a UDP flow (docs/edge.md "UDP relay"). Default: `'tcp'`. */
  transport?: 'tcp' | 'udp';
}

/**
 * Destination side: opens a stream to a local backend for a tunnel (the hub's `openStream`), or
 * `undefined` when no local backend serves the name. `hostname` is the tunnel request's, as the peer
 * sent it: the routing table normalises it (an invalid name has no route).
 */
export type OpenLocalStream = (hostname: string, init: LocalStreamInit) => Duplex | undefined;

/**
 * Origin: a tunnel on the first of the route's links (in rotation order) that is open and takes it, or
 * `undefined`.
 */
export function openTunnel(
  links: Pick<ReadonlyMap<string, PeerLink>, 'get'>,
  route: PeerLinksRoute<string>,
  init: LocalStreamInit,
  log: Logger,
): MuxStream | undefined {
  for (const id of route.linkIds) {
    const link = links.get(id);
    if (link === undefined || link.closed) continue;
    const stream = link.tunnels.open({
      connPort: init.connPort,
      clientIp: init.clientIp,
      hostname: route.hostname,
      isTls: init.isTls,
      ...(init.transport === 'udp' ? { transport: 'udp' as const } : {}),
    });
    if (stream !== undefined) {
      log.debug({ host: route.hostname, linkId: id, tunnelId: stream.id }, 'tunnel opened');
      return stream;
    }
  }
  return undefined;
}

/** What the destination side needs. */
export interface AcceptTunnelOptions {
  /** `undefined` refuses every tunnel (no hub, or the mesh is closing). */
  openLocalStream: OpenLocalStream | undefined;
  /** Idle timeout of the relay, ms; `0` = off. */
  idleTimeoutMs: number;
  /** Why the request must be refused before a backend sees it (`PeerPolicy.checkTunnel`). Default: none. */
  check?: (request: TunnelRequestMessage) => string | undefined;
  /** The node's count of what streams hold of uploads (`limits.maxBufferedUploadBytes`). Default: none. */
  uploads?: UploadBudget | undefined;
  log: Logger;
}

/**
 * Destination: relays a tunnel to a local backend, or answers `0x12` at once. Only local backends are
 * asked (`openLocalStream` makes the routing decision) — a tunnel is never forwarded to a third node
 * (one hop, §2.4).
 */
export function acceptTunnel(
  link: PeerLink,
  request: TunnelRequestMessage,
  options: AcceptTunnelOptions,
): void {
  const { log } = options;
  const refusal = options.check?.(request);
  if (refusal !== undefined) {
    log.warn({ linkId: link.id, tunnelId: request.client_id, reason: refusal }, 'refusing tunnel request');
    link.tunnels.refuse(request.client_id);
    return;
  }
  let local: Duplex | undefined;
  const udp = request.transport === 'udp';
  if (options.openLocalStream !== undefined) {
    try {
      local = options.openLocalStream(request.hostname, {
        connPort: request.conn_port,
        clientIp: request.client_ip,
        isTls: request.is_tls,
        ...(udp ? { transport: 'udp' as const } : {}),
      });
    } catch (err) {
      log.error({ err, host: request.hostname }, 'openLocalStream threw');
      local = undefined;
    }
  }
  if (local !== undefined && udp && !isDatagramStream(local)) {
    local.destroy();
    local = undefined;
  }
  if (local === undefined) {
    // docs/reliability.md item 16: the reference ignores the request and the origin streams into the void.
    log.info(
      { linkId: link.id, tunnelId: request.client_id, host: request.hostname },
      'no local backend for tunnel: closing it',
    );
    link.tunnels.refuse(request.client_id);
    return;
  }
  const tunnel = link.tunnels.accept(request);
  if (tunnel === undefined) {
    local.destroy();
    return;
  }
  if (udp && isDatagramStream(local)) {
    // A UDP flow: datagram by datagram, dropped rather than waited for (docs/edge.md "UDP relay").
    relayDatagrams(tunnel, local, {
      idleTimeoutMs: options.idleTimeoutMs,
      onClose: (stats) =>
        log.debug(
          { linkId: link.id, tunnelId: tunnel.id, host: request.hostname, ...stats },
          'udp tunnel relay ended',
        ),
    });
    return;
  }
  // Both directions close through a graceful disconnect that flushes what was written first: the
  // backend finished → 0x12 after the last byte; the origin closed → disconnect the backend stream.
  relayMuxStream(tunnel, local, {
    idleTimeoutMs: options.idleTimeoutMs,
    uploads: options.uploads,
    onClose: (stats) =>
      log.debug(
        {
          linkId: link.id,
          tunnelId: tunnel.id,
          host: request.hostname,
          ...stats,
          error: stats.error?.message,
        },
        'tunnel relay ended',
      ),
  });
}
