/**
 * A TCP relay on 127.0.0.1 that holds every chunk `delayMs` before passing it on, each way and in order: a
 * path with a round trip of 2 × `delayMs` for tests of what depends on it (windows that grow), where the
 * machine has no `netem`. It stops reading a side while 64 MiB of it wait, so it bounds what it holds.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

const MAX_HELD = 64 * 1024 * 1024;

/** Chunks from `from` reach `to` `delayMs` after they arrived. */
function delay(from: Socket, to: Socket, delayMs: number): void {
  const queue: Array<{ at: number; chunk: Buffer }> = [];
  let held = 0;
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  const flush = (): void => {
    timer = undefined;
    const now = Date.now();
    while (queue.length > 0 && queue[0]!.at <= now) {
      const { chunk } = queue.shift()!;
      held -= chunk.length;
      if (!to.destroyed) to.write(chunk);
    }
    if (held < MAX_HELD && from.isPaused()) from.resume();
    if (queue.length > 0) timer = setTimeout(flush, Math.max(0, queue[0]!.at - now));
    else if (ended) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    queue.push({ at: Date.now() + delayMs, chunk });
    held += chunk.length;
    if (held >= MAX_HELD) from.pause();
    timer ??= setTimeout(flush, delayMs);
  });
  from.on('end', () => {
    ended = true;
    if (queue.length === 0) to.end();
  });
  // Closed (after its end, or broken): what waits still goes out, then `to` ends.
  from.on('close', () => {
    ended = true;
    if (queue.length === 0) to.end();
  });
}

export interface DelayLine {
  port: number;
  close(): Promise<void>;
}

/** Starts a delay line in front of `127.0.0.1:targetPort`. */
export async function startDelayLine(targetPort: number, delayMs: number): Promise<DelayLine> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = connect(targetPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    delay(inbound, outbound, delayMs);
    delay(outbound, inbound, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
