/** `udpRelayPorts`, `udpMaxFlows` and `udpMaxDatagramBytes` in the node configuration (docs/edge.md "UDP relay"). */
import { describe, expect, it } from 'vitest';
import { nexusConfigJsonSchema, resolveNexusConfig } from '../src/config.js';
import { planReload } from '../src/reload-plan.js';
import { baseConfig as base, configRefusal as refusal } from './helpers/config-input.js';

describe('UDP relay configuration', () => {
  it('is off by default, without a warning', () => {
    const c = resolveNexusConfig(base);
    expect(c.udp).toBeUndefined();
    expect(c.warnings).toEqual([]);
  });

  it('binds every interface or bindHost, with the reference defaults', () => {
    expect(resolveNexusConfig({ ...base, udpRelayPorts: [53, 5353] }).udp).toEqual({
      ports: [53, 5353],
      host: undefined,
      maxFlows: 200_000,
      maxDatagramBytes: 2_048,
    });
    const c = resolveNexusConfig({
      ...base,
      udpRelayPorts: [53],
      bindHost: '[::1]',
      udpMaxFlows: 10,
      udpMaxDatagramBytes: 1_200,
    });
    expect(c.udp).toEqual({ ports: [53], host: '::1', maxFlows: 10, maxDatagramBytes: 1_200 });
    expect(c.warnings).toEqual([]);
  });

  it.each([
    [{ udpRelayPorts: [53, 53] }, 'udpRelayPorts[1]'],
    [{ udpRelayPorts: [70_000] }, 'udpRelayPorts[0]'],
    [{ udpRelayPorts: 53 }, 'udpRelayPorts'],
    [{ udpRelayPorts: [53], udpMaxFlows: 0 }, 'udpMaxFlows'],
    [{ udpRelayPorts: [53], udpMaxDatagramBytes: 32_769 }, 'udpMaxDatagramBytes'],
    [{ udpRelayPorts: [53], udpMaxDatagramBytes: 0 }, 'udpMaxDatagramBytes'],
  ])('refuses %j at %s', (input, path) => {
    expect(refusal({ ...base, ...input }).path).toBe(path);
  });

  it('warns when UDP claims are allowed but no port relays them', () => {
    const c = resolveNexusConfig({ ...base, allowedUDPPortClaims: [53] });
    expect(c.warnings.join('\n')).toContain('udpRelayPorts is empty');
  });

  it('needs a restart to change', () => {
    const before = resolveNexusConfig({ ...base, udpRelayPorts: [53] });
    const next = resolveNexusConfig({ ...base, udpRelayPorts: [53, 54] });
    const actions = planReload(before, next, {
      ownsFileTls: false,
      tlsLoaded: false,
      meshWanted: false,
      meshRunning: false,
      meshFixed: { idleTimeoutMs: false, keepaliveIntervalMs: false, keepaliveTimeoutMs: false },
    });
    expect(actions).toContainEqual({ kind: 'restart', setting: 'udpRelayPorts' });
  });

  it('the JSON Schema describes the keys', () => {
    const schema = nexusConfigJsonSchema() as { properties: Record<string, { description?: string }> };
    expect(schema.properties.udpRelayPorts?.description).toContain('udp_routes');
    expect(schema.properties.udpMaxFlows?.description).toContain('200000');
    expect(schema.properties.udpMaxDatagramBytes?.description).toContain('2048');
  });
});
