// One direction of a delay line: chunks from `from` reach `to` `delayMs` after they arrived, in order. It
// stops reading `from` while 64 MiB wait, so it bounds what it holds. Used by the `relay` role of
// bench/lib/child.mjs (`delayMs`) to give the hub connection a round trip (bench/delay-probe.mjs).
const MAX_HELD = 64 * 1024 * 1024;

export function delayOneWay(from, to, delayMs) {
  const queue = [];
  let head = 0;
  let held = 0;
  let timer;
  let ended = false;
  const flush = () => {
    timer = undefined;
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
    if (head < queue.length) timer = setTimeout(flush, Math.max(0, queue[head].at - now));
    else if (ended) to.end();
  };
  from.on('data', (chunk) => {
    queue.push({ at: performance.now() + delayMs, chunk });
    held += chunk.length;
    if (held >= MAX_HELD) from.pause();
    timer ??= setTimeout(flush, delayMs);
  });
  from.on('end', () => {
    ended = true;
    if (head === queue.length) to.end();
  });
  // Closed (after its end, or broken): what waits still goes out, then `to` ends.
  from.on('close', () => {
    ended = true;
    if (head === queue.length) to.end();
  });
}
