/**
 * The unit a per-address limit counts by: an IPv4 address, or the /64 network of an IPv6 address (one
 * subscriber usually holds a whole /64, so counting single IPv6 addresses would give each attacker 2^64
 * budgets). IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) count as their IPv4 address.
 */
import ipaddr from 'ipaddr.js';

/** Prefix length IPv6 addresses are grouped by. */
export const IPV6_GROUP_PREFIX = 64;

/**
 * The group key of `address`: the IPv4 address itself, or `2001:db8:1:2::/64` for any IPv6 address in that
 * /64. An unparseable or missing address is its own group (`''` for none).
 */
export function addressGroup(address: string | undefined): string {
  if (address === undefined || address === '') return '';
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    // A zone index (`fe80::1%eth0`) is not part of the address.
    parsed = ipaddr.parse(address.split('%', 1)[0] ?? address);
  } catch {
    return address;
  }
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const v6 = parsed as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().toString();
  const network = ipaddr.IPv6.networkAddressFromCIDR(`${v6.toString()}/${IPV6_GROUP_PREFIX}`);
  return `${network.toString()}/${IPV6_GROUP_PREFIX}`;
}
