/**
 * The admin listener: plain HTTP, off unless configured (`admin` key or `--admin`), meant for loopback or
 * a private network. `GET /metrics` (Prometheus), `/healthz` (liveness), `/readyz` (readiness), `/status`
 * (JSON for `nexus-proxy status`). Nothing else; it can change nothing.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Logger, noopLogger } from '@nexus-proxy/core';
import type { NexusMetrics } from './metrics.js';
import type { Readiness, StatusSnapshot } from './status.js';

/** Options of {@link createAdminServer}. */
export interface AdminServerOptions {
  /** Address to bind. Default: all interfaces (as every address of the configuration). */
  host?: string;
  /** TCP port; `0` picks one. */
  port: number;
  metrics: NexusMetrics;
  /** Answers `/readyz`. */
  readiness: () => Readiness;
  /** Answers `/status`. */
  status: () => StatusSnapshot;
  /** Logger; a `component: 'admin'` child is used. Default: no-op. */
  logger?: Logger;
}

/** A running admin listener. */
export interface AdminServer {
  /** Starts listening; resolves with the bound address. */
  listen(): Promise<AddressInfo>;
  /** The bound address, once listening. */
  address(): AddressInfo | undefined;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/** Creates the admin listener (nothing listens until `listen()`). */
export function createAdminServer(options: AdminServerOptions): AdminServer {
  const log = (options.logger ?? noopLogger).child({ component: 'admin' });
  const json = (res: ServerResponse, status: number, value: unknown) =>
    send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'Method Not Allowed\n');
      return;
    }
    switch (path) {
      case '/metrics':
        send(res, 200, options.metrics.contentType, await options.metrics.metrics());
        return;
      case '/healthz':
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case '/readyz': {
        const readiness = options.readiness();
        json(res, readiness.ready ? 200 : 503, readiness);
        return;
      }
      case '/status':
        json(res, 200, options.status());
        return;
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'Not Found\n');
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err }, 'admin request failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'Internal Server Error\n');
      else res.destroy();
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  return {
    listen() {
      return new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          server.on('error', (err) => log.error({ err }, 'admin listener error'));
          const address = server.address() as AddressInfo;
          log.info({ address: address.address, port: address.port }, 'admin listener listening');
          resolve(address);
        });
      });
    },
    address() {
      const a = server.address();
      return a !== null && typeof a === 'object' ? a : undefined;
    },
    close() {
      if (!server.listening) return Promise.resolve();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
