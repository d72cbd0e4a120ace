/**
 * Binding a server the node owns (the hub's and the peer listener's https servers) with one error
 * contract: a bind failure rejects with a `NexusError` `NEXUS_ERR_LISTEN` whose message names the address
 * and carries Node's own (`EADDRINUSE`, `EACCES`…), and later server errors are logged, never thrown.
 */
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { NexusError, NexusErrorCode } from './errors.js';
import type { Logger } from './logger.js';

/** Listens on `host:port` (`0` picks a port) and resolves with the bound address. */
export function listenServer(
  server: Server,
  port: number,
  host: string | undefined,
  log: Logger,
  what: string,
): Promise<AddressInfo> {
  return new Promise<AddressInfo>((resolve, reject) => {
    const onError = (cause: Error): void =>
      reject(
        new NexusError(
          NexusErrorCode.Listen,
          `${what} cannot listen on ${host ?? '*'}:${port}: ${cause.message}`,
          {
            cause,
          },
        ),
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
