// The events of the backend hub (docs/hub.md): what metrics and the node listen to.
import type { BackendEra } from './backend-identity.js';
import type { AdmissionRefusal } from './listener-guards.js';

/** Payload of `backend-connected`. */
export interface BackendConnectedEvent {
  id: string;
  hostnames: readonly string[];
  weight: number;
  remoteAddress: string | undefined;
  /** The protocol era of its handshake (docs/protocol.md §1.9). */
  era: BackendEra;
}

/** Payload of `backend-disconnected`. */
export interface BackendDisconnectedEvent {
  id: string;
  reason: string;
  hostnames: readonly string[];
}

/** Payload of `auth-failed`. */
export interface AuthFailedEvent {
  reason: string;
  remoteAddress: string | undefined;
}

/** Payload of `backend-refused`: a backend turned away before its WebSocket opened. */
export interface BackendRefusedEvent {
  /** Which cap refused the upgrade (HTTP 503); see {@link AdmissionRefusal}. */
  reason: AdmissionRefusal;
  remoteAddress: string | undefined;
}

/** Events of {@link BackendHub}. */
export interface BackendHubEvents {
  'backend-connected': [event: BackendConnectedEvent];
  'backend-disconnected': [event: BackendDisconnectedEvent];
  'auth-failed': [event: AuthFailedEvent];
  'backend-refused': [event: BackendRefusedEvent];
}
