/**
 * Links opened on demand (docs/mesh.md "Discovery on NATS"): one dial shared by concurrent tunnels, no
 * redial for a moment after a failure, the idle close (fake clock and timers).
 */
import { recordingLogger } from '@nexus-proxy/test-harness';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ON_DEMAND_REDIAL_AFTER_MS, OnDemandLinks } from '../src/mesh-discovery-links.js';
import type { PeerLink } from '../src/peer-link.js';

const URL_B = 'wss://b.mesh.example.com:8444/mesh';
const route = {
  kind: 'peer' as const,
  hostname: 'app.example.com',
  pattern: 'app.example.com',
  wildcard: false,
  linkIds: ['in-1', 'discovery:b'],
};

function fakeLink() {
  const link = {
    closed: false,
    tunnelCount: 0,
    closeReason: undefined as string | undefined,
    tunnels: { stats: () => ({ tunnels: link.tunnelCount }) },
    close(reason: string) {
      link.closed = true;
      link.closeReason = reason;
    },
  };
  return link;
}

describe('OnDemandLinks', () => {
  let now = 0;
  beforeEach(() => {
    vi.useFakeTimers();
    now = 0;
  });
  afterEach(() => vi.useRealTimers());

  function links(dial: (url: string) => Promise<PeerLink | undefined>) {
    return new OnDemandLinks({
      dial,
      urlOf: (key) => (key === 'discovery:b' ? URL_B : undefined),
      idleMs: 1_000,
      log: recordingLogger([], 'info'),
      now: () => now,
    });
  }

  it('shares one dial between concurrent tunnels and hands the link out by route key', async () => {
    const link = fakeLink();
    const dial = vi.fn(async () => link as unknown as PeerLink);
    const l = links(dial);
    await Promise.all([l.connect(route), l.connect(route)]);
    expect(dial).toHaveBeenCalledTimes(1);
    expect(dial).toHaveBeenCalledWith(URL_B);
    expect(l.linkFor('discovery:b')).toBe(link);
    expect(l.linkFor('in-1')).toBeUndefined();
    expect(l.connect({ ...route, linkIds: ['in-1'] })).toBeUndefined();
    l.close();
  });

  it('does not redial a node for a moment after its dial failed', async () => {
    const dial = vi.fn(async () => undefined);
    const l = links(dial);
    await l.connect(route);
    expect(l.connect(route)).toBeUndefined();
    now += ON_DEMAND_REDIAL_AFTER_MS;
    await l.connect(route);
    expect(dial).toHaveBeenCalledTimes(2);
    l.close();
  });

  it('closes a link that carried no tunnel for the idle time, not one that carries tunnels', async () => {
    const link = fakeLink();
    const l = links(async () => link as unknown as PeerLink);
    await l.connect(route);
    link.tunnelCount = 1;
    now += 5_000;
    vi.advanceTimersByTime(5_000);
    expect(link.closed).toBe(false);
    link.tunnelCount = 0;
    vi.advanceTimersByTime(250); // the sweep sees it idle from here
    now += 999;
    vi.advanceTimersByTime(250);
    expect(link.closed).toBe(false);
    now += 1;
    vi.advanceTimersByTime(250);
    expect(link.closeReason).toBe('idle');
    expect(l.size).toBe(0);
    l.close();
  });
});
