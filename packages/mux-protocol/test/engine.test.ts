/**
 * The stream engine's contracts: a `MuxStream` driven by any `StreamHost` (no session, no casts), the
 * two framing adapters, and one `StreamEngine` running either wire with the same behaviour.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  backendFraming,
  type ConnectMessage,
  decodeBackendMessage,
  decodeTunnelFrame,
  encodeControlMessage,
  encodeTunnelFrame,
  FrameType,
  MuxStream,
  type MuxStreamInit,
  StreamEngine,
  type StreamFraming,
  type StreamHost,
  tunnelFraming,
} from '../src/index.js';
import { ReadyQueue } from '../src/ready-queue.js';

const ID = '0f1e2d3c-4b5a-4968-8776-655443322110';
const CONNECT: ConnectMessage = {
  event: 'connect',
  client_id: ID,
  conn_port: 443,
  client_ip: '203.0.113.7:50000',
  hostname: 'app.example.com',
  is_tls: true,
};

/** A host that records what the stream asks of it and serves `schedule` at once. */
function recordingHost() {
  const calls: string[] = [];
  const frames: Uint8Array[] = [];
  const grants: number[] = [];
  const host: StreamHost = {
    schedule: (stream) => {
      calls.push('schedule');
      while (stream.sendFrames(1)) {}
    },
    sendData: (frame) => {
      frames.push(frame);
    },
    sendGrant: (_stream, credits) => {
      grants.push(credits);
    },
    sendPing: () => calls.push('ping'),
    disconnect: (stream, reason) => {
      calls.push(`disconnect:${reason}`);
      stream.detach();
    },
    forget: () => calls.push('forget'),
    pauseTransport: () => calls.push('pause'),
    resumeTransport: () => calls.push('resume'),
    countPastWindow: () => true,
    streamProtocolError: (stream, error) => {
      calls.push(`error:${error.code}`);
      stream.detach();
      stream.fail(error);
    },
  };
  return { host, calls, frames, grants };
}

function streamInit(host: StreamHost, overrides: Partial<MuxStreamInit> = {}): MuxStreamInit {
  return {
    id: ID,
    connect: CONNECT,
    host,
    dataFrameType: FrameType.Data,
    sendMetering: { mode: 'metered', credits: 2 },
    receiveMetering: { mode: 'strict' },
    localEnd: 'close',
    receiveWindow: 4,
    grantBatch: 2,
    highWaterMark: 1024,
    ...overrides,
  };
}

describe('MuxStream under any StreamHost (the public contract)', () => {
  it('sends DATA through the host with its own frame type, within its send credits', () => {
    const { host, frames } = recordingHost();
    const stream = new MuxStream(streamInit(host, { dataFrameType: FrameType.TunnelData }));
    stream.write(randomBytes(40_000));
    stream.write(randomBytes(10));
    // Two credits: two frames (32 768 + 7 232 bytes); the second write waits for a grant.
    expect(frames.map((f) => [f[0], f.length - 17])).toEqual([
      [0x11, 32_768],
      [0x11, 7_232],
    ]);
    expect(stream.sendWindow).toBe(0);
    stream.grant(1);
    expect(frames).toHaveLength(3);
    expect(frames[2]!.length - 17).toBe(10);
  });

  it('grants back in batches as the consumer reads, and closes a stream that over-sends (strict)', () => {
    const { host, grants, calls } = recordingHost();
    const stream = new MuxStream(streamInit(host));
    stream.on('error', () => {});
    stream.resume();
    for (let i = 0; i < 4; i++) stream.receiveData(Buffer.from('ab'));
    expect(grants).toEqual([2, 2]);
    expect(stream.receiveWindow).toBe(4);
    for (let i = 0; i < 4; i++) stream.receiveData(Buffer.from('cd'));
    stream.pause();
    for (let i = 0; i < 5; i++) stream.receiveData(Buffer.alloc(600));
    expect(calls).toContain('error:MUX_ERR_CREDIT_OVERRUN');
    expect(stream.closeReason).toBe('protocol_error');
  });

  it("applies its LocalEndBehaviour: 'close' sends the close after the last DATA, 'keep-open' sends nothing", async () => {
    const closing = recordingHost();
    const a = new MuxStream(streamInit(closing.host));
    a.resume();
    a.end(Buffer.from('bye'));
    await once(a, 'finish');
    expect(closing.calls.filter((c) => c.startsWith('disconnect'))).toEqual(['disconnect:normal']);
    expect(closing.frames).toHaveLength(1);

    const holding = recordingHost();
    const b = new MuxStream(streamInit(holding.host, { localEnd: 'keep-open' }));
    b.end(Buffer.from('request'));
    await once(b, 'finish');
    expect(holding.calls.filter((c) => c.startsWith('disconnect'))).toEqual([]);
    b.disconnect('normal');
    expect(holding.calls.filter((c) => c.startsWith('disconnect'))).toEqual(['disconnect:normal']);
  });

  it('under unmetered receive metering pauses the transport when the reader is full, and resumes on read', () => {
    const { host, calls, grants } = recordingHost();
    const stream = new MuxStream(
      streamInit(host, { receiveMetering: { mode: 'unmetered' }, sendMetering: { mode: 'unmetered' } }),
    );
    stream.receiveData(Buffer.alloc(2000));
    expect(calls).toContain('pause');
    expect(stream.receiveWindow).toBeUndefined();
    stream.read();
    expect(calls).toContain('resume');
    expect(grants).toEqual([]);
  });

  it("'on-first-grant' sends at most unmeteredLimit frames, then spends the first grant from frame one", () => {
    const { host, frames } = recordingHost();
    const stream = new MuxStream(
      streamInit(host, { sendMetering: { mode: 'on-first-grant', unmeteredLimit: 2 } }),
    );
    expect(stream.sendMetered).toBe(false);
    stream.write(randomBytes(32_768 * 3));
    expect(frames).toHaveLength(2);
    // The first grant (3) counts from the first frame: one more frame may go.
    stream.grant(3);
    expect(stream.sendMetered).toBe(true);
    expect(frames).toHaveLength(3);
    expect(stream.sendWindow).toBe(0);
  });
});

describe('framing adapters', () => {
  it('backend: a grant is byte-identical to encodeControlMessage(resume_stream)', () => {
    const id = randomUUID();
    for (const credits of [1, 8, 64, 1_048_576]) {
      expect(Buffer.from(backendFraming.encodeGrant(id, credits))).toEqual(
        Buffer.from(encodeControlMessage({ event: 'resume_stream', client_id: id, credits })),
      );
    }
    const close = decodeBackendMessage(backendFraming.encodeClose(id, 'unknown'));
    expect(close.ok && close.value.type === 'control' && close.value.message).toEqual({
      event: 'disconnect',
      client_id: id,
      reason: 'unknown',
    });
  });

  it('backend: decodes control messages into engine events', () => {
    const id = randomUUID();
    const decode = (m: Parameters<typeof encodeControlMessage>[0]) =>
      backendFraming.decode(encodeControlMessage(m), 32_785);
    expect(decode({ event: 'disconnect', client_id: id })).toEqual({ kind: 'close', id, reason: 'normal' });
    expect(decode({ event: 'resume_stream', client_id: id, credits: 8 })).toEqual({
      kind: 'grant',
      id,
      credits: 8,
    });
    expect(decode({ event: 'resume_stream', client_id: id })).toEqual({ kind: 'resume', id });
    expect(decode({ event: 'pause_stream', client_id: id })).toEqual({ kind: 'pause', id });
    expect(decode({ event: 'ping_client', client_id: id })).toMatchObject({ kind: 'message', id });
    expect(backendFraming.decode(Buffer.from([0x02, 0x7b]), 32_785)).toMatchObject({ kind: 'error' });
    expect(backendFraming.encodePing(id)?.[0]).toBe(0x02);
  });

  it('tunnel: 0x15 grants, 0x12 closes, 0x13/0x14 pause and resume; no ping', () => {
    const id = randomUUID();
    const grant = decodeTunnelFrame(tunnelFraming.encodeGrant(id, 64));
    expect(grant.ok && grant.value).toEqual({ type: 'tunnel-credits', tunnelId: id, credits: 64 });
    const close = decodeTunnelFrame(tunnelFraming.encodeClose(id, 'ignored'));
    expect(close.ok && close.value).toEqual({ type: 'tunnel-close', tunnelId: id });
    const decode = (type: 'tunnel-close' | 'tunnel-pause' | 'tunnel-resume') =>
      tunnelFraming.decode(encodeTunnelFrame({ type, tunnelId: id }), 32_785);
    expect(decode('tunnel-close')).toEqual({ kind: 'close', id, reason: 'peer_closed' });
    expect(decode('tunnel-pause')).toEqual({ kind: 'pause', id });
    expect(decode('tunnel-resume')).toEqual({ kind: 'resume', id });
    expect(
      tunnelFraming.decode(encodeTunnelFrame({ type: 'tunnel-credits', tunnelId: id, credits: 0 }), 32_785),
    ).toMatchObject({ kind: 'ignored' });
    expect(tunnelFraming.encodePing(id)).toBeUndefined();
  });
});

/** Two engines on one framing, joined by an in-memory asynchronous link. */
function enginePair(framing: StreamFraming) {
  const sent: Record<'a' | 'b', Uint8Array[]> = { a: [], b: [] };
  let a!: StreamEngine;
  let b!: StreamEngine;
  const link = (from: 'a' | 'b') => ({
    send(message: Uint8Array) {
      sent[from].push(message);
      setImmediate(() => (from === 'a' ? b : a).receive(message));
    },
    bufferedAmount: 0,
  });
  a = new StreamEngine({ framing, transport: link('a'), initialWindow: 4, grantBatch: 2 });
  b = new StreamEngine({ framing, transport: link('b'), initialWindow: 4, grantBatch: 2 });
  const open = (engine: StreamEngine, id: string) =>
    engine.openStream({
      id,
      connect: { ...CONNECT, client_id: id },
      sendMetering: { mode: 'on-first-grant' },
      receiveMetering: { mode: 'lenient', overrunAllowance: 0, onOverrun: 'pause-transport' },
      localEnd: 'keep-open',
      awaitingAnswer: false,
    });
  return { a, b, sent, open };
}

describe.each([
  ['backend', backendFraming],
  ['tunnel', tunnelFraming],
])('StreamEngine with the %s framing', (_name, framing) => {
  it('carries a stream both ways under credits, then closes it on both sides', async () => {
    const { a, b, sent, open } = enginePair(framing);
    const id = randomUUID();
    const sa = open(a, id);
    const sb = open(b, id);
    a.sendInitialGrant(id);
    b.sendInitialGrant(id);
    const data = randomBytes(300_000);
    const received: Buffer[] = [];
    sb.on('data', (chunk: Buffer) => received.push(chunk));
    sa.write(data);
    await new Promise<void>((resolve) => {
      const check = () =>
        received.reduce((n, c) => n + c.length, 0) === data.length ? resolve() : setTimeout(check, 5);
      check();
    });
    expect(Buffer.concat(received).equals(data)).toBe(true);
    // Every DATA frame starts with the framing's type; grants went back in the framing's encoding.
    const frames = sent.a.filter((m) => m[0] === framing.dataFrameType);
    expect(frames.length).toBe(Math.ceil(data.length / 32_768));
    expect(sent.b.some((m) => Buffer.from(m).equals(Buffer.from(framing.encodeGrant(id, 2))))).toBe(true);
    sa.disconnect('normal');
    await once(sb, 'end');
    expect(b.streamCount).toBe(0);
    expect(a.streamCount).toBe(0);
    expect(a.counters().dataFramesSent).toBe(frames.length);
    expect(b.counters().dataFramesReceived).toBe(frames.length);
  });

  it('answers DATA for an unknown id with one close, and drops late frames of a closed id', async () => {
    const { a, sent } = enginePair(framing);
    const id = randomUUID();
    const frame = Buffer.concat([Buffer.from([framing.dataFrameType]), Buffer.alloc(16), Buffer.from('x')]);
    Buffer.from(id.replaceAll('-', ''), 'hex').copy(frame, 1);
    a.receive(frame);
    a.receive(frame);
    expect(sent.a).toHaveLength(1);
    expect(Buffer.from(sent.a[0]!)).toEqual(Buffer.from(framing.encodeClose(id, 'unknown')));
    expect(a.counters().unknownStreamFrames).toBe(2);
  });
});

describe('ReadyQueue', () => {
  it('serves in order, each item once, and skips deleted items', () => {
    const queue = new ReadyQueue<string>();
    for (const item of ['a', 'b', 'c', 'a']) queue.add(item);
    expect(queue.size).toBe(3);
    queue.delete('b');
    queue.add('d');
    queue.add('b');
    const order: string[] = [];
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) order.push(item);
    // 'b' was deleted and queued again: it takes its new place at the back.
    expect(order).toEqual(['a', 'c', 'd', 'b']);
    expect(queue.size).toBe(0);
  });

  it('stays bounded by its members under churn', () => {
    const queue = new ReadyQueue<number>();
    for (let i = 0; i < 10_000; i++) {
      queue.add(i);
      queue.add(i + 1);
      expect(queue.shift()).toBe(i);
      queue.delete(i + 1);
    }
    expect(queue.size).toBe(0);
    expect(queue.shift()).toBeUndefined();
  });

  it('remembers the items it served until they are deleted, and no others', () => {
    const queue = new ReadyQueue<number>();
    for (let round = 0; round < 1_000; round++) {
      for (let i = 0; i < 3; i++) queue.add(i);
      for (let i = 0; i < 3; i++) expect(queue.shift()).toBe(i);
    }
    // Served items stay known (queueing them again touches no key), and are not queued.
    expect(queue.known).toBe(3);
    expect(queue.size).toBe(0);
    expect(queue.has(1)).toBe(false);
    for (let i = 0; i < 3; i++) queue.delete(i);
    expect(queue.known).toBe(0);
  });

  it('drops the entries of deleted items even when nothing is taken', () => {
    const queue = new ReadyQueue<number>();
    queue.add(-1);
    // Queue, delete, queue again: every round leaves a stale entry behind the live one.
    for (let i = 0; i < 10_000; i++) {
      queue.add(i);
      queue.delete(i);
    }
    queue.add(7);
    expect(queue.size).toBe(2);
    expect(queue.known).toBe(2);
    expect(queue.shift()).toBe(-1);
    expect(queue.shift()).toBe(7);
    expect(queue.shift()).toBeUndefined();
  });

  it('keeps the order across growth and wrap-around', () => {
    const queue = new ReadyQueue<number>();
    const served: number[] = [];
    let next = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 7 + round; i++) queue.add(next++);
      for (let i = 0; i < 5 + round; i++) served.push(queue.shift()!);
    }
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) served.push(item);
    expect(served).toEqual(Array.from({ length: next }, (_, i) => i));
  });
});
