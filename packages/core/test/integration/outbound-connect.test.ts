/**
 * `connectOutbound` on real loopback sockets (docs/edge.md "Outbound address policy"): refused literals and
 * names never reach a socket; a name's refused addresses are dropped and only allowed ones are dialled;
 * the name is resolved once, so what was checked is what is dialled; timeouts and aborts are typed errors.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NexusError, OutboundRefusedError } from '../../src/errors.js';
import { connectOutbound, type OutboundRefusal, type OutboundResolver } from '../../src/outbound-connect.js';
import { OutboundAddressPolicy } from '../../src/outbound-policy.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server on `host` (port 0 or `port`) that records the address each connection arrived at. */
async function server(host: string, port = 0): Promise<{ server: Server; port: number; arrivals: string[] }> {
  const arrivals: string[] = [];
  const s = createServer((socket: Socket) => {
    arrivals.push(socket.localAddress ?? '');
    socket.end();
  });
  s.listen(port, host);
  await once(s, 'listening');
  cleanups.push(() => new Promise<void>((resolve) => s.close(() => resolve())));
  return { server: s, port: (s.address() as { port: number }).port, arrivals };
}

function track(socket: Socket): Socket {
  cleanups.push(() => {
    socket.destroy();
  });
  return socket;
}

const resolver = (answers: string[][]): OutboundResolver & { calls: number } => {
  const r = async () => {
    const answer = answers[Math.min(r.calls, answers.length - 1)] ?? [];
    r.calls++;
    return answer.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  r.calls = 0;
  return r;
};

describe('connectOutbound', () => {
  it('refuses a loopback literal before any socket exists, and reports it', async () => {
    const target = await server('127.0.0.1');
    const refusals: OutboundRefusal[] = [];
    const err = await connectOutbound({
      host: '127.0.0.1',
      port: target.port,
      policy: new OutboundAddressPolicy(),
      timeoutMs: 2_000,
      onRefused: (r) => refusals.push(r),
    }).catch((e: unknown) => e);
    expect(OutboundRefusedError.is(err)).toBe(true);
    expect(err).toMatchObject({
      code: 'NEXUS_ERR_OUTBOUND_REFUSED',
      reason: 'loopback',
      address: '127.0.0.1',
    });
    expect(refusals).toEqual([{ host: '127.0.0.1', address: '127.0.0.1', reason: 'loopback' }]);
    expect(target.arrivals).toEqual([]);
  });

  it('connects to an address an operator allows', async () => {
    const target = await server('127.0.0.1');
    const socket = track(
      await connectOutbound({
        host: '127.0.0.1',
        port: target.port,
        policy: new OutboundAddressPolicy(['127.0.0.0/8']),
        timeoutMs: 2_000,
      }),
    );
    expect(socket.remotePort).toBe(target.port);
    await once(socket, 'end');
    expect(target.arrivals).toEqual(['127.0.0.1']);
  });

  it('dials only the allowed addresses of a name (the refused ones never see a connection)', async () => {
    const denied = await server('127.0.0.1');
    const allowed = await server('127.0.0.2', denied.port);
    const refusals: OutboundRefusal[] = [];
    const resolve = resolver([['127.0.0.1', '::1', '127.0.0.2']]);
    const socket = track(
      await connectOutbound({
        host: 'service.example',
        port: denied.port,
        policy: new OutboundAddressPolicy(['127.0.0.2/32']),
        timeoutMs: 2_000,
        resolve,
        onRefused: (r) => refusals.push(r),
      }),
    );
    expect(socket.remoteAddress).toBe('127.0.0.2');
    await once(socket, 'end');
    expect(allowed.arrivals).toEqual(['127.0.0.2']);
    expect(denied.arrivals).toEqual([]);
    expect(refusals.map((r) => `${r.address} ${r.reason}`)).toEqual(['127.0.0.1 loopback', '::1 loopback']);
  });

  it('resolves once: a name that rebinds to loopback after the check is still dialled at the checked address', async () => {
    const allowed = await server('127.0.0.2');
    const loop = await server('127.0.0.1', allowed.port);
    const resolve = resolver([['127.0.0.2'], ['127.0.0.1']]);
    const socket = track(
      await connectOutbound({
        host: 'rebind.example',
        port: allowed.port,
        policy: new OutboundAddressPolicy(['127.0.0.2/32']),
        timeoutMs: 2_000,
        resolve,
      }),
    );
    expect(resolve.calls).toBe(1);
    expect(socket.remoteAddress).toBe('127.0.0.2');
    await once(socket, 'end');
    expect(loop.arrivals).toEqual([]);
  });

  it('a name with only refused addresses is refused with the first reason', async () => {
    const target = await server('127.0.0.1');
    const err = await connectOutbound({
      host: 'metadata.example',
      port: target.port,
      policy: new OutboundAddressPolicy(),
      timeoutMs: 2_000,
      resolve: resolver([['169.254.169.254', '127.0.0.1']]),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'NEXUS_ERR_OUTBOUND_REFUSED',
      reason: 'cloud-metadata',
      address: '169.254.169.254',
    });
    expect(target.arrivals).toEqual([]);
  });

  it('resolution failures, refused ports, timeouts and aborts are NEXUS_ERR_OUTBOUND_DIAL', async () => {
    const policy = new OutboundAddressPolicy(['127.0.0.0/8']);
    const failing: OutboundResolver = async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.example'), { code: 'ENOTFOUND' });
    };
    await expect(
      connectOutbound({ host: 'nowhere.example', port: 1, policy, timeoutMs: 2_000, resolve: failing }),
    ).rejects.toMatchObject({ code: 'NEXUS_ERR_OUTBOUND_DIAL' });
    await expect(
      connectOutbound({ host: 'empty.example', port: 1, policy, timeoutMs: 2_000, resolve: resolver([[]]) }),
    ).rejects.toMatchObject({ code: 'NEXUS_ERR_OUTBOUND_DIAL' });
    const closed = await server('127.0.0.1');
    await new Promise<void>((resolve) => closed.server.close(() => resolve()));
    await expect(
      connectOutbound({ host: '127.0.0.1', port: closed.port, policy, timeoutMs: 2_000 }),
    ).rejects.toMatchObject({ code: 'NEXUS_ERR_OUTBOUND_DIAL' });

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const never: OutboundResolver = () => new Promise(() => {});
    const slow = connectOutbound({
      host: 'slow.example',
      port: 1,
      policy,
      timeoutMs: 10_000,
      resolve: never,
    });
    const slowResult = slow.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(10_000);
    const timedOut = await slowResult;
    expect(NexusError.is(timedOut, 'NEXUS_ERR_OUTBOUND_DIAL')).toBe(true);
    expect((timedOut as Error).message).toContain('in time');
    vi.useRealTimers();

    const abort = new AbortController();
    const aborted = connectOutbound({
      host: 'slow.example',
      port: 1,
      policy,
      timeoutMs: 10_000,
      resolve: never,
      signal: abort.signal,
    });
    abort.abort();
    await expect(aborted).rejects.toMatchObject({
      code: 'NEXUS_ERR_OUTBOUND_DIAL',
      message: 'the dial was cancelled',
    });
  });
});
