import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { fitNames, splitNames } from '../src/mesh-announce.js';
import { LinkPairs } from '../src/mesh-pairs.js';
import type { PeerLink } from '../src/peer-link.js';

/** Just what LinkPairs reads of a link. */
function link(direction: 'inbound' | 'outbound', local: string, remote: string): PeerLink & { end(): void } {
  const l = Object.assign(new EventEmitter(), {
    direction,
    closed: false,
    localFingerprint: local,
    remoteFingerprint: remote,
    end() {
      l.closed = true;
      l.emit('close', 'closed_by_peer');
    },
  });
  return l as unknown as PeerLink & { end(): void };
}

describe('LinkPairs (one link per pair, docs/protocol.md §2.6)', () => {
  it('gives up this node’s outbound link only when it has the larger identity', () => {
    // This node presents AA, the peer BB: this node is smaller, so its own dialled link stays.
    const small = new LinkPairs('e1');
    expect(small.add(link('outbound', 'AA', 'BB'), 'e2')).toBeUndefined();
    expect(small.add(link('inbound', 'AA', 'BB'), 'e2')).toBeUndefined();
    // The peer's view of the same two links: it gives up its outbound one and keeps its inbound one.
    const large = new LinkPairs('e2');
    const out = link('outbound', 'BB', 'AA');
    const inbound = link('inbound', 'BB', 'AA');
    expect(large.add(out, 'e1')).toBeUndefined();
    expect(large.add(inbound, 'e1')).toEqual({ close: out, keep: inbound });
  });

  it('tells nodes sharing one certificate apart by their epochs', () => {
    const a = new LinkPairs('0001');
    a.add(link('inbound', 'CC', 'CC'), '0002');
    expect(a.add(link('outbound', 'CC', 'CC'), '0002')).toBeUndefined();
    const b = new LinkPairs('0002');
    const out = link('outbound', 'CC', 'CC');
    b.add(out, '0001');
    expect(b.add(link('inbound', 'CC', 'CC'), '0001')).toMatchObject({ close: out });
    // A third node with the same certificate is another peer: no pair with the first.
    expect(b.add(link('inbound', 'CC', 'CC'), '0003')).toBeUndefined();
  });

  it('never pairs two links of one direction, links without fingerprints, or a link that ended', () => {
    const pairs = new LinkPairs('ff');
    expect(pairs.add(link('outbound', 'AA', 'BB'), '00')).toBeUndefined();
    expect(pairs.add(link('outbound', 'AA', 'BB'), '00')).toBeUndefined(); // a URL listed twice
    const unsigned = link('inbound', 'AA', 'BB');
    Object.assign(unsigned, { remoteFingerprint: undefined });
    expect(pairs.add(unsigned, '00')).toBeUndefined();

    const fresh = new LinkPairs('ff');
    const out = link('outbound', 'AA', 'BB');
    fresh.add(out, '00');
    out.end();
    expect(fresh.add(link('inbound', 'AA', 'BB'), '00')).toBeUndefined();
  });
});

describe('splitting names at a message limit', () => {
  it('fits and splits by the bytes each name takes in a JSON list', () => {
    const names = ['a.example.com', 'bb.example.com', 'ccc.example.com']; // 16, 17, 18 bytes with quotes and comma
    expect(fitNames(names, 33)).toBe(2);
    expect(fitNames(names, 32)).toBe(1);
    expect(fitNames(names, 1_000)).toBe(3);
    expect(splitNames(names, 33)).toEqual([['a.example.com', 'bb.example.com'], ['ccc.example.com']]);
    expect(splitNames([], 33)).toEqual([[]]);
    // A name larger than the budget still goes, alone.
    expect(splitNames(names, 5)).toEqual([['a.example.com'], ['bb.example.com'], ['ccc.example.com']]);
  });
});
