/**
 * Binding a UDP socket the way the node's TCP relay listeners bind (docs/edge.md "UDP relay", "STUN"): a
 * given host in its own family, or — without one — every interface with one dual-stack socket (a host
 * without IPv6 gets an IPv4 one). Used by the STUN server and the UDP relay.
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { NexusError, NexusErrorCode } from './errors.js';

/** Errors of binding `::` that mean "this host has no IPv6" (then the socket binds IPv4 only). */
const NO_IPV6 = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EPROTONOSUPPORT']);

/**
 * Binds a UDP socket on `host:port` (`port` 0 = any free one; no `host` = every interface, IPv4 and IPv6).
 * Rejects with `NexusError` `NEXUS_ERR_LISTEN`, naming `what`, when it cannot.
 */
export async function bindUdpSocket(what: string, port: number, host?: string): Promise<dgram.Socket> {
  if (host === undefined) {
    try {
      return await bind(dgram.createSocket({ type: 'udp6', ipv6Only: false }), port, '::');
    } catch (err) {
      if (!NO_IPV6.has((err as NodeJS.ErrnoException).code ?? '')) throw listenError(what, '::', port, err);
      return bindOrThrow(what, 'udp4', port, '0.0.0.0');
    }
  }
  const family =
    isIP(host) ||
    (await lookup(host).then(
      (r) => r.family,
      () => 4,
    ));
  return bindOrThrow(what, family === 6 ? 'udp6' : 'udp4', port, host);
}

async function bindOrThrow(
  what: string,
  type: 'udp4' | 'udp6',
  port: number,
  host: string,
): Promise<dgram.Socket> {
  try {
    return await bind(dgram.createSocket(type), port, host);
  } catch (err) {
    throw listenError(what, host, port, err);
  }
}

function listenError(what: string, host: string, port: number, cause: unknown): NexusError {
  return new NexusError(
    NexusErrorCode.Listen,
    `${what} cannot listen on ${host}:${port}: ${(cause as Error).message}`,
    { cause },
  );
}

/** Binds `socket`; rejects (and closes it) on an error. */
function bind(socket: dgram.Socket, port: number, host: string): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      try {
        socket.close();
      } catch {
        // Never bound: nothing to release.
      }
      reject(err);
    };
    socket.once('error', onError);
    socket.bind(port, host, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
