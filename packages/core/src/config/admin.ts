/** Logging (`logLevel`) and the admin HTTP endpoint (`admin`: health, metrics). */
import {
  byKind,
  describeValue,
  isMapping,
  mapping,
  oneOf,
  optional,
  type Parsed,
  resolveFrom,
  text,
} from '@nexus-proxy/common/config';
import * as v from 'valibot';
import type { LogLevel } from '../logger.js';
import { addressField } from './address.js';
import { DEFAULT_LOG_LEVEL } from './defaults.js';
import type { ListenAddress, ResolveContext } from './types.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const notAnAddress = (x: unknown) =>
  `must be an address like ":8443" or "127.0.0.1:8443" (got ${describeValue(x)})`;
const address = addressField();

/** Keys of the logging and admin section. */
export const adminFields = {
  logLevel: optional(oneOf(LOG_LEVELS), 'trace, debug, info, warn, error, fatal or silent. Default: info.'),
  admin: optional(
    byKind(
      {
        boolean: v.literal(false, (issue) => notAnAddress(issue.input)),
        string: address,
        number: address,
        mapping: mapping({
          address: optional(address, 'Where the admin endpoint listens; without a host, 127.0.0.1.'),
          token: optional(text(), 'Bearer token /metrics and /status require. Default: none.'),
          tokenFile: optional(text(), 'File holding the bearer token (instead of token).'),
        }),
      },
      notAnAddress,
    ),
    'Admin HTTP endpoint (health, metrics): an address (no host: 127.0.0.1), { address, token, tokenFile }, or false (off). Default: off.',
  ),
};

type AdminParsed = Parsed<typeof adminFields>;

/** The log level. */
export function resolveLogLevel(p: AdminParsed): LogLevel | 'silent' {
  return p.logLevel ?? DEFAULT_LOG_LEVEL;
}

/** The admin endpoint's address, `undefined` = off; a warning when it is not loopback. */
export function resolveAdmin(p: AdminParsed, ctx: ResolveContext): ListenAddress | undefined {
  const a = p.admin;
  if (a === undefined || a === null || a === false) return undefined;
  const inMapping = isMapping(ctx.doc.admin);
  const admin = inMapping
    ? ((a as { address?: ListenAddress | null }).address ?? undefined)
    : (a as ListenAddress);
  if (admin === undefined) return undefined;
  // No host: the admin listener binds 127.0.0.1.
  const loopback =
    admin.host === undefined ||
    admin.host === 'localhost' ||
    admin.host === '::1' ||
    admin.host.startsWith('127.');
  if (!loopback) {
    ctx.warnings.push(
      `${inMapping ? 'admin.address' : 'admin'} is reachable from the network; bind it to 127.0.0.1 unless that is intended`,
    );
  }
  return admin;
}

/** `admin.token` and `admin.tokenFile` (resolved against the configuration's folder). */
export function resolveAdminToken(
  p: AdminParsed,
  ctx: ResolveContext,
): { token: string | undefined; tokenFile: string | undefined } {
  const a = p.admin;
  if (!isMapping(ctx.doc.admin) || a === undefined || a === null || a === false) {
    return { token: undefined, tokenFile: undefined };
  }
  const m = a as { token?: string | null; tokenFile?: string | null };
  return { token: m.token ?? undefined, tokenFile: resolveFrom(ctx.baseDir, m.tokenFile ?? undefined) };
}
