import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FRAME_READ_SIZE } from '../src/frame-reads.js';
import { UPLOAD_READ_MIN, UploadBudget, UploadForward } from '../src/relay-uploads.js';

/** A stream whose writes call back only when the test says so (a mux stream waiting for credits). */
class HeldSink extends Writable {
  readonly callbacks: Array<(error?: Error | null) => void> = [];
  readonly chunks: Buffer[] = [];
  /** Bytes whose writes were called back. */
  sent = 0;
  constructor(highWaterMark = 64 * 1024) {
    super({ highWaterMark });
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(chunk);
    this.callbacks.push(callback);
  }
  /** Calls back the oldest write. */
  send(): void {
    const callback = this.callbacks.shift();
    if (callback === undefined) return;
    this.sent += this.chunks[this.chunks.length - 1]!.length;
    callback();
  }
  /** Bytes handed to `_write` so far. */
  get received(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }
  /** Bytes written to the sink so far: sent, or held in it. */
  get accepted(): number {
    return this.sent + this.writableLength;
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('UploadBudget', () => {
  it('reads whole frames while there is room for one, what is left after, the minimum once used up', () => {
    const budget = new UploadBudget(1024 * 1024);
    expect(budget.readSize()).toBe(FRAME_READ_SIZE);
    expect(budget.allowance()).toBe(Number.POSITIVE_INFINITY);
    budget.hold(1024 * 1024 - 100_000);
    expect(budget.readSize()).toBe(100_000);
    budget.hold(95_000);
    expect(budget.readSize()).toBe(UPLOAD_READ_MIN);
    expect(budget.allowance()).toBe(Number.POSITIVE_INFINITY);
    budget.hold(5_000);
    expect(budget.allowance()).toBe(UPLOAD_READ_MIN);
    budget.release(1024 * 1024);
    expect(budget.held).toBe(0);
    expect(budget.readSize()).toBe(FRAME_READ_SIZE);
  });
});

describe('UploadForward', () => {
  it('counts what the stream holds until it calls back, and forwards every byte in order with the end', async () => {
    const budget = new UploadBudget(1024 * 1024);
    const source = new PassThrough();
    const sink = new HeldSink();
    const forward = new UploadForward(source, sink, budget);
    forward.write(Buffer.from('prelude'));
    forward.start();
    source.write(Buffer.alloc(1000, 1));
    source.end(Buffer.alloc(2000, 2));
    await turn();
    // The first write is in progress, the others wait in the sink's buffer: all held.
    expect(budget.held).toBe(3007);
    expect(forward.held).toBe(3007);
    while (sink.callbacks.length > 0 || sink.writableLength > 0) {
      sink.send();
      await turn();
    }
    expect(budget.held).toBe(0);
    expect(Buffer.concat(sink.chunks).toString('latin1', 0, 7)).toBe('prelude');
    expect(sink.received).toBe(3007);
    expect(sink.writableEnded).toBe(true);
  });

  it('once the budget is used up, a relay stops at its allowance and reads again as its stream sends', async () => {
    const budget = new UploadBudget(64 * 1024);
    budget.hold(64 * 1024); // others hold the whole budget
    const source = new PassThrough({ highWaterMark: 1024 });
    const sink = new HeldSink(1024 * 1024);
    const forward = new UploadForward(source, sink, budget);
    forward.start();
    for (let i = 0; i < 8; i++) source.write(Buffer.alloc(8 * 1024, i));
    await turn();
    // Two 8 KiB chunks reach the allowance (16 KiB); the source is paused with the rest.
    expect(forward.held).toBe(UPLOAD_READ_MIN);
    expect(source.isPaused()).toBe(true);
    expect(sink.accepted).toBe(UPLOAD_READ_MIN);
    // The stream sends one chunk: below the allowance, the source flows again, up to it.
    sink.send();
    await turn();
    expect(forward.held).toBe(UPLOAD_READ_MIN);
    expect(sink.accepted).toBe(UPLOAD_READ_MIN + 8 * 1024);
    expect(source.isPaused()).toBe(true);
    // The others release the budget: no allowance any more, the stream's high-water mark alone.
    budget.release(64 * 1024);
    sink.send();
    await turn();
    expect(sink.accepted).toBe(64 * 1024);
    expect(forward.held).toBe(64 * 1024 - 2 * 8 * 1024);
    expect(source.isPaused()).toBe(false);
  });

  it('a stream that closes with writes never called back leaves nothing counted', async () => {
    const budget = new UploadBudget(1024 * 1024);
    const source = new PassThrough();
    const sink = new HeldSink();
    const forward = new UploadForward(source, sink, budget);
    forward.start();
    source.write(Buffer.alloc(5000));
    await turn();
    expect(budget.held).toBe(5000);
    sink.destroy();
    await turn();
    expect(budget.held).toBe(0);
    expect(forward.held).toBe(0);
  });

  it('stop() ends the forwarding like unpipe: later bytes stay with the source', async () => {
    const source = new PassThrough();
    const sink = new HeldSink();
    const forward = new UploadForward(source, sink);
    forward.start();
    source.write(Buffer.alloc(100));
    await turn();
    forward.stop();
    expect(source.listenerCount('data')).toBe(0);
    source.end(Buffer.alloc(50));
    await turn();
    expect(sink.received).toBe(100);
    expect(sink.writableEnded).toBe(false);
  });
});
