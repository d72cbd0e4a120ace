/**
 * The backend-token section: `backendsJWTSecret` (reference), `backendsJWTSecrets` (rotation) and the
 * `auth` checks (docs/protocol.md §5.1, §5.3).
 */
import {
  byKind,
  ConfigIssue,
  describeValue,
  flag,
  integer,
  list,
  mapping,
  nonEmptyText,
  oneOf,
  optional,
  type Parsed,
  text,
} from '@nexus-proxy/common/config';
import * as v from 'valibot';
import { BACKEND_ERA_MODES } from '../backend-era.js';
import { DEFAULT_AUTH, MIN_SECRET_BYTES } from './defaults.js';
import type { ResolveContext, ResolvedAuth } from './types.js';

const nonEmptySecret = 'must be a non-empty string';

const authSection = mapping({
  requireExp: optional(flag(), 'Refuse backend tokens without `exp`. Default: false.'),
  issuer: optional(text(), 'Required `iss` of backend tokens. Default: not checked.'),
  audience: optional(
    byKind(
      { string: v.string(), list: list(nonEmptyText()) },
      (x) => `must be a non-empty string or list of strings (got ${describeValue(x)})`,
    ),
    'Required `aud` of backend tokens (one of). Default: not checked.',
  ),
  clockToleranceSeconds: optional(
    integer(0, 86_400),
    'Clock skew allowed on exp/nbf/iat, seconds. Default: 30.',
  ),
  maxHostnames: optional(integer(1, 1_000_000), 'Tokens listing more hostnames are refused. Default: 1000.'),
  maxTokenBytes: optional(integer(256, 1 << 20), 'Longer tokens are refused unread, bytes. Default: 65536.'),
  backendEra: optional(
    oneOf(BACKEND_ERA_MODES),
    'Protocol era of backends: auto (decided per connection from the first token), seed (never challenge) or current (challenge every backend). Default: auto.',
  ),
});

/** Keys of the token section. */
export const authFields = {
  backendsJWTSecret: optional(
    v.string('must be a string'),
    '(reference) HMAC secret backend tokens are signed with. This or backendsJWTSecrets is required.',
  ),
  backendsJWTSecrets: optional(
    list(v.pipe(v.string(nonEmptySecret), v.nonEmpty(nonEmptySecret)), () => 'must be a list of strings'),
    'More accepted secrets, for rotation; tokens are minted with the first.',
  ),
  auth: optional(authSection, 'Backend-token checks.'),
};

type AuthParsed = Parsed<typeof authFields>;

/**
 * The accepted secrets, de-duplicated, `backendsJWTSecret` first; none is allowed only with a remote
 * verifier (docs/protocol.md §5.5).
 */
export function resolveSecrets(p: AuthParsed, ctx: ResolveContext, remoteVerifier = false): string[] {
  const secrets: string[] = [];
  const single = p.backendsJWTSecret ?? undefined;
  if (single !== undefined && single !== '') secrets.push(single);
  const many = p.backendsJWTSecrets ?? [];
  for (const s of many) if (!secrets.includes(s)) secrets.push(s);
  if (secrets.length === 0) {
    if (remoteVerifier) return secrets;
    throw new ConfigIssue('backendsJWTSecret', 'is required (or remoteVerifierURL)');
  }
  secrets.forEach((s, i) => {
    if (Buffer.byteLength(s, 'utf8') < MIN_SECRET_BYTES) {
      const where = s === single ? 'backendsJWTSecret' : `backendsJWTSecrets[${many.indexOf(s)}]`;
      ctx.warnings.push(
        `${where} is shorter than ${MIN_SECRET_BYTES} bytes; use a long random secret (secret #${i + 1} of ${secrets.length})`,
      );
    }
  });
  return secrets;
}

/** The `auth` checks with their defaults. */
export function resolveAuth(p: AuthParsed): ResolvedAuth {
  const a = p.auth ?? {};
  let audience: string[] | undefined;
  if (a.audience !== undefined && a.audience !== null) {
    const list = typeof a.audience === 'string' ? [a.audience] : a.audience;
    if (list.length === 0 || list.some((x) => x.trim() === '')) {
      throw new ConfigIssue('auth.audience', 'must be a non-empty string or list of strings');
    }
    audience = list;
  }
  return {
    requireExp: a.requireExp ?? DEFAULT_AUTH.requireExp,
    issuer: a.issuer ?? undefined,
    audience,
    clockToleranceSec: a.clockToleranceSeconds ?? DEFAULT_AUTH.clockToleranceSec,
    maxHostnames: a.maxHostnames ?? DEFAULT_AUTH.maxHostnames,
    maxTokenBytes: a.maxTokenBytes ?? DEFAULT_AUTH.maxTokenBytes,
    backendEra: a.backendEra ?? DEFAULT_AUTH.backendEra,
  };
}
