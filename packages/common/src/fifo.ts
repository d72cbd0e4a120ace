/** Slots already taken at the front of a {@link Fifo}'s array before they are dropped at once, at least. */
const COMPACT_AFTER = 64;

/**
 * A first-in, first-out queue on one array: `shift` clears the slot and moves a head index, and the taken
 * slots are dropped together once they are at least half the array, so both ends cost O(1) amortized
 * (`Array.prototype.shift` moves every element each time).
 */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  /** Items queued now. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** The oldest item, taken out of the queue; undefined when it is empty. */
  shift(): T | undefined {
    const items = this.#items;
    if (this.#head >= items.length) return undefined;
    const item = items[this.#head];
    items[this.#head++] = undefined;
    if (this.#head === items.length) {
      items.length = 0;
      this.#head = 0;
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= items.length) {
      items.splice(0, this.#head);
      this.#head = 0;
    }
    return item;
  }
}
