/**
 * V8's young generation, tuned for a process whose work is relaying bytes (docs/benchmarks.md "The
 * backend client's upload: young generation against external memory").
 *
 * A relay allocates little JavaScript per megabyte but one `ArrayBuffer` (outside the JS heap) per TLS
 * read and per reassembled WebSocket message. V8 collects dead buffers with their small JS wrappers: a
 * scavenge frees the young ones, but scavenges run only when the young generation is full of *JS*
 * allocations, and V8 grows the young generation (its new space from 1 MiB to 32 MiB with Node 20) as the
 * process runs. Once it has grown, 64 MiB of buffers are allocated before the next scavenge, which sets off
 * V8's external-memory limit and a full mark-compact instead — measured on a bulk upload through one
 * node: 9–18 mark-compacts per 256 MB in the backend client, and about 2 800 µs of its CPU per MB,
 * against none and about 1 800 µs/MB with the young generation kept small.
 */
import { setFlagsFromString } from 'node:v8';

/**
 * The V8 flag {@link tuneHeapForRelaying} sets at run time: the young generation no longer grows (it stays
 * within 2 MiB, as with `--max-semi-space-size=1`). Given on the command line instead, V8 overrides it.
 */
export const RELAY_HEAP_FLAG = '--semi-space-growth-factor=1';

/**
 * Keeps V8's young generation small, so that scavenges (cheap) free a relay's buffers before
 * V8's external-memory limit calls for mark-compacts (costly). For a process dedicated to relaying, such as
 * the `nexus-backend` command, which calls it first thing; call it once, early. It changes a process-wide
 * V8 setting, so an application that embeds the client among other work should measure before using it.
 */
export function tuneHeapForRelaying(): void {
  setFlagsFromString(RELAY_HEAP_FLAG);
}
