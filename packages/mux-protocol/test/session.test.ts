import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import {
  type ConnectMessage,
  encodeControlMessage,
  encodeDataFrame,
  MuxProtocolError,
  MuxSession,
  type MuxStream,
} from '../src/index.js';
import { createFakeSession } from './suites/fake-transport.js';
import { createMemoryPair, runSessionSuite } from './suites/session.suite.js';

runSessionSuite('an in-memory transport', createMemoryPair);

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };

function connect(id: string, credits?: number): ConnectMessage {
  const message: ConnectMessage = {
    event: 'connect',
    client_id: id,
    conn_port: 80,
    client_ip: '198.51.100.2:4000',
    hostname: 'app.example.com',
    is_tls: false,
  };
  if (credits !== undefined) message.credits = credits;
  return message;
}

describe('MuxSession (hub role)', () => {
  it('sends connect with the end-user fields and its receive window as credits', () => {
    const { session, controls } = createFakeSession({ role: 'hub', initialWindow: 32 });
    const stream = session.openStream({ ...OPEN, transport: 'udp' });
    expect(controls()).toEqual([
      {
        event: 'connect',
        client_id: stream.id,
        conn_port: 443,
        client_ip: '203.0.113.7:50000',
        hostname: 'app.example.com',
        is_tls: true,
        transport: 'udp',
        credits: 32,
      },
    ]);
    expect(stream.hostname).toBe('app.example.com');
    expect(session.getStream(stream.id)).toBe(stream);
  });

  it('throws MUX_ERR_TOO_MANY_STREAMS at maxStreams and accepts again once a stream is gone', () => {
    const { session } = createFakeSession({ role: 'hub', maxStreams: 2 });
    const a = session.openStream(OPEN);
    session.openStream(OPEN);
    let error: unknown;
    try {
      session.openStream(OPEN);
    } catch (e) {
      error = e;
    }
    expect(MuxProtocolError.is(error)).toBe(true);
    expect((error as MuxProtocolError).code).toBe('MUX_ERR_TOO_MANY_STREAMS');
    a.destroy();
    expect(() => session.openStream(OPEN)).not.toThrow();
  });

  it('refuses openStream on the backend role and invalid options', () => {
    expect(() => createFakeSession({ role: 'backend' }).session.openStream(OPEN)).toThrow(TypeError);
    expect(() => createFakeSession({ role: 'hub', initialWindow: 4, grantBatch: 8 })).toThrow(RangeError);
    expect(() => createFakeSession({ role: 'hub', initialWindow: 0 })).toThrow(RangeError);
  });

  it('sends unmetered until the first grant, which also pays for the frames already sent', () => {
    const { session, control, dataFrames } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    expect(stream.sendWindow).toBe(Number.POSITIVE_INFINITY);
    expect(stream.sendMetered).toBe(false);
    stream.write(randomBytes(5 * 32_768));
    expect(dataFrames()).toHaveLength(5);
    control({ event: 'resume_stream', client_id: stream.id, credits: 8 });
    expect(stream.sendMetered).toBe(true);
    expect(stream.sendWindow).toBe(3);
    let called = false;
    stream.write(randomBytes(10 * 32_768), () => {
      called = true;
    });
    expect(dataFrames()).toHaveLength(8);
    expect(stream.sendWindow).toBe(0);
    expect(stream.writableNeedDrain).toBe(true);
    control({ event: 'resume_stream', client_id: stream.id, credits: 8 });
    expect(dataFrames()).toHaveLength(15);
    expect(called).toBe(true);
  });

  it('holds a new stream to the window the backend granted before, once it is known to grant', () => {
    const { session, control, dataFrames } = createFakeSession({ role: 'hub' });
    const first = session.openStream(OPEN);
    control({ event: 'resume_stream', client_id: first.id, credits: 4 });
    const second = session.openStream(OPEN);
    expect(second.sendWindow).toBe(4);
    second.write(randomBytes(6 * 32_768));
    expect(dataFrames().filter((f) => f.id === second.id)).toHaveLength(4);
    control({ event: 'resume_stream', client_id: second.id, credits: 4 });
    expect(dataFrames().filter((f) => f.id === second.id)).toHaveLength(4); // the initial grant is the same 4
    control({ event: 'resume_stream', client_id: second.id, credits: 2 });
    expect(dataFrames().filter((f) => f.id === second.id)).toHaveLength(6);
  });

  it('clamps a huge grant to 2^20 frames of balance', () => {
    const { session, control } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    control({ event: 'resume_stream', client_id: stream.id, credits: 2 ** 40 });
    expect(stream.sendWindow).toBe(2 ** 20);
  });

  it('holds sending on pause_stream and resumes on resume_stream without credits', () => {
    const { session, control, dataFrames } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    control({ event: 'pause_stream', client_id: stream.id, reason: 'buffer_full' });
    stream.write(Buffer.from('held'));
    expect(dataFrames()).toHaveLength(0);
    control({ event: 'resume_stream', client_id: stream.id });
    expect(dataFrames().map((f) => f.payload.toString())).toEqual(['held']);
  });

  it('answers ping_client with pong_client only while it knows the stream', () => {
    const { session, control, controls, clear } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    clear();
    control({ event: 'ping_client', client_id: stream.id });
    control({ event: 'ping_client', client_id: randomUUID() });
    expect(controls()).toEqual([{ event: 'pong_client', client_id: stream.id }]);
    stream.destroy();
    clear();
    control({ event: 'ping_client', client_id: stream.id });
    expect(controls()).toEqual([]);
  });

  it('grants credits to a backend that meters (after its first grant) in batches of 8 as frames are read', () => {
    const { session, control, controls, data, clear } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    control({ event: 'resume_stream', client_id: stream.id, credits: 64 });
    clear();
    stream.resume();
    for (let i = 0; i < 7; i++) data(stream.id, Buffer.from('x'));
    expect(controls()).toEqual([]);
    data(stream.id, Buffer.from('x'));
    expect(controls()).toEqual([{ event: 'resume_stream', client_id: stream.id, credits: 8 }]);
  });

  it('disconnects a stream whose backend sends past its window, and keeps the session', () => {
    const { session, control, controls, data, clear } = createFakeSession({
      role: 'hub',
      initialWindow: 4,
      grantBatch: 2,
    });
    const errors: MuxProtocolError[] = [];
    session.on('protocol-error', (e) => errors.push(e));
    const bad = session.openStream(OPEN);
    const good = session.openStream(OPEN);
    const streamErrors: Error[] = [];
    bad.on('error', (e) => streamErrors.push(e));
    control({ event: 'resume_stream', client_id: bad.id, credits: 64 });
    clear();
    // Nobody reads `bad`, so no credit comes back: the fifth frame is one too many.
    for (let i = 0; i < 5; i++) data(bad.id, Buffer.alloc(32_768));
    expect(errors.map((e) => e.code)).toEqual(['MUX_ERR_CREDIT_OVERRUN']);
    expect(controls()).toEqual([{ event: 'disconnect', client_id: bad.id, reason: 'protocol_error' }]);
    expect(bad.destroyed).toBe(true);
    expect(bad.closeReason).toBe('protocol_error');
    expect(session.closed).toBe(false);
    expect(session.getStream(good.id)).toBe(good);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect((streamErrors[0] as MuxProtocolError).code).toBe('MUX_ERR_CREDIT_OVERRUN');
        resolve();
      }),
    );
  });

  it('treats a backend that never grants as v1: no grants, transport paused while the reader lags', () => {
    const fake = createFakeSession({ role: 'hub', initialWindow: 4, grantBatch: 2 });
    const { session, controls, data, clear } = fake;
    const errors: MuxProtocolError[] = [];
    session.on('protocol-error', (e) => errors.push(e));
    const stream = session.openStream(OPEN);
    clear();
    for (let i = 0; i < 10; i++) data(stream.id, Buffer.alloc(32_768));
    expect(errors).toEqual([]);
    expect(controls()).toEqual([]); // never a resume_stream toward a v1 backend
    expect(fake.pauses).toBe(1);
    expect(session.stats().transportPaused).toBe(true);
    expect(stream.receiveWindow).toBeUndefined();
    stream.read(); // the consumer takes data: _read() resumes the transport
    expect(fake.resumes).toBe(1);
    expect(session.stats().transportPaused).toBe(false);
    expect(stream.bytesRead).toBe(10 * 32_768);
  });

  it('sends grants held back while probing once the backend proves it meters', () => {
    const { session, control, controls, data, clear } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    stream.resume();
    clear();
    for (let i = 0; i < 10; i++) data(stream.id, Buffer.from('x'));
    expect(controls()).toEqual([]);
    control({ event: 'resume_stream', client_id: stream.id, credits: 64 });
    expect(controls()).toEqual([{ event: 'resume_stream', client_id: stream.id, credits: 10 }]);
  });

  it('ignores a connect sent to a hub', () => {
    const warn = vi.fn();
    const logger = { debug: vi.fn(), info: vi.fn(), warn, error: vi.fn() };
    const { session, control, sent } = createFakeSession({ role: 'hub', logger });
    control(connect(randomUUID(), 64));
    expect(session.streamCount).toBe(0);
    expect(sent).toHaveLength(0);
    expect(warn).toHaveBeenCalled();
  });
});

describe('MuxSession (backend role)', () => {
  it('grants its window on a connect with credits before emitting the stream', () => {
    const { session, control, sent } = createFakeSession({ role: 'backend', initialWindow: 16 });
    const id = randomUUID();
    let seen: { stream: MuxStream; connect: ConnectMessage; sentBefore: number } | undefined;
    session.on('stream', (stream, message) => {
      seen = { stream, connect: message, sentBefore: sent.length };
    });
    control(connect(id, 64));
    expect(seen?.sentBefore).toBe(1);
    expect(Buffer.from(sent[0]!).toString()).toBe(
      Buffer.from(encodeControlMessage({ event: 'resume_stream', client_id: id, credits: 16 })).toString(),
    );
    expect(seen?.stream.id).toBe(id);
    expect(seen?.connect.credits).toBe(64);
    expect(seen?.stream.sendWindow).toBe(64);
    expect(seen?.stream.sendMetered).toBe(true);
  });

  it('never sends credits on a stream whose connect had none, and sends unmetered', () => {
    const { session, control, controls, data, dataFrames } = createFakeSession({ role: 'backend' });
    const id = randomUUID();
    let stream: MuxStream | undefined;
    session.on('stream', (s) => {
      stream = s;
    });
    control(connect(id));
    stream!.resume();
    for (let i = 0; i < 100; i++) data(id, Buffer.from('x'));
    // A stray grant does not switch the stream to metering either.
    control({ event: 'resume_stream', client_id: id, credits: 1 });
    stream!.write(randomBytes(10 * 32_768));
    expect(controls()).toEqual([]);
    expect(dataFrames()).toHaveLength(10);
    expect(stream!.sendWindow).toBe(Number.POSITIVE_INFINITY);
  });

  it('stops at the hub grant and continues on resume_stream credits', () => {
    const { session, control, dataFrames } = createFakeSession({ role: 'backend' });
    const id = randomUUID();
    let stream: MuxStream | undefined;
    session.on('stream', (s) => {
      stream = s;
    });
    control(connect(id, 2));
    stream!.write(randomBytes(5 * 32_768));
    expect(dataFrames()).toHaveLength(2);
    control({ event: 'resume_stream', client_id: id, credits: 8 });
    expect(dataFrames()).toHaveLength(5);
  });

  it('answers disconnect{too_many_streams} to a connect beyond maxStreams', () => {
    const { session, control, controls, clear } = createFakeSession({ role: 'backend', maxStreams: 1 });
    const streams: MuxStream[] = [];
    session.on('stream', (s) => streams.push(s));
    control(connect(randomUUID(), 64));
    clear();
    const refused = randomUUID();
    control(connect(refused, 64));
    expect(streams).toHaveLength(1);
    expect(controls()).toEqual([{ event: 'disconnect', client_id: refused, reason: 'too_many_streams' }]);
    expect(session.streamCount).toBe(1);
  });

  it('refuses a stream nobody listens for, and reports a duplicate connect', () => {
    const { session, control, controls } = createFakeSession({ role: 'backend' });
    const id = randomUUID();
    control(connect(id, 64));
    expect(controls()).toEqual([{ event: 'disconnect', client_id: id, reason: 'local_error' }]);
    const errors: MuxProtocolError[] = [];
    session.on('protocol-error', (e) => errors.push(e));
    session.on('stream', () => {});
    const dup = randomUUID();
    control(connect(dup, 64));
    control(connect(dup, 64));
    expect(errors.map((e) => e.code)).toEqual(['MUX_ERR_INVALID_CONTROL']);
    expect(session.streamCount).toBe(1);
  });

  it('accepts a hub running past the window before our grant reached it, without pausing the transport', () => {
    const fake = createFakeSession({
      role: 'backend',
      initialWindow: 4,
      grantBatch: 2,
      unmeteredAllowance: 8,
    });
    const { session, control, data } = fake;
    const errors: MuxProtocolError[] = [];
    session.on('protocol-error', (e) => errors.push(e));
    let stream: MuxStream | undefined;
    session.on('stream', (s) => {
      stream = s;
    });
    const id = randomUUID();
    control(connect(id, 64));
    for (let i = 0; i < 12; i++) data(id, Buffer.alloc(32_768));
    expect(errors).toEqual([]);
    expect(fake.pauses).toBe(0);
    expect(stream!.receiveWindow).toBe(-8);
    stream!.on('error', () => {});
    fake.clear();
    data(id, Buffer.alloc(32_768)); // past window + allowance: an over-send, the stream is closed
    expect(errors.map((e) => e.code)).toEqual(['MUX_ERR_CREDIT_OVERRUN']);
    expect(fake.controls()).toEqual([{ event: 'disconnect', client_id: id, reason: 'protocol_error' }]);
    expect(stream!.closeReason).toBe('protocol_error');
    expect(fake.pauses).toBe(0);
    expect(stream!.bytesRead).toBe(12 * 32_768);
  });
});

describe('MuxSession edge cases', () => {
  it('survives a double disconnect, data after disconnect and a disconnect for an unknown id', () => {
    const { session, control, controls, data, clear } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    const ends: string[] = [];
    stream.on('end', () => ends.push('end'));
    stream.resume();
    clear();
    expect(() => {
      control({ event: 'disconnect', client_id: stream.id, reason: 'normal' });
      control({ event: 'disconnect', client_id: stream.id, reason: 'normal' });
      data(stream.id, Buffer.from('late'));
      data(stream.id, Buffer.from('later'));
      control({ event: 'disconnect', client_id: randomUUID() });
      control({ event: 'resume_stream', client_id: stream.id, credits: 8 });
      control({ event: 'pause_stream', client_id: stream.id });
    }).not.toThrow();
    // Late data for a stream we know just closed is dropped without an answer.
    expect(controls()).toEqual([]);
    expect(stream.bytesRead).toBe(0);
    expect(session.stats().unknownStreamFrames).toBe(2);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(ends).toEqual(['end']);
        resolve();
      }),
    );
  });

  it('answers unknown stream ids once per id and at most maxUnknownStreamReplies per second', () => {
    let now = 10_000;
    const { controls, data } = createFakeSession({
      role: 'backend',
      maxUnknownStreamReplies: 3,
      now: () => now,
    });
    const ids = Array.from({ length: 5 }, () => randomUUID());
    for (const id of ids) {
      data(id, Buffer.from('x'));
      data(id, Buffer.from('y'));
    }
    data(randomUUID(), new Uint8Array(0)); // an empty payload means nothing: no answer
    expect(controls()).toEqual(
      ids.slice(0, 3).map((id) => ({ event: 'disconnect', client_id: id, reason: 'unknown' })),
    );
    now += 1000;
    const later = randomUUID();
    data(later, Buffer.from('x'));
    expect(controls().at(-1)).toEqual({ event: 'disconnect', client_id: later, reason: 'unknown' });
  });

  it('reports malformed messages as protocol errors and carries on', () => {
    const warn = vi.fn();
    const logger = { debug: vi.fn(), info: vi.fn(), warn, error: vi.fn() };
    const { session, data } = createFakeSession({ role: 'hub', logger });
    const errors: MuxProtocolError[] = [];
    session.on('protocol-error', (e) => errors.push(e));
    const stream = session.openStream(OPEN);
    stream.on('error', () => {});
    session.receive(new Uint8Array(0)); // ignored
    session.receive(Uint8Array.of(0x01, 1, 2, 3)); // DATA shorter than 17 bytes
    session.receive(Buffer.from('\x02{not json'));
    session.receive(Buffer.from('\x02{"event":"bind_request","client_id":"x"}')); // unknown event: logged
    session.receive(Uint8Array.of(0x7f, 0, 0)); // unknown frame type: logged
    expect(errors.map((e) => e.code)).toEqual(['MUX_ERR_MALFORMED_FRAME', 'MUX_ERR_INVALID_CONTROL']);
    expect(warn).toHaveBeenCalledTimes(2);
    data(stream.id, Buffer.from('still fine'));
    expect(stream.bytesRead).toBe(10);
    // An oversize DATA frame cannot be dropped silently: its stream is disconnected.
    const oversize = Buffer.alloc(17 + 40_000);
    oversize.set(encodeDataFrame(stream.id, Buffer.alloc(0)));
    session.receive(oversize);
    expect(errors.at(-1)?.code).toBe('MUX_ERR_FRAME_TOO_LARGE');
    expect(stream.destroyed).toBe(true);
    expect(session.closed).toBe(false);
  });

  it('holds DATA while the transport is over its high-water mark and resumes streams round-robin', () => {
    const { session, setBuffered, dataFrames, clear } = createFakeSession({
      role: 'hub',
      highWaterMark: 100,
    });
    const streams = [session.openStream(OPEN), session.openStream(OPEN), session.openStream(OPEN)];
    clear();
    setBuffered(1000);
    for (const s of streams) s.write(randomBytes(3 * 32_768));
    expect(dataFrames()).toHaveLength(0);
    expect(session.stats().queuedStreams).toBe(3);
    setBuffered(0);
    session.transportDrained();
    const order = dataFrames().map((f) => streams.findIndex((s) => s.id === f.id));
    expect(order).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
  });

  it('also serves waiting DATA when a message arrives and the transport has room (missed drain)', () => {
    const { session, setBuffered, dataFrames, control } = createFakeSession({
      role: 'hub',
      highWaterMark: 100,
    });
    const stream = session.openStream(OPEN);
    setBuffered(1000);
    stream.write(Buffer.from('waiting'));
    setBuffered(0);
    control({ event: 'ping_client', client_id: stream.id });
    expect(dataFrames().map((f) => f.payload.toString())).toEqual(['waiting']);
  });

  it('close() ends every stream, releases held writes, sends nothing and ignores later input', async () => {
    const { session, control, sent, data } = createFakeSession({ role: 'hub' });
    const a = session.openStream(OPEN);
    const b = session.openStream(OPEN);
    data(a.id, Buffer.from('buffered'));
    control({ event: 'resume_stream', client_id: b.id, credits: 1 });
    const held = new Promise<void>((resolve) => b.write(randomBytes(100_000), () => resolve()));
    const before = sent.length;
    const reasons: string[] = [];
    session.on('close', (r) => reasons.push(r));
    session.close('shutdown');
    session.close();
    await held;
    data(a.id, Buffer.from('after'));
    expect(sent.length).toBe(before);
    expect(reasons).toEqual(['shutdown']);
    expect(session.closeReason).toBe('shutdown');
    const chunks: Buffer[] = [];
    a.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((resolve) => a.once('end', resolve));
    expect(Buffer.concat(chunks).toString()).toBe('buffered');
    expect(a.closeReason).toBe('shutdown');
    expect(b.closeReason).toBe('shutdown');
    expect(() => session.openStream(OPEN)).toThrow(MuxProtocolError);
  });

  it('counts frames and bytes in stats()', () => {
    const { session, data, control } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    stream.write(randomBytes(40_000));
    data(stream.id, Buffer.alloc(1000));
    control({ event: 'ping_client', client_id: stream.id });
    expect(session.stats()).toMatchObject({
      role: 'hub',
      streams: 1,
      streamsOpened: 1,
      dataFramesSent: 2,
      bytesSent: 40_000,
      dataFramesReceived: 1,
      bytesReceived: 1000,
      controlMessagesSent: 2,
      controlMessagesReceived: 1,
    });
    expect(stream.bytesWritten).toBe(40_000);
    expect(stream.bytesRead).toBe(1000);
  });

  it('keeps working over a plain Uint8Array message (not a Buffer)', () => {
    const { session } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    const frame = new Uint8Array(encodeDataFrame(stream.id, Buffer.from('plain')));
    session.receive(frame);
    expect(stream.read()?.toString()).toBe('plain');
  });

  it('is constructed without a logger or pause callbacks', () => {
    const session = new MuxSession({ role: 'backend', transport: { send() {}, bufferedAmount: 0 } });
    expect(session.streamCount).toBe(0);
    session.close();
    expect(session.stats().closed).toBe(true);
  });
});
