/**
 * Outbound connections on a backend session (docs/protocol.md §1.4): `outbound_connect` from the backend,
 * `outbound_result` from the hub, and the stream that follows a success.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MuxProtocolError, type MuxStream, type OutboundConnectMessage } from '../src/index.js';
import { createFakeSession } from './suites/fake-transport.js';
import { createMemoryPair, sha256 } from './suites/session.suite.js';

async function rejection(promise: Promise<unknown>): Promise<MuxProtocolError> {
  try {
    await promise;
  } catch (err) {
    expect(MuxProtocolError.is(err)).toBe(true);
    return err as MuxProtocolError;
  }
  throw new Error('expected a rejection');
}

afterEach(() => {
  vi.useRealTimers();
});

describe('MuxSession outbound (hub role)', () => {
  it('hands outbound_connect to its listener and answers a success before any DATA of the stream', () => {
    const { session, control, controls, sent } = createFakeSession({ role: 'hub', initialWindow: 32 });
    const requests: OutboundConnectMessage[] = [];
    session.on('outbound-connect', (r) => requests.push(r));
    const id = randomUUID();
    control({ event: 'outbound_connect', client_id: id, target_addr: 'example.com:443' });
    expect(requests).toEqual([{ event: 'outbound_connect', client_id: id, target_addr: 'example.com:443' }]);

    const stream = session.acceptOutbound(id, 'example.com:443');
    stream.write(Buffer.from('hello'));
    expect(controls()).toEqual([{ event: 'outbound_result', client_id: id, success: true, credits: 32 }]);
    // The result is the first message about the stream, its DATA after it.
    expect(sent[0]?.[0]).toBe(0x02);
    expect(sent.slice(1).map((m) => m[0])).toEqual([0x01]);
    expect(stream.id).toBe(id);
    expect(stream.hostname).toBe('example.com:443');
    expect(session.getStream(id)).toBe(stream);
  });

  it('refuses with outbound_result{success:false, reason}, and at once without a listener', () => {
    const { session, control, controls } = createFakeSession({ role: 'hub' });
    const a = randomUUID();
    control({ event: 'outbound_connect', client_id: a, target_addr: 'example.com:25' });
    expect(controls()).toEqual([
      {
        event: 'outbound_result',
        client_id: a,
        success: false,
        reason: 'outbound connections disabled on this proxy',
      },
    ]);
    session.refuseOutbound(a, 'outbound port 25 not allowed by server');
    expect(controls()[1]).toEqual({
      event: 'outbound_result',
      client_id: a,
      success: false,
      reason: 'outbound port 25 not allowed by server',
    });
  });

  it('will not accept an id that is open already, nor past maxStreams', () => {
    const { session } = createFakeSession({ role: 'hub', maxStreams: 1 });
    const stream = session.openStream({ connPort: 443, clientIp: '', hostname: 'a.example', isTls: true });
    expect(() => session.acceptOutbound(stream.id, 'x:1')).toThrow(MuxProtocolError);
    let error: unknown;
    try {
      session.acceptOutbound(randomUUID(), 'x:1');
    } catch (err) {
      error = err;
    }
    expect((error as MuxProtocolError).code).toBe('MUX_ERR_TOO_MANY_STREAMS');
  });

  it('ignores outbound_result sent to a hub and outbound_connect sent to a backend', () => {
    const hub = createFakeSession({ role: 'hub' });
    hub.control({ event: 'outbound_result', client_id: randomUUID(), success: true, credits: 64 });
    expect(hub.sent).toHaveLength(0);
    expect(hub.session.streamCount).toBe(0);
    const backend = createFakeSession({ role: 'backend' });
    backend.control({ event: 'outbound_connect', client_id: randomUUID(), target_addr: 'a:1' });
    expect(backend.sent).toHaveLength(0);
  });
});

describe('MuxSession outbound (backend role)', () => {
  it('sends outbound_connect and on success meters with the credits and grants before its DATA', async () => {
    const { session, controls, control, sent } = createFakeSession({ role: 'backend' });
    const opening = session.openOutbound('example.com:443', { timeoutMs: 15_000 });
    const [request] = controls();
    expect(request).toMatchObject({ event: 'outbound_connect', target_addr: 'example.com:443' });
    expect(session.pendingOutbound).toBe(1);
    const id = request!.client_id;
    control({ event: 'outbound_result', client_id: id, success: true, credits: 2 });
    const stream = await opening;
    expect(session.pendingOutbound).toBe(0);
    expect(stream.id).toBe(id);
    expect(stream.sendMetered).toBe(true);
    expect(stream.sendWindow).toBe(2);
    stream.write(randomBytes(3 * 16_384));
    await new Promise((r) => setImmediate(r));
    // Our grant first, then only as many DATA frames as the hub granted.
    expect(controls()[1]).toEqual({ event: 'resume_stream', client_id: id, credits: 64 });
    expect(sent.filter((m) => m[0] === 0x01)).toHaveLength(2);
  });

  it("rejects with MUX_ERR_OUTBOUND_REFUSED and the hub's reason", async () => {
    const { session, controls, control } = createFakeSession({ role: 'backend' });
    const opening = session.openOutbound('10.0.0.1:22', { timeoutMs: 15_000 });
    const id = controls()[0]!.client_id;
    control({ event: 'outbound_result', client_id: id, success: false, reason: 'dial failed' });
    const error = await rejection(opening);
    expect(error.code).toBe('MUX_ERR_OUTBOUND_REFUSED');
    expect(error.message).toBe('dial failed');
    expect(session.streamCount).toBe(0);
  });

  it('times out, and closes a success that comes too late with disconnect', async () => {
    vi.useFakeTimers();
    const { session, controls, control } = createFakeSession({ role: 'backend' });
    const opening = session.openOutbound('example.com:80', { timeoutMs: 15_000 });
    const id = controls()[0]!.client_id;
    vi.advanceTimersByTime(14_999);
    expect(session.pendingOutbound).toBe(1);
    vi.advanceTimersByTime(1);
    expect((await rejection(opening)).code).toBe('MUX_ERR_OUTBOUND_TIMEOUT');
    control({ event: 'outbound_result', client_id: id, success: true, credits: 64 });
    expect(controls()[1]).toEqual({ event: 'disconnect', client_id: id, reason: 'unknown' });
    expect(session.streamCount).toBe(0);
  });

  it('gives up on abort, and rejects every pending request when the session closes', async () => {
    const { session } = createFakeSession({ role: 'backend' });
    const controller = new AbortController();
    const aborted = session.openOutbound('a.example:1', { timeoutMs: 15_000, signal: controller.signal });
    const closed = session.openOutbound('b.example:2', { timeoutMs: 15_000 });
    controller.abort();
    expect((await rejection(aborted)).code).toBe('MUX_ERR_CLOSED');
    expect(session.pendingOutbound).toBe(1);
    session.close('test');
    expect((await rejection(closed)).code).toBe('MUX_ERR_CLOSED');
    expect((await rejection(session.openOutbound('c:3', { timeoutMs: 1 }))).code).toBe('MUX_ERR_CLOSED');
  });

  it('bounds pending requests (maxPendingOutbound) and counts them against maxStreams', async () => {
    const { session } = createFakeSession({ role: 'backend', maxPendingOutbound: 2, maxStreams: 3 });
    const a = session.openOutbound('a:1', { timeoutMs: 15_000 });
    const b = session.openOutbound('b:1', { timeoutMs: 15_000 });
    expect((await rejection(session.openOutbound('c:1', { timeoutMs: 15_000 }))).code).toBe(
      'MUX_ERR_TOO_MANY_STREAMS',
    );
    session.close('test');
    await Promise.allSettled([a, b]);
    const small = createFakeSession({ role: 'backend', maxStreams: 1 }).session;
    const first = small.openOutbound('a:1', { timeoutMs: 15_000 });
    expect((await rejection(small.openOutbound('b:1', { timeoutMs: 15_000 }))).code).toBe(
      'MUX_ERR_TOO_MANY_STREAMS',
    );
    small.close('test');
    await Promise.allSettled([first]);
  });
});

describe('MuxSession outbound, hub and backend together', () => {
  it('carries 8 MiB each way on an accepted outbound stream, byte-exact', async () => {
    const pair = await createMemoryPair();
    try {
      let hubStream: MuxStream | undefined;
      pair.hub.on('outbound-connect', (request) => {
        hubStream = pair.hub.acceptOutbound(request.client_id, request.target_addr);
      });
      const backendStream = await pair.backend.openOutbound('example.com:443', { timeoutMs: 5_000 });
      expect(hubStream?.id).toBe(backendStream.id);
      const up = randomBytes(8 * 1024 * 1024);
      const down = randomBytes(8 * 1024 * 1024);
      // The wire has no half-close: each side reads the whole transfer before the stream is ended.
      const collect = (s: MuxStream, size: number) =>
        new Promise<Buffer>((resolve) => {
          const chunks: Buffer[] = [];
          let length = 0;
          s.on('data', (c: Buffer) => {
            chunks.push(c);
            length += c.length;
            if (length >= size) resolve(Buffer.concat(chunks));
          });
        });
      const atHub = collect(hubStream!, up.length);
      const atBackend = collect(backendStream, down.length);
      backendStream.write(up);
      hubStream!.write(down);
      const [gotUp, gotDown] = await Promise.all([atHub, atBackend]);
      // The remote side closing (the hub stream's end) reaches the backend as the stream's end.
      const ended = new Promise((resolve) => backendStream.once('end', resolve));
      hubStream!.end();
      await ended;
      expect(backendStream.closeReason).toBe('normal');
      expect(sha256(gotUp)).toBe(sha256(up));
      expect(sha256(gotDown)).toBe(sha256(down));
    } finally {
      await pair.close();
    }
  });
});
