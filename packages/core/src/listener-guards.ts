/**
 * Bounds shared by the node's TLS listeners that are not relay ports — the hub (`/connect`) and the peer
 * listener (`/mesh`) — and by the hub's admission of backends: how long a TLS handshake may take, how many
 * connections a listener holds, and per-key counters for the per-address and per-token caps
 * (docs/security.md, attack "hub and peer listener caps").
 */
import type { Server as HttpsServer } from 'node:https';

/** Default time a client has to complete its TLS handshake on the hub or peer listener: 10 000 ms. */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Default most open connections on the hub, and on the peer listener: 20 000 each. */
export const DEFAULT_MAX_LISTENER_CONNECTIONS = 20_000;
/** Default most upgrades waiting for their token, hub-wide (they do not count against `maxSessions`): 256. */
export const DEFAULT_MAX_PENDING_AUTH = 256;
/** Default most upgrades waiting for their token from one address (IPv6: /64): 16. */
export const DEFAULT_MAX_PENDING_AUTH_PER_ADDRESS = 16;
/** Default most backend sessions from one address (IPv6: /64): 1 000 (a fleet behind one NAT fits). */
export const DEFAULT_MAX_SESSIONS_PER_ADDRESS = 1_000;
/** Default most backend sessions one token may hold at once: 100. */
export const DEFAULT_MAX_SESSIONS_PER_TOKEN = 100;

/** Listener bounds; names match `ResolvedLimits` of the node config. */
export interface ListenerGuardLimits {
  /** Time allowed for a TLS handshake, ms. Default: `10_000`. */
  tlsHandshakeTimeoutMs?: number;
  /** Most open connections on the listener. Default: `20_000`. */
  maxListenerConnections?: number;
}

/** Applies the connection cap to an https server: Node closes a connection over it at once. */
export function guardListener(server: HttpsServer, limits: ListenerGuardLimits = {}): void {
  server.maxConnections = limits.maxListenerConnections ?? DEFAULT_MAX_LISTENER_CONNECTIONS;
}

/** The `handshakeTimeout` option of an https server for `limits` (pass it when creating the server). */
export function handshakeTimeout(limits: ListenerGuardLimits = {}): { handshakeTimeout: number } {
  return { handshakeTimeout: limits.tlsHandshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS };
}

/** How many of something each key holds (connections per address, sessions per token). */
export class KeyedCounter {
  readonly #counts = new Map<string, number>();

  /** What `key` holds now. */
  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Takes one for `key` unless it already holds `limit`; returns the function that gives it back. */
  take(key: string, limit: number): (() => void) | undefined {
    const n = this.count(key);
    if (n >= limit) return undefined;
    this.#counts.set(key, n + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = this.count(key) - 1;
      if (left <= 0) this.#counts.delete(key);
      else this.#counts.set(key, left);
    };
  }

  /** Keys holding anything. */
  get size(): number {
    return this.#counts.size;
  }
}

/** The hub's admission caps; names match `ResolvedLimits` of the node config. */
export interface HubAdmissionLimits {
  /** Authenticated sessions. Default: `10_000` (the hub's `DEFAULT_MAX_SESSIONS`). */
  maxSessions?: number;
  /**
   * Upgrades still waiting for their token, hub-wide; they do not count against `maxSessions`, so a flood
   * of unauthenticated upgrades cannot lock real backends out. Default: `256`.
   */
  maxPendingAuth?: number;
  /** Upgrades waiting for their token from one address (IPv6: /64). Default: `16`. */
  maxPendingAuthPerAddress?: number;
  /** Authenticated sessions from one address (IPv6: /64). Default: `1_000`. */
  maxSessionsPerAddress?: number;
  /** Sessions one token (current era: one backend identity) holds at once; one more is closed 1008. Default: `100`. */
  maxSessionsPerToken?: number;
}

/**
 * Why the hub refused an upgrade (HTTP 503): `max-sessions` (`maxSessions` authenticated sessions),
 * `max-pending-auth` (`maxPendingAuth` upgrades waiting for their token), `address-pending-limit`
 * (`maxPendingAuthPerAddress` from this address), `address-session-limit` (`maxSessionsPerAddress`).
 */
export type AdmissionRefusal =
  | 'max-sessions'
  | 'max-pending-auth'
  | 'address-pending-limit'
  | 'address-session-limit';

/** The `limits` key behind each {@link AdmissionRefusal} (named in the hub's warning). */
export const REFUSAL_LIMIT: Readonly<Record<AdmissionRefusal, string>> = Object.freeze({
  'max-sessions': 'maxSessions',
  'max-pending-auth': 'maxPendingAuth',
  'address-pending-limit': 'maxPendingAuthPerAddress',
  'address-session-limit': 'maxSessionsPerAddress',
});

/** The hub's admission bookkeeping: what each address and each token holds. */
export class HubAdmission {
  readonly pendingByAddress = new KeyedCounter();
  readonly sessionsByAddress = new KeyedCounter();
  readonly sessionsByToken = new KeyedCounter();

  /** Which cap refuses a new upgrade from address group `group`, if any (`limits` read live). */
  refusal(
    limits: HubAdmissionLimits | undefined,
    sessions: number,
    pending: number,
    group: string,
  ): AdmissionRefusal | undefined {
    if (sessions >= (limits?.maxSessions ?? DEFAULT_MAX_SESSIONS)) return 'max-sessions';
    if (pending >= (limits?.maxPendingAuth ?? DEFAULT_MAX_PENDING_AUTH)) return 'max-pending-auth';
    const pendingPerAddress = limits?.maxPendingAuthPerAddress ?? DEFAULT_MAX_PENDING_AUTH_PER_ADDRESS;
    if (this.pendingByAddress.count(group) >= pendingPerAddress) return 'address-pending-limit';
    const sessionsPerAddress = limits?.maxSessionsPerAddress ?? DEFAULT_MAX_SESSIONS_PER_ADDRESS;
    if (this.sessionsByAddress.count(group) >= sessionsPerAddress) return 'address-session-limit';
    return undefined;
  }

  /** The per-token session cap in force. */
  perToken(limits: HubAdmissionLimits | undefined): number {
    return limits?.maxSessionsPerToken ?? DEFAULT_MAX_SESSIONS_PER_TOKEN;
  }
}

/** Default most authenticated backend sessions per hub: 10 000. */
export const DEFAULT_MAX_SESSIONS = 10_000;
