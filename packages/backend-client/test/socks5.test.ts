/**
 * The SOCKS5 listener's parts on real loopback sockets: the RFC 1928 handshake (methods, CONNECT, the
 * three address types, optimistic data, every refusal and its reply code, the deadline), the reply for
 * each way a request fails, and the listener's bounds.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { noopLogger } from '@nexus-proxy/common';
import { type MuxSession, MuxProtocolError } from '@nexus-proxy/mux-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveBackendClientOptions } from '../src/client-options.js';
import { InvalidOptionsError, Socks5Error } from '../src/errors.js';
import {
  Socks5Reply,
  type Socks5Request,
  socks5Handshake,
  socks5TargetAddr,
} from '../src/socks5-handshake.js';
import { parseSocks5ListenAddr, Socks5Listener, socks5ReplyFor } from '../src/socks5-listener.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A connected pair: `client` dials `server`'s accepted socket. */
async function pair(): Promise<{ client: Socket; server: Socket }> {
  const listener: Server = createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const accepted = once(listener, 'connection');
  const client = connect((listener.address() as { port: number }).port, '127.0.0.1');
  client.on('error', () => {});
  const [server] = (await accepted) as [Socket];
  server.on('error', () => {});
  cleanups.push(() => {
    client.destroy();
    server.destroy();
    listener.close();
  });
  await once(client, 'connect').catch(() => {});
  return { client, server };
}

/** Everything `socket` receives until it closes (or `bytes` arrived). */
function receive(socket: Socket, bytes = Number.POSITIVE_INFINITY): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = () => resolve(Buffer.concat(chunks));
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      length += c.length;
      if (length >= bytes) done();
    });
    socket.once('close', done);
  });
}

const GREETING = Buffer.from([5, 1, 0]);
const request = (atypAndAddress: number[], port: number, command = 1) =>
  Buffer.from([5, command, 0, ...atypAndAddress, port >> 8, port & 0xff]);

async function handshake(
  bytes: Buffer[],
  timeoutMs = 10_000,
): Promise<{ result: Socks5Request | Socks5Error; sent: Buffer; server: Socket; client: Socket }> {
  const { client, server } = await pair();
  const sent = receive(client, 2);
  const result = socks5Handshake(server, timeoutMs).catch((e: Socks5Error) => e);
  for (const b of bytes) {
    client.write(b);
    await new Promise((r) => setImmediate(r));
  }
  return { result: await result, sent: await sent, server, client };
}

describe('socks5Handshake', () => {
  it('reads a CONNECT for an IPv4 address, an IPv6 address and a domain name', async () => {
    const v4 = await handshake([Buffer.concat([GREETING, request([1, 127, 0, 0, 1], 8080)])]);
    expect(v4.result).toEqual({ host: '127.0.0.1', port: 8080, kind: 'ipv4' });
    expect(v4.sent).toEqual(Buffer.from([5, 0]));
    const v6 = await handshake([
      GREETING,
      request([4, 0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1], 443),
    ]);
    expect(v6.result).toEqual({ host: '2001:db8::1', port: 443, kind: 'ipv6' });
    expect(socks5TargetAddr(v6.result as Socks5Request)).toBe('[2001:db8::1]:443');
    const name = Buffer.from('example.com');
    const domain = await handshake([GREETING, request([3, name.length, ...name], 80)]);
    expect(domain.result).toEqual({ host: 'example.com', port: 80, kind: 'domain' });
    expect(socks5TargetAddr(domain.result as Socks5Request)).toBe('example.com:80');
  });

  it('reads a handshake that arrives one byte at a time, and keeps data sent after the request', async () => {
    const all = Buffer.concat([GREETING, request([1, 10, 0, 0, 1], 22), Buffer.from('SSH-2.0-early\r\n')]);
    const { result, server } = await handshake([...all].map((b) => Buffer.from([b])));
    expect(result).toEqual({ host: '10.0.0.1', port: 22, kind: 'ipv4' });
    const early = receive(server, 15);
    server.resume();
    expect((await early).toString()).toBe('SSH-2.0-early\r\n');
  });

  it('answers an unsupported command with 0x07 and an unsupported address type with 0x08', async () => {
    for (const [bytes, code] of [
      [request([1, 127, 0, 0, 1], 80, 0x02), Socks5Reply.CommandNotSupported],
      [request([1, 127, 0, 0, 1], 80, 0x03), Socks5Reply.CommandNotSupported],
      [Buffer.from([5, 1, 0, 0x05, 1, 2, 3, 4, 0, 80]), Socks5Reply.AddressTypeNotSupported],
    ] as const) {
      const { client, server } = await pair();
      const got = receive(client);
      const result = socks5Handshake(server, 10_000).catch((e: Socks5Error) => e);
      client.write(Buffer.concat([GREETING, bytes]));
      const error = await result;
      expect(error).toBeInstanceOf(Socks5Error);
      expect((error as Socks5Error).reply).toBe(code);
      expect([...(await got)]).toEqual([5, 0, 5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
  });

  it('refuses a client without "no authentication" (0xFF), another protocol, and an empty name', async () => {
    const auth = await handshake([Buffer.from([5, 1, 2])]);
    expect(auth.result).toBeInstanceOf(Socks5Error);
    expect(auth.sent).toEqual(Buffer.from([5, 0xff]));
    const socks4 = await handshake([Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0])]);
    expect((socks4.result as Socks5Error).code).toBe('NEXUS_ERR_SOCKS5');
    expect(socks4.sent.length).toBe(0);
    const empty = await handshake([GREETING, request([3, 0], 80)]);
    expect((empty.result as Socks5Error).reply).toBe(Socks5Reply.GeneralFailure);
  });

  it('gives up on a client that does not finish within the deadline, or leaves', async () => {
    const slow = await handshake([GREETING], 100);
    expect((slow.result as Socks5Error).message).toMatch(/within 100 ms/);
    expect(slow.server.destroyed).toBe(true);
    const { client, server } = await pair();
    const result = socks5Handshake(server, 10_000).catch((e: Socks5Error) => e);
    client.end(Buffer.from([5]));
    expect(((await result) as Socks5Error).message).toMatch(/left/);
  });
});

describe('SOCKS5 replies and options', () => {
  it('maps the outcome of a request to its reply code', () => {
    const refused = (reason: string) => new MuxProtocolError('MUX_ERR_OUTBOUND_REFUSED', reason);
    expect(socks5ReplyFor(refused('target address not allowed (loopback)'))).toBe(0x02);
    expect(socks5ReplyFor(refused('outbound port 25 not allowed by server'))).toBe(0x02);
    expect(socks5ReplyFor(refused('outbound connections disabled on this proxy'))).toBe(0x02);
    expect(socks5ReplyFor(refused('dial failed'))).toBe(0x05);
    expect(socks5ReplyFor(refused('outbound connection limit exceeded'))).toBe(0x05);
    expect(socks5ReplyFor(new MuxProtocolError('MUX_ERR_OUTBOUND_TIMEOUT'))).toBe(0x01);
    expect(socks5ReplyFor(new MuxProtocolError('MUX_ERR_CLOSED'))).toBe(0x01);
    expect(socks5ReplyFor(new Socks5Error('not connected to the node'))).toBe(0x01);
  });

  it('reads socks5ListenAddr as host:port and refuses anything else', () => {
    expect(parseSocks5ListenAddr('127.0.0.1:1080', 'x')).toEqual({ host: '127.0.0.1', port: 1080 });
    expect(parseSocks5ListenAddr('[::1]:0', 'x')).toEqual({ host: '::1', port: 0 });
    expect(parseSocks5ListenAddr(':1080', 'x')).toEqual({ host: '', port: 1080 });
    for (const bad of ['127.0.0.1', '127.0.0.1:99999', 'a:b', 1080]) {
      expect(() => parseSocks5ListenAddr(bad, 'socks5ListenAddr')).toThrow(InvalidOptionsError);
    }
    const base = { nodes: ['n:8443'], token: 't', connectHandler: () => undefined };
    expect(
      resolveBackendClientOptions({ ...base, socks5ListenAddr: '127.0.0.1:1080' }).socks5ListenAddr,
    ).toEqual({
      host: '127.0.0.1',
      port: 1080,
    });
    expect(() => resolveBackendClientOptions({ ...base, socks5ListenAddr: 'nope' })).toThrow(
      /socks5ListenAddr/,
    );
  });
});

describe('Socks5Listener', () => {
  async function listener(
    session: () => MuxSession | undefined,
    extra: { maxHandshakes?: number; maxConnections?: number } = {},
  ): Promise<{ listener: Socks5Listener; port: number }> {
    const l = new Socks5Listener({
      listen: { host: '127.0.0.1', port: 0 },
      session,
      logger: noopLogger,
      ...extra,
    });
    cleanups.push(() => l.close());
    const address = await l.start();
    return { listener: l, port: address!.port };
  }

  async function ask(port: number): Promise<number[]> {
    const client = connect(port, '127.0.0.1');
    client.on('error', () => {});
    cleanups.push(() => {
      client.destroy();
    });
    const got = receive(client);
    client.write(Buffer.concat([GREETING, request([1, 127, 0, 0, 1], 80)]));
    return [...(await got)];
  }

  it('answers 0x01 without a session, and the reply for what the node answered', async () => {
    const none = await listener(() => undefined);
    expect(await ask(none.port)).toEqual([5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(none.listener.stats()).toMatchObject({ accepted: 0, failed: { 1: 1 } });
    let asked: string | undefined;
    const refusing = {
      openOutbound: (target: string) => {
        asked = target;
        return Promise.reject(new MuxProtocolError('MUX_ERR_OUTBOUND_REFUSED', 'dial failed'));
      },
    } as unknown as MuxSession;
    const refused = await listener(() => refusing);
    expect(await ask(refused.port)).toEqual([5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(asked).toBe('127.0.0.1:80');
  });

  it('bounds handshakes in progress: past the limit a connection is dropped at once', async () => {
    const { listener: l, port } = await listener(() => undefined, { maxHandshakes: 2 });
    const idle: Socket[] = [];
    for (let i = 0; i < 2; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      idle.push(s);
      cleanups.push(() => {
        s.destroy();
      });
      await once(s, 'connect');
    }
    await new Promise((r) => setTimeout(r, 50));
    const third = connect(port, '127.0.0.1');
    third.on('error', () => {});
    cleanups.push(() => {
      third.destroy();
    });
    await once(third, 'close');
    expect(l.stats()).toMatchObject({ connections: 2, dropped: 1 });
  });

  it('retries an address in use until it is free, and close() stops it', async () => {
    const holder = createServer();
    holder.listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const port = (holder.address() as { port: number }).port;
    const l = new Socks5Listener({
      listen: { host: '127.0.0.1', port },
      session: () => undefined,
      logger: noopLogger,
    });
    cleanups.push(() => l.close());
    const started = l.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(l.address).toBeUndefined();
    await new Promise<void>((r) => holder.close(() => r()));
    expect((await started)?.port).toBe(port);
    await l.close();
    const probe = connect(port, '127.0.0.1');
    const [err] = (await once(probe, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');
  });
});
