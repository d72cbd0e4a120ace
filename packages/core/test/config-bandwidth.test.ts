/** `totalBandwidthMbps` in the node configuration and in reload plans (docs/edge.md "Bandwidth fair share"). */
import { describe, expect, it } from 'vitest';
import { nexusConfigJsonSchema, resolveNexusConfig } from '../src/config.js';
import { planReload, type ReloadContext } from '../src/reload-plan.js';
import { baseConfig, configRefusal } from './helpers/config-input.js';

const base = baseConfig;

describe('totalBandwidthMbps', () => {
  it('is unlimited (0) by default, without a warning', () => {
    const c = resolveNexusConfig(base);
    expect(c.totalBandwidthMbps).toBe(0);
    expect(c.warnings).toEqual([]);
  });

  it('takes a non-negative number of Mbit/s, fractions included', () => {
    expect(resolveNexusConfig({ ...base, totalBandwidthMbps: 40 }).totalBandwidthMbps).toBe(40);
    expect(resolveNexusConfig({ ...base, totalBandwidthMbps: 2.5 }).totalBandwidthMbps).toBe(2.5);
    expect(resolveNexusConfig({ ...base, totalBandwidthMbps: 0 }).totalBandwidthMbps).toBe(0);
    expect(resolveNexusConfig({ ...base, totalBandwidthMbps: null }).totalBandwidthMbps).toBe(0);
  });

  it.each([-1, -0.5, '100', true, Number.POSITIVE_INFINITY, Number.NaN, 1_000_001])('refuses %j', (value) => {
    const err = configRefusal({ ...base, totalBandwidthMbps: value });
    expect(err.path).toBe('totalBandwidthMbps');
    expect(err.message).toContain('must be a number of Mbit/s between 0 and 1000000');
  });

  it('is in the JSON Schema', () => {
    const schema = nexusConfigJsonSchema() as { properties: Record<string, { anyOf?: unknown[] }> };
    expect(schema.properties.totalBandwidthMbps?.anyOf).toContainEqual({
      type: 'number',
      minimum: 0,
      maximum: 1_000_000,
    });
  });

  it('reloads live: the plan sets the new cap', () => {
    const context: ReloadContext = {
      ownsFileTls: false,
      tlsLoaded: false,
      meshWanted: false,
      meshRunning: false,
      meshFixed: { idleTimeoutMs: false, keepaliveIntervalMs: false, keepaliveTimeoutMs: false },
    };
    const before = resolveNexusConfig(base);
    const next = resolveNexusConfig({ ...base, totalBandwidthMbps: 25 });
    expect(planReload(before, next, context)).toEqual([
      { kind: 'set-bandwidth', setting: 'totalBandwidthMbps', totalBandwidthMbps: 25 },
    ]);
    expect(planReload(next, before, context)).toEqual([
      { kind: 'set-bandwidth', setting: 'totalBandwidthMbps', totalBandwidthMbps: 0 },
    ]);
    expect(planReload(next, next, context)).toEqual([]);
  });
});
