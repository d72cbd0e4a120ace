/**
 * The schema of the backend client's configuration file (the reference client's format, strict like the
 * reference, plus our own keys), declared with the shared configuration machinery of
 * `@nexus-proxy/common`. Port mappings are checked here for their shape (and so described in the JSON
 * Schema); their meaning (targets, host patterns) is resolved by `resolvePortMappings`.
 */
import {
  byKind,
  ConvertIssue,
  configJsonSchema,
  convert,
  describeValue,
  flag,
  integer,
  isMapping,
  list,
  mapping,
  oneOf,
  optional,
  required,
  text,
} from '@nexus-proxy/common/config';
import { normalizeHostnamePattern } from '@nexus-proxy/sni';
import * as v from 'valibot';
import { InvalidOptionsError } from './errors.js';
import { normalizeNodeAddress } from './node-address.js';

/** Keys of the current reference client accepted and validated but not acted on yet (a warning each when set). */
export const NOT_ACTED_ON_BACKEND_KEYS = [
  'tcpPorts',
  'udpRoutes',
  'flowControl',
  'socks5ListenAddr',
] as const;

/** The reason of an {@link InvalidOptionsError}, without its path. */
export function detailOf(err: InvalidOptionsError): string {
  return err.message.startsWith(`${err.path} `) ? err.message.slice(err.path.length + 1) : err.message;
}

/** `fn`, with an {@link InvalidOptionsError} it throws turned into a schema issue at the value. */
function reporting<A, R>(fn: (value: A) => R): (value: A) => R {
  return (value) => {
    try {
      return fn(value);
    } catch (err) {
      if (err instanceof InvalidOptionsError) throw new ConvertIssue(detailOf(err));
      throw err;
    }
  };
}

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parse a duration: a number of seconds (the reference unit), a numeric string (seconds), or a Go
 * duration string such as `"60s"`, `"1m30s"`, `"1.5s"`, `"500ms"`. Returns ms, or `undefined` for absent,
 * zero or negative values (which mean "use the default", as in the reference). Throws naming `at`.
 */
export function parseDuration(value: unknown, at: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidOptionsError(at, 'must be a finite number of seconds');
    ms = value * 1000;
  } else if (typeof value === 'string') {
    const t = value.trim();
    if (/^-?\d+(\.\d+)?$/.test(t)) ms = Number(t) * 1000;
    else {
      const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
      ms = 0;
      let consumed = 0;
      for (let m = re.exec(t); m !== null; m = re.exec(t)) {
        ms += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
        consumed = re.lastIndex;
      }
      if (t === '' || consumed !== t.length) {
        throw new InvalidOptionsError(
          at,
          `must be seconds or a duration like "60s", "1m30s", "500ms" (got "${value}")`,
        );
      }
    }
  } else {
    throw new InvalidOptionsError(at, 'must be a number of seconds or a duration string like "60s"');
  }
  if (ms <= 0) return undefined;
  if (ms > 31_536_000_000) throw new InvalidOptionsError(at, 'must be at most one year');
  return Math.round(ms);
}

const duration = (help: string) =>
  optional(
    convert(
      v.union([v.number(), v.string()], 'must be a number of seconds or a duration string like "60s"'),
      reporting((x: number | string) => parseDuration(x, '')),
    ),
    `${help} Seconds (60, 0.5) or a duration ("60s", "1m30s", "500ms"); 0 or less = the default.`,
  );

const hostPort = (x: unknown) => `must be a "host:port" string (got ${JSON.stringify(x)})`;
const proxyProtocol = optional(
  byKind(
    {
      string: oneOf(['v1', 'v2', 'none'], (x) => `must be "v1", "v2" or "none" (got ${JSON.stringify(x)})`),
      boolean: v.literal(false, (i) => `must be "v1", "v2" or "none" (got ${JSON.stringify(i.input)})`),
    },
    (x) => `must be "v1", "v2" or "none" (got ${JSON.stringify(x)})`,
  ),
  'PROXY protocol header toward the local service: v1, v2, or none. Default: none (or the mapping’s).',
);

const hostTarget = byKind(
  {
    string: v.string(),
    mapping: mapping({ target: required(v.string(hostPort)), proxyProtocol }),
  },
  hostPort,
);

const portMapping = byKind(
  {
    string: v.pipe(v.string(), v.description('"host:port": the port’s default target.')),
    mapping: mapping({
      default: optional(v.string(hostPort), 'Target when no host override matches: "host:port".'),
      hosts: optional(
        v.pipe(
          v.custom<Record<string, unknown>>(isMapping, 'must map hostnames to "host:port"'),
          v.record(v.string(), hostTarget),
        ),
        'Host (or "*.suffix") → "host:port" or { target, proxyProtocol }.',
      ),
      proxyProtocol,
    }),
  },
  () => 'must be "host:port" or a mapping with `default` and/or `hosts`',
);

const portMappings = v.pipe(
  v.custom<Record<string, unknown>>(isMapping, 'must map relay ports to targets'),
  v.record(v.pipe(v.string(), v.regex(/^\s*\d{1,5}\s*$/, 'is not a port between 1 and 65535')), portMapping),
);

const seconds = (help: string) =>
  optional(integer(0, 31_536_000), `${help} Whole seconds (as in the reference).`);
const port = integer(1, 65535);
const ports = (help: string) => optional(list(port), help);

/** The current era's `attestation` block (reference format; docs/backend-client-config.md). */
export const attestationSchema = mapping({
  command: optional(text(), 'Program that prints each token (run without a shell). This or an HMAC secret.'),
  args: optional(list(v.string('must be a string')), 'Arguments of the command.'),
  env: optional(
    v.pipe(
      v.custom<Record<string, unknown>>(isMapping, 'must map variable names to strings'),
      v.record(
        v.pipe(v.string(), v.regex(/^[^=\0]+$/, 'is not a variable name')),
        v.string((i) => `must be a string (got ${describeValue(i.input)})`),
      ),
    ),
    'Extra environment variables for the command.',
  ),
  timeoutSeconds: seconds('Kill the command after this long. Default: 15.'),
  cacheHandshakeSeconds: seconds('Reuse a stage-0 token for up to this long. Default: 0 (never).'),
  hmacSecret: optional(text(), 'Sign tokens locally with this secret (the node’s backendsJWTSecret).'),
  hmacSecretFile: optional(text(), 'A file holding the HMAC secret.'),
  tokenTTLSeconds: seconds('Lifetime of a locally signed token. Default: 30.'),
  handshakeMaxAgeSeconds: seconds('Claim handshake_max_age_seconds (stage 0).'),
  reauthIntervalSeconds: seconds('Claim reauth_interval_seconds: the node re-authenticates this often.'),
  reauthGraceSeconds: seconds('Claim reauth_grace_seconds: the node waits this long for each answer.'),
  maintenanceGraceCapSeconds: seconds('Claim maintenance_grace_cap_seconds.'),
  authorizerStatusUri: optional(text(), 'Claim authorizer_status_uri (https).'),
  policyVersion: optional(text(), 'Claim policy_version.'),
  outboundAllowed: optional(flag(), 'Claim outbound_allowed. Default: false.'),
  allowedOutboundPorts: ports('Claim allowed_outbound_ports.'),
});

const hostnamePattern = convert(
  v.string((i) => `is not a valid hostname or wildcard (got ${JSON.stringify(i.input)})`),
  (h) => {
    const pattern = normalizeHostnamePattern(h);
    if (pattern === undefined)
      throw new ConvertIssue(`is not a valid hostname or wildcard (got ${JSON.stringify(h)})`);
    return pattern;
  },
);

/** One backend block. */
export const backendSchema = mapping({
  name: required(
    text((x) => `must be a string (got ${describeValue(x)})`),
    '(reference) Unique name, used in logs.',
  ),
  hostnames: optional(
    list(hostnamePattern),
    '(reference) Names (and *.suffix wildcards) this backend serves. Informational: the hub routes by the token.',
  ),
  hostname: optional(hostnamePattern, '(reference, legacy) A single hostname, used when hostnames is empty.'),
  nexusAddresses: required(
    v.pipe(
      list(
        convert(
          v.string('must be a string'),
          reporting((a: string) => normalizeNodeAddress(a, '')),
        ),
        () => 'must list at least one hub address',
      ),
      v.minLength(1, 'must list at least one hub address'),
    ),
    '(reference) Hub addresses: wss://host:port/connect, wss://host:port, or host[:port]. One session each.',
  ),
  tcpPorts: ports('(reference) TCP port claims. Accepted and validated; not acted on yet.'),
  udpRoutes: optional(
    list(
      mapping({
        port: required(port),
        flowIdleTimeoutSeconds: optional(
          integer(0, 31_536_000),
          'Idle flow timeout the node applies, seconds.',
        ),
      }),
    ),
    '(reference) UDP port claims. Accepted and validated; not acted on yet.',
  ),
  authToken: optional(
    text(),
    '(reference, seed era) The backend JWT. One of authToken, authTokenFile and attestation is required.',
  ),
  authTokenFile: optional(
    text(),
    '(seed era) A file holding the backend JWT, re-read before every (re)connect.',
  ),
  attestation: optional(
    attestationSchema,
    '(reference, current era) How tokens are obtained: a command or an HMAC secret, and the claims to ask for.',
  ),
  weight: optional(
    v.pipe(v.number('must be an integer'), v.integer('must be an integer')),
    '(reference) Weight for minted tokens; ≤ 0 → 1. Default: 1.',
  ),
  portMappings: required(portMappings, '(reference) Relay port of the node → local target(s).'),
  healthChecks: optional(
    mapping({
      enabled: optional(flag(), 'Probe idle streams with ping_client. Default: false.'),
      inactivityTimeout: duration('Idle time before a probe. Default: 60 s.'),
      pongTimeout: duration('Wait for pong_client, then close the stream. Default: 5 s.'),
    }),
    '(reference) Per-stream health checks.',
  ),
  caFile: optional(text(), 'CA bundle (PEM) to trust for the hubs’ certificates. Default: Node’s roots.'),
  flowControl: optional(
    mapping({
      highWaterMark: optional(integer(0, 1_000_000), 'Default: 48.'),
      lowWaterMark: optional(integer(0, 1_000_000), 'Default: 16.'),
      maxBuffer: optional(integer(0, 1_000_000), 'Default: 64.'),
    }),
    '(reference) Per-stream buffer thresholds in messages (low < high < max). Accepted and validated; not acted on.',
  ),
  socks5ListenAddr: optional(
    text(),
    '(reference) Local SOCKS5 listener ("host:port") for outbound connections. Accepted and validated; not acted on yet.',
  ),
});

/** The whole document. */
export const backendClientConfigSchema = mapping(
  {
    backends: required(
      v.pipe(
        list(backendSchema, () => 'must list at least one backend'),
        v.minLength(1, 'must list at least one backend'),
      ),
      'The backends this client attaches to the hubs; each gets its own sessions.',
    ),
  },
  () => 'must be a mapping with a `backends` list',
);

/**
 * The JSON Schema (draft-07) of the backend-client configuration file, for editors (the YAML language
 * server's `yaml.schemas`) and other tools. `nexus-proxy config schema --backend` prints it.
 */
export function backendClientConfigJsonSchema(): Record<string, unknown> {
  return configJsonSchema(backendClientConfigSchema, {
    title: 'Nexus Proxy backend client configuration',
    description: 'The YAML file `nexus-backend --config` reads; see docs/backend-client-config.md.',
  }) as Record<string, unknown>;
}
