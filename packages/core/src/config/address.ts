/**
 * Addresses in the node configuration: listen addresses (`":8443"`, `"[::1]:8443"`, `8443`) and peer URLs
 * (`wss://host:port/mesh`), as parsers and as schema fields.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { DEFAULT_PEER_PORT, MESH_PATH } from '@nexus-proxy/common';
import { ConfigIssue, convert, describeValue, integer, validate } from '@nexus-proxy/common/config';
import { normalizeHostname } from '@nexus-proxy/sni';
import * as v from 'valibot';
import { InvalidConfigError } from '../errors.js';
import type { ListenAddress } from './types.js';

/** An IP address or a hostname (no wildcard). */
export function validHost(host: string): boolean {
  if (isIPv4(host) || isIPv6(host)) return true;
  return normalizeHostname(host) !== undefined && !host.includes('*');
}

const fail = (detail: string): never => {
  throw new ConfigIssue('', detail);
};

const PORT = integer(0, 65535);

function listenAddress(value: unknown): ListenAddress {
  if (typeof value === 'number') return Object.freeze({ host: undefined, port: validate(PORT, value) });
  if (typeof value !== 'string') {
    return fail(`must be an address like ":8443" or "127.0.0.1:8443" (got ${describeValue(value)})`);
  }
  const text = value.trim();
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1 || text[close + 1] !== ':') fail(`must be "[ipv6]:port" (got ${describeValue(value)})`);
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host)) fail(`has an invalid IPv6 address (got ${describeValue(value)})`);
  } else {
    const colon = text.lastIndexOf(':');
    host = colon === -1 ? '' : text.slice(0, colon);
    portText = colon === -1 ? text : text.slice(colon + 1);
    if (host.includes(':')) {
      fail(`must write an IPv6 address in brackets, "[addr]:port" (got ${describeValue(value)})`);
    }
    if (host !== '' && host !== '*' && !validHost(host)) {
      fail(`has an invalid host (got ${describeValue(value)})`);
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    fail(`must end in a port between 0 and 65535 (got ${describeValue(value)})`);
  }
  return Object.freeze({ host: host === '' || host === '*' ? undefined : host, port: Number(portText) });
}

function rethrowAt(at: string, err: unknown): never {
  if (ConfigIssue.is(err)) throw new InvalidConfigError(at, err.detail, { cause: err });
  throw err;
}

/**
 * Parse a listen address: `":8443"` / `"8443"` / `8443` (all interfaces), `"0.0.0.0:8443"`,
 * `"[::1]:8443"`, `"localhost:0"`. The host comes back without brackets; `""`, `*`, or no host → all
 * interfaces (`host: undefined`). Throws {@link InvalidConfigError} naming `at`.
 */
export function parseListenAddress(value: unknown, at: string): ListenAddress {
  try {
    return listenAddress(value);
  } catch (err) {
    return rethrowAt(at, err);
  }
}

const ADDRESS_HELP = 'An address: ":8443", "8443" or 8443 (all interfaces), "0.0.0.0:8443", "[::1]:8443".';

/** A listen address field: a string or a port number, parsed into `{ host, port }`. */
export function addressField() {
  return convert(
    v.pipe(
      v.union(
        [v.string(), v.number()],
        (issue) => `must be an address like ":8443" or "127.0.0.1:8443" (got ${describeValue(issue.input)})`,
      ),
      v.description(ADDRESS_HELP),
    ),
    listenAddress,
  );
}

function peerUrl(value: string): string {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value);
  let url: URL;
  try {
    url = new URL(hasScheme ? value : `wss://${value}`);
  } catch {
    return fail(`is not a valid peer URL (got ${describeValue(value)})`);
  }
  // Peer links are mutually authenticated TLS (docs/protocol.md §2.1); a plain ws:// link could not be.
  if (url.protocol !== 'wss:') fail(`must use wss:// (got ${url.protocol}//)`);
  if (url.hostname === '') fail(`has no host (got ${describeValue(value)})`);
  if (url.username !== '' || url.password !== '') fail('must not carry credentials');
  if (!hasScheme && url.port === '') url.port = String(DEFAULT_PEER_PORT);
  if (url.pathname === '' || url.pathname === '/') url.pathname = MESH_PATH;
  url.hash = '';
  return url.toString();
}

/** Normalise a peer URL: `wss://host:port/mesh`; a bare `host[:port]` gets `wss://`, port 8444 and `/mesh`. */
export function normalizePeerUrl(value: string, at: string): string {
  try {
    return peerUrl(value);
  } catch (err) {
    return rethrowAt(at, err);
  }
}

/** Parse a peer URL inside a schema (see {@link normalizePeerUrl}). */
export { peerUrl as parsePeerUrl };
