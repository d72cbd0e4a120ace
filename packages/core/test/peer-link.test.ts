import { EventEmitter, once } from 'node:events';
import { decodeTunnelFrame, encodeTunnelFrame } from '@nexus-proxy/mux-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
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

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
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

describe('peer link keepalive while the link itself holds reads paused', () => {
  it('does not drop a link it paused for a slow tunnel reader, and still detects a dead one after', () => {
    vi.useFakeTimers();
    const ws = new FakeWebSocket();
    const link = new PeerLink(ws as unknown as WebSocket, {
      id: 'out-1',
      direction: 'outbound',
      peer: 'wss://b.mesh.example.com/mesh',
      keepaliveIntervalMs: 1_000,
      keepaliveTimeoutMs: 3_000,
    });
    const closes: string[] = [];
    link.on('close', (r) => closes.push(r));
    const tunnel = link.tunnels.open({
      connPort: 443,
      clientIp: '192.0.2.1:1234',
      hostname: 'app.example.com',
      isTls: true,
    })!;
    // A reference destination that never grants (§2.4: credits are opt-in) answers with 4 MiB; the end
    // user behind the tunnel does not read yet, so the link pauses its reads.
    for (let i = 0; i < 128; i++) {
      const frame = encodeTunnelFrame({
        type: 'tunnel-data',
        tunnelId: tunnel.id,
        payload: Buffer.alloc(32_768, i),
      });
      ws.emit('message', Buffer.from(frame), true);
    }
    expect(ws.paused).toBe(true);
    // Paused by us: the peer's pongs cannot be read, which is not the peer's fault.
    vi.advanceTimersByTime(10_000);
    expect(closes).toEqual([]);
    expect(link.closed).toBe(false);
    // The reader catches up: reads resume, and from then on a silent peer is detected again.
    let bytes = 0;
    for (let chunk = tunnel.read(); chunk !== null; chunk = tunnel.read()) bytes += (chunk as Buffer).length;
    expect(bytes).toBe(128 * 32_768);
    expect(ws.paused).toBe(false);
    vi.advanceTimersByTime(3_000);
    expect(closes).toEqual(['keepalive_timeout']);
  });
});

describe('peer link close reason', () => {
  it('fits a multi-byte reason into the 123-byte close frame instead of throwing', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())));
    await once(wss, 'listening');
    const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`);
    client.on('error', () => {});
    cleanups.push(() => client.terminate());
    const [[server]] = await Promise.all([accepted, once(client, 'open')]);
    const link = new PeerLink(server, { id: 'in-1', direction: 'inbound', peer: 'b.mesh.example.com' });
    const gotClose = new Promise<{ code: number; reason: Buffer }>((r) =>
      client.once('close', (code, reason) => r({ code, reason })),
    );
    // 100 × 'é' is 200 bytes of UTF-8 but only 100 UTF-16 units.
    expect(() => link.close('é'.repeat(100))).not.toThrow();
    const { code, reason } = await gotClose;
    expect(code).toBe(1001);
    expect(reason.length).toBeLessThanOrEqual(123);
    expect(reason.toString('utf8')).toBe('é'.repeat(61));
  });
});
