/**
 * The node's bandwidth fair share (`totalBandwidthMbps`, docs/edge.md "Bandwidth fair share"): one cap on
 * what the node sends, shared across backends by deficit round robin.
 *
 * Senders charge after the fact: a relay charges each chunk it has just passed on to its
 * {@link BandwidthAccount} (one per backend session, or per route for tunnels). While the account's
 * balance is positive the chunk costs nothing more; once it is zero or below, the relay pauses the
 * source of the bytes and waits ({@link BandwidthAccount.wait}) until the scheduler has paid the debt
 * back. Tokens accrue at the cap. On an idle node (the timer not running) an account in debt takes them
 * at once: its debt plus one quantum, at most the tokens saved up (`burstMs` of the cap). Otherwise it
 * joins the round: one timer, every `tickMs`, runs one round of deficit round robin whose quantum is the
 * period's tokens split equally among the accounts waiting, so every backend with traffic waiting gets
 * an equal share and a backend with nothing to send gets nothing (its share goes to the busy ones). An
 * account back in credit resumes its senders; one still in debt waits for the next period. Debt is
 * repaid in full (also after the last sender left), so the cap holds over time whatever the chunk sizes.
 *
 * Nothing here runs when the cap is `0` (unlimited): relays are then not metered at all.
 */

/** The timer's period while anyone waits, ms: each round hands out this much of the cap. Default: `5`. */
export const DEFAULT_BANDWIDTH_TICK_MS = 5;
/** Tokens an idle node keeps for the next burst, ms of the cap. Default: `20`. */
export const DEFAULT_BANDWIDTH_BURST_MS = 20;
/** Smallest quantum an idle node pays a sender in debt beyond its debt, bytes: one Ethernet frame's payload. */
export const MIN_BANDWIDTH_QUANTUM = 1_500;
/** Largest such quantum, bytes. */
export const MAX_BANDWIDTH_QUANTUM = 65_536;
/** Largest accepted cap, Mbit/s (1 Tbit/s). */
export const MAX_TOTAL_BANDWIDTH_MBPS = 1_000_000;
/** Distinct groups (backend labels) whose totals are kept; later ones are counted as `other`. */
export const DEFAULT_MAX_BANDWIDTH_GROUPS = 1_000;
/** A late timer never hands out more than this much time's worth of tokens at once, ms. */
const MAX_TICK_GAP_MS = 100;

/** Bytes per ms for a cap in Mbit/s (1 Mbit/s = 10⁶ bit/s = 125 000 bytes/s). */
export function mbpsToBytesPerMs(mbps: number): number {
  return (mbps * 1_000_000) / 8 / 1_000;
}

/** What a paused sender gives the scheduler: called once when its account may send again. */
export interface BandwidthWaiter {
  /** The account has a positive balance again: resume the source. */
  resume(): void;
  /** @internal Intrusive list links, owned by the scheduler. */
  next?: BandwidthWaiter | undefined;
  /** @internal */
  prev?: BandwidthWaiter | undefined;
  /** @internal The account the waiter is queued on, if it is. */
  queuedOn?: BandwidthAccount | undefined;
}

/** A snapshot of one account. */
export interface BandwidthAccountStats {
  /** The account's key: a backend session id, or `tunnel:<route>`. */
  id: string;
  /** What it is shown as: the backend's routes, or `tunnel:<route>`. */
  group: string;
  /** Bytes charged since the account was created. */
  bytesSent: number;
  /** Time it spent waiting for its share, ms (while it has waiters or debt). */
  throttledMs: number;
  /** Bytes per second since the previous reading at least one second before (0 at the first). */
  bytesPerSecond: number;
  /** Whether it is waiting for its share now. */
  throttled: boolean;
  /** Relays (or other users) holding it. */
  users: number;
}

/** A snapshot of the scheduler. */
export interface BandwidthStats {
  /** The cap, Mbit/s; `0` = unlimited. */
  totalBandwidthMbps: number;
  /** The cap, bytes per second; `0` = unlimited. */
  capBytesPerSecond: number;
  /** Accounts waiting for their share now. */
  throttledAccounts: number;
  /** Bytes charged since the scheduler started, all accounts. */
  bytesSent: number;
  /** Sum of every account's throttled time, ms. */
  throttledMs: number;
  /** Accounts alive now. */
  accounts: BandwidthAccountStats[];
  /** Totals per group since the scheduler started (accounts that ended included); monotonic. */
  groups: Array<{ group: string; bytesSent: number; throttledMs: number }>;
}

/** Options of {@link BandwidthScheduler}. */
export interface BandwidthSchedulerOptions {
  /** The cap, Mbit/s; `0` = unlimited. */
  totalBandwidthMbps: number;
  /** Timer period, ms. Default: `5`. */
  tickMs?: number;
  /** Tokens kept while nobody waits, ms of the cap. Default: `20`. */
  burstMs?: number;
  /** Most groups with totals of their own. Default: `1_000`. */
  maxGroups?: number;
  /** Clock, ms (monotonic). Default: `performance.now`. */
  now?: () => number;
}

/**
 * One sender's share: a backend session, or a route through the mesh. Get it with
 * {@link BandwidthScheduler.account}, give it back with {@link BandwidthAccount.release}.
 */
export class BandwidthAccount {
  readonly id: string;
  readonly group: string;
  /** Bytes it may still send before it has to wait; negative = debt. */
  balance = 0;
  bytesSent = 0;
  /** @internal */
  users = 0;
  /** @internal Ring links (accounts waiting for their share). */
  next: BandwidthAccount | undefined;
  /** @internal */
  prev: BandwidthAccount | undefined;
  /** @internal In the ring since (ms), or `-1`. */
  since = -1;
  /** @internal */
  throttledMs = 0;
  /** @internal Queued waiters (FIFO). */
  head: BandwidthWaiter | undefined;
  /** @internal */
  tail: BandwidthWaiter | undefined;
  /** @internal Rate sample: time and bytes at the previous reading, and the rate it gave. */
  sampleAt = -1;
  sampleBytes = 0;
  rate = 0;
  readonly #scheduler: BandwidthScheduler;
  /** The waiter that stands for datagram senders (they drop instead of waiting). */
  #datagrams: BandwidthWaiter | undefined;

  /** @internal Accounts are created by {@link BandwidthScheduler.account}. */
  constructor(scheduler: BandwidthScheduler, id: string, group: string) {
    this.#scheduler = scheduler;
    this.id = id;
    this.group = group;
  }

  /**
   * Charges `bytes` just sent. Returns `true` while the account may go on sending, `false` once it must
   * wait: pause the source and call {@link wait}. Unlimited: always `true`, nothing counted.
   */
  charge(bytes: number): boolean {
    return this.#scheduler.charge(this, bytes);
  }

  /**
   * For datagrams, which cannot wait: charges `bytes` and returns `true` when the account has a positive
   * balance, otherwise charges nothing and returns `false` (drop the datagram). Unlimited: always `true`.
   */
  tryCharge(bytes: number): boolean {
    if (!this.#scheduler.enabled) return true;
    if (this.balance <= 0 && !this.#scheduler.refill(this)) {
      // The sender has more to send: it takes its turn like a paused one (nothing to resume).
      this.#datagrams ??= { resume: noop };
      this.#scheduler.wait(this, this.#datagrams);
      return false;
    }
    this.#scheduler.charge(this, bytes);
    return true;
  }

  /** Queues `waiter` until the account's debt is paid; `resume()` follows (at once when unlimited). */
  wait(waiter: BandwidthWaiter): void {
    this.#scheduler.wait(this, waiter);
  }

  /** Takes `waiter` off the queue (its sender closed). */
  cancel(waiter: BandwidthWaiter): void {
    if (waiter.queuedOn === this) this.#scheduler.unqueue(this, waiter);
  }

  /** Gives the account back; it ends once nobody holds it and its debt is paid. */
  release(): void {
    if (this.users === 1 && this.#datagrams !== undefined) this.cancel(this.#datagrams);
    this.#scheduler.release(this);
  }
}

/** The deficit-round-robin scheduler of one node. See the module comment. */
export class BandwidthScheduler {
  readonly #tickMs: number;
  readonly #burstMs: number;
  readonly #maxGroups: number;
  readonly #now: () => number;
  readonly #accounts = new Map<string, BandwidthAccount>();
  readonly #groups = new Map<string, { bytesSent: number; throttledMs: number }>();
  #mbps = 0;
  #rate = 0; // bytes per ms
  #quantum = 0;
  #burst = 0;
  #tokens = 0;
  #lastRefill = 0;
  /** Ring of accounts waiting for their share; `#ring` is the next one served. */
  #ring: BandwidthAccount | undefined;
  #ringSize = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The accounts of one period (reused). */
  readonly #members: BandwidthAccount[] = [];
  #bytesSent = 0;
  #throttledMs = 0;

  constructor(options: BandwidthSchedulerOptions) {
    this.#tickMs = options.tickMs ?? DEFAULT_BANDWIDTH_TICK_MS;
    this.#burstMs = options.burstMs ?? DEFAULT_BANDWIDTH_BURST_MS;
    this.#maxGroups = options.maxGroups ?? DEFAULT_MAX_BANDWIDTH_GROUPS;
    this.#now = options.now ?? (() => performance.now());
    this.setCap(options.totalBandwidthMbps);
  }

  /** Whether a cap is set. */
  get enabled(): boolean {
    return this.#rate > 0;
  }

  /** The cap in force, Mbit/s; `0` = unlimited. */
  get totalBandwidthMbps(): number {
    return this.#mbps;
  }

  /** What an idle node pays a sender beyond its debt, bytes (1 ms of the cap, within 1 500 B – 64 KiB). */
  get quantum(): number {
    return this.#quantum;
  }

  /** Tokens kept for a burst after idle, bytes (`burstMs` of the cap). */
  get burst(): number {
    return this.#burst;
  }

  /**
   * Sets the cap (a reload). `0` lifts it: every waiter resumes, debts are forgiven and the timer stops.
   * Invalid values (negative, not finite) are treated as `0`; validate before.
   */
  setCap(mbps: number): void {
    const valid = Number.isFinite(mbps) && mbps > 0 ? Math.min(mbps, MAX_TOTAL_BANDWIDTH_MBPS) : 0;
    this.#mbps = valid;
    this.#rate = mbpsToBytesPerMs(valid);
    this.#quantum = Math.min(MAX_BANDWIDTH_QUANTUM, Math.max(MIN_BANDWIDTH_QUANTUM, Math.round(this.#rate)));
    // An idle node has its burst ready; a change of cap keeps what was saved up, within the new burst.
    this.#tokens =
      this.#burst === 0 ? this.#rate * this.#burstMs : Math.min(this.#tokens, this.#rate * this.#burstMs);
    this.#burst = this.#rate * this.#burstMs;
    this.#lastRefill = this.#now();
    if (valid === 0) {
      this.#tokens = 0;
      this.#stopTimer();
      const now = this.#now();
      while (this.#ring !== undefined) {
        const account = this.#ring;
        account.balance = 0;
        this.#leaveRing(account, now);
        this.#resumeAll(account);
        this.#maybeEnd(account);
      }
      for (const account of this.#accounts.values()) account.balance = 0;
    }
  }

  /**
   * The account `id` (created on first use; `group` is what it is shown as, fixed at creation). Every
   * call must be matched by one {@link BandwidthAccount.release}.
   */
  account(id: string, group: string = id): BandwidthAccount {
    let account = this.#accounts.get(id);
    if (account === undefined) {
      account = new BandwidthAccount(this, id, group);
      this.#accounts.set(id, account);
    }
    account.users++;
    return account;
  }

  /** Accounts alive (held, or still repaying a debt). */
  get accountCount(): number {
    return this.#accounts.size;
  }

  /** @internal See {@link BandwidthAccount.charge}. */
  charge(account: BandwidthAccount, bytes: number): boolean {
    if (this.#rate === 0) return true;
    account.bytesSent += bytes;
    this.#bytesSent += bytes;
    account.balance -= bytes;
    if (account.balance > 0) return true;
    if (account.since >= 0) return false;
    // In debt and not in the round yet: with nobody else waiting, the idle capacity pays at once.
    if (this.refill(account)) return true;
    this.#joinRing(account);
    return false;
  }

  /**
   * @internal With nobody waiting, pays `account`'s debt plus one quantum from the tokens accrued (at
   * most the burst); true when its balance is positive afterwards.
   */
  refill(account: BandwidthAccount): boolean {
    // Only on an idle node: while the timer runs, backends take turns (first come must not mean first served).
    if (this.#timer !== undefined) return false;
    this.#accrue(this.#now(), this.#burst);
    const take = Math.min(this.#tokens, this.#quantum - account.balance);
    if (take <= 0) return false;
    this.#tokens -= take;
    account.balance += take;
    return account.balance > 0;
  }

  /** @internal See {@link BandwidthAccount.wait}. */
  wait(account: BandwidthAccount, waiter: BandwidthWaiter): void {
    if (this.#rate === 0 || account.balance > 0) {
      waiter.resume();
      return;
    }
    if (waiter.queuedOn !== undefined) return;
    waiter.queuedOn = account;
    waiter.next = undefined;
    waiter.prev = account.tail;
    if (account.tail === undefined) account.head = waiter;
    else account.tail.next = waiter;
    account.tail = waiter;
    if (account.since < 0) this.#joinRing(account);
  }

  /** @internal */
  unqueue(account: BandwidthAccount, waiter: BandwidthWaiter): void {
    if (waiter.prev === undefined) account.head = waiter.next;
    else waiter.prev.next = waiter.next;
    if (waiter.next === undefined) account.tail = waiter.prev;
    else waiter.next.prev = waiter.prev;
    waiter.next = waiter.prev = waiter.queuedOn = undefined;
  }

  /** @internal See {@link BandwidthAccount.release}. */
  release(account: BandwidthAccount): void {
    if (account.users > 0) account.users--;
    this.#maybeEnd(account);
  }

  /** Stops the timer and lifts every wait (the node is closing). */
  close(): void {
    this.setCap(0);
  }

  /** A snapshot; also takes a rate sample of each account (at most one per second). */
  stats(): BandwidthStats {
    const now = this.#now();
    const accounts: BandwidthAccountStats[] = [];
    let throttledMs = this.#throttledMs;
    for (const a of this.#accounts.values()) {
      const waiting = a.since >= 0 ? now - a.since : 0;
      throttledMs += a.throttledMs + waiting;
      if (a.sampleAt < 0) {
        a.sampleAt = now;
        a.sampleBytes = a.bytesSent;
      } else if (now - a.sampleAt >= 1_000) {
        a.rate = ((a.bytesSent - a.sampleBytes) * 1_000) / (now - a.sampleAt);
        a.sampleAt = now;
        a.sampleBytes = a.bytesSent;
      }
      accounts.push({
        id: a.id,
        group: a.group,
        bytesSent: a.bytesSent,
        throttledMs: Math.round(a.throttledMs + waiting),
        bytesPerSecond: Math.round(a.rate),
        throttled: a.since >= 0,
        users: a.users,
      });
    }
    const groups = new Map<string, { bytesSent: number; throttledMs: number }>();
    for (const [group, totals] of this.#groups) groups.set(group, { ...totals });
    for (const a of accounts) {
      const g = this.#groupOf(a.group, groups);
      g.bytesSent += a.bytesSent;
      g.throttledMs += a.throttledMs;
    }
    return {
      totalBandwidthMbps: this.#mbps,
      capBytesPerSecond: Math.round(this.#rate * 1_000),
      throttledAccounts: this.#ringSize,
      bytesSent: this.#bytesSent,
      throttledMs: Math.round(throttledMs),
      accounts,
      groups: [...groups].map(([group, t]) => ({
        group,
        bytesSent: t.bytesSent,
        throttledMs: Math.round(t.throttledMs),
      })),
    };
  }

  /** Adds the tokens accrued since the last refill, keeping at most `limit`. */
  #accrue(now: number, limit: number): void {
    const elapsed = now - this.#lastRefill;
    this.#lastRefill = now;
    if (elapsed > 0) this.#tokens = Math.min(this.#tokens + elapsed * this.#rate, limit);
  }

  #joinRing(account: BandwidthAccount): void {
    account.since = this.#now();
    const head = this.#ring;
    if (head === undefined) {
      account.next = account.prev = account;
      this.#ring = account;
    } else {
      // At the tail: served after everyone already waiting.
      const tail = head.prev!;
      account.prev = tail;
      account.next = head;
      tail.next = account;
      head.prev = account;
    }
    this.#ringSize++;
    if (this.#timer === undefined) this.#timer = setTimeout(this.#tick, this.#tickMs);
  }

  #leaveRing(account: BandwidthAccount, now: number): void {
    account.throttledMs += now - account.since;
    account.since = -1;
    if (account.next === account) {
      this.#ring = undefined;
    } else {
      account.prev!.next = account.next;
      account.next!.prev = account.prev;
      if (this.#ring === account) this.#ring = account.next;
    }
    account.next = account.prev = undefined;
    this.#ringSize--;
  }

  readonly #tick = (): void => {
    this.#timer = undefined;
    if (this.#rate === 0) return;
    const now = this.#now();
    // Everyone in the round waited since the last tick: the whole interval is theirs (a late timer is
    // bounded, so that one stall does not turn into a burst).
    this.#accrue(now, Math.max(this.#burst, this.#rate * Math.min(now - this.#lastRefill, MAX_TICK_GAP_MS)));
    if (this.#ring === undefined) {
      // A whole period without anyone waiting: the node is idle again, and keeps its burst, no more.
      this.#tokens = Math.min(this.#tokens, this.#burst);
      return;
    }
    // One round of deficit round robin per period, its quantum the period's tokens split equally among
    // the backends waiting. A backend that only owes (none of its senders waits: it has nothing more to
    // send) gets no more than its debt, and what it leaves goes to the others.
    const members = this.#members;
    let account: BandwidthAccount | undefined = this.#ring;
    for (let n = this.#ringSize; n > 0 && account !== undefined; n--) {
      members.push(account);
      account = account.next;
    }
    let waiting = members.length;
    for (let settled = true; settled && waiting > 0; ) {
      settled = false;
      const share = this.#tokens / waiting;
      for (let i = 0; i < members.length; i++) {
        const m = members[i]!;
        if (m.since < 0 || m.head !== undefined || -m.balance > share) continue;
        this.#tokens += m.balance;
        m.balance = 0;
        this.#leaveRing(m, now);
        this.#maybeEnd(m);
        waiting--;
        settled = true;
      }
    }
    const share = waiting > 0 ? this.#tokens / waiting : 0;
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!;
      if (m.since < 0) continue;
      m.balance += share;
      this.#tokens -= share;
    }
    members.length = 0;
    if (this.#tokens < 0) this.#tokens = 0;
    // Those out of debt send again; the others wait for the next period.
    account = this.#ring;
    for (let n = this.#ringSize; n > 0 && account !== undefined; n--) {
      const next: BandwidthAccount | undefined = account.next;
      if (account.balance > 0) {
        this.#leaveRing(account, now);
        this.#resumeAll(account);
        this.#maybeEnd(account);
      }
      account = next;
    }
    // One more period at least: who just resumed and runs into debt again takes its turn, not the bucket.
    this.#timer = setTimeout(this.#tick, this.#tickMs);
  };

  #resumeAll(account: BandwidthAccount): void {
    let waiter = account.head;
    account.head = account.tail = undefined;
    while (waiter !== undefined) {
      const next = waiter.next;
      waiter.next = waiter.prev = waiter.queuedOn = undefined;
      waiter.resume();
      waiter = next;
    }
  }

  /** Ends an account nobody holds once it owes nothing (a debt is repaid first: the bytes were sent). */
  #maybeEnd(account: BandwidthAccount): void {
    if (account.users > 0 || account.since >= 0 || account.head !== undefined) return;
    if (account.balance < 0 && this.#rate > 0) {
      this.#joinRing(account);
      return;
    }
    if (this.#accounts.get(account.id) !== account) return;
    this.#accounts.delete(account.id);
    const totals = this.#groupOf(account.group, this.#groups);
    totals.bytesSent += account.bytesSent;
    totals.throttledMs += account.throttledMs;
    this.#throttledMs += account.throttledMs;
  }

  #groupOf(
    group: string,
    groups: Map<string, { bytesSent: number; throttledMs: number }>,
  ): { bytesSent: number; throttledMs: number } {
    let totals = groups.get(group);
    if (totals === undefined) {
      const key = groups.size >= this.#maxGroups ? 'other' : group;
      totals = groups.get(key);
      if (totals === undefined) {
        totals = { bytesSent: 0, throttledMs: 0 };
        groups.set(key, totals);
      }
    }
    return totals;
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

function noop(): void {}
