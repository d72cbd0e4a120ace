import { EventEmitter } from 'node:events';
import { decodeTunnelFrame } from '@nexus-proxy/mux-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { PeerLink } from '../src/peer-link.js';

/** Just enough of a `ws` WebSocket for a PeerLink. */
class FakeWebSocket extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  pings = 0;
  paused = false;
  readonly sent: { data: unknown; binary: boolean }[] = [];
  send(data: unknown, options: { binary?: boolean }, cb?: () => void): void {
    this.sent.push({ data, binary: options.binary === true });
    cb?.();
  }
  ping(): void {
    this.pings++;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  close(code: number, reason: string): void {
    this.readyState = 3;
    this.emit('close', code, Buffer.from(reason));
  }
  terminate(): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.emit('close', 1006, Buffer.alloc(0));
  }
  text(value: unknown): void {
    this.emit('message', Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), false);
  }
}

function link(options: { intervalMs?: number; timeoutMs?: number } = {}) {
  const ws = new FakeWebSocket();
  const l = new PeerLink(ws as unknown as WebSocket, {
    id: 'in-1',
    direction: 'inbound',
    peer: 'b.mesh.example.com',
    keepaliveIntervalMs: options.intervalMs ?? 1_000,
    keepaliveTimeoutMs: options.timeoutMs ?? 3_000,
  });
  return { ws, l };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('PeerLink keepalive', () => {
  it('pings every interval and drops a silent peer at the deadline', () => {
    vi.useFakeTimers();
    const { ws, l } = link();
    const closes: string[] = [];
    l.on('close', (r) => closes.push(r));
    vi.advanceTimersByTime(1_000);
    expect(ws.pings).toBe(1);
    vi.advanceTimersByTime(1_000);
    expect(ws.pings).toBe(2);
    expect(l.closed).toBe(false);
    vi.advanceTimersByTime(1_000); // 3 s without a pong or message
    expect(closes).toEqual(['keepalive_timeout']);
    expect(ws.readyState).toBe(3);
    vi.advanceTimersByTime(10_000);
    expect(ws.pings).toBe(2);
  });

  it('stays up while pongs or messages arrive', () => {
    vi.useFakeTimers();
    const { ws, l } = link();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(1_000);
      if (i % 2 === 0) ws.emit('pong');
      else ws.text({ type: 'announce', version: i, hostnames: [] });
    }
    expect(l.closed).toBe(false);
    expect(ws.pings).toBe(10);
    l.close();
  });
});

describe('PeerLink messages', () => {
  it('accepts announces with newer versions only', () => {
    const { ws, l } = link({ intervalMs: 0 });
    const seen: number[] = [];
    l.on('announce', (m) => seen.push(m.version));
    ws.text({ version: 5, type: 'announce', hostnames: ['a.example.com'] });
    ws.text({ version: 5, type: 'announce', hostnames: [] });
    ws.text({ version: 3, type: 'announce', hostnames: [] });
    ws.text({ version: 6, type: 'announce', hostnames: [] });
    expect(seen).toEqual([5, 6]);
    expect(l.staleAnnounces).toBe(2);
    expect(l.lastAnnounceVersion).toBe(6);
  });

  it('emits tunnel requests and ignores malformed or unknown text without closing', () => {
    const { ws, l } = link({ intervalMs: 0 });
    const requests: string[] = [];
    l.on('tunnel-request', (m) => requests.push(m.hostname));
    ws.text('not json');
    ws.text({ type: 'tunnel_request', client_id: 'nope' });
    ws.text({ type: 'something_new' });
    ws.text({
      type: 'tunnel_request',
      client_id: '0b5d1c1e-7f6a-4d2b-9c3e-123456789abc',
      hostname: 'app.example.com',
      conn_port: 443,
    });
    expect(requests).toEqual(['app.example.com']);
    expect(l.closed).toBe(false);
  });

  it('sends announces as text in the reference field order', () => {
    const { ws, l } = link({ intervalMs: 0 });
    l.sendAnnounce(7, ['*.example.com', 'a.example.com']);
    expect(ws.sent[0]).toEqual({
      data: '{"version":7,"type":"announce","hostnames":["*.example.com","a.example.com"],"client_id":"00000000-0000-0000-0000-000000000000"}',
      binary: false,
    });
  });

  it('closes its tunnels when the socket closes, once', () => {
    const { ws, l } = link({ intervalMs: 0 });
    const t = l.tunnels.open({
      connPort: 443,
      clientIp: '127.0.0.1:1',
      hostname: 'a.example.com',
      isTls: true,
    })!;
    expect(ws.sent.map((s) => s.binary)).toEqual([false, true]);
    expect(decodeTunnelFrame(ws.sent[1]!.data as Uint8Array)).toMatchObject({
      ok: true,
      value: { type: 'tunnel-credits' },
    });
    const closes: string[] = [];
    l.on('close', (r) => closes.push(r));
    ws.terminate();
    ws.terminate();
    expect(closes).toEqual(['connection_lost']);
    expect(t.closeReason).toBe('connection_lost');
    expect(l.tunnels.closed).toBe(true);
  });
});
