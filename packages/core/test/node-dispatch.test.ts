import type { Socket } from 'node:net';
import { recordingLogger } from '@nexus-proxy/test-harness';
import { describe, expect, it } from 'vitest';
import type { BackendSession } from '../src/backend-session.js';
import { LimitError, NoRouteError } from '../src/errors.js';
import type { BackendHub } from '../src/hub.js';
import type { PeerMesh } from '../src/mesh.js';
import { formatClientIp, NodeDispatch, openRoute, type RouteMissEvent } from '../src/node-dispatch.js';
import { RoutingTable } from '../src/routing-table.js';

const init = { connPort: 443, clientIp: '203.0.113.7:50000', isTls: true };

/** Stand-ins that record what the dispatch asked of them. */
function blocks(tunnel: object | undefined = undefined) {
  const calls: string[] = [];
  const stream = { id: 'local-stream' };
  const session = { id: 'session-1' };
  const hub = {
    openRouted(route: { pattern: string; hostname: string }) {
      calls.push(`hub ${route.hostname} via ${route.pattern}`);
      if (route.hostname === 'full.example.com') throw new LimitError('maxStreamsPerSession');
      return { stream, session };
    },
  } as unknown as BackendHub;
  const mesh = {
    openTunnel(route: { linkIds: readonly string[]; hostname: string }) {
      calls.push(`mesh ${route.hostname} over ${route.linkIds.join(',')}`);
      return tunnel;
    },
  } as unknown as PeerMesh;
  return { calls, hub, mesh, stream, session };
}

describe('openRoute: dispatch on the one routing decision', () => {
  const table = () => {
    const t = new RoutingTable<BackendSession>();
    t.addLocal('*.example.com', {} as BackendSession);
    t.setPeerRoutes('link-1', ['far.example.org']);
    return t;
  };

  it('opens a local pool on the hub, once, with the matched pattern', () => {
    const b = blocks();
    const opened = openRoute(table().resolve('App.Example.com'), init, b);
    // The session it picked is named: the relay's bandwidth account (docs/edge.md "Bandwidth fair share").
    expect(opened).toEqual({ stream: b.stream, session: b.session, via: 'local', route: '*.example.com' });
    expect(b.calls).toEqual(['hub app.example.com via *.example.com']);
  });

  it('opens peer links on the mesh', () => {
    const tunnel = { id: 'tunnel' };
    const b = blocks(tunnel);
    expect(openRoute(table().resolve('far.example.org'), init, b)).toEqual({
      stream: tunnel,
      via: 'peer',
      route: 'far.example.org',
    });
    expect(b.calls).toEqual(['mesh far.example.org over link-1']);
  });

  it.each([
    ['a name nobody serves', 'nobody.example.net', 'no-route', true],
    ['an invalid name', 'bad..name', 'invalid-hostname', true],
    ['peers whose links take no tunnel', 'far.example.org', 'peers-unavailable', true],
    ['peers without a mesh', 'far.example.org', 'peers-unavailable', false],
  ])('throws NoRouteError for %s', (_n, name, reason, withMesh) => {
    const b = blocks(undefined);
    const err = (() => {
      try {
        openRoute(table().resolve(name), init, withMesh ? b : { hub: b.hub, mesh: undefined });
      } catch (e) {
        return e;
      }
    })();
    expect(NoRouteError.is(err)).toBe(true);
    expect(err).toMatchObject({ reason, code: 'NEXUS_ERR_NO_ROUTE' });
    expect(b.calls.every((c) => c.startsWith('mesh'))).toBe(true);
  });

  it('lets the hub’s LimitError through', () => {
    expect(() => openRoute(table().resolve('full.example.com'), init, blocks())).toThrow(LimitError);
  });
});

describe('formatClientIp', () => {
  it.each([
    ['203.0.113.7', 50000, '203.0.113.7:50000'],
    ['::ffff:203.0.113.7', 1, '203.0.113.7:1'],
    ['2001:db8::1', 443, '[2001:db8::1]:443'],
    [undefined, undefined, ':0'],
  ])('%s port %s → %s', (address, port, expected) => {
    expect(formatClientIp(address, port)).toBe(expected);
  });
});

describe('NodeDispatch: refusals', () => {
  it.each([
    ['nobody.example.net', 'no-route', 'nobody.example.net'],
    ['bad..name', 'invalid-hostname', 'bad..name'],
    ['far.example.org', 'peers-unavailable', 'far.example.org'],
    ['x'.repeat(300), 'invalid-hostname', `${'x'.repeat(253)}…`],
  ])(
    '%s: route-miss with reason %s, and one info line naming it without the address',
    (name, reason, host) => {
      const log = recordingLogger([], 'info');
      const misses: RouteMissEvent[] = [];
      const routes = new RoutingTable<BackendSession>();
      routes.setPeerRoutes('link-1', ['far.example.org']);
      const dispatch = new NodeDispatch({
        routes,
        hub: blocks().hub,
        mesh: () => undefined,
        timeouts: () => ({ idleTimeoutMs: 1_000, clientFinTimeoutMs: 1_000, streamEndGraceMs: 0 }),
        emit: (event, ...args) => {
          if (event === 'route-miss') misses.push(args[0] as RouteMissEvent);
        },
        log,
      });
      const socket = { remoteAddress: '203.0.113.7', remotePort: 50000 } as Socket;
      const sniffed = { hostname: name, isTls: true, prelude: Buffer.alloc(0) };
      expect(dispatch.dispatch(443, socket, sniffed as never)).toBe('no-route');
      expect(misses).toEqual([{ hostname: name, port: 443, isTls: true, reason }]);
      expect(log.lines).toEqual([
        { level: 'info', msg: `connection refused: ${reason}`, fields: { host, reason, port: 443 } },
      ]);
    },
  );
});
