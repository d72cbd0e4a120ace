/**
 * The node's status: a JSON snapshot served at the admin listener's `/status`, and `nexus-proxy status`,
 * which fetches it and prints backends, routes, peers and streams as tables. The snapshot carries no
 * end-user or backend address.
 */
import { request as httpRequest } from 'node:http';
import type { BackendIdentity, Nexus } from '@nexus-proxy/core';
import { parseListenAddress } from '@nexus-proxy/core';
import type { NexusMetrics, NexusTotals } from './metrics.js';
import { CliError } from './errors.js';

/** Address `nexus-proxy status` asks when given none. */
export const DEFAULT_ADMIN_ADDRESS = '127.0.0.1:9090';
/** Most streams listed in a snapshot (the count is always exact). Default: `100`. */
export const DEFAULT_STATUS_MAX_STREAMS = 100;
/** Time `fetchStatus` waits for an answer, ms. Default: `5_000`. */
export const DEFAULT_STATUS_TIMEOUT_MS = 5_000;

/** Whether the node should get traffic, and if not, why. */
export interface Readiness {
  ready: boolean;
  /** Empty when ready: `starting`, `draining`, `temporary-certificate`. */
  reasons: string[];
  /**
   * Present when the node serves, but on stale information: `discovery: <why>` while route discovery
   * cannot reach its store and keeps the last known routes (docs/mesh.md "Discovery on NATS").
   */
  degraded?: string[];
}

/** The JSON document of `GET /status`. */
export interface StatusSnapshot {
  version: string;
  /** ISO 8601. */
  startedAt: string;
  uptimeSeconds: number;
  readiness: Readiness;
  draining: boolean;
  /** The hub certificate being served. */
  certificate?: {
    subject: string;
    issuer: string;
    serialNumber: string;
    /** ISO 8601. */
    notAfter: string;
    /** ACME mode: the self-signed stand-in served until the first issuance. */
    temporary: boolean;
  };
  backends: Array<{
    id: string;
    hostnames: string[];
    weight: number;
    streams: number;
    /** ISO 8601. */
    connectedAt: string;
    /** The era of its handshake (absent from older nodes). */
    era?: 'seed' | 'current';
    /** Current era: the port, UDP and outbound claims the node validated, when it made any. */
    claims?: BackendClaims;
    /** Its outbound connections (docs/edge.md "Outbound connections"), when it claims them or asked for any. */
    outbound?: BackendOutbound;
    /** Most bytes its streams' windows had grown by at once (docs/protocol.md §1.5; absent from older nodes). */
    windowGrowthPeakBytes?: number;
  }>;
  routes: Array<{
    pattern: string;
    kind: 'local' | 'peer';
    /** Backends (local) or peer links (peer) serving it. */
    targets: number;
  }>;
  peers: Array<{
    linkId: string;
    /** Certificate name (inbound) or dialled URL (outbound). */
    peer: string;
    direction: string;
    /** ISO 8601. */
    openedAt: string;
    routes: number;
    tunnels: number;
    /** Most bytes its tunnels' windows had grown by at once (docs/protocol.md §1.5; absent from older nodes). */
    windowGrowthPeakBytes?: number;
  }>;
  /** The peer URLs this node dials, and whether an outbound link to each is open now (absent from older nodes). */
  dialedPeers?: Array<{ url: string; connected: boolean }>;
  streams: {
    open: number;
    /** The oldest `DEFAULT_STATUS_MAX_STREAMS` open streams. */
    list: Array<{
      id: string;
      hostname: string;
      route: string;
      port: number;
      tls: boolean;
      via: string;
      ageSeconds: number;
    }>;
  };
  totals: NexusTotals;
  /**
   * The bandwidth cap (`totalBandwidthMbps`) and each account's use of it: a backend session (its `id`
   * is the backend's) or `tunnel:<route>`. Present only under a cap (absent from older nodes).
   */
  bandwidth?: {
    totalBandwidthMbps: number;
    /** Accounts waiting for their share now. */
    throttled: number;
    accounts: Array<{
      id: string;
      /** The backend's hostnames (and `tcp:<port>` claims), or `tunnel:<route>`. */
      shownAs: string;
      bytesSent: number;
      /** Rate between the last two readings at least a second apart. */
      bytesPerSecond: number;
      throttledMs: number;
      throttled: boolean;
    }>;
  };
  /** The UDP relay, when `udpRelayPorts` is set (absent from older nodes). */
  udp?: {
    ports: Array<{
      port: number;
      flows: number;
      idleTimeoutSeconds: number;
      datagramsIn: number;
      datagramsOut: number;
      /** Datagrams dropped, all reasons. */
      dropped: number;
    }>;
    /** Open flows by relay port and target: a backend id, or `peer` (tunnelled). */
    flows: Array<{ port: number; target: string; flows: number }>;
  };
}

/** A current-era backend's validated claims (docs/protocol.md §5.6), as `/status` shows them. */
export interface BackendClaims {
  tcpPorts?: number[];
  udpPorts?: number[];
  outbound?: { allowed: boolean; ports: number[] };
  policyVersion?: string;
}

/** A backend's outbound connections, as `/status` shows them. */
export interface BackendOutbound {
  /** Open now. */
  open: number;
  /** Being dialled now. */
  dialling: number;
  /** Established since the backend connected. */
  opened: number;
  /** Requests refused or failed since the backend connected, by reason (`connection-limit`, `address-refused`…). */
  refused: Record<string, number>;
}

/** The outbound connections of `session` worth showing: when it claims them or asked for any. */
function outboundOf(nexus: Nexus, session: Nexus['hub']['sessions'][number]): BackendOutbound | undefined {
  const s = nexus.hub.outbound.sessionStats(session);
  if (s === undefined) return undefined;
  const refused = Object.fromEntries(Object.entries(s.refused).filter(([, n]) => (n ?? 0) > 0)) as Record<
    string,
    number
  >;
  const asked = s.opened > 0 || s.dialling > 0 || Object.keys(refused).length > 0;
  if (!asked && session.identity.outbound?.allowed !== true) return undefined;
  return { open: s.open, dialling: s.dialling, opened: s.opened, refused };
}

/** The claims of `identity` worth showing, or `undefined` when it made none. */
function claimsOf(identity: Readonly<BackendIdentity>): BackendClaims | undefined {
  const claims: BackendClaims = {};
  if ((identity.tcpPorts?.length ?? 0) > 0) claims.tcpPorts = [...identity.tcpPorts!];
  if ((identity.udpRoutes?.length ?? 0) > 0) claims.udpPorts = identity.udpRoutes!.map((r) => r.port);
  if (identity.outbound !== undefined)
    claims.outbound = { allowed: identity.outbound.allowed, ports: [...identity.outbound.ports] };
  if (identity.policyVersion !== undefined) claims.policyVersion = identity.policyVersion;
  return Object.keys(claims).length > 0 ? claims : undefined;
}

/** What {@link buildStatus} reads. */
export interface StatusSources {
  nexus: Nexus;
  metrics: NexusMetrics;
  readiness: () => Readiness;
  draining: () => boolean;
  version: string;
  /** ms since the epoch. */
  startedAt: number;
  /** Default: `100`. */
  maxStreams?: number;
}

/** Why a node is not ready (empty = ready). */
export function nodeReadiness(nexus: Nexus, state: { listening: boolean; draining: boolean }): Readiness {
  const reasons: string[] = [];
  if (!state.listening) reasons.push('starting');
  if (state.draining) reasons.push('draining');
  // ACME mode: until the first issuance the hub serves a self-signed stand-in that no backend trusts.
  if (nexus.acme !== undefined && nexus.acme.status().state !== 'valid')
    reasons.push('temporary-certificate');
  const discovery = nexus.discovery?.status();
  const degraded =
    discovery === undefined || discovery.state === 'connected' || discovery.state === 'closed'
      ? []
      : [`discovery: ${discovery.reason ?? discovery.state}`];
  return { ready: reasons.length === 0, reasons, ...(degraded.length > 0 ? { degraded } : {}) };
}

/** Takes a snapshot of the node. */
export function buildStatus(sources: StatusSources): StatusSnapshot {
  const { nexus, metrics } = sources;
  const now = Date.now();
  const info = nexus.certificateInfo();
  const routes: StatusSnapshot['routes'] = nexus.routes.localPatterns().map((pattern) => ({
    pattern,
    kind: 'local' as const,
    targets: nexus.routes.localPool(pattern)?.size ?? 0,
  }));
  for (const { pattern, links } of nexus.routes.peerRoutes())
    routes.push({ pattern, kind: 'peer', targets: links });
  const links = nexus.mesh?.links() ?? [];
  const open = metrics.openStreams();
  return {
    version: sources.version,
    startedAt: new Date(sources.startedAt).toISOString(),
    uptimeSeconds: Math.floor((now - sources.startedAt) / 1_000),
    readiness: sources.readiness(),
    draining: sources.draining(),
    certificate:
      info === undefined
        ? undefined
        : {
            subject: info.subject,
            issuer: info.issuer,
            serialNumber: info.serialNumber,
            notAfter: info.notAfter.toISOString(),
            temporary: nexus.acme !== undefined && nexus.acme.status().state === 'temporary',
          },
    backends: nexus.hub.sessions.map((s) => {
      const claims = claimsOf(s.identity);
      const outbound = outboundOf(nexus, s);
      return {
        id: s.id,
        hostnames: [...s.hostnames],
        weight: s.weight,
        streams: s.streamCount,
        connectedAt: new Date(s.connectedAt).toISOString(),
        era: s.identity.era ?? 'seed',
        ...(claims !== undefined ? { claims } : {}),
        ...(outbound !== undefined ? { outbound } : {}),
        windowGrowthPeakBytes: s.mux.stats().windowGrowthPeak,
      };
    }),
    routes,
    peers: links.map((l) => ({
      linkId: l.linkId,
      peer: l.peer,
      direction: l.direction,
      openedAt: new Date(l.openedAt).toISOString(),
      routes: l.routes.length,
      tunnels: l.tunnels.tunnels,
      windowGrowthPeakBytes: l.tunnels.windowGrowthPeak,
    })),
    dialedPeers: (nexus.mesh?.peers ?? []).map((url) => ({
      url,
      connected: links.some((l) => l.direction === 'outbound' && l.peer === url),
    })),
    streams: {
      open: open.length,
      list: open.slice(0, sources.maxStreams ?? DEFAULT_STATUS_MAX_STREAMS).map((s) => ({
        id: s.id,
        hostname: s.hostname,
        route: s.route,
        port: s.port,
        tls: s.isTls,
        via: s.via,
        ageSeconds: Math.floor((now - s.openedAt) / 1_000),
      })),
    },
    totals: metrics.totals(),
    ...bandwidthOf(nexus),
    ...(nexus.udp !== undefined ? { udp: udpStatus(nexus.udp) } : {}),
  };
}

function udpStatus(udp: NonNullable<Nexus['udp']>): NonNullable<StatusSnapshot['udp']> {
  return {
    ports: udp.stats().map((s) => ({
      port: s.boundPort,
      flows: s.flows,
      idleTimeoutSeconds: s.idleTimeoutSeconds,
      datagramsIn: s.datagramsIn,
      datagramsOut: s.datagramsOut,
      dropped: Object.values(s.dropped).reduce((a, b) => a + b, 0),
    })),
    flows: udp.flowsByTarget(),
  };
}

/** The `bandwidth` part of a snapshot: under a cap only. */
function bandwidthOf(nexus: Nexus): Pick<StatusSnapshot, 'bandwidth'> {
  const scheduler: Nexus['bandwidth'] | undefined = nexus.bandwidth;
  if (scheduler?.enabled !== true) return {};
  const stats = scheduler.stats();
  return {
    bandwidth: {
      totalBandwidthMbps: stats.totalBandwidthMbps,
      throttled: stats.throttledAccounts,
      accounts: stats.accounts.map((a) => ({
        id: a.id,
        shownAs: a.group,
        bytesSent: a.bytesSent,
        bytesPerSecond: a.bytesPerSecond,
        throttledMs: a.throttledMs,
        throttled: a.throttled,
      })),
    },
  };
}

/** `1.67 MB` (decimal units, like the cap's Mbit/s). */
function bytes(n: number): string {
  if (n < 1_000) return `${n} B`;
  if (n < 1_000_000) return `${(n / 1_000).toFixed(1)} kB`;
  if (n < 1_000_000_000) return `${(n / 1_000_000).toFixed(2)} MB`;
  return `${(n / 1_000_000_000).toFixed(2)} GB`;
}

/** Lays out rows under a header with columns padded to their widest cell. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function age(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3_600) return `${Math.floor(seconds / 60)}m${seconds % 60}s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3_600)}h${Math.floor((seconds % 3_600) / 60)}m`;
  return `${Math.floor(seconds / 86_400)}d${Math.floor((seconds % 86_400) / 3_600)}h`;
}

function since(iso: string, now: number): string {
  return age(Math.max(0, Math.floor((now - Date.parse(iso)) / 1_000)));
}

/** Renders a snapshot as the text `nexus-proxy status` prints. */
export function formatStatus(status: StatusSnapshot, now: number = Date.now()): string {
  const out: string[] = [];
  const degraded = status.readiness.degraded ?? [];
  const state =
    (status.readiness.ready ? 'ready' : `not ready (${status.readiness.reasons.join(', ')})`) +
    (degraded.length > 0 ? `, degraded (${degraded.join(', ')})` : '');
  out.push(`Nexus ${status.version}: ${state}, up ${age(status.uptimeSeconds)}`);
  if (status.certificate !== undefined) {
    const c = status.certificate;
    out.push(
      `Hub certificate: ${c.subject.replace(/\n/g, ', ')}, expires ${c.notAfter}${c.temporary ? ' (temporary)' : ''}`,
    );
  }
  const t = status.totals;
  out.push(
    `Streams: ${status.streams.open} open, ${t.streamsOpened} opened, ${t.streamsClosed} closed, ` +
      `${t.bytesUp} B up, ${t.bytesDown} B down; route misses ${t.routeMisses}, ` +
      `sniff failures ${t.sniffFailures}, auth failures ${t.authFailures}`,
  );
  const section = (title: string, header: string[], rows: string[][]) => {
    out.push('', `${title} (${rows.length})`);
    if (rows.length > 0) out.push(formatTable(header, rows));
  };
  section(
    'Backends',
    ['ID', 'HOSTNAMES', 'WEIGHT', 'STREAMS', 'CONNECTED'],
    status.backends.map((b) => [
      b.id,
      b.hostnames.join(','),
      String(b.weight),
      String(b.streams),
      since(b.connectedAt, now),
    ]),
  );
  const outbound = status.backends.filter((b) => b.outbound !== undefined);
  if (outbound.length > 0) {
    section(
      'Outbound connections',
      ['BACKEND', 'OPEN', 'DIALLING', 'OPENED', 'REFUSED'],
      outbound.map((b) => {
        const o = b.outbound!;
        const refused = Object.entries(o.refused).map(([reason, n]) => `${reason}=${n}`);
        const total = Object.values(o.refused).reduce((a, n) => a + n, 0);
        return [
          b.id,
          String(o.open),
          String(o.dialling),
          String(o.opened),
          refused.length > 0 ? `${total} (${refused.join(', ')})` : '0',
        ];
      }),
    );
  }
  section(
    'Routes',
    ['PATTERN', 'VIA', 'TARGETS'],
    status.routes.map((r) => [r.pattern, r.kind, String(r.targets)]),
  );
  section(
    'Peers',
    ['LINK', 'PEER', 'DIRECTION', 'ROUTES', 'TUNNELS', 'UP'],
    status.peers.map((p) => [
      p.linkId,
      p.peer,
      p.direction,
      String(p.routes),
      String(p.tunnels),
      since(p.openedAt, now),
    ]),
  );
  const bw = status.bandwidth;
  if (bw !== undefined) {
    out.push('', `Bandwidth: cap ${bw.totalBandwidthMbps} Mbit/s, ${bw.throttled} waiting for their share`);
    if (bw.accounts.length > 0)
      out.push(
        formatTable(
          ['ACCOUNT', 'SHOWN AS', 'RATE', 'SENT', 'THROTTLED'],
          bw.accounts.map((a) => [
            a.id,
            a.shownAs,
            `${bytes(a.bytesPerSecond)}/s`,
            bytes(a.bytesSent),
            `${(a.throttledMs / 1_000).toFixed(1)}s${a.throttled ? ' (now)' : ''}`,
          ]),
        ),
      );
  }
  const down = (status.dialedPeers ?? []).filter((d) => !d.connected).map((d) => d.url);
  if (down.length > 0) out.push(`Dialling, not connected: ${down.join(', ')}`);
  section(
    'Streams',
    ['ID', 'HOSTNAME', 'ROUTE', 'PORT', 'MODE', 'VIA', 'AGE'],
    status.streams.list.map((s) => [
      s.id,
      s.hostname,
      s.route,
      String(s.port),
      s.tls ? 'tls' : 'http',
      s.via,
      age(s.ageSeconds),
    ]),
  );
  if (status.streams.list.length < status.streams.open) {
    out.push(`… ${status.streams.open - status.streams.list.length} more`);
  }
  if (status.udp !== undefined) {
    section(
      'UDP ports',
      ['PORT', 'FLOWS', 'IDLE', 'IN', 'OUT', 'DROPPED'],
      status.udp.ports.map((p) => [
        String(p.port),
        String(p.flows),
        `${p.idleTimeoutSeconds}s`,
        String(p.datagramsIn),
        String(p.datagramsOut),
        String(p.dropped),
      ]),
    );
    section(
      'UDP flows',
      ['PORT', 'TARGET', 'FLOWS'],
      status.udp.flows.map((f) => [String(f.port), f.target, String(f.flows)]),
    );
  }
  return out.join('\n');
}

/**
 * Parses the address of an admin listener. A bare port (`9090`) means `127.0.0.1:9090`; otherwise the
 * configuration's address syntax (`127.0.0.1:9090`, `[::1]:9090`, `:9090` = all interfaces).
 */
export function parseAdminAddress(value: string, at = '--admin'): { host: string | undefined; port: number } {
  const text = value.trim();
  if (/^\d+$/.test(text)) return parseListenAddress(`127.0.0.1:${text}`, at);
  return parseListenAddress(text, at);
}

/** Fetches `/status` from an admin listener at `address` (`host:port`; no host = 127.0.0.1), with `token` as bearer. */
export function fetchStatus(
  address: string = DEFAULT_ADMIN_ADDRESS,
  timeoutMs: number = DEFAULT_STATUS_TIMEOUT_MS,
  token?: string,
): Promise<StatusSnapshot> {
  const { host, port } = parseAdminAddress(address);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: host ?? '127.0.0.1',
        port,
        path: '/status',
        method: 'GET',
        timeout: timeoutMs,
        ...(token !== undefined ? { headers: { authorization: `Bearer ${token}` } } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => {
          if (res.statusCode !== 200) {
            reject(
              new CliError(
                'NEXUS_ERR_ADMIN_UNREACHABLE',
                `admin listener at ${address} answered HTTP ${res.statusCode}`,
              ),
            );
            return;
          }
          try {
            resolve(JSON.parse(body) as StatusSnapshot);
          } catch {
            reject(
              new CliError('NEXUS_ERR_ADMIN_UNREACHABLE', `admin listener at ${address} sent invalid JSON`),
            );
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(
        new CliError('NEXUS_ERR_ADMIN_UNREACHABLE', `no answer from ${address} within ${timeoutMs} ms`),
      ),
    );
    req.on('error', (err) => {
      const message = `cannot reach the admin listener at ${address}: ${err.message}`;
      reject(new CliError('NEXUS_ERR_ADMIN_UNREACHABLE', message, { cause: err }));
    });
    req.end();
  });
}
