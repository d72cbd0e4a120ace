import { describe, expect, it } from 'vitest';
import { Fifo } from '../src/fifo.js';

describe('Fifo', () => {
  it('gives items back in arrival order, across the drops of taken slots, interleaved with pushes', () => {
    const fifo = new Fifo<number>();
    expect(fifo.shift()).toBeUndefined();
    let next = 0;
    let expected = 0;
    // Pushes outrun shifts for a while (the array never empties: taken slots are dropped in bulk), then drain.
    for (let round = 0; round < 1000; round++) {
      fifo.push(next++);
      fifo.push(next++);
      expect(fifo.shift()).toBe(expected++);
      expect(fifo.length).toBe(next - expected);
    }
    while (fifo.length > 0) expect(fifo.shift()).toBe(expected++);
    expect(expected).toBe(next);
    expect(fifo.shift()).toBeUndefined();
    fifo.push(7);
    expect(fifo.length).toBe(1);
    expect(fifo.shift()).toBe(7);
  });
});
