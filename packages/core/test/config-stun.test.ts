/** `stunPort` and the STUN answer rates in the node configuration (docs/edge.md "STUN"). */
import { describe, expect, it } from 'vitest';
import { nexusConfigJsonSchema, resolveNexusConfig } from '../src/config.js';
import { baseConfig, configRefusal } from './helpers/config-input.js';

const base = baseConfig;
const refusal = configRefusal;

describe('stunPort', () => {
  it('is off by default and at 0, without a warning', () => {
    expect(resolveNexusConfig(base).stun).toBeUndefined();
    const c = resolveNexusConfig({ ...base, stunPort: 0 });
    expect(c.stun).toBeUndefined();
    expect(c.warnings).toEqual([]);
  });

  it('binds every interface, or bindHost (brackets dropped)', () => {
    expect(resolveNexusConfig({ ...base, stunPort: 3478 }).stun).toEqual({ port: 3478, host: undefined });
    expect(resolveNexusConfig({ ...base, stunPort: 3478, bindHost: '[::1]' }).stun).toEqual({
      port: 3478,
      host: '::1',
    });
    expect(resolveNexusConfig({ ...base, stunPort: 3478 }).warnings).toEqual([]);
  });

  it('must not be one of udpRelayPorts', () => {
    const err = refusal({ ...base, stunPort: 3478, udpRelayPorts: [53, 3478] });
    expect(err.path).toBe('stunPort');
    expect(err.message).toContain('udpRelayPorts');
    // Other UDP relay ports are fine.
    expect(resolveNexusConfig({ ...base, stunPort: 3478, udpRelayPorts: [53] }).stun?.port).toBe(3478);
  });

  it.each([-1, 65_536, 1.5, '3478'])('refuses %j', (stunPort) => {
    expect(refusal({ ...base, stunPort }).path).toBe('stunPort');
  });

  it('answer rates: defaults, overrides, bounds', () => {
    const c = resolveNexusConfig(base);
    expect(c.limits.stunMaxResponsesPerSecond).toBe(10_000);
    expect(c.limits.stunMaxResponsesPerAddressPerSecond).toBe(50);
    const set = resolveNexusConfig({
      ...base,
      limits: { stunMaxResponsesPerSecond: 5, stunMaxResponsesPerAddressPerSecond: 2 },
    });
    expect(set.limits).toMatchObject({
      stunMaxResponsesPerSecond: 5,
      stunMaxResponsesPerAddressPerSecond: 2,
    });
    expect(refusal({ ...base, limits: { stunMaxResponsesPerSecond: 0 } }).path).toBe(
      'limits.stunMaxResponsesPerSecond',
    );
  });

  it('the JSON Schema describes stunPort and the rates', () => {
    const schema = nexusConfigJsonSchema() as {
      properties: Record<string, { description?: string }>;
    };
    expect(JSON.stringify(schema.properties.stunPort)).toContain('65535');
    expect(schema.properties.stunPort?.description).toContain('STUN');
    const limits = JSON.stringify(schema.properties.limits);
    expect(limits).toContain('"stunMaxResponsesPerSecond"');
    expect(limits).toContain('"stunMaxResponsesPerAddressPerSecond"');
  });
});
