/**
 * A bounded table of UDP flows (docs/edge.md "UDP relay"; the node's relay ports and the backend client's local targets): least recently used first, so that a full
 * table evicts the flow idle the longest, and one reaper timer for the whole table (never one per
 * flow) that ends flows idle past their timeout.
 *
 * Keeping the order exact would move a flow to the back of the table on every datagram; it is moved at
 * most once per {@link FLOW_REORDER_MS} instead (a flow's `lastActive` is always exact). The order is
 * therefore least recently used to within that granularity, which lets the reaper stop at the first flow
 * that cannot have expired yet.
 */

/** A flow moves to the back of the LRU order at most this often, ms. */
export const FLOW_REORDER_MS = 1_000;
/** How often the reaper looks for idle flows, ms. */
export const DEFAULT_FLOW_SWEEP_MS = 1_000;

/** What the table keeps about each flow. */
export interface FlowEntry {
  /** Last datagram either way, ms since the epoch (set by {@link FlowTable.touch}). */
  lastActive: number;
  /** When the flow last moved in the LRU order (the table sets it). */
  lastMoved: number;
}

/** Why a flow left the table other than by `delete`. */
export type FlowEndReason = 'evicted' | 'expired' | 'closed';

/** Options of {@link FlowTable}. */
export interface FlowTableOptions<V extends FlowEntry> {
  /** Most flows at once; adding one more evicts the least recently used. */
  maxFlows: number;
  /**
   * The idle timeout of `flow`, ms. Called by the reaper with a per-sweep cache key (`timeoutKey`), so a
   * timeout that depends on the routing table is computed once per sweep per key.
   */
  timeoutMs(flow: V): number;
  /** Groups flows that share a timeout (the relay port). Default: one group. */
  timeoutKey?(flow: V): string | number;
  /** No flow's timeout is below this, ms: the reaper stops at the first flow younger than it. Default: `0`. */
  minTimeoutMs?: number;
  /** A flow left the table (it has already been removed). */
  onEnd(flow: V, reason: FlowEndReason): void;
  /** Reaper interval, ms. Default: {@link DEFAULT_FLOW_SWEEP_MS}. */
  sweepMs?: number;
  /** Clock. Default: `Date.now`. */
  now?(): number;
}

/** Flows by key, bounded, least recently used first, reaped when idle. */
export class FlowTable<V extends FlowEntry> {
  readonly #flows = new Map<string, V>();
  readonly #options: FlowTableOptions<V>;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: FlowTableOptions<V>) {
    if (!Number.isInteger(options.maxFlows) || options.maxFlows < 1)
      throw new RangeError('maxFlows must be a positive integer');
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Flows now. */
  get size(): number {
    return this.#flows.size;
  }

  /** The flow under `key`, if any. */
  get(key: string): V | undefined {
    return this.#flows.get(key);
  }

  /** The flows, least recently used first. */
  values(): IterableIterator<V> {
    return this.#flows.values();
  }

  /** Records traffic on `flow` (under `key`): its idle clock starts over. */
  touch(key: string, flow: V): void {
    const now = this.#now();
    flow.lastActive = now;
    if (now - flow.lastMoved < FLOW_REORDER_MS) return;
    flow.lastMoved = now;
    if (this.#flows.delete(key)) this.#flows.set(key, flow);
  }

  /**
   * Adds `flow` under `key` (which must be free), evicting the least recently used flow first when the
   * table is full; its `onEnd(…, 'evicted')` runs before this returns.
   */
  add(key: string, flow: V): void {
    while (this.#flows.size >= this.#options.maxFlows) {
      const oldest = this.#flows.entries().next();
      if (oldest.done) break;
      this.#end(oldest.value[0], oldest.value[1], 'evicted');
    }
    const now = this.#now();
    flow.lastActive = now;
    flow.lastMoved = now;
    this.#flows.set(key, flow);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.sweep(), this.#options.sweepMs ?? DEFAULT_FLOW_SWEEP_MS);
      this.#timer.unref();
    }
  }

  /** Removes the flow under `key` without `onEnd` (its owner ended it). True when it was there. */
  delete(key: string, flow?: V): boolean {
    if (flow !== undefined && this.#flows.get(key) !== flow) return false;
    const removed = this.#flows.delete(key);
    if (this.#flows.size === 0) this.#stopTimer();
    return removed;
  }

  /** Ends the flows idle past their timeout (the reaper calls it; tests may too). */
  sweep(): void {
    const now = this.#now();
    const floor = (this.#options.minTimeoutMs ?? 0) - FLOW_REORDER_MS;
    const timeouts = new Map<string | number, number>();
    const keyOf = this.#options.timeoutKey;
    for (const [key, flow] of this.#flows) {
      const idle = now - flow.lastActive;
      // Later flows moved after this one (to within the reorder granularity): none of them can be idle
      // longer than the shortest timeout allows.
      if (now - flow.lastMoved < floor) break;
      const group = keyOf === undefined ? 0 : keyOf(flow);
      let timeout = timeouts.get(group);
      if (timeout === undefined) {
        timeout = this.#options.timeoutMs(flow);
        timeouts.set(group, timeout);
      }
      if (idle >= timeout) this.#end(key, flow, 'expired');
    }
  }

  /** Ends every flow (`onEnd(…, 'closed')`) and stops the reaper. */
  close(): void {
    for (const [key, flow] of this.#flows) this.#end(key, flow, 'closed');
    this.#stopTimer();
  }

  #end(key: string, flow: V, reason: FlowEndReason): void {
    this.#flows.delete(key);
    if (this.#flows.size === 0) this.#stopTimer();
    this.#options.onEnd(flow, reason);
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
