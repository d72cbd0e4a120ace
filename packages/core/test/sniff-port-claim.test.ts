/**
 * TCP port claims at the sniff (docs/edge.md "TCP port claims"): a connection that yields no name goes to
 * the port's claim when there is one — a ClientHello without SNI (isTls), another protocol, or a client
 * that sends nothing and waits for a banner (at the first-byte deadline) — with every byte read in the
 * prelude; without a claim the rule stays "no name → close"; a name still wins.
 */
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { clientHello } from '@nexus-proxy/test-harness';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type SniffResult, sniffConnection } from '../src/sniff-connection.js';

function fakeSocket(): Socket & PassThrough {
  const s = new PassThrough() as unknown as Socket & PassThrough;
  (s as unknown as { setNoDelay: () => void }).setNoDelay = () => {};
  return s;
}

function track(p: Promise<SniffResult>): { result: () => SniffResult | undefined } {
  let result: SniffResult | undefined;
  void p.then((r) => {
    result = r;
  });
  return { result: () => result };
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const claimed = () => 'tcp:443';

describe('sniffConnection with a TCP port claim', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('routes a ClientHello without SNI to the claim, as TLS, prelude whole', async () => {
    const socket = fakeSocket();
    const hello = clientHello(undefined);
    const result = sniffConnection(socket, { mode: 'tls', portClaim: claimed });
    socket.write(hello);
    const r = await result;
    expect(r).toMatchObject({ ok: true, sniffed: { hostname: 'tcp:443', isTls: true, portClaim: true } });
    expect(r.ok && r.sniffed.prelude.equals(hello)).toBe(true);
    expect(socket.destroyed).toBe(false);
  });

  it('routes another protocol (an SSH banner) to the claim, not as TLS', async () => {
    const socket = fakeSocket();
    const result = sniffConnection(socket, { mode: 'tls', portClaim: claimed });
    socket.write('SSH-2.0-OpenSSH_9.6\r\n');
    const r = await result;
    expect(r).toMatchObject({ ok: true, sniffed: { hostname: 'tcp:443', isTls: false, portClaim: true } });
    expect(r.ok && r.sniffed.prelude.toString()).toBe('SSH-2.0-OpenSSH_9.6\r\n');
  });

  it('routes a silent client to the claim at the first-byte deadline, with an empty prelude', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const socket = fakeSocket();
    const t = track(sniffConnection(socket, { mode: 'http', portClaim: () => 'tcp:143' }));
    await vi.advanceTimersByTimeAsync(14_999);
    expect(t.result()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await tick();
    expect(t.result()).toMatchObject({
      ok: true,
      sniffed: { hostname: 'tcp:143', isTls: false, portClaim: true },
    });
    const r = t.result();
    expect(r?.ok && r.sniffed.prelude.length).toBe(0);
    expect(socket.destroyed).toBe(false);
  });

  it('a name still wins, and without a claim no name still closes', async () => {
    const named = fakeSocket();
    const withName = sniffConnection(named, { mode: 'tls', portClaim: claimed });
    named.write(clientHello('app.example.com'));
    const r = await withName;
    expect(r).toMatchObject({ ok: true, sniffed: { hostname: 'app.example.com' } });
    expect(r.ok && r.sniffed.portClaim).toBeUndefined();

    const unclaimed = fakeSocket();
    const noClaim = sniffConnection(unclaimed, { mode: 'tls', portClaim: () => undefined });
    unclaimed.write(clientHello(undefined));
    expect(await noClaim).toMatchObject({ ok: false, reason: 'no-sni' });
    expect(unclaimed.destroyed).toBe(true);
  });

  it('never takes over an oversized prelude or a closed client', async () => {
    const big = fakeSocket();
    const tooLarge = sniffConnection(big, {
      mode: 'http',
      limits: { maxHttpHeadBytes: 512 },
      portClaim: claimed,
    });
    big.write(`GET / HTTP/1.1\r\nX: ${'a'.repeat(600)}`);
    expect(await tooLarge).toMatchObject({ ok: false, reason: 'too-large' });

    const closing = fakeSocket();
    const closed = sniffConnection(closing, { mode: 'tls', portClaim: claimed });
    closing.end();
    expect(await closed).toMatchObject({ ok: false, reason: 'client-closed' });
  });
});
