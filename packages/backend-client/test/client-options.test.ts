import { describe, expect, it } from 'vitest';
import { noopLogger } from '@nexus-proxy/common';
import {
  type BackendClientOptions,
  DEFAULT_KEEPALIVE_INTERVAL,
  DEFAULT_KEEPALIVE_TIMEOUT,
  resolveBackendClientOptions,
} from '../src/client-options.js';
import { InvalidOptionsError } from '../src/errors.js';
import { resolvePortMappings } from '../src/port-mappings.js';

const base: BackendClientOptions = {
  nodes: ['node.example.com:8443'],
  token: 'jwt',
  portMappings: resolvePortMappings({ 443: 'localhost:8443' }),
};

describe('resolveBackendClientOptions', () => {
  it('applies the reference defaults and normalises node addresses', () => {
    const resolved = resolveBackendClientOptions(base);
    expect(resolved.nodes).toEqual(['wss://node.example.com:8443/connect']);
    expect(resolved.reconnect).toEqual({
      initialDelayMs: 1_000,
      maxDelayMs: 60_000,
      factor: 2,
      jitter: 0.25,
      resetAfterMs: 30_000,
    });
    expect(resolved.keepalive).toEqual({
      intervalMs: DEFAULT_KEEPALIVE_INTERVAL,
      timeoutMs: DEFAULT_KEEPALIVE_TIMEOUT,
    });
    expect(resolved.healthChecks).toEqual({
      enabled: false,
      inactivityTimeoutMs: 60_000,
      pongTimeoutMs: 5_000,
    });
    expect(resolved.dialTimeoutMs).toBe(10_000);
    // docs/protocol.md §1.11: the client accepts 128 KiB unless told otherwise.
    expect(resolved.maxDataPayload).toBe(131_072);
    expect(resolveBackendClientOptions({ ...base, maxDataPayload: 32_768 }).maxDataPayload).toBe(32_768);
    expect(resolved.logger).toBe(noopLogger);
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(Object.isFrozen(resolved.reconnect)).toBe(true);
  });

  it('accepts a connect handler instead of port mappings', () => {
    const { portMappings: _, ...rest } = base;
    expect(
      resolveBackendClientOptions({ ...rest, connectHandler: () => undefined }).portMappings,
    ).toBeUndefined();
  });

  it.each<[string, Partial<BackendClientOptions> & Record<string, unknown>]>([
    ['nodes', { nodes: [] }],
    ['nodes[1]', { nodes: ['a:1', 'https://b'] }],
    ['nodes[1]', { nodes: ['a:1', 'wss://a:1/connect'] }],
    ['token', { token: '  ' }],
    ['portMappings', { portMappings: undefined }],
    ['reconnect.factor', { reconnect: { factor: 0.5 } }],
    ['reconnect.jitter', { reconnect: { jitter: 1 } }],
    ['reconnect.initialDelayMs', { reconnect: { initialDelayMs: -1 } }],
    ['reconnect.maxDelayMs', { reconnect: { initialDelayMs: 5_000, maxDelayMs: 1_000 } }],
    ['keepalive.timeoutMs', { keepalive: { intervalMs: 5_000, timeoutMs: 1_000 } }],
    ['keepalive.intervalMs', { keepalive: { intervalMs: Number.NaN } }],
    ['healthChecks.enabled', { healthChecks: { enabled: 'yes' as unknown as boolean } }],
    ['dialTimeoutMs', { dialTimeoutMs: 0 }],
    ['maxDataPayload', { maxDataPayload: 32_767 }],
    ['maxDataPayload', { maxDataPayload: 2 * 1024 * 1024 }],
    ['maxDataPayload', { maxDataPayload: 65_536.5 }],
    ['tls.rejectUnauthorized', { tls: { rejectUnauthorized: 'no' as unknown as boolean } }],
  ])('names %s in the InvalidOptionsError', (path, override) => {
    let error: unknown;
    try {
      resolveBackendClientOptions({ ...base, ...override } as BackendClientOptions);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).path).toBe(path);
    expect((error as InvalidOptionsError).message.startsWith(path)).toBe(true);
  });
});
