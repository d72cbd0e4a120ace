/**
 * PROXY protocol headers (HAProxy's "The PROXY protocol", versions 1 and 2): a few bytes the backend
 * client writes to a local service before the stream's first byte, so a service that only sees loopback
 * connections from the client (nginx `listen … proxy_protocol`, HAProxy `accept-proxy`, Postfix, Dovecot…)
 * learns the end user's real address and port.
 *
 * - **Source**: the stream's `client_ip` (`ip:port` or `[v6]:port`, docs/protocol.md §1.4; the header itself: §4.6). IPv4-mapped IPv6
 *   addresses (`::ffff:192.0.2.1`) are written as IPv4.
 * - **Destination**: the node's relay port (`conn_port`) and, since the hub never tells which of its
 *   addresses the end user reached, the unspecified address of the source's family (`0.0.0.0` or `::`),
 *   unless the caller supplies one.
 * - A missing or unparseable `client_ip` gives `PROXY UNKNOWN\r\n` (v1) or a `LOCAL` command (v2): the
 *   service then uses the connection's own addresses (HAProxy's proxy-protocol.txt §2.1 and §2.2).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { InvalidOptionsError } from './errors.js';

/** The PROXY protocol versions this client writes. */
export type ProxyProtocolVersion = 'v1' | 'v2';

/** Every valid {@link ProxyProtocolVersion}. */
export const PROXY_PROTOCOL_VERSIONS: readonly ProxyProtocolVersion[] = Object.freeze(['v1', 'v2']);

/** The 12-byte signature that starts every v2 header (proxy-protocol.txt §2.2). */
export const PROXY_PROTOCOL_V2_SIGNATURE: Uint8Array = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);

/** An address and port taken apart. */
export interface ParsedClientAddress {
  /** 4 or 6. */
  family: 4 | 6;
  /** Canonical text form (IPv6 compressed per RFC 5952, no zone, no brackets). */
  address: string;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
  /** 0–65535. */
  port: number;
}

/** Options of {@link buildProxyHeader}. Field names match `StreamRequest`, so `{ version, ...request }` works. */
export interface BuildProxyHeaderOptions {
  /** `'v1'` (text) or `'v2'` (binary). */
  version: ProxyProtocolVersion;
  /** The end user's `ip:port` / `[v6]:port` (the stream's `client_ip`). Empty or unparseable → UNKNOWN / LOCAL. */
  clientIp: string | undefined;
  /** The node's relay port the end user connected to (the stream's `conn_port`), 0–65535. Invalid → UNKNOWN / LOCAL. */
  connPort: number;
  /**
   * Destination address to write, of the same family as the source (IPv4-mapped IPv6 counts as IPv4).
   * Default: `0.0.0.0` for an IPv4 source, `::` for an IPv6 source.
   */
  destinationAddress?: string;
}

const V1_PREFIX = 'PROXY ';
/** Version 2, command PROXY (proxy-protocol.txt §2.2, 13th byte). */
const V2_CMD_PROXY = 0x21;
/** Version 2, command LOCAL. */
const V2_CMD_LOCAL = 0x20;
/** AF_INET + STREAM. */
const V2_TCP4 = 0x11;
/** AF_INET6 + STREAM. */
const V2_TCP6 = 0x21;
/** AF_UNSPEC + UNSPEC. */
const V2_UNSPEC = 0x00;

function parseIPv4Bytes(text: string): Uint8Array | undefined {
  if (!isIPv4(text)) return undefined;
  return Uint8Array.from(text.split('.').map(Number));
}

function parseIPv6Bytes(text: string): Uint8Array | undefined {
  if (!isIPv6(text)) return undefined;
  const out = new Uint8Array(16);
  let head = text;
  let v4Tail: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // An embedded IPv4 tail (`::ffff:192.0.2.1`) stands for the last two groups.
    v4Tail = parseIPv4Bytes(text.slice(lastColon + 1));
    if (v4Tail === undefined) return undefined;
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const leftGroups = left === '' || left === undefined ? [] : left.split(':');
  const rightGroups = right === undefined || right === '' ? [] : right.split(':');
  const groups =
    right === undefined
      ? leftGroups
      : [
          ...leftGroups,
          ...new Array<string>(8 - leftGroups.length - rightGroups.length).fill('0'),
          ...rightGroups,
        ];
  if (groups.length !== 8) return undefined;
  groups.forEach((g, i) => {
    const n = Number.parseInt(g, 16);
    out[i * 2] = n >>> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  if (v4Tail !== undefined) out.set(v4Tail, 12);
  return out;
}

/** RFC 5952 §4 text form: lower-case, no leading zeros, the longest run (≥ 2) of zero groups as `::`. */
function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** True for `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2). */
function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** Takes an IP literal apart: IPv4, IPv6 (a `%zone` is dropped), IPv4-mapped IPv6 → IPv4. */
function parseAddress(text: string): { family: 4 | 6; address: string; bytes: Uint8Array } | undefined {
  const v4 = parseIPv4Bytes(text);
  if (v4 !== undefined) return { family: 4, address: v4.join('.'), bytes: v4 };
  const zone = text.indexOf('%');
  const v6 = parseIPv6Bytes(zone === -1 ? text : text.slice(0, zone));
  if (v6 === undefined) return undefined;
  if (isV4Mapped(v6)) {
    const bytes = v6.slice(12);
    return { family: 4, address: bytes.join('.'), bytes };
  }
  return { family: 6, address: formatIPv6(v6), bytes: v6 };
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 65535;
}

/**
 * Parses a stream's `client_ip`: `192.0.2.7:51234`, `[2001:db8::7]:51234`. Returns `undefined` for
 * anything else (empty, no port, a hostname, a port out of range).
 */
export function parseClientAddress(text: string | undefined): ParsedClientAddress | undefined {
  if (typeof text !== 'string') return undefined;
  const value = text.trim();
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close === -1 || value[close + 1] !== ':') return undefined;
    host = value.slice(1, close);
    portText = value.slice(close + 2);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon === -1) return undefined;
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) return undefined;
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (!isPort(port)) return undefined;
  const address = parseAddress(host);
  return address === undefined ? undefined : { ...address, port };
}

/** `'v1'` / `'v2'` as given, else an {@link InvalidOptionsError} naming `path`. */
export function parseProxyProtocolVersion(value: unknown, path: string): ProxyProtocolVersion {
  if (value === 'v1' || value === 'v2') return value;
  throw new InvalidOptionsError(path, `must be "v1" or "v2" (got ${JSON.stringify(value)})`);
}

function v1Header(source: ParsedClientAddress | undefined, dest: ParsedClientAddress | undefined): Buffer {
  if (source === undefined || dest === undefined) return Buffer.from(`${V1_PREFIX}UNKNOWN\r\n`, 'latin1');
  // proxy-protocol.txt §2.1: "PROXY" SP proto SP src SP dst SP srcport SP dstport CRLF, at most 107 bytes.
  const proto = source.family === 4 ? 'TCP4' : 'TCP6';
  return Buffer.from(
    `${V1_PREFIX}${proto} ${source.address} ${dest.address} ${source.port} ${dest.port}\r\n`,
    'latin1',
  );
}

function v2Header(source: ParsedClientAddress | undefined, dest: ParsedClientAddress | undefined): Buffer {
  if (source === undefined || dest === undefined) {
    // proxy-protocol.txt §2.2: LOCAL with AF_UNSPEC and no address block; the receiver keeps the real addresses.
    const out = Buffer.alloc(16);
    out.set(PROXY_PROTOCOL_V2_SIGNATURE, 0);
    out[12] = V2_CMD_LOCAL;
    out[13] = V2_UNSPEC;
    return out;
  }
  const addressLength = source.family === 4 ? 4 : 16;
  const blockLength = addressLength * 2 + 4;
  const out = Buffer.alloc(16 + blockLength);
  out.set(PROXY_PROTOCOL_V2_SIGNATURE, 0);
  out[12] = V2_CMD_PROXY;
  out[13] = source.family === 4 ? V2_TCP4 : V2_TCP6;
  out[14] = blockLength >>> 8;
  out[15] = blockLength & 0xff;
  // Address block (proxy-protocol.txt §2.2, `struct proxy_addr`): src_addr, dst_addr, src_port, dst_port, big-endian.
  out.set(source.bytes, 16);
  out.set(dest.bytes, 16 + addressLength);
  const ports = 16 + addressLength * 2;
  out[ports] = source.port >>> 8;
  out[ports + 1] = source.port & 0xff;
  out[ports + 2] = dest.port >>> 8;
  out[ports + 3] = dest.port & 0xff;
  return out;
}

/**
 * Builds the PROXY protocol header to write to a local service before the stream's first byte. For
 * connect-handler users:
 *
 * ```ts
 * connectHandler: (request) => {
 *   const socket = net.connect(8443, '127.0.0.1');
 *   socket.write(buildProxyHeader({ version: 'v2', ...request }));
 *   return socket;
 * }
 * ```
 *
 * Throws {@link InvalidOptionsError} for an unknown `version` or a `destinationAddress` that is not an IP
 * address of the source's family; an unusable `clientIp` / `connPort` (they come from the wire) gives the
 * UNKNOWN (v1) / LOCAL (v2) header instead.
 */
export function buildProxyHeader(options: BuildProxyHeaderOptions): Buffer {
  const version = parseProxyProtocolVersion(options.version, 'version');
  const source = parseClientAddress(options.clientIp);
  let dest: ParsedClientAddress | undefined;
  if (source !== undefined && isPort(options.connPort)) {
    if (options.destinationAddress === undefined) {
      const bytes = new Uint8Array(source.family === 4 ? 4 : 16);
      dest = {
        family: source.family,
        address: source.family === 4 ? '0.0.0.0' : '::',
        bytes,
        port: options.connPort,
      };
    } else {
      const parsed = parseAddress(options.destinationAddress);
      if (parsed === undefined || parsed.family !== source.family) {
        throw new InvalidOptionsError(
          'destinationAddress',
          `must be an IPv${source.family} address like the source ${JSON.stringify(options.clientIp)} (got ${JSON.stringify(options.destinationAddress)})`,
        );
      }
      dest = { ...parsed, port: options.connPort };
    }
  }
  return version === 'v1' ? v1Header(source, dest) : v2Header(source, dest);
}
