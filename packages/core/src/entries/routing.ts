/**
 * `@nexus-proxy/core/routing`: the routing table (exact names and `*.` wildcards, local pools and peer
 * links, one decision per lookup) and its weighted round robin. Loads neither `ws`, `jose` nor
 * `acme-client`: only `@nexus-proxy/sni` for hostname normalisation.
 */
export type { NoRouteReason } from '../errors.js';
export { NexusError, NexusErrorCode, NoRouteError } from '../errors.js';
export type {
  LocalPoolRoute,
  LocalRoute,
  LocalPatternChange,
  LocalRouteInit,
  NoRoute,
  PeerLinksRoute,
  PeerRoute,
  PeerRouteSummary,
  Route,
  RouteDecision,
  RouteMatch,
  RoutingTableOptions,
  RoutingTableStats,
} from '../routing-table.js';
export { DEFAULT_MAX_LOCAL_ROUTES, RoutingTable } from '../routing-table.js';
export type { WeightedMemberStats, WeightedRoundRobinStats } from '../weighted-round-robin.js';
export { DEFAULT_WEIGHT, MAX_WEIGHT, WeightedRoundRobin } from '../weighted-round-robin.js';
