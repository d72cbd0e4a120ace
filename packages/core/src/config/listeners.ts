/**
 * The public relay ports: `relayPorts` (reference: port 80 speaks HTTP, every other port TLS; a port can
 * carry its mode in the short form `"8080/http"`, `"8443/tls"`), or the richer `listeners` list, the address they bind to (`bindHost`) and the idle timeout of relayed
 * connections (`idleTimeoutSeconds`).
 */
import {
  ConfigIssue,
  describeValue,
  integer,
  list,
  mapping,
  oneOf,
  optional,
  type Parsed,
  required,
  text,
} from '@nexus-proxy/common/config';
import * as v from 'valibot';
import { validHost } from './address.js';
import { DEFAULT_IDLE_TIMEOUT_SECONDS, DEFAULT_RELAY_PORTS, HTTP_RELAY_PORT } from './defaults.js';
import type { RelayListenerConfig, ResolveContext } from './types.js';

type RelayMode = RelayListenerConfig['mode'];

/** `"8080/http"`, `"8443/tls"`: a relay port that says what it speaks. */
const RELAY_PORT_FORM = /^(\d{1,5})\/(tls|http)$/;

const relayPortDetail = (x: unknown) =>
  `must be a port between 0 and 65535, or "PORT/http" / "PORT/tls" such as "8080/http" (got ${describeValue(x)})`;
const relayPortMessage = (issue: v.BaseIssue<unknown>) => relayPortDetail(issue.input);

/** One entry of `relayPorts`: a number (80 = HTTP, else TLS) or the short form with its mode. */
const relayPort = v.union(
  [
    integer(0, 65535),
    v.pipe(
      v.string(relayPortMessage),
      v.regex(RELAY_PORT_FORM, relayPortMessage),
      v.check((s) => Number(RELAY_PORT_FORM.exec(s)![1]) <= 65535, relayPortMessage),
      v.transform((s): { port: number; mode: RelayMode } => {
        const m = RELAY_PORT_FORM.exec(s)!;
        return { port: Number(m[1]), mode: m[2] as RelayMode };
      }),
    ),
  ],
  relayPortMessage,
);

const listener = mapping({
  port: required(integer(0, 65535), 'TCP port, 0–65535 (0 = any free port, for tests).'),
  mode: optional(
    oneOf(['tls', 'http'], (x) => `must be "tls" or "http" (got ${describeValue(x)})`),
    '`tls` routes by SNI, `http` by Host. Default: `http` for port 80, else `tls`.',
  ),
  host: optional(text(), 'Address to bind. Default: bindHost, else all interfaces.'),
});

/** Keys of the relay-port section. */
export const listenerFields = {
  relayPorts: optional(
    v.pipe(
      list(relayPort, () => 'must be a list of ports'),
      v.minLength(1, 'must list at least one port'),
    ),
    '(reference) Public ports; 80 speaks HTTP (routes by Host), the others TLS (routes by SNI); "8080/http" or "8443/tls" says the mode. Ignored when listeners is set. Default: [443, 80].',
  ),
  idleTimeoutSeconds: optional(
    integer(0, 31_536_000),
    '(reference) Close a relayed connection after this many seconds without bytes in either direction; 0 = off. Default: 900.',
  ),
  listeners: optional(
    v.pipe(list(listener), v.minLength(1, 'must list at least one listener')),
    'Public relay listeners, replacing relayPorts: { port, mode?, host? }.',
  ),
  bindHost: optional(text(), 'Address every relay port binds to. Default: all interfaces.'),
};

type ListenerParsed = Parsed<typeof listenerFields>;

/** `[::1]` → `::1`; other hosts unchanged. */
export function unbracket(host: string): string {
  return host.replace(/^\[(.*)\]$/, '$1');
}

/** The relay listeners (from `listeners`, else `relayPorts`). */
export function resolveListeners(p: ListenerParsed, ctx: ResolveContext): RelayListenerConfig[] {
  const bindHost = p.bindHost ?? undefined;
  if (bindHost !== undefined && !validHost(unbracket(bindHost))) {
    throw new ConfigIssue('bindHost', `must be an IP address or hostname (got ${describeValue(bindHost)})`);
  }
  const relayHost = bindHost === undefined ? undefined : unbracket(bindHost);
  const listeners: RelayListenerConfig[] = [];
  const usedPorts = new Map<string, string>();
  const add = (l: RelayListenerConfig, at: string) => {
    const key = `${l.host ?? '*'}:${l.port}`;
    if (l.port !== 0 && usedPorts.has(key)) {
      throw new ConfigIssue(at, `uses port ${l.port} again (already used by ${usedPorts.get(key)})`);
    }
    usedPorts.set(key, at);
    listeners.push(l);
  };
  if (p.listeners) {
    if (p.relayPorts) ctx.warnings.push('relayPorts is ignored because listeners is set');
    p.listeners.forEach((l, i) => {
      const at = `listeners[${i}]`;
      const mode = l.mode ?? (l.port === HTTP_RELAY_PORT ? 'http' : 'tls');
      let host = relayHost;
      if (l.host !== undefined && l.host !== null) {
        host = unbracket(l.host);
        if (!validHost(host)) {
          throw new ConfigIssue(
            `${at}.host`,
            `must be an IP address or hostname (got ${describeValue(l.host)})`,
          );
        }
      }
      add(Object.freeze({ host, port: l.port, mode }), at);
    });
  } else {
    (p.relayPorts ?? DEFAULT_RELAY_PORTS).forEach((entry, i) => {
      // docs/protocol.md §4: port 80 speaks HTTP (route by Host), every other port TLS (route by SNI),
      // unless the short form names the mode.
      const { port, mode } =
        typeof entry === 'number'
          ? { port: entry, mode: entry === HTTP_RELAY_PORT ? ('http' as const) : ('tls' as const) }
          : entry;
      add(Object.freeze({ host: relayHost, port, mode }), `relayPorts[${i}]`);
    });
  }
  return listeners;
}

/** The idle timeout of relayed connections, ms; 0 = off. */
export function resolveIdleTimeoutMs(p: ListenerParsed): number {
  return (p.idleTimeoutSeconds ?? DEFAULT_IDLE_TIMEOUT_SECONDS) * 1000;
}
