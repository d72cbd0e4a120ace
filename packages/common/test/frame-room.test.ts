import { describe, expect, it } from 'vitest';
import { FRAME_ROOM, frameRoom, lendFrameRoom } from '../src/frame-room.js';

describe('lendFrameRoom / frameRoom', () => {
  it('lends the room in front of a whole buffer: views from where the payload starts have it', () => {
    const whole = Buffer.allocUnsafeSlow(FRAME_ROOM + 1000);
    const payload = lendFrameRoom(whole);
    expect(payload.byteOffset).toBe(FRAME_ROOM);
    expect(payload.length).toBe(1000);
    expect(frameRoom(payload)).toBe(FRAME_ROOM);
    expect(frameRoom(payload.subarray(0, 10))).toBe(FRAME_ROOM);
    // A frame cut further in has no room of its own: the bytes in front are the payload before it.
    expect(frameRoom(payload.subarray(1))).toBe(0);
    expect(frameRoom(Buffer.from(payload))).toBe(0);
  });

  it('lends nothing of memory that is not a whole buffer of its own, or too short', () => {
    const slab = Buffer.allocUnsafe(200); // a slice of Node's shared pool
    const outOfSlab = lendFrameRoom(slab);
    expect(outOfSlab).toBe(slab);
    expect(frameRoom(outOfSlab)).toBe(0);
    expect(frameRoom(slab.subarray(FRAME_ROOM))).toBe(0);
    const short = Buffer.allocUnsafeSlow(FRAME_ROOM);
    expect(lendFrameRoom(short)).toBe(short);
    expect(frameRoom(short.subarray(FRAME_ROOM))).toBe(0);
    const unlent = Buffer.allocUnsafeSlow(FRAME_ROOM + 100);
    expect(frameRoom(unlent.subarray(FRAME_ROOM))).toBe(0);
  });
});
