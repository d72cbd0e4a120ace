/**
 * Which protocol era a backend connection speaks (docs/protocol.md §1.9). There is no negotiation on the
 * wire, so the hub decides from the first token it verified, by one deterministic rule, unless the node's
 * `auth.backendEra` forces an era for every backend.
 */
import type { JWTPayload } from 'jose';
import type { BackendEra } from './backend-identity.js';
import { hasCurrentEraIssuer } from './current-claims.js';

/** The values of `auth.backendEra`. */
export const BACKEND_ERA_MODES = ['auto', 'seed', 'current'] as const;
/** `auto` (the rule of {@link chooseBackendEra}), or one era forced for every backend. */
export type BackendEraMode = (typeof BACKEND_ERA_MODES)[number];
/** Default `auth.backendEra`: `auto`. */
export const DEFAULT_BACKEND_ERA_MODE: BackendEraMode = 'auto';

/**
 * The era of a connection whose first token verified with `claims`:
 * - a forced mode (`seed`, `current`) is that era;
 * - `auto`: a token without `iss: "authorizer"` or without `"nexus"` in `aud` is **seed** (the current era
 *   requires both); a token carrying the legacy `hostname` claim is **seed** (every token
 *   `nexus-proxy token` mints carries it, and current-era clients never send it); any other is
 *   **current** (the hub answers with a handshake challenge).
 */
export function chooseBackendEra(claims: JWTPayload, mode: BackendEraMode = 'auto'): BackendEra {
  if (mode !== 'auto') return mode;
  if (!hasCurrentEraIssuer(claims)) return 'seed';
  if (claims.hostname !== undefined && claims.hostname !== null) return 'seed';
  return 'current';
}
