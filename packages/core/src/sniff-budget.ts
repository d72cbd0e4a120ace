/**
 * The node-wide budget of connections sniffing at once, shared fairly between source addresses.
 *
 * Sniffing holds buffers and timers, so the number of connections sniffing is bounded (`limit`). A plain
 * counter lets one address that opens `limit` idle connections lock every other end user out; here, when
 * the budget is full, a newcomer takes the oldest slot of the address holding the most, as long as that
 * address holds more than the newcomer's address would (max-min fairness). One address may use the whole
 * budget while nobody else wants it, and never keeps more than its share while others wait. Addresses are
 * grouped as {@link addressGroup} says (IPv6 by /64).
 */
import { addressGroup } from './address-group.js';

/** Default number of connections that may be sniffing at once, per node: 256 (docs/listeners.md). */
export const DEFAULT_MAX_CONCURRENT_SNIFFS = 256;

/** One slot of the budget, held by one sniffing connection. */
export interface SniffSlot {
  /** The address group holding it. */
  readonly address: string;
  /** Gives the slot back (idempotent). */
  release(): void;
}

interface Slot extends SniffSlot {
  evict(): void;
}

/** A counter of connections sniffing, per node, shared fairly between source addresses. */
export class SniffBudget {
  #limit = DEFAULT_MAX_CONCURRENT_SNIFFS;
  #active = 0;
  #evictions = 0;
  /** Slots per address group, oldest first (a Set keeps insertion order). */
  readonly #byAddress = new Map<string, Set<Slot>>();

  /** @param limit maximum concurrent sniffs. Default: `256`. */
  constructor(limit: number = DEFAULT_MAX_CONCURRENT_SNIFFS) {
    this.limit = limit;
  }

  /**
   * Maximum number of concurrent sniffs. Settable (a configuration reload): lowering it below `active`
   * cuts nothing; new sniffs are refused until enough finish. Throws `RangeError` unless an integer ≥ 1.
   */
  get limit(): number {
    return this.#limit;
  }

  set limit(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError('SniffBudget limit must be an integer ≥ 1');
    this.#limit = limit;
  }

  /** Connections sniffing right now. */
  get active(): number {
    return this.#active;
  }

  /** True when at least half the budget is in use: new sniffs then get the short first-byte deadline. */
  get busy(): boolean {
    return this.#active * 2 >= this.#limit;
  }

  /** Slots taken from an address holding more than its share, since the start. */
  get evictions(): number {
    return this.#evictions;
  }

  /** Slots held by the group of `address` right now. */
  activeFor(address: string | undefined): number {
    return this.#byAddress.get(addressGroup(address))?.size ?? 0;
  }

  /**
   * Takes a slot for a connection from `address` (grouped by {@link addressGroup}). When the budget is
   * full, the oldest slot of the address group holding the most is taken back (its `evict` runs, and must
   * end that sniff and release the slot) if that group holds at least two more slots than the newcomer's
   * already does; otherwise `undefined`: over budget.
   */
  acquire(address: string | undefined, evict: () => void): SniffSlot | undefined {
    const group = addressGroup(address);
    if (this.#active > this.#limit) return undefined;
    if (this.#active === this.#limit && !this.#evictFor(group)) return undefined;
    let slots = this.#byAddress.get(group);
    if (slots === undefined) {
      slots = new Set();
      this.#byAddress.set(group, slots);
    }
    const held = slots;
    let released = false;
    const slot: Slot = {
      address: group,
      evict,
      release: () => {
        if (released) return;
        released = true;
        this.#active--;
        held.delete(slot);
        if (held.size === 0 && this.#byAddress.get(group) === held) this.#byAddress.delete(group);
      },
    };
    held.add(slot);
    this.#active++;
    return slot;
  }

  /** Frees one slot for `group` by evicting the oldest slot of the heaviest group; false when unfair. */
  #evictFor(group: string): boolean {
    const own = this.#byAddress.get(group)?.size ?? 0;
    let heaviest: Set<Slot> | undefined;
    for (const slots of this.#byAddress.values()) {
      if (heaviest === undefined || slots.size > heaviest.size) heaviest = slots;
    }
    if (heaviest === undefined || heaviest.size < own + 2) return false;
    const victim = heaviest.values().next().value as Slot;
    this.#evictions++;
    try {
      victim.evict();
    } finally {
      victim.release();
    }
    return true;
  }
}
