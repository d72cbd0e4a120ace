/**
 * The admin listener: plain HTTP, off unless configured (`admin` key or `--admin`), on loopback unless an
 * address is given. `GET /metrics` (Prometheus), `/healthz` (liveness), `/readyz` (readiness), `/status`
 * (JSON for `nexus-proxy status`), and the live dashboard: `/` (the page), `/events` (its server-sent
 * events), `POST /login` and `/logout`. It can change nothing. With a token, `/metrics` and `/status`
 * require `Authorization: Bearer <token>`, the dashboard the same or its session cookie (admin-auth.ts);
 * the probes stay open.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Logger, listenServer, noopLogger } from '@nexus-proxy/core';
import { createAdminAuth } from './admin-auth.js';
import type { Dashboard } from './dashboard.js';
import { pageCsp, renderDashboardPage, renderLoginPage } from './dashboard-page.js';
import type { NexusMetrics } from './metrics.js';
import type { Readiness, StatusSnapshot } from './status.js';
import { CliError } from './errors.js';
import { readNamedFile } from './files.js';

/** Address the admin listener binds when none is given (`admin: 9090`, `--admin 9090`). */
export const DEFAULT_ADMIN_HOST = '127.0.0.1';
/** Environment variable holding the admin bearer token. */
export const ADMIN_TOKEN_ENV = 'NEXUS_ADMIN_TOKEN';

/** Options of {@link createAdminServer}. */
export interface AdminServerOptions {
  /** Address to bind. Default: `127.0.0.1` (give `0.0.0.0` or `::` to listen on every interface). */
  host?: string;
  /**
   * Bearer token `/metrics` and `/status` require (`Authorization: Bearer <token>`, compared in constant
   * time); `/healthz` and `/readyz` stay open for probes. Default: none (everything open).
   */
  token?: string;
  /** TCP port; `0` picks one. */
  port: number;
  metrics: NexusMetrics;
  /** Answers `/readyz`. */
  readiness: () => Readiness;
  /** Answers `/status`. */
  status: () => StatusSnapshot;
  /** Serves `/` and `/events`; closed with the listener. Default: none (404). */
  dashboard?: Dashboard;
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

/** Where the admin token may come from, in order of precedence. */
export interface AdminTokenSources {
  /** `--admin-token-file`. */
  file?: string;
  /** The environment (`NEXUS_ADMIN_TOKEN`). Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** The configuration's `admin.tokenFile` (resolved path). */
  configTokenFile?: string;
  /** The configuration's `admin.token`. */
  configToken?: string;
}

/**
 * The admin token from the first source that has one: `--admin-token-file`, `NEXUS_ADMIN_TOKEN`,
 * `admin.tokenFile`, `admin.token`; `undefined` when none does. Files are read now and trimmed. Throws
 * `CliError` (`NEXUS_ERR_USAGE`) naming the flag or key for an unreadable or empty file.
 */
export function resolveAdminToken(sources: AdminTokenSources): string | undefined {
  const readToken = (file: string, key: string): string => {
    const token = readNamedFile(file, key).trim();
    if (token === '') throw new CliError('NEXUS_ERR_USAGE', `${key} ${file} is empty: put the token in it`);
    return token;
  };
  if (sources.file !== undefined) return readToken(sources.file, '--admin-token-file');
  const fromEnv = (sources.env ?? process.env)[ADMIN_TOKEN_ENV]?.trim();
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (sources.configTokenFile !== undefined) return readToken(sources.configTokenFile, 'admin.tokenFile');
  return sources.configToken;
}

/** Sends an HTML page with its own CSP nonce. */
function sendPage(res: ServerResponse, status: number, render: (nonce: string) => string): void {
  const nonce = randomBytes(16).toString('base64');
  res.setHeader('content-security-policy', pageCsp(nonce));
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('referrer-policy', 'no-referrer');
  send(res, status, 'text/html; charset=utf-8', render(nonce));
}

/** Creates the admin listener (nothing listens until `listen()`). */
export function createAdminServer(options: AdminServerOptions): AdminServer {
  const log = (options.logger ?? noopLogger).child({ component: 'admin' });
  const json = (res: ServerResponse, status: number, value: unknown) =>
    send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`);
  const { token, dashboard } = options;
  const auth = createAdminAuth(token);
  const denied = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (auth.bearer(req)) return false;
    res.setHeader('www-authenticate', 'Bearer realm="nexus-admin"');
    send(res, 401, 'text/plain; charset=utf-8', 'Unauthorized\n');
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (dashboard !== undefined && path === '/login' && req.method === 'POST') {
      await auth.login(req, res, (r, status, message) =>
        sendPage(r, status, (n) => renderLoginPage(n, message)),
      );
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'Method Not Allowed\n');
      return;
    }
    switch (path) {
      case '/metrics':
        if (denied(req, res)) return;
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
        if (denied(req, res)) return;
        json(res, 200, options.status());
        return;
      case '/':
        if (dashboard === undefined) break;
        if (auth.session(req)) sendPage(res, 200, (n) => renderDashboardPage(n, token !== undefined));
        else sendPage(res, 401, (n) => renderLoginPage(n));
        return;
      case '/events':
        if (dashboard === undefined) break;
        if (!auth.session(req)) send(res, 401, 'text/plain; charset=utf-8', 'Unauthorized\n');
        // A HEAD would hold one of the few places open with nothing to read.
        else if (req.method === 'HEAD') send(res, 200, 'text/event-stream; charset=utf-8', '');
        else dashboard.events(req, res);
        return;
      case '/logout':
        if (dashboard === undefined) break;
        auth.logout(res);
        return;
    }
    send(res, 404, 'text/plain; charset=utf-8', 'Not Found\n');
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
      const host = options.host ?? DEFAULT_ADMIN_HOST;
      return listenServer(server, options.port, host, log, 'admin listener', 'admin (or --admin)');
    },
    address() {
      const a = server.address();
      return a !== null && typeof a === 'object' ? a : undefined;
    },
    close() {
      dashboard?.close();
      if (!server.listening) return Promise.resolve();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
