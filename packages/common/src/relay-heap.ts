/**
 * V8's garbage collector, tuned for a process whose work is relaying bytes: the `nexus-backend` command and
 * the node's `nexus-proxy serve` (docs/benchmarks.md, "The backend client's download", "The backend
 * client's upload" and "The node's heap and garbage collection").
 *
 * A relay allocates little JavaScript per megabyte but, on its receive paths, buffers outside the JS heap
 * that it cannot avoid: Node's buffer for each TLS read of a WebSocket (the hub and peer links; DATA frames
 * are views of them, not joined: ws-data-frames.ts, so about one byte of buffers per byte received), Node's
 * buffer for each read of a relayed socket. V8 frees dead buffers with their
 * small JS wrappers: a scavenge frees the young ones, but scavenges run only when the young generation is
 * full of *JS* allocations. Meanwhile, once the heap holds more than V8's 8 MiB of "small heap", the memory
 * allocated outside it since the last mark-compact counts against the old generation's limit, only a few
 * megabytes away for a heap of this size: without more, a bulk upload runs a mark-compact (costly: it marks
 * the whole heap) every ten-odd megabytes, where scavenges (cheap) would have freed the same buffers.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * The V8 flag {@link tuneHeapForRelaying} sets at run time: the young generation no longer grows (it stays
 * within 2 MiB, as with `--max-semi-space-size=1`). Given on the command line instead, V8 overrides it.
 */
export const RELAY_HEAP_FLAG = '--semi-space-growth-factor=1';

/**
 * Bytes received between two scavenges requested by {@link countReceivedBytes}, once tuned: about 4 MiB of
 * buffers, well within the old generation's headroom above (2 MiB while ws joined each message into a
 * buffer of its own; docs/benchmarks.md, "Binary messages as views").
 */
export const RELAY_SCAVENGE_BYTES = 4 * 1024 * 1024;

/**
 * What {@link tuneHeapForRelaying} sets up, kept on `globalThis` under a registered symbol: the package's
 * ESM and CommonJS builds each carry a copy of this module, and a process may tune through one and relay
 * through the other (or through a second copy of this package).
 */
interface RelayHeapState {
  /** V8's `gc()`, asking for a scavenge. */
  scavenge: () => void;
  receivedSinceScavenge: number;
}
const STATE = Symbol.for('@nexus-proxy/common relay heap');
const state = (): RelayHeapState | undefined => (globalThis as { [STATE]?: RelayHeapState })[STATE];

/**
 * Tunes V8 for a relay: keeps its young generation small, and has {@link countReceivedBytes} run a
 * scavenge every {@link RELAY_SCAVENGE_BYTES} received, so that the receive path's buffers are freed young
 * instead of by mark-compacts. For a process dedicated to relaying, such as the `nexus-backend` command
 * and `nexus-proxy serve`, which call it first thing; call it once, early. It changes process-wide V8
 * settings (and takes V8's `gc()` from a context of its own, as `--expose-gc` would offer it), so an
 * application that embeds the client or the node among other work should measure before using it.
 */
export function tuneHeapForRelaying(): void {
  setFlagsFromString(RELAY_HEAP_FLAG);
  if (state() !== undefined) return;
  try {
    // `--expose-gc` at run time offers `gc` to contexts created from then on: take it from one, then
    // set the flag back so that no later context (an application's `vm` contexts) gets it.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as (options: { type: 'minor' }) => void;
    if (typeof gc === 'function') {
      (globalThis as { [STATE]?: RelayHeapState })[STATE] = {
        scavenge: () => gc({ type: 'minor' }),
        receivedSinceScavenge: 0,
      };
    }
  } catch {
    // This V8 offers no `gc` this way: the young generation's setting alone.
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/**
 * Counts `bytes` received (each a buffer outside the JS heap that a relay's receive path allocated); once
 * tuned ({@link tuneHeapForRelaying}), runs a scavenge each time {@link RELAY_SCAVENGE_BYTES} have been
 * received. A no-op otherwise.
 */
export function countReceivedBytes(bytes: number): void {
  const tuned = state();
  if (tuned === undefined) return;
  tuned.receivedSinceScavenge += bytes;
  if (tuned.receivedSinceScavenge < RELAY_SCAVENGE_BYTES) return;
  tuned.receivedSinceScavenge = 0;
  tuned.scavenge();
}
