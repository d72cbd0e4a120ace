/**
 * The engine-independent part of route discovery (docs/mesh.md "Discovery on NATS"): the records' limits
 * and shapes, and how read values become peer routes — assembled by generation, bounded, expired by the
 * TTL on a fake clock, kept while the engine is unreachable.
 */
import { recordingLogger } from '@nexus-proxy/test-harness';
import { describe, expect, it } from 'vitest';
import { resolveNexusConfig } from '../src/config.js';
import { DiscoveredNodes, advertisedPeerUrl, discoveryRouteKey } from '../src/mesh-discovery.js';
import {
  DISCOVERY_CHUNK_BYTES,
  chunkKey,
  encodeNodeRecord,
  encodeRouteChunks,
  nodeKey,
  parseDiscoveryKey,
  parseNodeRecord,
  parseRouteChunk,
} from '../src/mesh-discovery-records.js';
import { PeerPolicy } from '../src/peer-limits.js';
import { RoutingTable } from '../src/routing-table.js';
import { baseConfig, configRefusal } from './helpers/config-input.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const URL_B = 'wss://b.mesh.example.com:8444/mesh';

function setup(options: { maxPeerRoutes?: number; ttlMs?: number } = {}) {
  let now = 0;
  const routes = new RoutingTable<string>();
  const log = recordingLogger([], 'info');
  const nodes = new DiscoveredNodes({
    routes,
    policy: new PeerPolicy({ maxPeerRoutes: options.maxPeerRoutes ?? 10_000 }),
    ttlMs: options.ttlMs ?? 15_000,
    log,
    now: () => now,
  });
  const publish = (id: string, gen: string, names: string[], url = URL_B) => {
    const chunks = encodeRouteChunks(gen, names);
    for (const [i, c] of chunks.entries()) nodes.chunkWritten(id, i, chunkKey(id, i), bytes(c));
    nodes.nodeWritten(
      id,
      nodeKey(id),
      bytes(encodeNodeRecord({ url, gen, chunks: chunks.length, routes: names.length })),
    );
  };
  return { routes, log, nodes, publish, advance: (ms: number) => (now += ms) };
}

describe('discovery records', () => {
  it('splits 10 000 names of 253 characters into chunks under the limits, and reads them back', () => {
    const label = 'a'.repeat(63);
    const names = Array.from(
      { length: 10_000 },
      (_, i) => `${String(i).padStart(5, '0')}${label.slice(5)}.${label}.${label}.${label.slice(0, 61)}`,
    );
    expect(names[0]).toHaveLength(253);
    const chunks = encodeRouteChunks('g1', names);
    expect(chunks.length).toBe(20);
    for (const chunk of chunks) expect(Buffer.byteLength(chunk)).toBeLessThanOrEqual(DISCOVERY_CHUNK_BYTES);
    const back = chunks.flatMap((c) => {
      const parsed = parseRouteChunk(bytes(c), 10_000);
      if (!parsed.ok) throw new Error(parsed.reason);
      return parsed.value.routes;
    });
    expect(back).toEqual(names);
    expect(encodeRouteChunks('g1', [])).toEqual([]);
  });

  it('parses keys and refuses records of the wrong shape', () => {
    expect(parseDiscoveryKey('nodes.abc')).toEqual({ kind: 'node', nodeId: 'abc' });
    expect(parseDiscoveryKey('routes.abc.31')).toEqual({ kind: 'chunk', nodeId: 'abc', index: 31 });
    for (const key of ['routes.abc.32', 'routes.abc.x', 'nodes.a.b', 'other.abc', 'nodes.', 'routes.abc.-1'])
      expect(parseDiscoveryKey(key)).toEqual({ kind: 'other' });
    const record = (fields: object) =>
      parseNodeRecord(
        bytes(JSON.stringify({ v: 1, url: URL_B, gen: 'g', chunks: 1, routes: 1, ...fields })),
        100,
      );
    expect(record({})).toEqual({ ok: true, value: { url: URL_B, gen: 'g', chunks: 1, routes: 1 } });
    expect(record({ v: 2 })).toMatchObject({ ok: false, reason: 'unknown record version' });
    expect(record({ gen: 'a.b' })).toMatchObject({ ok: false, reason: 'gen is not a token' });
    expect(record({ chunks: 1.5 })).toMatchObject({ ok: false });
    expect(record({ routes: 101 })).toMatchObject({ ok: false, reason: '101 routes exceed the cap of 100' });
    expect(record({ url: 'ws://b:1/mesh' })).toMatchObject({ ok: false, reason: 'url is not a wss:// URL' });
    expect(parseNodeRecord(bytes('[]'), 100)).toMatchObject({
      ok: false,
      reason: 'value is not a JSON object',
    });
    expect(parseRouteChunk(bytes('{"gen":"g","routes":[1]}'), 100)).toMatchObject({ ok: false });
    expect(parseRouteChunk(bytes(`{"gen":"g","routes":["${'x'.repeat(300)}"]}`), 100)).toMatchObject({
      ok: false,
    });
  });

  it('advertises the configured URL, else the listener host, else the certificate name', () => {
    expect(advertisedPeerUrl('wss://x:1/mesh', '10.0.0.1', 2, [])).toBe('wss://x:1/mesh');
    expect(advertisedPeerUrl(undefined, '10.0.0.1', 8444, ['DNS:n.example.com'])).toBe(
      'wss://10.0.0.1:8444/mesh',
    );
    expect(advertisedPeerUrl(undefined, '::1', 8444, [])).toBe('wss://[::1]:8444/mesh');
    expect(advertisedPeerUrl(undefined, '0.0.0.0', 8444, ['DNS:*.x.com', 'DNS:n.example.com'])).toBe(
      'wss://n.example.com:8444/mesh',
    );
    expect(advertisedPeerUrl(undefined, undefined, 8444, ['IP Address:10.0.0.1'])).toBeUndefined();
  });
});

describe('DiscoveredNodes', () => {
  it('applies a node once its record and every chunk of that generation are in, in either order', () => {
    const { routes, nodes, publish } = setup();
    publish('b', 'g1', ['app.example.com', '*.wild.example.com']);
    expect(routes.resolve('app.example.com')).toMatchObject({
      kind: 'peer',
      linkIds: [discoveryRouteKey('b')],
    });
    expect(routes.resolve('x.wild.example.com').kind).toBe('peer');
    expect(nodes.urlOf(discoveryRouteKey('b'))).toBe(URL_B);
    // A new generation: the record first, then its chunk; the old routes stay until it completes.
    nodes.nodeWritten(
      'b',
      'nodes.b',
      bytes(encodeNodeRecord({ url: URL_B, gen: 'g2', chunks: 1, routes: 1 })),
    );
    expect(routes.resolve('app.example.com').kind).toBe('peer');
    nodes.chunkWritten(
      'b',
      0,
      'routes.b.0',
      bytes(encodeRouteChunks('g2', ['new.example.com'])[0] as string),
    );
    expect(routes.resolve('app.example.com').kind).toBe('none');
    expect(routes.resolve('new.example.com').kind).toBe('peer');
    expect(nodes.size).toBe(1);
  });

  it('expires a silent node after the TTL, never while refreshed, and drops a withdrawn one at once', () => {
    const { routes, nodes, publish, advance, log } = setup({ ttlMs: 3_000 });
    publish('b', 'g1', ['b.example.com']);
    publish('c', 'g1', ['c.example.com'], 'wss://c.mesh.example.com:8444/mesh');
    advance(2_000);
    nodes.nodeWritten(
      'b',
      'nodes.b',
      bytes(encodeNodeRecord({ url: URL_B, gen: 'g1', chunks: 1, routes: 1 })),
    );
    advance(1_500);
    nodes.expire();
    expect(routes.resolve('b.example.com').kind).toBe('peer');
    expect(routes.resolve('c.example.com').kind).toBe('none');
    expect(log.lines.find((l) => l.msg === 'discovered node gone: routes removed')?.fields).toMatchObject({
      why: 'expired',
    });
    // The engine was unreachable for long: everyone gets a full TTL from its return.
    advance(60_000);
    nodes.refreshDeadlines();
    nodes.expire();
    expect(routes.resolve('b.example.com').kind).toBe('peer');
    nodes.nodeDeleted('b');
    expect(routes.resolve('b.example.com').kind).toBe('none');
    expect(nodes.size).toBe(0);
  });

  it('refuses a list over the cap and names outside the policy, with log lines', () => {
    const { routes, nodes, publish, log } = setup({ maxPeerRoutes: 2 });
    publish('b', 'g1', ['one.example.com', 'two.example.com', 'three.example.com']);
    expect(nodes.refused).toBeGreaterThan(0);
    expect(routes.resolve('one.example.com').kind).toBe('none');
    expect(log.lines.some((l) => l.msg === 'refusing discovery value')).toBe(true);
    publish('c', 'g1', ['ok.example.com', 'not a name!'], 'wss://c.mesh.example.com:8444/mesh');
    expect(routes.resolve('ok.example.com').kind).toBe('peer');
    expect(log.lines.some((l) => l.msg === 'discovered node lists routes it may not have: dropped')).toBe(
      true,
    );
  });
});

describe('meshDiscovery configuration', () => {
  const base = {
    ...baseConfig,
    peerAuthentication: { trustedDomainSuffixes: ['.mesh.example.com'] },
  };
  it('resolves with defaults, and refuses what would not work', () => {
    const resolved = resolveNexusConfig({
      ...base,
      meshDiscovery: { nats: { servers: ['127.0.0.1:4222'], bucket: 'mesh' } },
    });
    expect(resolved.meshDiscovery).toEqual({
      nats: {
        servers: ['127.0.0.1:4222'],
        bucket: 'mesh',
        credentialsFile: undefined,
        ttlMs: 15_000,
        linkIdleMs: 60_000,
        peerUrl: undefined,
      },
    });
    expect(resolveNexusConfig(base).meshDiscovery).toBeUndefined();
    const refusal = (nats: object, extra: object = {}) =>
      configRefusal({ ...base, ...extra, meshDiscovery: { nats } }).message;
    expect(refusal({ servers: ['http://x:1'], bucket: 'b' })).toMatch(
      /meshDiscovery\.nats\.servers\[0\].*nats:\/\//,
    );
    expect(refusal({ servers: ['nats://u:p@x:1'], bucket: 'b' })).toMatch(/credentialsFile/);
    expect(refusal({ servers: [], bucket: 'b' })).toMatch(/must list a server/);
    expect(refusal({ servers: ['x:1'], bucket: 'a.b' })).toMatch(/meshDiscovery\.nats\.bucket/);
    expect(refusal({ servers: ['x:1'], bucket: 'b', ttlSeconds: 0 })).toMatch(/ttlSeconds/);
    expect(refusal({ servers: ['x:1'] })).toMatch(/bucket.*required/);
    expect(refusal({ servers: ['x:1'], bucket: 'b' }, { peerAuthentication: {} })).toMatch(
      /trustedDomainSuffixes.*meshDiscovery/,
    );
  });
});
