/**
 * Smooth weighted round robin, the algorithm nginx uses for upstreams
 * (`ngx_http_upstream_get_peer`): on every pick each member's `current` grows by its weight, the member
 * with the largest `current` wins and pays back the total weight. Over any run of `totalWeight` picks
 * from a fresh start every member is picked exactly `weight` times, and heavy members are interleaved
 * with light ones (5:1 gives `a a b a a a`, not `a a a a a b`).
 */

/** Weight used when a weight is absent, not finite, or ≤ 0. */
export const DEFAULT_WEIGHT = 1;
/** Largest accepted weight; larger values are clamped (keeps `current` far from float precision limits). */
export const MAX_WEIGHT = 1_000_000;

/** One member in a {@link WeightedRoundRobin} snapshot. */
export interface WeightedMemberStats<T> {
  /** The member. */
  target: T;
  /** Its effective weight (≥ 1). */
  weight: number;
  /** How many times `pick()` returned it since it joined. */
  picks: number;
}

/** Plain snapshot of a {@link WeightedRoundRobin}. */
export interface WeightedRoundRobinStats<T> {
  /** Number of members. */
  size: number;
  /** Sum of the members' weights. */
  totalWeight: number;
  /** Total picks served since construction. */
  picks: number;
  /** Members in insertion order. */
  members: WeightedMemberStats<T>[];
}

interface Member<T> {
  target: T;
  weight: number;
  current: number;
  picks: number;
}

/** Clamp a weight to an integer in [1, MAX_WEIGHT]; anything ≤ 0 or not a number becomes 1. */
export function normalizeWeight(weight: number | undefined): number {
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) return DEFAULT_WEIGHT;
  const w = Math.floor(weight);
  if (w < 1) return DEFAULT_WEIGHT;
  return Math.min(w, MAX_WEIGHT);
}

/**
 * A pool of targets picked by smooth weighted round robin. `pick()` is O(n) in the pool size and
 * allocates nothing. Members can join and leave at any time.
 */
export class WeightedRoundRobin<T> {
  // Insertion-ordered array for the allocation-free scan, plus an index for O(1) membership.
  readonly #members: Member<T>[] = [];
  readonly #byTarget = new Map<T, Member<T>>();
  #totalWeight = 0;
  #picks = 0;

  /** @param targets initial members as `[target, weight]` pairs. */
  constructor(targets?: Iterable<readonly [T, number?]>) {
    if (targets) for (const [target, weight] of targets) this.add(target, weight);
  }

  /** Number of members. */
  get size(): number {
    return this.#members.length;
  }

  /** Sum of the members' weights. */
  get totalWeight(): number {
    return this.#totalWeight;
  }

  /** True when `target` is a member. */
  has(target: T): boolean {
    return this.#byTarget.has(target);
  }

  /**
   * Add `target` with `weight` (≤ 0, absent or not a number → 1; fractions are floored). Adding an existing
   * member updates its weight and keeps its place in the rotation.
   */
  add(target: T, weight?: number): void {
    const w = normalizeWeight(weight);
    const existing = this.#byTarget.get(target);
    if (existing) {
      this.#totalWeight += w - existing.weight;
      existing.weight = w;
      this.#bound();
      return;
    }
    // A newcomer starts at current = 0 (nginx): with stable membership from a fresh start every window of
    // totalWeight picks is then exact.
    const member: Member<T> = { target, weight: w, current: 0, picks: 0 };
    this.#members.push(member);
    this.#byTarget.set(target, member);
    this.#totalWeight += w;
    this.#bound();
  }

  /** Remove `target`. Returns false if it was not a member. */
  remove(target: T): boolean {
    const member = this.#byTarget.get(target);
    if (!member) return false;
    this.#byTarget.delete(target);
    const index = this.#members.indexOf(member);
    this.#members.splice(index, 1);
    this.#totalWeight -= member.weight;
    // As in nginx, the leaver's credit or debt leaves with it; nothing is redistributed (redistributing it,
    // or resetting everyone, would let a member that keeps joining and leaving starve the light members).
    // But a member that had just been picked sits near -oldTotal, which can be many windows of the smaller
    // pool away from its next turn: see #bound.
    this.#bound();
    return true;
  }

  /**
   * Bounds the rotation state after a membership or weight change, without changing the members' order:
   * no credit above one window of the current total (a newcomer entering at 0 would otherwise wait behind
   * a member that piled up credit in a larger pool), and nobody trailing the leader by more than one
   * window (a member just picked in a larger pool would otherwise wait many windows of the smaller one).
   * Debts are not forgiven and credits are not spread, which would let a member that keeps joining and
   * leaving starve the light members.
   */
  #bound(): void {
    const total = this.#totalWeight;
    if (this.#members.length === 0) return;
    let leader = Number.NEGATIVE_INFINITY;
    for (const m of this.#members) {
      if (m.current > total) m.current = total;
      if (m.current > leader) leader = m.current;
    }
    const floor = leader - total;
    for (const m of this.#members) if (m.current < floor) m.current = floor;
  }

  /** Remove every member. */
  clear(): void {
    this.#members.length = 0;
    this.#byTarget.clear();
    this.#totalWeight = 0;
  }

  /** The next target, or `undefined` when the pool is empty. */
  pick(): T | undefined {
    const members = this.#members;
    const n = members.length;
    if (n === 0) return undefined;
    let best = members[0]!;
    if (n > 1) {
      let bestCurrent = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < n; i++) {
        const m = members[i]!;
        m.current += m.weight;
        // Strictly greater: ties go to the earliest member, as in nginx.
        if (m.current > bestCurrent) {
          best = m;
          bestCurrent = m.current;
        }
      }
      best.current -= this.#totalWeight;
    }
    best.picks++;
    this.#picks++;
    return best.target;
  }

  /** Iterate over the members in insertion order. */
  *targets(): IterableIterator<T> {
    for (const m of this.#members) yield m.target;
  }

  /** A plain snapshot for metrics and debugging. */
  stats(): WeightedRoundRobinStats<T> {
    return {
      size: this.#members.length,
      totalWeight: this.#totalWeight,
      picks: this.#picks,
      members: this.#members.map((m) => ({ target: m.target, weight: m.weight, picks: m.picks })),
    };
  }
}
