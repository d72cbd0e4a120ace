// A delay line on 127.0.0.1: a TCP relay that holds every chunk `delayMs` before passing it on, each way
// and in order, so that a path has a round trip of twice `delayMs` (this machine's kernel has no netem).
// For tests and benchmarks of what depends on the round trip (receive windows that grow,
// docs/protocol.md §1.5). It stops reading a side while 64 MiB of it wait, so it bounds what it holds.
import { connect, createServer } from 'node:net';

const MAX_HELD = 64 * 1024 * 1024;

/** One direction: chunks from `from` reach `to` `delayMs` after they arrived; `from`'s end ends `to` after them. */
export function delayOneWay(from, to, delayMs) {
  const queue = [];
  let head = 0;
  let held = 0;
  let scheduled = false;
  let ended = false;
  const flush = () => {
    scheduled = false;
    const now = performance.now();
    while (head < queue.length && queue[head].at <= now) {
      const { chunk } = queue[head];
      queue[head++] = undefined;
      held -= chunk.length;
      if (!to.destroyed) to.write(chunk);
    }
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    }
    if (held < MAX_HELD && from.isPaused()) from.resume();
    if (head < queue.length) {
      scheduled = true;
      setTimeout(flush, Math.max(0, queue[head].at - now));
    } else if (ended) to.end();
  };
  from.on('data', (chunk) => {
    queue.push({ at: performance.now() + delayMs, chunk });
    held += chunk.length;
    if (held >= MAX_HELD) from.pause();
    if (!scheduled) {
      scheduled = true;
      setTimeout(flush, delayMs);
    }
  });
  // Ended or closed (broken): what waits still goes out, then `to` ends.
  const finish = () => {
    ended = true;
    if (head === queue.length) to.end();
  };
  from.on('end', finish);
  from.on('close', finish);
}

/** Starts a delay line in front of `127.0.0.1:targetPort`; `close()` ends every connection through it. */
export async function startDelayLine(targetPort, delayMs) {
  const sockets = new Set();
  const server = createServer((inbound) => {
    const outbound = connect(targetPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    delayOneWay(inbound, outbound, delayMs);
    delayOneWay(outbound, inbound, delayMs);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
