/**
 * The outbound address policy (docs/edge.md "Outbound address policy"): which addresses the node may dial
 * on a backend's behalf (SOCKS5 egress). A backend must never reach the node's own services, its private
 * network or its cloud's metadata endpoint through it, so every address that is not plain public unicast
 * is refused unless an operator lists its network in `allowedOutboundNetworks`.
 *
 * Addresses are checked after DNS resolution, one by one, and the dial uses exactly the addresses that
 * passed (`outbound-connect.ts`). IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
 * IPv4-translated, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that IPv4
 * address, so `::ffff:127.0.0.1` is loopback. Range membership is `node:net`'s BlockList, one per reason;
 * ipaddr.js reads the bytes of an IPv6 address.
 */
import { BlockList, isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { InvalidConfigError } from './errors.js';

/** Why an address is refused, in the order the checks run (the first that matches names the refusal). */
export const OUTBOUND_REFUSAL_REASONS = [
  'cloud-metadata',
  'unspecified',
  'loopback',
  'broadcast',
  'private',
  'link-local',
  'cgnat',
  'multicast',
  'documentation',
  'reserved',
  'invalid-address',
] as const;

/** Why an address is refused. */
export type OutboundRefusalReason = (typeof OUTBOUND_REFUSAL_REASONS)[number];

type Rule = readonly [reason: OutboundRefusalReason, network: string, prefix: number];

/** Denied IPv4 networks. */
const IPV4_RULES: readonly Rule[] = [
  // AWS, GCP, Azure, OCI, DigitalOcean… (169.254.169.254); AWS ECS task metadata and the Amazon DNS
  // resolver; Alibaba Cloud (100.100.100.200).
  ['cloud-metadata', '169.254.169.254', 32],
  ['cloud-metadata', '169.254.170.2', 32],
  ['cloud-metadata', '169.254.169.253', 32],
  ['cloud-metadata', '100.100.100.200', 32],
  ['unspecified', '0.0.0.0', 8],
  ['loopback', '127.0.0.0', 8],
  ['broadcast', '255.255.255.255', 32],
  ['private', '10.0.0.0', 8],
  ['private', '172.16.0.0', 12],
  ['private', '192.168.0.0', 16],
  ['link-local', '169.254.0.0', 16],
  ['cgnat', '100.64.0.0', 10],
  ['multicast', '224.0.0.0', 4],
  ['documentation', '192.0.2.0', 24],
  ['documentation', '198.51.100.0', 24],
  ['documentation', '203.0.113.0', 24],
  // IETF protocol assignments (DS-Lite, NAT64 discovery…), benchmarking, the old 6to4 relay anycast,
  // and the former class E.
  ['reserved', '192.0.0.0', 24],
  ['reserved', '198.18.0.0', 15],
  ['reserved', '192.88.99.0', 24],
  ['reserved', '240.0.0.0', 4],
];

/** Denied IPv6 networks (the forms that carry an IPv4 address are unwrapped before these). */
const IPV6_RULES: readonly Rule[] = [
  // AWS's IPv6 instance metadata service.
  ['cloud-metadata', 'fd00:ec2::254', 128],
  ['unspecified', '::', 128],
  ['loopback', '::1', 128],
  ['private', 'fc00::', 7],
  // Site-local, deprecated but still routed by some stacks.
  ['private', 'fec0::', 10],
  ['link-local', 'fe80::', 10],
  ['multicast', 'ff00::', 8],
  ['documentation', '2001:db8::', 32],
  ['documentation', '3fff::', 20],
  // IPv4-compatible addresses with no IPv4 meaning, discard-only, local-use NAT64, Teredo, benchmarking,
  // ORCHID.
  ['reserved', '::', 96],
  ['reserved', '100::', 64],
  ['reserved', '64:ff9b:1::', 48],
  ['reserved', '2001::', 32],
  ['reserved', '2001:2::', 48],
  ['reserved', '2001:10::', 28],
  ['reserved', '2001:20::', 28],
];

/** What the policy says about one address. */
export type OutboundVerdict =
  | { readonly allowed: true; readonly address: string; readonly family: 4 | 6 }
  | { readonly allowed: false; readonly address: string; readonly reason: OutboundRefusalReason };

/** One list per reason, in check order. */
function buildLists(
  rules: readonly Rule[],
  type: 'ipv4' | 'ipv6',
): Array<[OutboundRefusalReason, BlockList]> {
  const lists = new Map<OutboundRefusalReason, BlockList>();
  for (const [reason, network, prefix] of rules) {
    let list = lists.get(reason);
    if (list === undefined) {
      list = new BlockList();
      lists.set(reason, list);
    }
    list.addSubnet(network, prefix, type);
  }
  return OUTBOUND_REFUSAL_REASONS.flatMap((r) => {
    const list = lists.get(r);
    return list === undefined ? [] : [[r, list] as [OutboundRefusalReason, BlockList]];
  });
}

const IPV4_LISTS = buildLists(IPV4_RULES, 'ipv4');
const IPV6_LISTS = buildLists(IPV6_RULES, 'ipv6');

/**
 * The IPv4 address an IPv6 address carries, for the forms whose traffic reaches that IPv4 address:
 * IPv4-mapped (`::ffff:0:0/96`), IPv4-translated (`::ffff:0:0:0/96`), IPv4-compatible (`::/96`, except `::`
 * and `::1`), NAT64 well-known prefix (`64:ff9b::/96`) and 6to4 (`2002::/16`).
 */
export function embeddedIPv4(address: string): string | undefined {
  let bytes: number[];
  try {
    bytes = ipaddr.IPv6.parse(address).toByteArray();
  } catch {
    return undefined;
  }
  const zero = (from: number, to: number) => bytes.slice(from, to).every((b) => b === 0);
  const v4 = (at: number) => bytes.slice(at, at + 4).join('.');
  if (zero(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return v4(12);
  if (zero(0, 8) && bytes[8] === 0xff && bytes[9] === 0xff && zero(10, 12)) return v4(12);
  // IPv4-compatible: anything in ::/96 but `::` and `::1`.
  if (zero(0, 12) && !(zero(12, 15) && (bytes[15] ?? 0) <= 1)) return v4(12);
  if (bytes[0] === 0x00 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && zero(4, 12))
    return v4(12);
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return v4(2);
  return undefined;
}

/** A CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address, parsed; `undefined` when it is neither. */
export function parseNetwork(text: string): { network: string; prefix: number; family: 4 | 6 } | undefined {
  const [host = '', prefixText, extra] = text.trim().split('/');
  const family = isIP(host);
  if (family === 0 || extra !== undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return undefined;
  // The network address itself (host bits cleared), so `10.1.2.3/8` and `10.0.0.0/8` are the same entry.
  const base =
    family === 4
      ? ipaddr.IPv4.networkAddressFromCIDR(`${host}/${prefix}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${host}/${prefix}`);
  return { network: base.toString(), prefix, family: family === 4 ? 4 : 6 };
}

/** The policy: every address outside the denied ranges, plus the networks an operator allows. */
export class OutboundAddressPolicy {
  readonly #allowed = new BlockList();
  readonly #allowedNetworks: readonly string[];

  /**
   * `allowedNetworks`: CIDRs (or single addresses) that are allowed even when a denied range holds them,
   * e.g. `10.20.0.0/16` for a service on the node's private network. Throws `InvalidConfigError` for an
   * entry that is not a network.
   */
  constructor(allowedNetworks: readonly string[] = []) {
    const normalised: string[] = [];
    allowedNetworks.forEach((entry, i) => {
      const n = parseNetwork(entry);
      if (n === undefined) {
        throw new InvalidConfigError(
          `allowedOutboundNetworks[${i}]`,
          `must be a network like "10.0.0.0/8" or "fd00::/8", or an address (got ${JSON.stringify(entry)})`,
        );
      }
      this.#allowed.addSubnet(n.network, n.prefix, n.family === 4 ? 'ipv4' : 'ipv6');
      normalised.push(`${n.network}/${n.prefix}`);
    });
    this.#allowedNetworks = Object.freeze(normalised);
  }

  /** The allowed networks, normalised (`10.0.0.0/8`). */
  get allowedNetworks(): readonly string[] {
    return this.#allowedNetworks;
  }

  /** The verdict on one IP address (a zone index, `fe80::1%eth0`, is kept in the result, not judged). */
  classify(address: string): OutboundVerdict {
    const [ip = ''] = address.split('%', 1);
    const family = isIP(ip);
    if (family === 0) return { allowed: false, address, reason: 'invalid-address' };
    if (family === 4) {
      if (this.#allowed.check(ip, 'ipv4')) return { allowed: true, address, family: 4 };
      const reason = denied(IPV4_LISTS, ip, 'ipv4');
      return reason === undefined
        ? { allowed: true, address, family: 4 }
        : { allowed: false, address, reason };
    }
    const v4 = embeddedIPv4(ip);
    if (this.#allowed.check(ip, 'ipv6') || (v4 !== undefined && this.#allowed.check(v4, 'ipv4'))) {
      return { allowed: true, address, family: 6 };
    }
    if (v4 !== undefined) {
      const reason = denied(IPV4_LISTS, v4, 'ipv4');
      if (reason !== undefined) return { allowed: false, address, reason };
    }
    const reason = denied(IPV6_LISTS, ip, 'ipv6');
    return reason === undefined ? { allowed: true, address, family: 6 } : { allowed: false, address, reason };
  }
}

function denied(
  lists: ReadonlyArray<[OutboundRefusalReason, BlockList]>,
  ip: string,
  type: 'ipv4' | 'ipv6',
): OutboundRefusalReason | undefined {
  for (const [reason, list] of lists) if (list.check(ip, type)) return reason;
  return undefined;
}
