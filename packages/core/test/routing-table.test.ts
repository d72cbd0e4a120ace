import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { RoutingTable } from '../src/routing-table.js';

function targets<T>(table: RoutingTable<T>, hostname: string, n: number): (T | string | undefined)[] {
  return Array.from({ length: n }, () => {
    const r = table.lookup(hostname);
    return r === undefined ? undefined : r.kind === 'local' ? r.target : `peer:${r.linkId}`;
  });
}

describe('RoutingTable', () => {
  it('routes an exact hostname to its local target', () => {
    const table = new RoutingTable<string>();
    expect(table.addLocal('app.example.com', 'b1')).toBe(true);
    expect(table.lookup('app.example.com')).toEqual({
      kind: 'local',
      target: 'b1',
      pattern: 'app.example.com',
    });
    expect(table.lookup('other.example.com')).toBeUndefined();
  });

  it('normalises patterns and hostnames (case, trailing dot, IDNA)', () => {
    const table = new RoutingTable<string>();
    table.addLocal('App.Example.COM.', 'b1');
    table.addLocal('bücher.example', 'b2');
    expect(table.lookup('APP.example.com')?.pattern).toBe('app.example.com');
    expect(table.lookup('xn--bcher-kva.example')).toMatchObject({ target: 'b2' });
    expect(table.lookup('BÜCHER.example.')).toMatchObject({ target: 'b2' });
  });

  it.each(['*.com', '*.*.example.com', 'a.*.example.com', '', 'exa mple.com', '10.0.0.1', '[::1]'])(
    'refuses the invalid pattern %j',
    (pattern) => {
      const table = new RoutingTable<string>();
      expect(table.addLocal(pattern, 'b1')).toBe(false);
      expect(table.localPatterns()).toEqual([]);
    },
  );

  it('matches a wildcard for exactly one extra label', () => {
    const table = new RoutingTable<string>();
    table.addLocal('*.example.com', 'w');
    expect(table.lookup('a.example.com')).toEqual({ kind: 'local', target: 'w', pattern: '*.example.com' });
    expect(table.lookup('a.b.example.com')).toBeUndefined();
    expect(table.lookup('example.com')).toBeUndefined();
    expect(table.lookup('com')).toBeUndefined();
  });

  it('prefers local exact over local wildcard over peer exact over peer wildcard', () => {
    const table = new RoutingTable<string>();
    table.setPeerRoutes('p1', ['*.example.com']);
    expect(table.lookup('a.example.com')).toMatchObject({
      kind: 'peer',
      linkId: 'p1',
      pattern: '*.example.com',
    });
    table.setPeerRoutes('p2', ['a.example.com']);
    expect(table.lookup('a.example.com')).toMatchObject({
      kind: 'peer',
      linkId: 'p2',
      pattern: 'a.example.com',
    });
    table.addLocal('*.example.com', 'w');
    expect(table.lookup('a.example.com')).toMatchObject({ kind: 'local', target: 'w' });
    table.addLocal('a.example.com', 'x');
    expect(table.lookup('a.example.com')).toMatchObject({ kind: 'local', target: 'x' });
    // …and back down the ladder as routes disappear.
    table.removeLocal('a.example.com', 'x');
    expect(table.lookup('a.example.com')).toMatchObject({ kind: 'local', target: 'w' });
    table.removeTarget('w');
    expect(table.lookup('a.example.com')).toMatchObject({ kind: 'peer', linkId: 'p2' });
    table.removePeer('p2');
    expect(table.lookup('a.example.com')).toMatchObject({ kind: 'peer', linkId: 'p1' });
    table.removePeer('p1');
    expect(table.lookup('a.example.com')).toBeUndefined();
  });

  it('does not let an emptied exact pool shadow the wildcard (docs/reliability.md item 15)', () => {
    const table = new RoutingTable<string>();
    table.addLocal('a.example.com', 'exact');
    table.addLocal('*.example.com', 'wild');
    expect(table.lookup('a.example.com')).toMatchObject({ target: 'exact' });
    expect(table.removeLocal('a.example.com', 'exact')).toBe(true);
    expect(table.lookup('a.example.com')).toMatchObject({ target: 'wild', pattern: '*.example.com' });
    expect(table.localPool('a.example.com')).toBeUndefined();
  });

  it('balances a pool by weight (smooth WRR)', () => {
    const table = new RoutingTable<string>();
    table.addLocal('app.example.com', 'a', 5);
    table.addLocal('app.example.com', 'b', 1);
    expect(targets(table, 'app.example.com', 6).join('')).toBe('aaabaa');
  });

  it('updates the weight when the same target registers again', () => {
    const table = new RoutingTable<string>();
    table.addLocal('app.example.com', 'a', 1);
    table.addLocal('app.example.com', 'b', 1);
    table.addLocal('app.example.com', 'a', 3);
    expect(table.localPool('app.example.com')?.size).toBe(2);
    const picks = targets(table, 'app.example.com', 4);
    expect(picks.filter((t) => t === 'a')).toHaveLength(3);
  });

  it('removeLocal() returns false for unknown pairs and invalid patterns', () => {
    const table = new RoutingTable<string>();
    table.addLocal('app.example.com', 'a');
    expect(table.removeLocal('app.example.com', 'zzz')).toBe(false);
    expect(table.removeLocal('nothing.example.com', 'a')).toBe(false);
    expect(table.removeLocal('*.com', 'a')).toBe(false);
    expect(table.lookup('app.example.com')).toMatchObject({ target: 'a' });
  });

  it('removeTarget() removes a backend from every pool at once', () => {
    const table = new RoutingTable<{ id: number }>();
    const s1 = { id: 1 };
    const s2 = { id: 2 };
    table.addLocal('a.example.com', s1);
    table.addLocal('*.example.com', s1);
    table.addLocal('a.example.com', s2);
    expect(table.removeTarget(s1).sort()).toEqual(['*.example.com', 'a.example.com']);
    expect(table.lookup('a.example.com')).toMatchObject({ target: s2 });
    expect(table.lookup('b.example.com')).toBeUndefined();
    expect(table.removeTarget(s1)).toEqual([]);
    expect(table.stats()).toEqual({ localPatterns: 1, localEntries: 1, peerPatterns: 0, peerLinks: 0 });
  });

  it('round-robins among peers announcing a route and lists the others for retries', () => {
    const table = new RoutingTable<string>();
    table.setPeerRoutes('p1', ['app.example.com']);
    table.setPeerRoutes('p2', ['app.example.com']);
    table.setPeerRoutes('p3', ['app.example.com']);
    const first = table.lookup('app.example.com');
    const second = table.lookup('app.example.com');
    const third = table.lookup('app.example.com');
    const fourth = table.lookup('app.example.com');
    expect([first, second, third, fourth].map((r) => (r?.kind === 'peer' ? r.linkId : undefined))).toEqual([
      'p1',
      'p2',
      'p3',
      'p1',
    ]);
    expect(second).toMatchObject({ linkIds: ['p2', 'p3', 'p1'] });
  });

  it('setPeerRoutes() replaces the link’s whole route set and skips invalid patterns', () => {
    const table = new RoutingTable<string>();
    table.setPeerRoutes('p1', ['a.example.com', '*.example.org', '*.com', 'bad name', 'A.EXAMPLE.COM']);
    expect(table.peerPatterns('p1')).toEqual(['*.example.org', 'a.example.com']);
    table.setPeerRoutes('p1', ['b.example.com']);
    expect(table.lookup('a.example.com')).toBeUndefined();
    expect(table.lookup('x.example.org')).toBeUndefined();
    expect(table.lookup('b.example.com')).toMatchObject({ kind: 'peer', linkId: 'p1' });
    table.setPeerRoutes('p1', []);
    expect(table.lookup('b.example.com')).toBeUndefined();
    expect(table.stats().peerLinks).toBe(0);
  });

  it('removePeer() drops exact and wildcard routes of a dead link but keeps other links', () => {
    const table = new RoutingTable<string>();
    table.setPeerRoutes('p1', ['a.example.com', '*.example.com']);
    table.setPeerRoutes('p2', ['a.example.com']);
    table.removePeer('p1');
    expect(table.lookup('z.example.com')).toBeUndefined();
    const r = table.lookup('a.example.com');
    expect(r).toMatchObject({ kind: 'peer', linkId: 'p2', linkIds: ['p2'] });
    table.removePeer('unknown');
  });

  it('hands out linkIds snapshots that later announces do not change', () => {
    const table = new RoutingTable<string>();
    table.setPeerRoutes('p1', ['a.example.com']);
    table.setPeerRoutes('p2', ['a.example.com']);
    const r = table.lookup('a.example.com');
    table.removePeer('p2');
    expect(r?.kind === 'peer' && r.linkIds).toEqual(['p1', 'p2']);
  });

  it('reports changes of the local pattern set (for announces) but not of pool membership', () => {
    const onLocalPatternsChange = vi.fn();
    const table = new RoutingTable<string>({ onLocalPatternsChange });
    table.addLocal('a.example.com', 'b1');
    table.addLocal('a.example.com', 'b2');
    table.addLocal('*.example.com', 'b1');
    expect(onLocalPatternsChange.mock.calls).toEqual([
      [['a.example.com']],
      [['*.example.com', 'a.example.com']],
    ]);
    table.removeLocal('a.example.com', 'b1');
    expect(onLocalPatternsChange).toHaveBeenCalledTimes(2);
    table.removeTarget('b1');
    table.removeTarget('b2');
    expect(onLocalPatternsChange).toHaveBeenCalledTimes(4);
    expect(onLocalPatternsChange).toHaveBeenLastCalledWith([]);
    expect(table.localVersion).toBe(4);
    table.setPeerRoutes('p1', ['x.example.com']);
    expect(onLocalPatternsChange).toHaveBeenCalledTimes(4);
  });

  it('hasLocal() answers without advancing the rotation', () => {
    const table = new RoutingTable<string>({
      routes: [
        { pattern: 'a.example.com', target: 'x' },
        { pattern: 'a.example.com', target: 'y' },
        { pattern: '*.example.net', target: 'z' },
      ],
    });
    expect(table.hasLocal('a.example.com')).toBe(true);
    expect(table.hasLocal('q.example.net')).toBe(true);
    expect(table.hasLocal('q.q.example.net')).toBe(false);
    expect(table.lookup('a.example.com')).toMatchObject({ target: 'x' });
  });

  it('returns undefined for invalid hostnames', () => {
    const table = new RoutingTable<string>();
    table.addLocal('*.example.com', 'w');
    for (const h of ['', ' ', '*.example.com', 'a..example.com', 'a%2eexample.com']) {
      expect(table.lookup(h)).toBeUndefined();
    }
  });

  it('agrees with a naive model under random operations (property)', () => {
    const names = ['a.x.com', 'b.x.com', '*.x.com', 'c.y.org', '*.y.org'];
    const hosts = ['a.x.com', 'b.x.com', 'q.x.com', 'c.y.org', 'z.y.org', 'x.com'];
    const op = fc.oneof(
      fc.record({
        k: fc.constant('add' as const),
        p: fc.constantFrom(...names),
        t: fc.integer({ min: 0, max: 3 }),
      }),
      fc.record({
        k: fc.constant('rm' as const),
        p: fc.constantFrom(...names),
        t: fc.integer({ min: 0, max: 3 }),
      }),
      fc.record({ k: fc.constant('rmT' as const), t: fc.integer({ min: 0, max: 3 }) }),
      fc.record({
        k: fc.constant('peer' as const),
        l: fc.integer({ min: 0, max: 2 }),
        ps: fc.subarray(names),
      }),
      fc.record({ k: fc.constant('rmP' as const), l: fc.integer({ min: 0, max: 2 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const table = new RoutingTable<number, number>();
        const local = new Map<string, Set<number>>();
        const peers = new Map<number, Set<string>>();
        for (const o of ops) {
          if (o.k === 'add') {
            table.addLocal(o.p, o.t);
            local.set(o.p, (local.get(o.p) ?? new Set()).add(o.t));
          } else if (o.k === 'rm') {
            table.removeLocal(o.p, o.t);
            local.get(o.p)?.delete(o.t);
          } else if (o.k === 'rmT') {
            table.removeTarget(o.t);
            for (const s of local.values()) s.delete(o.t);
          } else if (o.k === 'peer') {
            table.setPeerRoutes(o.l, o.ps);
            peers.set(o.l, new Set(o.ps));
          } else {
            table.removePeer(o.l);
            peers.delete(o.l);
          }
        }
        for (const h of hosts) {
          const wild = h.split('.').length >= 3 ? `*.${h.slice(h.indexOf('.') + 1)}` : undefined;
          const candidates = [h, wild].filter((p): p is string => p !== undefined);
          let expected: { kind: string; pattern: string; members: number[] } | undefined;
          for (const p of candidates) {
            const s = local.get(p);
            if (s && s.size > 0) {
              expected = { kind: 'local', pattern: p, members: [...s] };
              break;
            }
          }
          if (!expected) {
            for (const p of candidates) {
              const links = [...peers].filter(([, ps]) => ps.has(p)).map(([l]) => l);
              if (links.length > 0) {
                expected = { kind: 'peer', pattern: p, members: links };
                break;
              }
            }
          }
          const got = table.lookup(h);
          if (!expected) {
            expect(got).toBeUndefined();
            continue;
          }
          expect(got?.kind).toBe(expected.kind);
          expect(got?.pattern).toBe(expected.pattern);
          const picked = got?.kind === 'local' ? got.target : got?.kind === 'peer' ? got.linkId : undefined;
          expect(expected.members).toContain(picked);
          if (got?.kind === 'peer') expect([...got.linkIds].sort()).toEqual([...expected.members].sort());
        }
      }),
    );
  });
});

describe('RoutingTable.resolve: the one routing decision', () => {
  const table = (): RoutingTable<string> => {
    const t = new RoutingTable<string>();
    t.addLocal('app.example.com', 'exact-backend', 2);
    t.addLocal('*.example.com', 'wild-backend');
    t.setPeerRoutes('link-1', ['far.example.org', '*.peers.example.org']);
    t.setPeerRoutes('link-2', ['far.example.org']);
    return t;
  };

  it.each([
    ['an exact local name', 'APP.example.com.', 'local', 'app.example.com', 'app.example.com', false],
    ['a local wildcard', 'x.example.com', 'local', 'x.example.com', '*.example.com', true],
    ['an exact peer name', 'far.example.org', 'peer', 'far.example.org', 'far.example.org', false],
    ['a peer wildcard', 'y.peers.example.org', 'peer', 'y.peers.example.org', '*.peers.example.org', true],
  ] as const)(
    'answers %s with its kind, the normalised name and the pattern that matched',
    (_n, name, kind, hostname, pattern, wildcard) => {
      expect(table().resolve(name)).toMatchObject({ kind, hostname, pattern, wildcard });
    },
  );

  it('hands out the live local pool without picking from it', () => {
    const t = table();
    const route = t.resolve('app.example.com');
    expect(route.kind).toBe('local');
    if (route.kind !== 'local') return;
    expect(route.pool).toBe(t.localPool('app.example.com'));
    expect(route.pool.stats().members).toEqual([
      expect.objectContaining({ target: 'exact-backend', weight: 2 }),
    ]);
    // Deciding did not move the rotation: the pool's next pick is the same as a lookup's.
    expect(route.pool.pick()).toBe('exact-backend');
  });

  it('gives peer links in rotation order, one turn per decision', () => {
    const t = table();
    const first = t.resolve('far.example.org');
    const second = t.resolve('far.example.org');
    expect(first).toMatchObject({ kind: 'peer', linkIds: ['link-1', 'link-2'] });
    expect(second).toMatchObject({ kind: 'peer', linkIds: ['link-2', 'link-1'] });
  });

  it.each([
    ['a name nobody serves', 'nobody.example.net', 'nobody.example.net', 'no-route'],
    ['two labels under a wildcard', 'a.b.example.com', 'a.b.example.com', 'no-route'],
    ['the wildcard suffix itself', 'EXAMPLE.com', 'example.com', 'no-route'],
    ['an invalid name', 'exa mple.com', 'exa mple.com', 'invalid-hostname'],
    ['an empty label', 'a..example.com', 'a..example.com', 'invalid-hostname'],
  ] as const)('answers %s with no route and a reason', (_n, name, hostname, reason) => {
    expect(table().resolve(name)).toEqual({ kind: 'none', hostname, reason });
  });

  it('prefers a local wildcard over a peer exact name (docs/protocol.md §3.3 order)', () => {
    const t = table();
    t.setPeerRoutes('link-3', ['x.example.com']);
    expect(t.resolve('x.example.com')).toMatchObject({ kind: 'local', pattern: '*.example.com' });
    t.removeTarget('wild-backend');
    expect(t.resolve('x.example.com')).toMatchObject({
      kind: 'peer',
      pattern: 'x.example.com',
      linkIds: ['link-3'],
    });
  });

  it('lists peer routes with the number of links announcing each', () => {
    expect(table().peerRoutes()).toEqual([
      { pattern: '*.peers.example.org', links: 1 },
      { pattern: 'far.example.org', links: 2 },
    ]);
  });
});

describe('RoutingTable.addLocalMany at scale', () => {
  /** Patterns handed to the local-pattern listener while a backend with n names registers. */
  const delivered = (n: number): { notifications: number; patterns: number } => {
    const table = new RoutingTable<string>();
    const seen = { notifications: 0, patterns: 0 };
    table.subscribeLocalPatterns((p) => {
      seen.notifications++;
      seen.patterns += p.length;
    });
    const names = Array.from({ length: n }, (_, i) => `h${i}.scale.example.com`);
    const { registered, invalid } = table.addLocalMany([...names, 'not a name'], 'backend');
    expect(registered).toHaveLength(n);
    expect(invalid).toEqual(['not a name']);
    expect(table.resolve(names[n - 1]!).kind).toBe('local');
    return seen;
  };

  it('notifies once per backend, so the work grows linearly with its names (1 000 vs 4 000)', () => {
    const small = delivered(1_000);
    const large = delivered(4_000);
    expect(small).toEqual({ notifications: 1, patterns: 1_000 });
    expect(large).toEqual({ notifications: 1, patterns: 4_000 });
  });
});

describe('RoutingTable route deltas (docs/protocol.md §2.6)', () => {
  it('tells change listeners only what appeared and disappeared', () => {
    const table = new RoutingTable<string>();
    const changes: Array<{ added: readonly string[]; removed: readonly string[] }> = [];
    table.subscribeLocalChanges((c) => changes.push(c));
    table.addLocalMany(['A.example.com', '*.w.example.com', 'bad name'], 'one');
    table.addLocal('a.example.com', 'two'); // a second backend: no change
    table.removeTarget('one'); // a.example.com keeps 'two'
    table.removeLocal('a.example.com', 'two');
    expect(changes).toEqual([
      { added: ['a.example.com', '*.w.example.com'], removed: [] },
      { added: [], removed: ['*.w.example.com'] },
      { added: [], removed: ['a.example.com'] },
    ]);
  });

  it('adds and removes a link’s routes one by one, keeping the link under its cap', () => {
    const table = new RoutingTable<string>();
    table.setPeerRoutes('l1', ['a.example.com']);
    expect(
      table.addPeerRoutes('l1', ['b.example.com', 'a.example.com', '*.w.example.com', 'x y'], 3),
    ).toEqual({
      added: 2,
      truncated: 0,
    });
    expect(table.addPeerRoutes('l1', ['c.example.com'], 3)).toEqual({ added: 0, truncated: 1 });
    expect(table.peerPatterns('l1')).toEqual(['*.w.example.com', 'a.example.com', 'b.example.com']);
    expect(table.resolve('z.w.example.com')).toMatchObject({ kind: 'peer', linkIds: ['l1'] });
    expect(table.removePeerRoutes('l1', ['a.example.com', 'nope.example.com', '*.w.example.com'])).toBe(2);
    expect(table.resolve('z.w.example.com').kind).toBe('none');
    expect(table.peerPatterns('l1')).toEqual(['b.example.com']);
    table.addPeerRoutes('l2', ['b.example.com']);
    expect(table.peerRoutes()).toEqual([{ pattern: 'b.example.com', links: 2 }]);
    table.removePeerRoutes('l1', ['b.example.com']);
    expect(table.stats()).toMatchObject({ peerPatterns: 1, peerLinks: 1 });
  });
});
