import type { Socket } from 'node:net';

/** One direction: chunks from `from` reach `to` `delayMs` after they arrived; `from`'s end ends `to` after them. */
export function delayOneWay(from: Socket, to: Socket, delayMs: number): void;

export interface DelayLine {
  port: number;
  close(): Promise<void>;
}

/** Starts a delay line in front of `127.0.0.1:targetPort`; `close()` ends every connection through it. */
export function startDelayLine(targetPort: number, delayMs: number): Promise<DelayLine>;
