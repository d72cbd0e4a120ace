/**
 * Route discovery (`meshDiscovery`, docs/mesh.md "Discovery on NATS"): the NATS servers and JetStream
 * key-value bucket nodes publish their routes in, the credentials file, the liveness TTL, the idle time of
 * links opened on demand and the peer URL this node advertises.
 */
import {
  ConfigIssue,
  convert,
  describeValue,
  integer,
  list,
  mapping,
  nonEmptyText,
  optional,
  type Parsed,
  required,
  resolveFrom,
} from '@nexus-proxy/common/config';
import { parsePeerUrl } from './address.js';
import type { ResolveContext, ResolvedMeshDiscovery } from './types.js';

/** Default liveness TTL of discovery records: `15` s. */
export const DEFAULT_DISCOVERY_TTL_SECONDS = 15;
/** Default idle time of a link opened on demand: `60` s. */
export const DEFAULT_DISCOVERY_LINK_IDLE_SECONDS = 60;

function natsServer(raw: string): string {
  // What the NATS client accepts: host[:port], or a nats:// or tls:// URL.
  const withScheme = /^[a-z]+:\/\//i.test(raw) ? raw : `nats://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConfigIssue(
      '',
      `must be a NATS server such as nats://127.0.0.1:4222 (got ${describeValue(raw)})`,
    );
  }
  if (url.protocol !== 'nats:' && url.protocol !== 'tls:') {
    throw new ConfigIssue('', `must use nats:// or tls:// (got ${describeValue(raw)})`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new ConfigIssue('', 'must not carry credentials: put them in credentialsFile');
  }
  return raw;
}

function bucketName(raw: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(raw)) {
    throw new ConfigIssue('', `must be 1–64 letters, digits, "-" or "_" (got ${describeValue(raw)})`);
  }
  return raw;
}

/** Keys of the discovery section. */
export const discoveryFields = {
  meshDiscovery: optional(
    mapping({
      nats: required(
        mapping({
          servers: required(
            list(convert(nonEmptyText(), natsServer)),
            'NATS servers (nats://host:port, tls://host:port or host:port); the client reconnects to any of them.',
          ),
          bucket: required(
            convert(nonEmptyText(), bucketName),
            'JetStream key-value bucket the nodes of one mesh share (created when missing).',
          ),
          credentialsFile: optional(
            nonEmptyText(),
            'NATS credentials: a .creds file (user JWT and NKey seed) or a file holding a token. Default: none.',
          ),
          ttlSeconds: optional(
            integer(1, 3_600),
            'Liveness TTL: a node that stops refreshing its record loses its routes after this long. Default: 15.',
          ),
          linkIdleSeconds: optional(
            integer(1, 86_400),
            'A peer link opened on demand that carried no tunnel for this long is closed. Default: 60.',
          ),
          peerUrl: optional(
            convert(nonEmptyText(), parsePeerUrl),
            'The peer URL other nodes dial for this node (wss://host:port/mesh). Default: the peer listener’s address when it names one, else the hub certificate’s first DNS name and the peer port.',
          ),
        }),
        'Route discovery on NATS JetStream key-value.',
      ),
    }),
    'Route discovery past the full mesh: nodes publish their routes in a shared store and link on demand.',
  ),
};

/** Discovery needs a peer listener: other nodes must be able to dial this one. */
export function resolveMeshDiscovery(
  p: Parsed<typeof discoveryFields>,
  ctx: ResolveContext,
  trustedDomainSuffixes: readonly string[],
): ResolvedMeshDiscovery | undefined {
  const nats = p.meshDiscovery?.nats;
  if (nats === undefined || nats === null) return undefined;
  if (nats.servers.length === 0) throw new ConfigIssue('meshDiscovery.nats.servers', 'must list a server');
  if (trustedDomainSuffixes.length === 0) {
    throw new ConfigIssue(
      'peerAuthentication.trustedDomainSuffixes',
      'must be set with meshDiscovery (nodes found there dial each other with mutual TLS)',
    );
  }
  return {
    nats: {
      servers: [...nats.servers],
      bucket: nats.bucket,
      credentialsFile: resolveFrom(ctx.baseDir, nats.credentialsFile ?? undefined),
      ttlMs: (nats.ttlSeconds ?? DEFAULT_DISCOVERY_TTL_SECONDS) * 1_000,
      linkIdleMs: (nats.linkIdleSeconds ?? DEFAULT_DISCOVERY_LINK_IDLE_SECONDS) * 1_000,
      peerUrl: nats.peerUrl ?? undefined,
    },
  };
}
