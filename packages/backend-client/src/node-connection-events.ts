/**
 * What a `NodeConnection` tells its owner: its states, events and counters (re-exported by the
 * backend client as its own events and `stats()`).
 */
/** Lifecycle of one node connection. */
export type NodeConnectionState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closing' | 'closed';

/** Why a session ended (the `reason` of the client's `'disconnected'` event). */
export type SessionEndReason =
  /** The hub closed with 1008: the token was rejected (retried: a token provider may refresh it). */
  | 'auth_rejected'
  /** No message or pong within `keepalive.timeoutMs`. */
  | 'keepalive_timeout'
  /** The hub closed the WebSocket with a close frame. */
  | 'closed_by_hub'
  /** The connection dropped without a close frame (reset, network error). */
  | 'connection_lost'
  /** The session's multiplexer failed (protocol error). */
  | 'protocol_error'
  /** The hub broke a limit of the stream engine: it sent empty DATA frames in a flood. */
  | 'empty-data-flood'
  /** The hub stopped reading what this client sends for longer than the engine's grace period. */
  | 'peer-not-reading'
  /** Current era: the answer to a `reauth_challenge` could not be issued (or the challenge was unusable). */
  | 'reauth_failed'
  /** Current era: the hub sent `reauth_challenge` frames faster than any reference hub (closed with 1008). */
  | 'reauth_flood'
  /** `close()` was called. */
  | 'client_closed';

/** Payload of `'connected'`. */
export interface ConnectedEvent {
  node: string;
  /** `'seed'` (one token) or `'current'` (attested handshake; re-authentication when the hub asks). */
  era: 'seed' | 'current';
}
/** Payload of `'reauth'`: this client answered the hub's re-authentication challenge. */
export interface ReauthEvent {
  node: string;
}
/** Payload of `'disconnected'`. */
export interface DisconnectedEvent {
  node: string;
  reason: SessionEndReason;
  /** WebSocket close code (1006 when the connection dropped without a close frame). */
  code: number;
  /** Close reason text sent by the hub, if any. */
  message: string;
}
/** Payload of `'stream-open'`. */
export interface StreamOpenEvent {
  node: string;
  id: string;
  hostname: string;
  clientIp: string;
  connPort: number;
  isTls: boolean;
}
/** Payload of `'stream-close'`. */
export interface StreamCloseEvent {
  node: string;
  id: string;
  /** `normal`, `dial_failed`, `local_error`, `timeout`, `shutdown`, `session_ended`, or the hub's reason. */
  reason: string;
  /** Bytes from the hub (end user) to the local service. */
  bytesIn: number;
  /** Bytes from the local service to the hub. */
  bytesOut: number;
}

/** Events a node connection reports to its client. */
export interface NodeConnectionEvents {
  connected: [ConnectedEvent];
  disconnected: [DisconnectedEvent];
  'stream-open': [StreamOpenEvent];
  'stream-close': [StreamCloseEvent];
  reauth: [ReauthEvent];
  error: [Error];
}

/** Snapshot of one node connection. */
export interface NodeStats {
  node: string;
  state: NodeConnectionState;
  /** Open streams. */
  streams: number;
  /** Sessions opened (successful WebSocket handshakes) so far. */
  sessionsOpened: number;
  /** Failed connection attempts since the last session that lasted. */
  failedAttempts: number;
  /** Milliseconds since epoch when the current session opened. */
  connectedSince: number | undefined;
  /** Streams served so far. */
  streamsTotal: number;
  /** Streams that ended with `dial_failed`. */
  dialFailures: number;
  bytesIn: number;
  bytesOut: number;
  /** Re-authentication challenges answered (current era). */
  reauths: number;
}
