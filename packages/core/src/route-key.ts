/**
 * Route keys of port claims (docs/edge.md "TCP port claims"): `tcp:<port>` and `udp:<port>`, the
 * reference's strings. They share the routing table with hostnames and never collide with one (a hostname
 * has no `:`); backend tokens cannot list them as hostnames (those are normalised as DNS names).
 */

/** The transports a port claim names. */
export type PortClaimTransport = 'tcp' | 'udp';

const ROUTE_KEY = /^(tcp|udp):([1-9][0-9]{0,4})$/;

/** `tcp:<port>` / `udp:<port>`. */
export function portRouteKey(transport: PortClaimTransport, port: number): string {
  return `${transport}:${port}`;
}

/** The route keys a backend's port claims serve: `tcp:<port>` for each TCP port, `udp:<port>` for each UDP route. */
export function claimedRouteKeys(claims: {
  readonly tcpPorts?: readonly number[];
  readonly udpRoutes?: readonly { readonly port: number }[];
}): string[] {
  return [
    ...(claims.tcpPorts ?? []).map((p) => portRouteKey('tcp', p)),
    ...(claims.udpRoutes ?? []).map((r) => portRouteKey('udp', r.port)),
  ];
}

/** The key itself when `text` is a route key with a port in 1–65535, else `undefined`. */
export function normalizeRouteKey(text: string): string | undefined {
  const m = ROUTE_KEY.exec(text);
  return m === null || Number(m[2]) > 65_535 ? undefined : text;
}
