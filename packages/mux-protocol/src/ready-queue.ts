/**
 * The engine's round-robin queue of streams waiting for a turn at the transport: first in, first out,
 * each item at most once. Adding and taking allocate nothing in the steady state (one array reused, a
 * `Map` from each queued item to its slot); `delete` is lazy, the stale slot is skipped when reached.
 */
export class ReadyQueue<T> {
  #items: (T | undefined)[] = [];
  /** Index of `#items[0]` since the last reset: slots are numbered `#base + i`. */
  #base = 0;
  #head = 0;
  /** Each queued item → the number of its live slot. */
  readonly #slots = new Map<T, number>();

  /** Items waiting. */
  get size(): number {
    return this.#slots.size;
  }

  has(item: T): boolean {
    return this.#slots.has(item);
  }

  /** Queues `item` at the back, unless it is already queued. */
  add(item: T): void {
    if (this.#slots.has(item)) return;
    this.#slots.set(item, this.#base + this.#items.length);
    this.#items.push(item);
  }

  /** Removes `item` wherever it is. */
  delete(item: T): void {
    this.#slots.delete(item);
  }

  /** Takes the item at the front, or `undefined` when none waits. */
  shift(): T | undefined {
    const items = this.#items;
    while (this.#head < items.length) {
      const slot = this.#head++;
      const item = items[slot] as T;
      items[slot] = undefined;
      if (this.#slots.get(item) !== this.#base + slot) continue; // deleted, or queued again further back
      this.#slots.delete(item);
      if (this.#head === items.length) this.#reset();
      else if (this.#head >= 1024 && this.#head * 2 >= items.length) this.#compact();
      return item;
    }
    this.#reset();
    return undefined;
  }

  clear(): void {
    this.#slots.clear();
    this.#reset();
  }

  #reset(): void {
    this.#base += this.#items.length;
    this.#items.length = 0;
    this.#head = 0;
  }

  #compact(): void {
    this.#base += this.#head;
    this.#items = this.#items.slice(this.#head);
    this.#head = 0;
  }
}
