/**
 * Fleet registration (`registrationURL`, `region`; docs/edge.md "Fleet registration"): the orchestrator's
 * endpoint (HTTPS only, as in the reference) and the region the node reports.
 */
import { ConfigIssue, describeValue, optional, type Parsed, text } from '@nexus-proxy/common/config';
import type { ResolveContext, ResolvedRegistration } from './types.js';

/** Keys of the registration section. */
export const registrationFields = {
  registrationURL: optional(
    text(),
    '(reference, later versions) https:// URL of the orchestrator the node registers with and sends heartbeats to. Default: none (no registration).',
  ),
  region: optional(
    text(),
    '(reference, later versions) Region name sent with every registration. Default: none (left out).',
  ),
};

/** The registration endpoint and region, `undefined` when registration is off. */
export function resolveRegistration(
  p: Parsed<typeof registrationFields>,
  ctx: ResolveContext,
): ResolvedRegistration | undefined {
  const raw = p.registrationURL ?? undefined;
  const region = p.region ?? undefined;
  if (raw === undefined) {
    if (region !== undefined) ctx.warnings.push('region is ignored without registrationURL');
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigIssue('registrationURL', `must be an https:// URL (got ${describeValue(raw)})`);
  }
  if (url.protocol !== 'https:') {
    throw new ConfigIssue('registrationURL', `must use https (got ${describeValue(raw)})`);
  }
  if (url.hostname === '') throw new ConfigIssue('registrationURL', 'must include a host');
  if (url.username !== '' || url.password !== '') {
    throw new ConfigIssue(
      'registrationURL',
      'must not carry credentials (the node authenticates with its hub certificate)',
    );
  }
  return Object.freeze({ url: url.href, region });
}
