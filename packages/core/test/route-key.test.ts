/** Port-claim route keys in the routing table (docs/edge.md "TCP port claims"). */
import { describe, expect, it } from 'vitest';
import { normalizeRouteKey, portRouteKey } from '../src/route-key.js';
import { RoutingTable } from '../src/routing-table.js';

describe('route keys', () => {
  it.each(['tcp:1', 'tcp:443', 'udp:53', 'tcp:65535'])('accepts %s', (key) => {
    expect(normalizeRouteKey(key)).toBe(key);
  });

  it.each([
    'tcp:0',
    'tcp:65536',
    'tcp:022',
    'TCP:22',
    'tcp:',
    'sctp:22',
    'tcp:22 ',
    'tcp:2x',
    'tcp:443.example.com',
  ])('refuses %j', (key) => {
    expect(normalizeRouteKey(key)).toBeUndefined();
  });

  it('are exact patterns beside hostnames: local first, then peers, never a wildcard', () => {
    const table = new RoutingTable<string, string>();
    expect(table.addLocal(portRouteKey('tcp', 443), 'ssh-box')).toBe(true);
    expect(table.addLocal('*.example.com', 'web')).toBe(true);
    expect(table.resolve('tcp:443')).toMatchObject({ kind: 'local', pattern: 'tcp:443', wildcard: false });
    expect(table.lookup('tcp:443')).toMatchObject({ kind: 'local', target: 'ssh-box' });
    expect(table.resolve('tcp:22')).toMatchObject({ kind: 'none', reason: 'no-route' });
    expect(table.localPatterns()).toEqual(['*.example.com', 'tcp:443']);
    table.setPeerRoutes('link-1', ['tcp:22', 'udp:53']);
    expect(table.has('tcp:22')).toBe(true);
    expect(table.hasLocal('tcp:22')).toBe(false);
    expect(table.resolve('tcp:22')).toMatchObject({ kind: 'peer', pattern: 'tcp:22', linkIds: ['link-1'] });
    expect(table.removeTarget('ssh-box')).toEqual(['tcp:443']);
    expect(table.has('tcp:443')).toBe(false);
  });

  it('has() answers for names and keys without advancing a rotation', () => {
    const table = new RoutingTable<string, string>();
    table.setPeerRoutes('a', ['tcp:22']);
    table.setPeerRoutes('b', ['tcp:22']);
    const first = table.resolve('tcp:22');
    for (let i = 0; i < 5; i++) expect(table.has('tcp:22')).toBe(true);
    const second = table.resolve('tcp:22');
    expect(first.kind === 'peer' && second.kind === 'peer' && first.linkIds[0] !== second.linkIds[0]).toBe(
      true,
    );
    expect(table.has('nothing.example')).toBe(false);
    expect(table.has('not a name')).toBe(false);
  });
});
