/**
 * The streams waiting for a turn at the transport (the engine's pump takes one DATA frame per turn): a
 * round-robin round, and a prompt lane for streams that become ready with a short message, so that a
 * request's answer among bulk transfers waits for at most every other turn instead of a whole round (up
 * to 64 MB, `LONG_ROUND_BYTES`; docs/protocol.md §1.11). The prompt lane takes at most every other turn
 * while the round waits: the round keeps at least half of the turns, and the longer ones.
 */
import { ReadyQueue } from './ready-queue.js';

/**
 * A stream that becomes ready with at most this many bytes to send (16 KiB, one TLS record) is served in
 * the prompt lane.
 */
export const PROMPT_TURN_MAX = 16 * 1024;

/** What the queue needs to know of a stream: the bytes it has to send. */
export interface TurnTaker {
  readonly pendingBytes: number;
}

export class TurnQueue<T extends TurnTaker> {
  readonly #round = new ReadyQueue<T>();
  readonly #prompt = new ReadyQueue<T>();
  /** The next turn may go to the prompt lane (turns alternate while both lanes wait). */
  #promptTurn = true;

  /** Streams waiting. */
  get size(): number {
    return this.#round.size + this.#prompt.size;
  }

  /**
   * `item` is ready to send: the prompt lane when what it has to send is short and it is not in the round,
   * else the round's end (unless it waits already).
   */
  schedule(item: T): void {
    if (item.pendingBytes <= PROMPT_TURN_MAX && !this.#round.has(item)) this.#prompt.add(item);
    else if (!this.#prompt.has(item)) this.#round.add(item);
  }

  /** The stream whose turn it is; the queue must not be empty. */
  next(): T {
    const fromPrompt = this.#prompt.size > 0 && (this.#promptTurn || this.#round.size === 0);
    this.#promptTurn = !fromPrompt;
    return fromPrompt ? this.#prompt.shift()! : this.#round.shift()!;
  }

  /** `item` had its turn and has more to send: the round's end. */
  requeue(item: T): void {
    this.#round.add(item);
  }

  /** Forgets `item` (the queues remember what they served: see ReadyQueue). */
  delete(item: T): void {
    this.#round.delete(item);
    this.#prompt.delete(item);
  }

  clear(): void {
    this.#round.clear();
    this.#prompt.clear();
  }
}
