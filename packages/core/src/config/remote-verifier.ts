/**
 * The remote token verifier (docs/protocol.md §5.5): `remoteVerifierURL` (reference), the timeout the
 * reference had as `remoteVerifierTimeoutSeconds` for a while, and `remoteVerifierCaFile` (Nexus).
 */
import {
  ConfigIssue,
  describeValue,
  integer,
  optional,
  type Parsed,
  resolveFrom,
  text,
} from '@nexus-proxy/common/config';
import { DEFAULT_REMOTE_VERIFIER_TIMEOUT_MS } from '../remote-verifier.js';
import type { ResolveContext, ResolvedRemoteVerifier } from './types.js';

/** Keys of the remote-verifier section. */
export const remoteVerifierFields = {
  remoteVerifierURL: optional(
    text(),
    '(reference) HTTPS endpoint that checks backend tokens; the hub presents its certificate as client certificate. Default: off (tokens are checked with the secrets).',
  ),
  remoteVerifierTimeoutSeconds: optional(
    integer(1, 60),
    '(reference, early current era) Time for one exchange with the verifier, seconds. Default: 10.',
  ),
  remoteVerifierCaFile: optional(
    text(),
    'CA bundle (PEM) trusted for the verifier’s certificate. Default: Node’s roots.',
  ),
};

type RemoteVerifierParsed = Parsed<typeof remoteVerifierFields>;

/** The verifier settings, or `undefined` when `remoteVerifierURL` is not set. */
export function resolveRemoteVerifier(
  p: RemoteVerifierParsed,
  ctx: ResolveContext,
): ResolvedRemoteVerifier | undefined {
  const raw = p.remoteVerifierURL ?? undefined;
  if (raw === undefined || raw.trim() === '') {
    for (const key of ['remoteVerifierTimeoutSeconds', 'remoteVerifierCaFile'] as const) {
      if (p[key] !== undefined && p[key] !== null)
        ctx.warnings.push(`${key} is ignored: remoteVerifierURL is not set`);
    }
    return undefined;
  }
  let url: URL | undefined;
  try {
    url = new URL(raw.trim());
  } catch {
    url = undefined;
  }
  if (url === undefined || url.protocol !== 'https:' || url.hostname === '') {
    throw new ConfigIssue(
      'remoteVerifierURL',
      `must be an https:// URL with a host, such as "https://verifier.example.com/verify" (got ${describeValue(raw)})`,
    );
  }
  const seconds = p.remoteVerifierTimeoutSeconds ?? undefined;
  return {
    url: url.href,
    timeoutMs: seconds === undefined ? DEFAULT_REMOTE_VERIFIER_TIMEOUT_MS : seconds * 1000,
    caFile: resolveFrom(ctx.baseDir, p.remoteVerifierCaFile ?? undefined),
  };
}
