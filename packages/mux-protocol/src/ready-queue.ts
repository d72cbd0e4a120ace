/**
 * The engine's round-robin queue of streams waiting for a turn at the transport: first in, first out,
 * each item at most once. It allocates nothing in the steady state, where one stream after another is
 * queued and taken again and again: the entries live in a ring that only grows, and each item the queue
 * knows keeps its entry in a `Map` while it waits its next turn (taken items stay known, marked idle, so
 * queueing them again neither inserts nor deletes a key: a `Map` that keeps gaining and losing its last
 * key reallocates its table every time). An item is forgotten only by {@link ReadyQueue.delete} or
 * {@link ReadyQueue.clear}: the owner deletes what it drops (the engine deletes a stream when it forgets
 * it), so the queue never holds more items than its owner does.
 */
export class ReadyQueue<T> {
  /** Entries in order from `#head`; an entry is stale when its item was deleted or queued again further back. */
  #ring: (T | undefined)[] = new Array<T | undefined>(INITIAL_CAPACITY);
  #head = 0;
  /** Entries in the ring, live or stale. */
  #length = 0;
  /** Sequence number of the next entry; the ring holds `#next - #length` … `#next - 1`, in order. */
  #next = 0;
  /** Each known item → the sequence number of its live entry, or {@link IDLE} when it is not queued. */
  readonly #entries = new Map<T, number>();
  /** Items queued now. */
  #size = 0;

  /** Items waiting. */
  get size(): number {
    return this.#size;
  }

  /** Items the queue remembers, waiting or idle (taken and not deleted): at most what its owner holds. */
  get known(): number {
    return this.#entries.size;
  }

  has(item: T): boolean {
    const entry = this.#entries.get(item);
    return entry !== undefined && entry !== IDLE;
  }

  /** Queues `item` at the back, unless it is already queued. */
  add(item: T): void {
    const entry = this.#entries.get(item);
    if (entry !== undefined && entry !== IDLE) return;
    // Stale entries (deleted items) are skipped when reached; too many of them are dropped at once.
    if (this.#length > 2 * this.#size + INITIAL_CAPACITY) this.#compact();
    else if (this.#length === this.#ring.length) this.#grow();
    this.#ring[(this.#head + this.#length) & (this.#ring.length - 1)] = item;
    this.#length++;
    this.#entries.set(item, this.#next++);
    this.#size++;
  }

  /** Removes `item` wherever it is, and forgets it. */
  delete(item: T): void {
    const entry = this.#entries.get(item);
    if (entry === undefined) return;
    if (entry !== IDLE) this.#size--;
    this.#entries.delete(item);
  }

  /** Takes the item at the front, or `undefined` when none waits. */
  shift(): T | undefined {
    const ring = this.#ring;
    while (this.#length > 0) {
      const slot = this.#head;
      const item = ring[slot] as T;
      const sequence = this.#next - this.#length;
      ring[slot] = undefined;
      this.#head = (slot + 1) & (ring.length - 1);
      this.#length--;
      if (this.#entries.get(item) !== sequence) continue; // deleted, or queued again further back
      this.#entries.set(item, IDLE);
      this.#size--;
      return item;
    }
    return undefined;
  }

  /** Empties the queue and forgets every item. */
  clear(): void {
    this.#entries.clear();
    this.#ring.fill(undefined);
    this.#head = 0;
    this.#length = 0;
    this.#size = 0;
  }

  /** Doubles the ring, entries in order from slot 0. */
  #grow(): void {
    this.#ring = this.#ordered(this.#ring.length * 2, false);
    this.#head = 0;
  }

  /** Rebuilds the ring with its live entries only, numbered on from `#next`. */
  #compact(): void {
    const first = this.#next;
    this.#ring = this.#ordered(this.#ring.length, true);
    this.#head = 0;
    this.#length = this.#size;
    for (let i = 0; i < this.#size; i++) this.#entries.set(this.#ring[i] as T, first + i);
    this.#next = first + this.#size;
  }

  /** The entries in order in a new ring of `capacity` (a power of two), or only the live ones. */
  #ordered(capacity: number, liveOnly: boolean): (T | undefined)[] {
    const ring = new Array<T | undefined>(capacity);
    const mask = this.#ring.length - 1;
    let n = 0;
    for (let i = 0; i < this.#length; i++) {
      const item = this.#ring[(this.#head + i) & mask] as T;
      if (liveOnly && this.#entries.get(item) !== this.#next - this.#length + i) continue;
      ring[n++] = item;
    }
    return ring;
  }
}

/** Ring slots allocated at first (a power of two, as every later size). */
const INITIAL_CAPACITY = 16;
/** The entry of an item the queue knows but is not queued. */
const IDLE = -1;
