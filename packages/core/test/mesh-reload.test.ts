/**
 * The setters a configuration reload uses, without sockets: `PeerMesh.setPeers` / `setTrust` /
 * `setKeepalive` / `setIdleTimeout`, `PeerLink.setKeepalive` and the settable `SniffBudget.limit`.
 * The live behaviour through whole nodes is in `integration/nexus-reload-mesh.test.ts`.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { createSelfSignedCertificate } from '../src/certificates.js';
import { InvalidConfigError } from '../src/errors.js';
import { HubTlsContext } from '../src/hub-tls.js';
import { PeerMesh } from '../src/mesh.js';
import { PeerLink } from '../src/peer-link.js';
import { RoutingTable } from '../src/routing-table.js';
import { SniffBudget } from '../src/sniff-connection.js';

async function mesh(peers: string[] = []) {
  const tls = new HubTlsContext(await createSelfSignedCertificate({ dnsNames: ['a.mesh.example.com'] }));
  return new PeerMesh({
    routes: new RoutingTable<string>(),
    tls,
    trustedDomainSuffixes: ['.mesh.example.com'],
    systemCa: false,
    peers,
  });
}

/** Just enough of a `ws` WebSocket for a PeerLink. */
class FakeWebSocket extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  pings = 0;
  send(_data: unknown, _options: unknown, cb?: () => void): void {
    cb?.();
  }
  ping(): void {
    this.pings++;
  }
  pause(): void {}
  resume(): void {}
  close(code: number, reason: string): void {
    this.readyState = 3;
    this.emit('close', code, Buffer.from(reason));
  }
  terminate(): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.emit('close', 1006, Buffer.alloc(0));
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('PeerMesh.setPeers', () => {
  it('normalises the new list and keeps a URL listed twice as two dialers', async () => {
    const m = await mesh(['wss://b.mesh.example.com:8444/mesh']);
    m.setPeers(['wss://C.mesh.example.com:8444/mesh', 'wss://c.mesh.example.com:8444/mesh']);
    expect(m.peers).toEqual(['wss://c.mesh.example.com:8444/mesh', 'wss://c.mesh.example.com:8444/mesh']);
    m.setPeers(['wss://c.mesh.example.com:8444/mesh']);
    expect(m.peers).toEqual(['wss://c.mesh.example.com:8444/mesh']);
    await m.close();
  });

  it('throws InvalidConfigError naming the entry and keeps the old list', async () => {
    const m = await mesh(['wss://b.mesh.example.com:8444/mesh']);
    try {
      m.setPeers(['wss://c.mesh.example.com:8444/mesh', 'ws://d.mesh.example.com:8444/mesh']);
      expect.unreachable();
    } catch (err) {
      expect(InvalidConfigError.is(err)).toBe(true);
      expect(err).toMatchObject({ path: 'peers[1]' });
    }
    expect(m.peers).toEqual(['wss://b.mesh.example.com:8444/mesh']);
    await m.close();
  });
});

describe('PeerMesh.setTrust', () => {
  it('replaces the suffixes, and keeps them when the new ones are invalid', async () => {
    const m = await mesh();
    m.setTrust({ trustedDomainSuffixes: ['.eu.mesh.example.com', 'other.example.net'] });
    expect(m.trustedDomainSuffixes).toEqual(['eu.mesh.example.com', 'other.example.net']);
    expect(() => m.setTrust({ trustedDomainSuffixes: ['.com'] })).toThrow(InvalidConfigError);
    expect(() => m.setTrust({ trustedDomainSuffixes: [] })).toThrow(InvalidConfigError);
    expect(m.trustedDomainSuffixes).toEqual(['eu.mesh.example.com', 'other.example.net']);
    await m.close();
  });

  it('rejects a CA that is not a certificate and keeps the old trust', async () => {
    const m = await mesh();
    const bad = '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----';
    expect(() => m.setTrust({ trustedDomainSuffixes: ['x.example.net'], ca: bad })).toThrow(
      /not a valid PEM certificate/,
    );
    expect(m.trustedDomainSuffixes).toEqual(['mesh.example.com']);
    await m.close();
  });
});

describe('PeerMesh.setKeepalive / setIdleTimeout', () => {
  it('rejects negative values', async () => {
    const m = await mesh();
    expect(() => m.setKeepalive({ keepaliveIntervalMs: -1 })).toThrow(/keepaliveIntervalMs/);
    expect(() => m.setKeepalive({ keepaliveTimeoutMs: Number.NaN })).toThrow(/keepaliveTimeoutMs/);
    expect(() => m.setIdleTimeout(-5)).toThrow(/idleTimeoutMs/);
    await m.close();
  });
});

describe('PeerLink.setKeepalive', () => {
  const link = () => {
    const ws = new FakeWebSocket();
    const l = new PeerLink(ws as unknown as WebSocket, {
      id: 'out-1',
      direction: 'outbound',
      peer: 'wss://b.mesh.example.com:8444/mesh',
      keepaliveIntervalMs: 10_000,
      keepaliveTimeoutMs: 30_000,
    });
    const closes: string[] = [];
    l.on('close', (r) => closes.push(r));
    return { ws, l, closes };
  };

  it('restarts the ping timer with the new interval and applies the new deadline', () => {
    vi.useFakeTimers();
    const { ws, l, closes } = link();
    vi.advanceTimersByTime(5_000);
    l.setKeepalive({ intervalMs: 1_000, timeoutMs: 8_000 });
    vi.advanceTimersByTime(1_000);
    expect(ws.pings).toBe(1);
    vi.advanceTimersByTime(1_000);
    expect(ws.pings).toBe(2);
    // Silent since t=0: the new 8 s deadline (not the old 30 s) drops it at t=8 s.
    vi.advanceTimersByTime(2_000);
    expect(closes).toEqual(['keepalive_timeout']);
  });

  it('stops pinging with interval 0, and keeps an omitted field', () => {
    vi.useFakeTimers();
    const { ws, l, closes } = link();
    l.setKeepalive({ intervalMs: 0 });
    vi.advanceTimersByTime(60_000);
    expect(ws.pings).toBe(0);
    expect(closes).toEqual([]); // without ticks, the deadline is not checked either
    ws.emit('pong'); // life: the first tick must ping, not drop the link
    l.setKeepalive({ intervalMs: 10_000 });
    vi.advanceTimersByTime(10_000);
    expect(ws.pings).toBe(1);
    expect(closes).toEqual([]);
    l.close();
  });
});

describe('SniffBudget.limit', () => {
  it('can be lowered below the active count (nothing is cut, new slots are refused) and raised', () => {
    const budget = new SniffBudget(3);
    const take = () => budget.acquire('192.0.2.1', () => {});
    const slots = [take(), take(), take()];
    expect(slots.every((s) => s !== undefined)).toBe(true);
    budget.limit = 1;
    expect(budget.active).toBe(3);
    slots[0]?.release();
    slots[1]?.release();
    expect(take()).toBeUndefined(); // still 1 active = the new limit
    budget.limit = 2;
    expect(take()).toBeDefined();
    expect(budget.active).toBe(2);
  });

  it('throws RangeError for a limit that is not an integer ≥ 1 and keeps the old one', () => {
    const budget = new SniffBudget(4);
    expect(() => {
      budget.limit = 0;
    }).toThrow(RangeError);
    expect(() => {
      budget.limit = 1.5;
    }).toThrow(RangeError);
    expect(budget.limit).toBe(4);
  });
});
