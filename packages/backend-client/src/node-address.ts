import { DEFAULT_HUB_PORT, HUB_PATH } from '@nexus-proxy/common';
import { InvalidOptionsError } from './errors.js';

/**
 * Turns a hub address into the WebSocket URL to dial. Accepts a full URL (`wss://node:8443/connect`), a
 * URL without path (`wss://node:8443` → `/connect` appended), or a bare `host[:port]`
 * (`node.example.com:8443`, `[2001:db8::1]:8443`, `node.example.com` → port 8443), which gets `wss://`.
 * `ws://` is kept when written explicitly (e.g. behind a local TLS terminator).
 * Throws {@link InvalidOptionsError} naming `path` for anything else.
 */
export function normalizeNodeAddress(address: string, path = 'nodes'): string {
  const trimmed = address.trim();
  if (trimmed === '') throw new InvalidOptionsError(path, 'must not be empty');
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed);
  let url: URL;
  try {
    url = new URL(hasScheme ? trimmed : `wss://${trimmed}`);
  } catch {
    throw new InvalidOptionsError(path, `is not a valid hub address: ${JSON.stringify(address)}`);
  }
  if (url.protocol !== 'wss:' && url.protocol !== 'ws:') {
    throw new InvalidOptionsError(path, `must use wss:// (got ${url.protocol}//)`);
  }
  if (url.hostname === '') throw new InvalidOptionsError(path, `has no host: ${JSON.stringify(address)}`);
  if (url.username !== '' || url.password !== '') {
    throw new InvalidOptionsError(path, 'must not carry credentials (use the token option)');
  }
  if (url.port === '' && !hasScheme) url.port = String(DEFAULT_HUB_PORT);
  if (url.pathname === '' || url.pathname === '/') url.pathname = HUB_PATH;
  url.hash = '';
  return url.toString();
}
