/**
 * A relay under the bandwidth cap (docs/edge.md "Bandwidth fair share"): each direction charges the
 * chunks it passes on to the relay's {@link BandwidthAccount} and, once the account must wait, pauses the
 * *source* of the bytes — the end user's socket toward the backend, the stream toward the end user (its
 * consumer stops reading, so it stops granting credits and the far end stops sending). Nothing is
 * buffered here: a paused source keeps what it has, within its own bounds (the socket's high-water mark,
 * the stream's credit window).
 *
 * Attached only while a cap is set: a relay of an unlimited node has no listener more than it needs.
 * {@link MeteredRelays} knows what every relay of a node is charged to, so that a reload can meter them.
 */
import type { Readable, Writable } from 'node:stream';
import type { BackendSession } from './backend-session.js';
import type { BandwidthAccount, BandwidthScheduler, BandwidthWaiter } from './bandwidth-scheduler.js';
import type { RelayHandle } from './relay.js';

/** One direction of a metered relay: `source` is piped into `dest`. */
class MeteredDirection implements BandwidthWaiter {
  next: BandwidthWaiter | undefined;
  prev: BandwidthWaiter | undefined;
  queuedOn: BandwidthAccount | undefined;
  /** We paused the source (and have not resumed it yet). */
  #paused = false;
  readonly #source: Readable;
  readonly #dest: Writable;
  readonly #account: BandwidthAccount;

  constructor(source: Readable, dest: Writable, account: BandwidthAccount) {
    this.#source = source;
    this.#dest = dest;
    this.#account = account;
    // The pipe's own listener was added first: each chunk is already on its way when it is charged.
    source.on('data', this.#onData);
    source.on('resume', this.#onResume);
  }

  /** Charges `bytes` this direction sent; pauses the source while the account must wait. */
  charged(bytes: number): void {
    if (this.#account.charge(bytes)) return;
    // Also when the pipe resumed the source after a drain while we wait: pause it again.
    this.#paused = true;
    this.#source.pause();
    this.#account.wait(this);
  }

  readonly #onData = (chunk: Buffer | Uint8Array): void => {
    this.charged(chunk.length);
  };

  /**
   * The pipe resumes the source whenever its destination drains, which it may do while the account
   * waits: the source is paused again before it flows ('resume' comes before the first chunk).
   */
  readonly #onResume = (): void => {
    if (this.#paused) this.#source.pause();
  };

  /** The account may send again (scheduler side). */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    // A pipe waiting for its destination to drain resumes the source itself on 'drain'.
    if (!this.#source.destroyed && !this.#dest.writableNeedDrain) this.#source.resume();
  }

  detach(): void {
    this.#source.off('data', this.#onData);
    this.#source.off('resume', this.#onResume);
    this.#account.cancel(this);
    this.resume();
  }
}

/** Both directions of a relay under the cap, charged to one account. */
export class RelayMeter {
  readonly #account: BandwidthAccount;
  readonly #up: MeteredDirection;
  readonly #down: MeteredDirection;
  #detached = false;

  /**
   * Meters the relay `end` ⇄ `stream` (both piped already) on `account`, which it holds until
   * {@link detach}.
   */
  constructor(end: Readable & Writable, stream: Readable & Writable, account: BandwidthAccount) {
    this.#account = account;
    this.#up = new MeteredDirection(end, stream, account);
    this.#down = new MeteredDirection(stream, end, account);
  }

  /** Charges bytes sent toward the stream outside the pipe (the sniffed prelude). */
  chargeUp(bytes: number): void {
    this.#up.charged(bytes);
  }

  /** Stops metering: removes the listeners, resumes what it paused, gives the account back. */
  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#up.detach();
    this.#down.detach();
    this.#account.release();
  }
}

/** Where a relay's bytes are charged under the bandwidth cap: its account's key and label. */
export interface BandwidthKey {
  id: string;
  group: string;
}

/**
 * The bandwidth account of a backend session: its id, shown as the routes it serves (hostname patterns,
 * then `tcp:<port>` claims), or as its id when it serves none.
 */
export function backendBandwidthKey(session: BackendSession): BandwidthKey {
  const routes = [...session.hostnames, ...(session.identity.tcpPorts ?? []).map((p) => `tcp:${p}`)];
  return { id: session.id, group: routes.length > 0 ? routes.join(',') : session.id };
}

/**
 * The bandwidth account of a tunnel (at the origin node, the only node that charges it): one per
 * route, `tunnel:<pattern>`; the destination node picks the backend.
 */
export function tunnelBandwidthKey(route: string): BandwidthKey {
  const id = `tunnel:${route}`;
  return { id, group: id };
}

/** What a relay is charged to: the backend session it serves, or (a tunnel) the route pattern. */
export type BandwidthOwner = BackendSession | string;

function keyOf(owner: BandwidthOwner): BandwidthKey {
  return typeof owner === 'string' ? tunnelBandwidthKey(owner) : backendBandwidthKey(owner);
}

/**
 * The relays of a node that the cap applies to (end users' relays, outbound connections), each with
 * what it is charged to: new relays get their account from {@link account}, and {@link rebind} meters
 * or releases the running ones when a reload sets or lifts the cap.
 */
export class MeteredRelays {
  readonly scheduler: BandwidthScheduler;
  readonly #relays = new Map<RelayHandle, BandwidthOwner>();

  constructor(scheduler: BandwidthScheduler) {
    this.scheduler = scheduler;
  }

  /** The account for a new relay charged to `owner` (the relay's `bandwidth` option); none when unlimited. */
  account(owner: BandwidthOwner): BandwidthAccount | undefined {
    if (!this.scheduler.enabled) return undefined;
    const key = keyOf(owner);
    return this.scheduler.account(key.id, key.group);
  }

  /** Remembers a running relay (until {@link delete}, from its `onClose`). */
  add(handle: RelayHandle, owner: BandwidthOwner): void {
    this.#relays.set(handle, owner);
  }

  delete(handle: RelayHandle): void {
    this.#relays.delete(handle);
  }

  /** Meters every running relay on its account under a cap, or releases them all without one. */
  rebind(): void {
    for (const [handle, owner] of this.#relays) handle.setBandwidth(this.account(owner));
  }
}
