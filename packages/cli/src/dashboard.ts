/**
 * The data side of the admin listener's live dashboard (`/`, page in `dashboard-page.ts`): a bounded
 * throughput history sampled from the node's live byte counters, and server-sent events (`/events`) that
 * push the node's status to the open pages: at once when a backend or a stream comes or goes, else once
 * per `pushIntervalMs`. Everything is bounded: the history (`historyPoints`), the pages (`maxClients`;
 * one more gets 503), and what each page may leave unread (`maxClientBufferBytes`; past it the page is
 * disconnected and its EventSource reconnects).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Nexus } from '@nexus-proxy/core';
import type { StatusSnapshot } from './status.js';

/** Time between throughput samples, ms. Default: `5_000`. */
export const DEFAULT_DASHBOARD_SAMPLE_MS = 5_000;
/** Samples kept (120 × 5 s = the last 10 minutes). Default: `120`. */
export const DEFAULT_DASHBOARD_HISTORY_POINTS = 120;
/** Most dashboard pages connected at once. Default: `8`. */
export const DEFAULT_DASHBOARD_MAX_CLIENTS = 8;
/** Most bytes a page may leave unread before it is disconnected. Default: 256 KiB. */
export const DEFAULT_DASHBOARD_MAX_CLIENT_BUFFER = 256 * 1024;
/** Time between status pushes when nothing happens, ms. Default: `2_000`. */
export const DEFAULT_DASHBOARD_PUSH_MS = 2_000;
/** Rows of each table sent to a page (counts are always exact). Default: `200`. */
export const DEFAULT_DASHBOARD_MAX_ROWS = 200;
/** Delay that gathers a burst of events into one push, ms. */
const EVENT_PUSH_DELAY_MS = 100;

/** Options of {@link createDashboard}. */
export interface DashboardOptions {
  /** Default: `5_000`. */
  sampleMs?: number;
  /** Default: `120`. */
  historyPoints?: number;
  /** Default: `8`. */
  maxClients?: number;
  /** Default: 256 KiB. */
  maxClientBufferBytes?: number;
  /** Default: `2_000`. */
  pushIntervalMs?: number;
  /** Default: `200`. */
  maxRows?: number;
}

/** Bytes relayed in one sample interval. */
export interface ThroughputSample {
  /** End of the interval, ms since the epoch. */
  at: number;
  /** Toward local backends (end users' uploads), bytes. */
  up: number;
  /** From local backends (end users' downloads), bytes. */
  down: number;
  /** Carried over peer links, both directions, bytes. */
  peers: number;
}

/** What a page receives as `status` events: the status snapshot with its tables capped. */
export type DashboardStatus = StatusSnapshot & {
  /** Rows left out of each table because of the cap. */
  omitted: { backends: number; routes: number; peers: number };
};

/** The dashboard of one node. */
export interface Dashboard {
  /** Answers `GET /events` (the caller has checked access). */
  events(req: IncomingMessage, res: ServerResponse): void;
  /** The samples kept, oldest first. */
  history(): ThroughputSample[];
  /** Pages connected now. */
  readonly clients: number;
  /** Stops sampling and disconnects every page. */
  close(): void;
}

/** Cumulative byte counters of one backend session or peer link. */
interface Counter {
  up: number;
  down: number;
}

/** Reads every live byte counter of the node, keyed by session / link. */
function readCounters(nexus: Nexus): { sessions: Map<string, Counter>; links: Map<string, Counter> } {
  const sessions = new Map<string, Counter>();
  for (const s of nexus.hub.sessions) {
    const stats = s.stats();
    sessions.set(s.id, { up: stats.bytesSent, down: stats.bytesReceived });
  }
  const links = new Map<string, Counter>();
  for (const l of nexus.mesh?.links() ?? []) {
    links.set(l.linkId, { up: l.tunnels.bytesSent, down: l.tunnels.bytesReceived });
  }
  return { sessions, links };
}

/** Sum of the growth of each counter since `before`; a new counter counts from 0. */
function growth(now: Map<string, Counter>, before: Map<string, Counter>): Counter {
  const sum = { up: 0, down: 0 };
  for (const [id, c] of now) {
    const prev = before.get(id);
    sum.up += Math.max(0, c.up - (prev?.up ?? 0));
    sum.down += Math.max(0, c.down - (prev?.down ?? 0));
  }
  return sum;
}

function cap<T>(rows: T[], max: number): { rows: T[]; omitted: number } {
  return rows.length <= max ? { rows, omitted: 0 } : { rows: rows.slice(0, max), omitted: rows.length - max };
}

/** Starts sampling `nexus`; `status` gives the snapshot pages see. */
export function createDashboard(
  nexus: Nexus,
  status: () => StatusSnapshot,
  options: DashboardOptions = {},
): Dashboard {
  const sampleMs = options.sampleMs ?? DEFAULT_DASHBOARD_SAMPLE_MS;
  const maxPoints = options.historyPoints ?? DEFAULT_DASHBOARD_HISTORY_POINTS;
  const maxClients = options.maxClients ?? DEFAULT_DASHBOARD_MAX_CLIENTS;
  const maxBuffer = options.maxClientBufferBytes ?? DEFAULT_DASHBOARD_MAX_CLIENT_BUFFER;
  const pushMs = options.pushIntervalMs ?? DEFAULT_DASHBOARD_PUSH_MS;
  const maxRows = options.maxRows ?? DEFAULT_DASHBOARD_MAX_ROWS;
  const samples: ThroughputSample[] = [];
  const clients = new Set<ServerResponse>();
  let last = readCounters(nexus);

  const write = (res: ServerResponse, event: string, data: unknown): void => {
    if (res.writableLength > maxBuffer) {
      // A page that does not read: drop it rather than buffer without end (its EventSource reconnects).
      clients.delete(res);
      res.destroy();
      return;
    }
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const broadcast = (event: string, data: unknown): void => {
    for (const res of clients) write(res, event, data);
  };
  const snapshot = (): DashboardStatus => {
    const s = status();
    const backends = cap(s.backends, maxRows);
    const routes = cap(s.routes, maxRows);
    const peers = cap(s.peers, maxRows);
    return {
      ...s,
      backends: backends.rows,
      routes: routes.rows,
      peers: peers.rows,
      omitted: { backends: backends.omitted, routes: routes.omitted, peers: peers.omitted },
    };
  };

  const sample = (): void => {
    const now = readCounters(nexus);
    const local = growth(now.sessions, last.sessions);
    const mesh = growth(now.links, last.links);
    last = now;
    const point = { at: Date.now(), up: local.up, down: local.down, peers: mesh.up + mesh.down };
    samples.push(point);
    if (samples.length > maxPoints) samples.shift();
    broadcast('sample', point);
  };
  const sampler = setInterval(sample, sampleMs);
  sampler.unref();

  let pusher: NodeJS.Timeout | undefined;
  let soon: NodeJS.Timeout | undefined;
  const push = (): void => {
    if (clients.size > 0) broadcast('status', snapshot());
  };
  const pushSoon = (): void => {
    if (clients.size === 0 || soon !== undefined) return;
    soon = setTimeout(() => {
      soon = undefined;
      push();
    }, EVENT_PUSH_DELAY_MS);
  };
  const events = ['backend-connected', 'backend-disconnected', 'stream-open', 'stream-close'] as const;
  const emitter = nexus as unknown as {
    on(event: string, fn: () => void): void;
    off(event: string, fn: () => void): void;
  };
  for (const e of events) emitter.on(e, pushSoon);

  const drop = (res: ServerResponse): void => {
    clients.delete(res);
    if (clients.size === 0 && pusher !== undefined) {
      clearInterval(pusher);
      pusher = undefined;
    }
  };

  return {
    events(req, res) {
      if (clients.size >= maxClients) {
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10' });
        res.end(`Too many dashboard pages open (at most ${maxClients})\n`);
        return;
      }
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      clients.add(res);
      req.socket.setNoDelay(true);
      res.on('close', () => drop(res));
      res.write(`retry: 2000\n\n`);
      write(res, 'history', { sampleMs, points: samples });
      write(res, 'status', snapshot());
      if (pusher === undefined) {
        pusher = setInterval(push, pushMs);
        pusher.unref();
      }
    },
    history: () => [...samples],
    get clients() {
      return clients.size;
    },
    close() {
      clearInterval(sampler);
      if (pusher !== undefined) clearInterval(pusher);
      if (soon !== undefined) clearTimeout(soon);
      for (const e of events) emitter.off(e, pushSoon);
      for (const res of clients) res.end();
      clients.clear();
    },
  };
}
