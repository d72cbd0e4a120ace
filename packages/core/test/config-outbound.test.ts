/** The outbound keys of the node configuration (docs/edge.md "Outbound connections"). */
import { describe, expect, it } from 'vitest';
import { nexusConfigJsonSchema, resolveNexusConfig } from '../src/config.js';
import { baseConfig, configRefusal } from './helpers/config-input.js';
import { outboundNodeSettings } from '../src/outbound-checks.js';
import { planReload } from '../src/reload-plan.js';

const base = baseConfig;
const refusal = configRefusal;

describe('outbound configuration', () => {
  it('is off by default, with the reference defaults and no warning', () => {
    const c = resolveNexusConfig(base);
    expect(c.outbound).toEqual({
      maxConnsPerBackend: 100,
      dialTimeoutMs: 10_000,
      idleTimeoutMs: 900_000,
      allowedNetworks: [],
    });
    expect(c.warnings).toEqual([]);
  });

  it('reads every key; 0 means the default for the limit and the dial timeout, never for the idle timeout', () => {
    const c = resolveNexusConfig({
      ...base,
      maxOutboundConnsPerBackend: 7,
      outboundDialTimeoutSeconds: 3,
      outboundIdleTimeoutSeconds: 0,
      allowedOutboundNetworks: ['10.20.1.2/16', '127.0.0.2', 'fd00:1::/32'],
    });
    expect(c.outbound).toEqual({
      maxConnsPerBackend: 7,
      dialTimeoutMs: 3_000,
      idleTimeoutMs: 0,
      allowedNetworks: ['10.20.0.0/16', '127.0.0.2/32', 'fd00:1::/32'],
    });
    const zero = resolveNexusConfig({
      ...base,
      maxOutboundConnsPerBackend: 0,
      outboundDialTimeoutSeconds: 0,
    });
    expect(zero.outbound).toMatchObject({ maxConnsPerBackend: 100, dialTimeoutMs: 10_000 });
  });

  it('warns about an unbounded limit; the checks read the claim policy', () => {
    const c = resolveNexusConfig({ ...base, allowOutbound: true, maxOutboundConnsPerBackend: -1 });
    expect(c.outbound.maxConnsPerBackend).toBe(1_000_000);
    expect(c.warnings).toContain('maxOutboundConnsPerBackend -1 (unbounded) is capped at 1000000');
    expect(c.warnings.some((w) => w.includes('does not serve'))).toBe(false);
    expect(outboundNodeSettings(c)).toEqual({ allow: true, allowedPorts: [], maxConnsPerBackend: 1_000_000 });
    const ports = resolveNexusConfig({ ...base, allowOutbound: true, allowedOutboundPorts: [993, 443, 443] });
    expect(outboundNodeSettings(ports)).toEqual({
      allow: true,
      allowedPorts: [443, 993],
      maxConnsPerBackend: 100,
    });
  });

  it.each<[Record<string, unknown>, string]>([
    [{ maxOutboundConnsPerBackend: -2 }, 'maxOutboundConnsPerBackend'],
    [{ outboundDialTimeoutSeconds: 3_601 }, 'outboundDialTimeoutSeconds'],
    [{ outboundIdleTimeoutSeconds: -1 }, 'outboundIdleTimeoutSeconds'],
    [{ allowedOutboundNetworks: ['10.0.0.0/8', 'intranet'] }, 'allowedOutboundNetworks[1]'],
    [{ allowedOutboundNetworks: ['10.0.0.0/33'] }, 'allowedOutboundNetworks[0]'],
  ])('refuses %j at %s', (extra, path) => {
    expect(refusal({ ...base, ...extra }).path).toBe(path);
  });

  it('the JSON Schema lists the keys; a reload applies them', () => {
    const props = (nexusConfigJsonSchema() as { properties: Record<string, unknown> }).properties;
    for (const key of [
      'maxOutboundConnsPerBackend',
      'outboundDialTimeoutSeconds',
      'outboundIdleTimeoutSeconds',
      'allowedOutboundNetworks',
    ]) {
      expect(props[key], key).toBeDefined();
    }
    const before = resolveNexusConfig(base);
    const next = resolveNexusConfig({
      ...base,
      outboundDialTimeoutSeconds: 5,
      allowedOutboundNetworks: ['10.0.0.0/8'],
    });
    const context = {
      ownsFileTls: false,
      tlsLoaded: false,
      meshWanted: false,
      meshRunning: false,
      meshFixed: { idleTimeoutMs: false, keepaliveIntervalMs: false, keepaliveTimeoutMs: false },
    };
    expect(planReload(before, next, context)).toEqual([
      { kind: 'apply', setting: 'outboundDialTimeoutSeconds' },
      { kind: 'apply', setting: 'allowedOutboundNetworks' },
    ]);
  });
});
