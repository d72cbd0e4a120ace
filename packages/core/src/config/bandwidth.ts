/**
 * The bandwidth cap (`totalBandwidthMbps`, a reference key; docs/edge.md "Bandwidth fair share"): what
 * the node sends toward backends and end users together, in Mbit/s, shared across backends by deficit
 * round robin; `0` or absent = unlimited.
 */
import { describeValue, optional, type Parsed } from '@nexus-proxy/common/config';
import * as v from 'valibot';
import { MAX_TOTAL_BANDWIDTH_MBPS } from '../bandwidth-scheduler.js';

const mustBeRate = (issue: v.BaseIssue<unknown>): string =>
  `must be a number of Mbit/s between 0 and ${MAX_TOTAL_BANDWIDTH_MBPS} (got ${describeValue(issue.input)})`;

/** Keys of the bandwidth section. */
export const bandwidthFields = {
  totalBandwidthMbps: optional(
    v.pipe(v.number(mustBeRate), v.minValue(0, mustBeRate), v.maxValue(MAX_TOTAL_BANDWIDTH_MBPS, mustBeRate)),
    '(reference, later versions) Cap on what the node sends toward backends and end users together, Mbit/s (fractions allowed), shared fairly across backends; 0 = unlimited. Reloads live. Default: 0.',
  ),
};

/** The cap in Mbit/s; `0` = unlimited. */
export function resolveTotalBandwidthMbps(p: Parsed<typeof bandwidthFields>): number {
  return p.totalBandwidthMbps ?? 0;
}
