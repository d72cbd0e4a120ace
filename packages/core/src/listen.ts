/**
 * Binding a server the node owns (the relay listeners, the hub's and the peer listener's https servers,
 * the CLI's admin listener) with one error contract: a bind failure rejects with a `NexusError`
 * `NEXUS_ERR_LISTEN` whose message is one line naming the listener, the address, the configuration key
 * and the fix (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`), and later server errors are logged, never thrown.
 */
import type { AddressInfo, Server } from 'node:net';
import { NexusError, NexusErrorCode } from './errors.js';
import type { Logger } from './logger.js';

/** Ports below this one need privileges (root or `CAP_NET_BIND_SERVICE`) on Linux by default. */
const FIRST_UNPRIVILEGED_PORT = 1024;

/**
 * The one-line message of a failed bind: `hub cannot listen on 127.0.0.1:8443: the port is already in use
 * (EADDRINUSE): stop the other process or change backendListenAddress`.
 */
export function listenFailureMessage(
  cause: unknown,
  what: string,
  at: { host: string | undefined; port: number },
  key: string,
): string {
  const host = at.host === undefined ? '*' : at.host.includes(':') ? `[${at.host}]` : at.host;
  const where = `${what} cannot listen on ${host}:${at.port}`;
  const code = (cause as { code?: unknown } | null)?.code;
  switch (code) {
    case 'EADDRINUSE':
      return `${where}: the port is already in use (EADDRINUSE): stop the other process (ss -ltnp 'sport = :${at.port}' shows it) or change ${key}`;
    case 'EACCES':
    case 'EPERM':
      return at.port < FIRST_UNPRIVILEGED_PORT
        ? `${where}: permission denied (${code}): ports below ${FIRST_UNPRIVILEGED_PORT} need root or CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE; else setcap cap_net_bind_service=+ep on the node binary), or use a port of ${FIRST_UNPRIVILEGED_PORT} or more in ${key}`
        : `${where}: permission denied (${code}): check ${key} and the security policy (SELinux, AppArmor, systemd's SocketBind*)`;
    case 'EADDRNOTAVAIL':
      return `${where}: the address is not one of this machine's (EADDRNOTAVAIL): change ${key}`;
    default:
      return `${where}: ${cause instanceof Error ? cause.message : String(cause)} (check ${key})`;
  }
}

/**
 * Listens on `host:port` (`0` picks a port) and resolves with the bound address. `key` is the setting
 * that chose the address (named in the error).
 */
export function listenServer(
  server: Server,
  port: number,
  host: string | undefined,
  log: Logger,
  what: string,
  key: string = what,
): Promise<AddressInfo> {
  return new Promise<AddressInfo>((resolve, reject) => {
    const onError = (cause: Error): void =>
      reject(
        new NexusError(NexusErrorCode.Listen, listenFailureMessage(cause, what, { host, port }, key), {
          cause,
        }),
      );
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      server.on('error', (err) => log.error({ err: err.message }, `${what} error`));
      const address = server.address() as AddressInfo;
      log.info({ address: address.address, port: address.port }, `${what} listening`);
      resolve(address);
    });
  });
}
